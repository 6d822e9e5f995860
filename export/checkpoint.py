"""Loading Tiny-BioMoE checkpoints: the published format, bare state dicts, prefixed keys, and what to ignore.

Every file is read with ``torch.load(..., weights_only=True)`` (no pickled code runs) and examined entry by
entry against the architecture before any weight is copied (:func:`inspect_checkpoint`):

- a key Tiny-BioMoE needs that is missing, or present with another shape or a non-numeric type, refuses the
  file (naming the first offending keys), so nothing half-loads;
- a floating-point tensor of another precision (float64, float16, bfloat16) is cast to float32, with a note;
- entries that are not part of Tiny-BioMoE (a pretraining head, optimizer state, an epoch counter beside
  ``model_state_dict``...) are listed in a warning and ignored; ``strict=True`` refuses them instead.

``biomoe-edge inspect FILE.pth`` prints the same examination, so a user can see why a file loads or not.
"""

from __future__ import annotations

import collections
import functools
import logging
import os
import pathlib
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field

import torch

from biomoe_edge.manifest import sha256_file

from .model import TinyBioMoE

log = logging.getLogger(__name__)

#: how many offending keys an error message names
_SHOWN_KEYS = 5
#: the mapping inside a checkpoint file that holds the state dict, in the order they are looked for
#: (the published ``Tiny-BioMoE.pth`` uses the first)
STATE_DICT_KEYS = ("model_state_dict", "state_dict", "model")
#: every key of the architecture starts with one of these (a prefix before them is a wrapper's: DataParallel...)
_ANCHOR_KEY = "enc1.patch_embed1.conv.0.weight"


class CheckpointError(ValueError):
    """The file or mapping is not a loadable Tiny-BioMoE checkpoint."""


class RandomWeightsWarning(UserWarning):
    """The model has random weights: its embeddings mean nothing."""


def _first(keys, n: int = _SHOWN_KEYS) -> str:
    keys = list(keys)
    shown = ", ".join(repr(k) for k in keys[:n])
    return shown + (f" (+{len(keys) - n} more)" if len(keys) > n else "")


@functools.lru_cache(maxsize=1)
def _architecture() -> tuple[dict[str, tuple[tuple[int, ...], torch.dtype]], frozenset[str]]:
    with torch.device("meta"):  # shapes only: no memory, and the caller's random generator is left alone
        model = TinyBioMoE()
    entries = {k: (tuple(v.shape), v.dtype) for k, v in model.state_dict().items()}
    return entries, frozenset(name for name, _ in model.named_parameters())


def expected_entries() -> dict[str, tuple[tuple[int, ...], torch.dtype]]:
    """Every state-dict key of Tiny-BioMoE with its shape and dtype (510 entries: parameters and buffers)."""
    return _architecture()[0]


@dataclass
class CheckpointEntry:
    """One entry of a checkpoint's state dict and what loading does with it.

    ``status``: ``"ok"`` (loaded as is), ``"cast"`` (loaded after a dtype cast), ``"ignored"`` (not part of
    Tiny-BioMoE), ``"mis-shaped"`` or ``"wrong type"`` (refused)."""

    key: str
    shape: tuple[int, ...] | None
    dtype: str
    status: str
    detail: str = ""


@dataclass
class CheckpointReport:
    """What a checkpoint holds, entry by entry, and whether it loads (see :func:`inspect_checkpoint`)."""

    source: str
    layout: str
    size_bytes: int | None = None
    sha256: str | None = None
    #: prefix removed from every Tiny-BioMoE key ("module." for DataParallel; "" for none)
    prefix: str = ""
    #: top-level entries beside the state dict (optimizer state, epoch...): name -> type
    top_level_ignored: dict[str, str] = field(default_factory=dict)
    entries: list[CheckpointEntry] = field(default_factory=list)
    #: architecture keys the file lacks
    missing: list[str] = field(default_factory=list)

    def by_status(self, *statuses: str) -> list[CheckpointEntry]:
        return [e for e in self.entries if e.status in statuses]

    @property
    def ignored(self) -> list[str]:
        """Everything loading leaves out: state-dict entries that are not Tiny-BioMoE's, then top-level ones."""
        return [e.key for e in self.by_status("ignored")] + list(self.top_level_ignored)

    @property
    def casts(self) -> dict[str, int]:
        """``"float64 -> float32"`` -> number of tensors cast so."""
        return dict(collections.Counter(e.detail for e in self.by_status("cast")))

    @property
    def parameter_count(self) -> int:
        """Parameters (not buffers) among the tensors that load: 7,337,278 for a complete file."""
        parameters = _architecture()[1]
        total = 0
        for entry in self.by_status("ok", "cast"):
            if entry.key not in parameters:
                continue
            count = 1
            for size in entry.shape or ():
                count *= size
            total += count
        return total

    def problems(self, *, strict: bool = False) -> list[str]:
        """Why the file does not load (empty when it does); ``strict``: ignored entries refuse it too."""
        problems = []
        if self.missing:
            problems.append(f"missing keys {_first(self.missing)}")
        bad = self.by_status("mis-shaped", "wrong type")
        if bad:
            problems.append(f"mis-shaped keys {_first(f'{e.key} {e.detail}' for e in bad)}")
        if strict and self.ignored:
            problems.append(f"unexpected keys {_first(self.ignored)} (--strict; without it they are ignored)")
        return problems

    def loads(self, *, strict: bool = False) -> bool:
        return not self.problems(strict=strict)


