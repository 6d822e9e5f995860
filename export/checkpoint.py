"""Loading Tiny-BioMoE checkpoints: the published format, bare state dicts, DataParallel prefixes.

Every file is read with ``torch.load(..., weights_only=True)`` (no pickled code runs) and checked key by
key against the architecture before any weight is copied, so a file that is not a Tiny-BioMoE checkpoint
is refused with a message naming the first offending keys instead of half-loading.
"""

from __future__ import annotations

import logging
import os
import pathlib
import warnings
from collections.abc import Mapping

import torch

from biomoe_edge.manifest import sha256_file

from .model import TinyBioMoE

log = logging.getLogger(__name__)

#: how many offending keys an error message names
_SHOWN_KEYS = 5


class CheckpointError(ValueError):
    """The file or mapping is not a loadable Tiny-BioMoE checkpoint."""


class RandomWeightsWarning(UserWarning):
    """The model has random weights: its embeddings mean nothing."""


def _first(keys, n: int = _SHOWN_KEYS) -> str:
    keys = list(keys)
    shown = ", ".join(repr(k) for k in keys[:n])
    return shown + (f" (+{len(keys) - n} more)" if len(keys) > n else "")


def read_state_dict(checkpoint) -> dict[str, torch.Tensor]:
    """The state dict inside ``checkpoint`` (a path or a mapping), unwrapped and without a ``module.`` prefix.

    Accepts ``{"model_state_dict": sd}`` (the published ``Tiny-BioMoE.pth``), a bare ``sd``, and either with
    every key prefixed by ``module.`` (saved from DataParallel / DistributedDataParallel).
    """
    if isinstance(checkpoint, (str, os.PathLike)):
        path = pathlib.Path(checkpoint)
        if not path.is_file():
            raise CheckpointError(f"checkpoint file not found: {path}")
        try:
            obj = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # truncated zip, not a torch file, pickled code refused by weights_only
            raise CheckpointError(f"{path} is not a readable PyTorch checkpoint: {type(exc).__name__}: "
                                  f"{str(exc).splitlines()[0] if str(exc) else ''}") from exc
        where = str(path)
    else:
        obj, where = checkpoint, "the given state dict"
    if isinstance(obj, Mapping) and "model_state_dict" in obj:
        obj = obj["model_state_dict"]
    if not isinstance(obj, Mapping) or not obj:
        raise CheckpointError(f"{where} holds no state dict (got {type(obj).__name__})")
    non_tensor = [k for k, v in obj.items() if not isinstance(v, torch.Tensor)]
    if non_tensor:
        raise CheckpointError(f"{where} is not a Tiny-BioMoE state dict: non-tensor entries {_first(non_tensor)}")
    keys = list(obj)
    if all(isinstance(k, str) and k.startswith("module.") for k in keys):
        obj = {k[len("module."):]: v for k, v in obj.items()}
    return dict(obj)


def check_state_dict(state_dict: Mapping[str, torch.Tensor], model: torch.nn.Module, where: str = "checkpoint"):
    """Raise CheckpointError naming the first missing, unexpected or mis-shaped keys."""
    expected = model.state_dict()
    missing = [k for k in expected if k not in state_dict]
    unexpected = [k for k in state_dict if k not in expected]
    misshaped = [f"{k} {tuple(state_dict[k].shape)} != {tuple(v.shape)}"
                 for k, v in expected.items() if k in state_dict and state_dict[k].shape != v.shape]
    problems = []
    if missing:
        problems.append(f"missing keys {_first(missing)}")
    if unexpected:
        problems.append(f"unexpected keys {_first(unexpected)}")
    if misshaped:
        problems.append(f"mis-shaped keys {_first(misshaped)}")
    if problems:
        raise CheckpointError(f"{where} is not a Tiny-BioMoE checkpoint: " + "; ".join(problems))


def load_tiny_biomoe(checkpoint=None, *, seed: int = 0) -> torch.nn.Module:
    """Tiny-BioMoE in eval mode: forward(float32 (B, 3, 224, 224) in [0, 1]) -> (B, 192).

    ``checkpoint``: a path to a ``.pth`` file or a state dict (see :func:`read_state_dict` for the accepted
    layouts); ``None`` gives deterministic random weights drawn from ``seed`` and a RandomWeightsWarning,
    since such embeddings mean nothing without the published weights.
    Raises CheckpointError for anything that is not a Tiny-BioMoE checkpoint.
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
        model.source_checkpoint = {"path": None, "sha256": None}
        return model.eval()
    model = TinyBioMoE()
    state_dict = read_state_dict(checkpoint)
    where = str(checkpoint) if isinstance(checkpoint, (str, os.PathLike)) else "the given state dict"
    check_state_dict(state_dict, model, where)
    model.load_state_dict(state_dict, strict=True)
    log.info("loaded Tiny-BioMoE weights from %s", where)
    # recorded in export manifests; a state dict given in memory has no file to hash
    is_file = isinstance(checkpoint, (str, os.PathLike))
    model.source_checkpoint = {"path": str(checkpoint) if is_file else None,
                               "sha256": sha256_file(checkpoint) if is_file else None}
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
