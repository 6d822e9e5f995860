"""Features of the frozen parts, computed once per paired data set and cached on disk.

Fitting a bridge only trains the bridge, so everything before it (the new model up to its input position) and
the fit's targets (the old model's embedding of the real old-modality window) are fixed: they are computed here
in one pass over the paired windows (render with the SDK's own transforms, then Tiny-BioMoE with feature taps)
and stored under ``cache_dir()/bridge/<key>.npz``, the key hashing the windows, the representations, the model's
weights and the tap names. Every candidate position is captured in the same pass, so choosing positions and
refitting with other ranks, prototype counts or epochs never re-runs the backbone.

What is kept, per window: the new modality's pooled features at every input tap; the old modality's summary at
every entry point (mean over the token grid; ``experts``: both 96-D embeddings side by side), used for CKA; a few
of the old modality's real tokens at every entry point (prototype initialisation); and both embeddings.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import pathlib
from dataclasses import dataclass

import numpy as np
import torch

from biomoe_edge.durable import move_into_place
from biomoe_edge.export.model.taps import ENTRY_POINTS, INPUT_TAPS, capture
from biomoe_edge.paths import cache_dir as default_cache_dir
from biomoe_edge.runtime.transforms.render import render_windows as render_images
from biomoe_edge.vocabulary import check_representations

from .data import PairedWindows

log = logging.getLogger(__name__)

#: bump when what is cached changes meaning
FEATURES_VERSION = 1
#: real old-model tokens kept per entry point (over all windows) for prototype initialisation
TOKEN_SAMPLES = 4096
BATCH = 16


@dataclass
class FeatureSet:
    """Cached features of N paired windows (see the module docstring)."""

    new_pooled: dict[str, np.ndarray]
    old_summary: dict[str, np.ndarray]
    old_tokens: dict[str, np.ndarray]
    old_embedding: np.ndarray
    new_embedding: np.ndarray
    key: str
    cache_hit: bool = False
    path: pathlib.Path | None = None


def embed_windows(windows: np.ndarray, fs: float, modality: str, representation: str, model: torch.nn.Module, *,
                  progress: bool = False, description: str = "embedding windows") -> np.ndarray:
    """(N, 192) embeddings of windows (N, n) at ``fs``: rendered as the gateway does, then ``model``."""
    out = np.empty((len(windows), 192), np.float32)
    with progress_bar(description, len(windows), progress) as advance, torch.inference_mode():
        for lo in range(0, len(windows), BATCH):
            images = torch.from_numpy(render_images(windows[lo:lo + BATCH], fs, modality, representation))
            out[lo:lo + len(images)] = model(images).numpy()
            advance(len(images))
    return out


def model_fingerprint(model: torch.nn.Module) -> str:
    """sha256 over the model's state dict (names, shapes, bytes): the weights the features came from."""
    digest = hashlib.sha256(type(model).__name__.encode())
    for name, tensor in model.state_dict().items():
        digest.update(name.encode())
        digest.update(str(tuple(tensor.shape)).encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def _summary(name: str, entered: torch.Tensor) -> torch.Tensor:
    """(B, dim, tokens) -> (B, d): the mean over a token grid; the ``experts`` pair side by side."""
    if name == "experts":
        return entered.flatten(1)
    return entered.mean(dim=2)


def _tokens_per_window(n_windows: int, tokens: int) -> int:
    return int(min(tokens, max(1, -(-TOKEN_SAMPLES // n_windows))))


def cache_key(paired: PairedWindows, model_hash: str, old_representation: str, new_representation: str,
              inputs, entries) -> str:
    digest = hashlib.sha256()
    for part in (f"bridge-features-v{FEATURES_VERSION}", paired.sha256(), model_hash, old_representation,
                 new_representation, ",".join(inputs), ",".join(entries), str(TOKEN_SAMPLES)):
        digest.update(part.encode())
        digest.update(b"\x1f")
    return digest.hexdigest()[:32]


@contextlib.contextmanager
def progress_bar(description: str, total: int, enabled: bool = True):
    """A rich progress bar; yields ``advance(n=1)``. Disabled (``--no-progress``), it logs the step's start and
    its duration instead (INFO), so that a long step is never silent."""
    if not enabled:
        import time

        started = time.perf_counter()
        log.info("%s: started (%d steps)", description, total)
        yield lambda n=1: None
        log.info("%s: done in %.1f s", description, time.perf_counter() - started)
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, \
        TimeRemainingColumn

    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  TimeRemainingColumn(), transient=False) as progress:
        task = progress.add_task(description, total=total)
        yield lambda n=1: progress.advance(task, n)


def extract_features(paired: PairedWindows, model: torch.nn.Module, *, old_representation: str,
                     new_representation: str, cache_dir=None, inputs=tuple(INPUT_TAPS),
                     entries=tuple(ENTRY_POINTS), progress: bool = True, use_cache: bool = True) -> FeatureSet:
    """The frozen parts' features of ``paired`` (cached; see the module docstring). ``model``: Tiny-BioMoE in eval
    mode, used as both the old and the new model."""
    old_representation = check_representations(old_representation)[0]
    new_representation = check_representations(new_representation)[0]
    inputs, entries = tuple(inputs), tuple(entries)
    key = cache_key(paired, model_fingerprint(model), old_representation, new_representation, inputs, entries)
    path = pathlib.Path(cache_dir or default_cache_dir()) / "bridge" / f"{key}.npz"
    if use_cache and path.is_file():
        log.info("bridge features: cache hit %s", path)
        return _load(path, key, inputs, entries)
    n = len(paired)
    new_pooled = {name: np.empty((n, INPUT_TAPS[name].dim), np.float32) for name in inputs}
    old_summary = {name: np.empty((n, ENTRY_POINTS[name].dim * (2 if name == "experts" else 1)), np.float32)
                   for name in entries}
    per_window = {name: _tokens_per_window(n, ENTRY_POINTS[name].tokens) for name in entries}
    old_tokens = {name: np.empty((n, per_window[name], ENTRY_POINTS[name].dim), np.float32) for name in entries}
    old_embedding = np.empty((n, 192), np.float32)
    new_embedding = np.empty((n, 192), np.float32)
    new_inputs = tuple(dict.fromkeys(inputs + ("embedding",)))
    with progress_bar(f"features of {n} paired windows ({paired.old_modality} + {paired.new_modality})", n,
                      progress) as advance, torch.inference_mode():
        for lo in range(0, n, BATCH):
            hi = min(n, lo + BATCH)
            old_images = torch.from_numpy(render_images(paired.old[lo:hi], paired.old_fs, paired.old_modality,
                                                        old_representation))
            new_images = torch.from_numpy(render_images(paired.new[lo:hi], paired.new_fs, paired.new_modality,
                                                        new_representation))
            pooled, _ = capture(model, new_images, inputs=new_inputs)
            for name in inputs:
                new_pooled[name][lo:hi] = pooled[name].numpy()
            new_embedding[lo:hi] = pooled["embedding"].numpy()
            old_pooled, entered = capture(model, old_images, inputs=("embedding",), entries=entries)
            old_embedding[lo:hi] = old_pooled["embedding"].numpy()
            for name in entries:
                old_summary[name][lo:hi] = _summary(name, entered[name]).numpy()
                tokens = entered[name].numpy()  # (b, dim, T)
                for row in range(hi - lo):
                    rng = np.random.default_rng([FEATURES_VERSION, lo + row])
                    chosen = rng.choice(tokens.shape[2], per_window[name], replace=False)
                    old_tokens[name][lo + row] = tokens[row][:, chosen].T
            advance(hi - lo)
    features = FeatureSet(new_pooled, old_summary, old_tokens, old_embedding, new_embedding, key, False, path)
    if use_cache:
        _save(path, features)
    return features


def _save(path: pathlib.Path, features: FeatureSet) -> None:
    arrays = {"old_embedding": features.old_embedding, "new_embedding": features.new_embedding}
    arrays.update({f"new:{k}": v for k, v in features.new_pooled.items()})
    arrays.update({f"old:{k}": v for k, v in features.old_summary.items()})
    arrays.update({f"tokens:{k}": v for k, v in features.old_tokens.items()})
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.stem + ".partial.npz")
    np.savez(partial, **arrays)
    move_into_place(partial, path)  # a crash never leaves a truncated cache entry
    log.info("bridge features cached at %s", path)


def _load(path: pathlib.Path, key: str, inputs, entries) -> FeatureSet:
    with np.load(path, allow_pickle=False) as data:
        return FeatureSet({k: data[f"new:{k}"] for k in inputs}, {k: data[f"old:{k}"] for k in entries},
                          {k: data[f"tokens:{k}"] for k in entries}, data["old_embedding"], data["new_embedding"],
                          key, True, path)