def _describe(value) -> tuple[tuple[int, ...] | None, str]:
    if isinstance(value, torch.Tensor):
        return tuple(value.shape), str(value.dtype).removeprefix("torch.")
    if isinstance(value, Mapping):
        return None, f"dict of {len(value)}"
    return None, type(value).__name__


def _load_file(path: pathlib.Path):
    if not path.is_file():
        raise CheckpointError(f"checkpoint file not found: {path}")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # truncated zip, not a torch file, pickled code refused by weights_only
        raise CheckpointError(f"{path} is not a readable PyTorch checkpoint: {type(exc).__name__}: "
                              f"{str(exc).splitlines()[0] if str(exc) else ''}") from exc


def _unwrap(obj, where: str) -> tuple[Mapping, str, dict[str, str]]:
    """(state dict, layout description, top-level entries beside it)."""
    if isinstance(obj, Mapping):
        for name in STATE_DICT_KEYS:
            if isinstance(obj.get(name), Mapping):
                others = {str(k): _describe(v)[1] for k, v in obj.items() if k != name}
                return obj[name], f"{{'{name}': state dict" + (", ...}" if others else "}"), others
    if not isinstance(obj, Mapping) or not obj:
        raise CheckpointError(f"{where} holds no state dict (got {type(obj).__name__})")
    return obj, "bare state dict", {}


def _find_prefix(keys) -> str:
    """The prefix every Tiny-BioMoE key carries in this file ("" when keys match as they are)."""
    if _ANCHOR_KEY in keys:
        return ""
    for key in keys:
        if isinstance(key, str) and key.endswith("." + _ANCHOR_KEY):
            return key[: -len(_ANCHOR_KEY)]
    # No anchor: a bare DataParallel prefix on every key is still recognisable.
    if keys and all(isinstance(k, str) and k.startswith("module.") for k in keys):
        return "module."
    return ""


def _examine(checkpoint) -> tuple[CheckpointReport, dict[str, torch.Tensor]]:
    """The report, and the tensors to load (cast to the architecture's dtypes) keyed as Tiny-BioMoE wants."""
    if isinstance(checkpoint, (str, os.PathLike)):
        path = pathlib.Path(checkpoint)
        obj = _load_file(path)
        where, size, digest = str(path), path.stat().st_size, sha256_file(path)
    else:
        obj, where, size, digest = checkpoint, "the given state dict", None, None
    state, layout, top_level = _unwrap(obj, where)
    prefix = _find_prefix(list(state))
    report = CheckpointReport(source=where, layout=layout, size_bytes=size, sha256=digest, prefix=prefix,
                              top_level_ignored=top_level)
    expected = expected_entries()
    loadable: dict[str, torch.Tensor] = {}
    for raw_key, value in state.items():
        key = raw_key[len(prefix):] if isinstance(raw_key, str) and raw_key.startswith(prefix) else raw_key
        shape, dtype = _describe(value)
        if key not in expected:
            report.entries.append(CheckpointEntry(str(raw_key), shape, dtype, "ignored", "not part of Tiny-BioMoE"))
            continue
        want_shape, want_dtype = expected[key]
        if not isinstance(value, torch.Tensor) or value.is_complex():
            report.entries.append(CheckpointEntry(key, shape, dtype, "wrong type", f"is {dtype}, expected a tensor"))
        elif shape != want_shape:
            report.entries.append(CheckpointEntry(key, shape, dtype, "mis-shaped", f"{shape} != {want_shape}"))
        elif value.dtype == want_dtype:
            report.entries.append(CheckpointEntry(key, shape, dtype, "ok"))
            loadable[key] = value
        elif value.is_floating_point() == want_dtype.is_floating_point:
            # float64 / float16 / bfloat16 weights (or int32 counters): the values fit float32 (int64).
            want = str(want_dtype).removeprefix("torch.")
            report.entries.append(CheckpointEntry(key, shape, dtype, "cast", f"{dtype} -> {want}"))
            loadable[key] = value.to(want_dtype)
        else:
            report.entries.append(CheckpointEntry(key, shape, dtype, "wrong type",
                                                  f"is {dtype}, expected {str(want_dtype).removeprefix('torch.')}"))
    present = {e.key for e in report.entries if e.status != "ignored"}
    report.missing = [k for k in expected if k not in present]
    return report, loadable


def inspect_checkpoint(checkpoint) -> CheckpointReport:
    """Examine ``checkpoint`` (a path or a mapping) against Tiny-BioMoE without building a usable model.

    Raises CheckpointError only when there is nothing to examine (no file, not a PyTorch file, no state dict);
    otherwise ``report.problems(strict=...)`` says why it would not load."""
    return _examine(checkpoint)[0]


