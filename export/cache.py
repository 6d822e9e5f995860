"""Exported graphs kept in the cache folder (``$BIOMOE_EDGE_CACHE_DIR`` or ``~/.cache/biomoe-edge``), exported once
and reused: the demo's and the benchmark's models.

A file is named by the checkpoint (its sha256, or "random-seed<seed>"), the precision, the largest batch when it is not
the default 16, and the export format, so a graph an older SDK exported (another form of the same model) is never
picked up as the current one. It is written atomically: the graph and its manifest go to a temporary name and are
renamed into place, so an interrupted export never leaves a file that looks complete.
"""

from __future__ import annotations

import logging
import pathlib
import warnings

from biomoe_edge.durable import move_into_place

log = logging.getLogger(__name__)

#: The largest batch of a cached graph whose name carries no batch (the demo's).
DEFAULT_MAX_BATCH = 16


def cached_onnx_path(checkpoint=None, *, precision: str = "fp32", max_batch: int = DEFAULT_MAX_BATCH,
                     seed: int = 0, taps=()) -> pathlib.Path:
    """Where the cached export of ``checkpoint`` (None: random weights from ``seed``) at ``precision`` and
    ``max_batch``, returning ``taps`` beside the embedding (``export_onnx``), lives (it may not exist yet)."""
    from biomoe_edge.export.graph_info import EXPORT_FORMAT
    from biomoe_edge.manifest import sha256_file
    from biomoe_edge.paths import cache_dir

    tag = sha256_file(checkpoint)[:16] if checkpoint else f"random-seed{int(seed)}"
    batch = "" if max_batch == DEFAULT_MAX_BATCH else f"_b{max_batch}"
    tapped = f"_taps-{'-'.join(sorted(taps))}" if taps else ""
    return cache_dir() / f"tiny_biomoe_{tag}_{precision}{batch}{tapped}_f{EXPORT_FORMAT}.onnx"


def cached_onnx(checkpoint=None, *, precision: str = "fp32", max_batch: int = DEFAULT_MAX_BATCH, model=None,
                seed: int = 0, strict: bool = False, taps=()) -> pathlib.Path:
    """The cached export of ``checkpoint`` (None: deterministic random weights from ``seed``), exported now if
    missing (needs PyTorch once; minutes for int8, which calibrates). ``model``: the loaded model, if the caller
    has it (loaded from the same ``checkpoint`` or ``seed``). ``taps``: feature taps the graph returns beside the
    embedding (what served bridges read; a graph of its own in the cache)."""
    path = cached_onnx_path(checkpoint, precision=precision, max_batch=max_batch, seed=seed, taps=taps)
    if path.exists() and _states_its_provenance(path.with_suffix(".json")):
        return path
    try:
        from biomoe_edge.export import export_onnx, load_tiny_biomoe
    except ImportError as exc:
        raise RuntimeError(f"exporting Tiny-BioMoE to ONNX needs PyTorch ({exc}): pip install torch==2.13.0 "
                           "'biomoe-edge[export]'") from None
    path.parent.mkdir(parents=True, exist_ok=True)
    log.warning("exporting Tiny-BioMoE to %s ONNX once (a minute or more); cached at %s", precision, path)
    if model is None:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            model = load_tiny_biomoe(checkpoint, seed=seed, strict=strict) if checkpoint else \
                load_tiny_biomoe(seed=seed)
        for warning in caught:  # the random-weights warning, as one log line (no Python source line)
            log.warning("%s", warning.message)
    partial = path.with_name(path.stem + ".partial.onnx")
    export_onnx(model, partial, precision=precision, max_batch=max_batch, taps=taps)
    move_into_place(partial.with_suffix(".json"), path.with_suffix(".json"))
    move_into_place(partial, path)
    return path


def open_cached_engine(kind: str, checkpoint=None, *, max_batch: int = DEFAULT_MAX_BATCH, seed: int = 0,
                       strict: bool = False, taps=()):
    """The engine the demo and ``embed`` open: PyTorch on ``checkpoint``, or ONNX Runtime on its cached fp32 export
    (exported now if missing, which needs torch once). ``checkpoint=None``: random weights drawn from ``seed``
    (the commands pass None only for ``--random-weights``). ``taps``: feature taps the ONNX graph returns (served
    bridges read them; the PyTorch engine returns any)."""
    from biomoe_edge.runtime.engines import open_engine

    if kind == "pytorch":
        if checkpoint is None:
            return open_engine("pytorch", None, random_weights=True, max_batch=max_batch, seed=seed)
        return open_engine("pytorch", checkpoint, max_batch=max_batch, strict=strict)
    graph = cached_onnx(checkpoint, precision="fp32", seed=seed, strict=strict, taps=taps)
    return open_engine("onnxruntime", graph, max_batch=max_batch)


def _states_its_provenance(manifest_path: pathlib.Path) -> bool:
    """True when a cached graph's manifest says whether it holds random weights (and their seed). A graph cached by
    an SDK from before manifests said so is exported again: reused, its records could not tell one random backbone
    from another, and heads trained on one would be served on the other."""
    import json

    try:
        return "random_weights" in json.loads(manifest_path.read_text())
    except (OSError, ValueError):
        return False


__all__ = ["DEFAULT_MAX_BATCH", "cached_onnx", "cached_onnx_path", "open_cached_engine"]