def read_state_dict(checkpoint) -> dict[str, torch.Tensor]:
    """The state dict inside ``checkpoint`` (a path or a mapping), unwrapped and without a wrapper's prefix
    (``module.`` from DataParallel / DistributedDataParallel, or any prefix before Tiny-BioMoE's keys).

    Accepts ``{"model_state_dict": sd, ...}`` (the published ``Tiny-BioMoE.pth``), ``{"state_dict": sd}``,
    ``{"model": sd}`` and a bare ``sd``. Entries are returned as they are (no cast, nothing dropped)."""
    if isinstance(checkpoint, (str, os.PathLike)):
        obj, where = _load_file(pathlib.Path(checkpoint)), str(checkpoint)
    else:
        obj, where = checkpoint, "the given state dict"
    state, _layout, _top = _unwrap(obj, where)
    prefix = _find_prefix(list(state))
    return {(k[len(prefix):] if isinstance(k, str) and k.startswith(prefix) else k): v for k, v in state.items()}


def check_state_dict(state_dict: Mapping, model: torch.nn.Module | None = None, where: str = "checkpoint", *,
                     strict: bool = True) -> CheckpointReport:
    """Raise CheckpointError naming the first missing, mis-shaped (and with ``strict``, unexpected) keys."""
    report = inspect_checkpoint(state_dict)
    problems = report.problems(strict=strict)
    if problems:
        raise CheckpointError(f"{where} is not a Tiny-BioMoE checkpoint: " + "; ".join(problems))
    return report


def load_tiny_biomoe(checkpoint=None, *, seed: int = 0, strict: bool = False) -> torch.nn.Module:
    """Tiny-BioMoE in eval mode: forward(float32 (B, 3, 224, 224) in [0, 1]) -> (B, 192).

    ``checkpoint``: a path to a ``.pth`` file or a state dict (see :func:`read_state_dict` for the accepted
    layouts); ``None`` gives deterministic random weights drawn from ``seed`` and a RandomWeightsWarning,
    since such embeddings mean nothing without the published weights. Tensors of another float precision
    are cast to float32 (a log note); entries that are not part of Tiny-BioMoE are ignored with a warning,
    or refused with ``strict=True``. Raises CheckpointError for anything that is not a Tiny-BioMoE checkpoint.

    ``model.source_checkpoint`` records the provenance export manifests and engines carry: ``path``,
    ``sha256`` (None for random weights or a state dict given in memory), ``random_weights``, ``seed``
    (random weights only), ``ignored`` (entries left out) and ``cast`` (``"float64 -> float32"`` -> count).
    """
    if checkpoint is None:
        generator_state = torch.random.get_rng_state()
        try:
            torch.manual_seed(seed)
            model = TinyBioMoE()
            _randomise_norms(model)
        finally:
            torch.random.set_rng_state(generator_state)
        warnings.warn(f"Tiny-BioMoE with random weights (seed {seed}): embeddings are meaningless without the "
                      "published Tiny-BioMoE.pth", RandomWeightsWarning, stacklevel=2)
        model.source_checkpoint = {"path": None, "sha256": None, "random_weights": True, "seed": int(seed),
                                   "ignored": [], "cast": {}}
        return model.eval()
    report, tensors = _examine(checkpoint)
    problems = report.problems(strict=strict)
    if problems:
        hint = f" (`biomoe-edge inspect {report.source}` lists what it holds)" if report.size_bytes else ""
        raise CheckpointError(f"{report.source} is not a Tiny-BioMoE checkpoint: " + "; ".join(problems) + hint)
    if report.casts:
        log.info("%s: cast %s (the architecture runs float32)", report.source,
                 ", ".join(f"{n} tensors {what}" for what, n in report.casts.items()))
    if report.ignored:
        log.warning("%s: ignored %d entries that are not part of Tiny-BioMoE: %s", report.source,
                    len(report.ignored), _first(report.ignored, 8))
    model = TinyBioMoE()
    model.load_state_dict(tensors, strict=True)
    log.info("loaded Tiny-BioMoE weights from %s", report.source)
    # recorded in export manifests; a state dict given in memory has no file to hash
    is_file = isinstance(checkpoint, (str, os.PathLike))
    model.source_checkpoint = {"path": str(checkpoint) if is_file else None, "sha256": report.sha256,
                               "random_weights": False, "seed": None, "ignored": report.ignored,
                               "cast": report.casts}
    return model.eval()


def _randomise_norms(model: torch.nn.Module) -> None:
    """Give BatchNorm statistics and norm affines non-trivial values, so that every layer matters."""
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.normal_(0.0, 0.1)
                module.running_var.uniform_(0.5, 1.5)
            if isinstance(module, (torch.nn.BatchNorm2d, torch.nn.LayerNorm)):
                module.weight.normal_(1.0, 0.1)
                module.bias.normal_(0.0, 0.05)
        for name, param in model.named_parameters():
            if name.endswith("attention_biases"):
                param.normal_(0.0, 0.5)
