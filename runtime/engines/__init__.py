"""Images to embeddings behind one interface: TensorRT, ONNX Runtime, PyTorch.

``open_engine(kind, path, **options)`` returns an :class:`Engine`; each backend module is imported only
when chosen, so the gateway imports torch only for the PyTorch engine, and tensorrt / cupy only for the
TensorRT engine.

    with open_engine("auto", "build/model.onnx") as engine:
        embeddings = engine.infer(images)      # (B, 3, 224, 224) float32 -> (B, 192) float32
"""

from __future__ import annotations

import importlib.util
import logging
import pathlib

from biomoe_edge.runtime.engines.base import IMAGE_SHAPE, Engine, check_images
from biomoe_edge.runtime.engines.compatibility import (
    ENGINE_SUFFIX,
    check_engine_manifest,
    engine_manifest_problems,
    read_verified_engine,
)
from biomoe_edge.runtime.engines.exc import (
    BackendUnavailableError,
    EngineBuildError,
    EngineCompatibilityError,
    EngineError,
    EngineInputError,
    TensorRTUnavailableError,
)

__all__ = [
    "ENGINE_KINDS",
    "IMAGE_SHAPE",
    "BackendUnavailableError",
    "Engine",
    "EngineBuildError",
    "EngineCompatibilityError",
    "EngineError",
    "EngineInputError",
    "TensorRTUnavailableError",
    "check_engine_manifest",
    "check_images",
    "engine_manifest_problems",
    "open_engine",
    "read_verified_engine",
    "resolve_auto",
]

log = logging.getLogger(__name__)

ENGINE_KINDS = ("tensorrt", "onnxruntime", "pytorch", "auto")
ENGINE_SUFFIXES = (".engine", ".plan", ".trt")
CHECKPOINT_SUFFIXES = (".pth", ".pt")


def _importable(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def _candidates(path) -> tuple[pathlib.Path | None, pathlib.Path | None, pathlib.Path | None]:
    """(engine, onnx, checkpoint) files ``path`` can stand for: itself, or ``model.*`` inside a folder,
    or its siblings (``model.onnx`` -> ``model.trt.engine``, else ``model.engine``)."""
    if path is None:
        return None, None, None
    path = pathlib.Path(path)
    if path.is_dir():
        path = path / "model.onnx"
    stem = path.name[: -len(ENGINE_SUFFIX)] if path.name.endswith(ENGINE_SUFFIX) else path.stem
    if path.suffix in ENGINE_SUFFIXES:
        engine = path
    else:
        options = [path.with_name(stem + ENGINE_SUFFIX), path.with_name(stem + ".engine")]
        engine = next((option for option in options if option.is_file()), options[0])
    onnx = path if path.suffix == ".onnx" else path.with_name(stem + ".onnx")
    checkpoint = path if path.suffix in CHECKPOINT_SUFFIXES else None
    return engine, onnx, checkpoint


def resolve_auto(path=None) -> tuple[str, pathlib.Path | None]:
    """What ``open_engine("auto", path)`` opens: TensorRT if importable and an engine file exists, else ONNX
    Runtime if an .onnx exists, else PyTorch (with the checkpoint when ``path`` is one, random weights otherwise)."""
    engine, onnx, checkpoint = _candidates(path)
    if engine is not None and engine.is_file() and _importable("tensorrt"):
        return "tensorrt", engine
    if onnx is not None and onnx.is_file() and _importable("onnxruntime"):
        return "onnxruntime", onnx
    return "pytorch", checkpoint


def open_engine(kind: str, path=None, **options) -> Engine:
    """Open an engine of ``kind`` ("tensorrt" | "onnxruntime" | "pytorch" | "auto") on ``path``.

    ``path``: a TensorRT ``.engine``, an ``.onnx`` graph, a Tiny-BioMoE ``.pth`` checkpoint (pytorch;
    None gives random weights), or a folder holding ``model.onnx`` and/or ``model.trt.engine``
    (``build_engine``'s default name; ``model.engine`` is found too). ``options`` go to
    the backend: TensorRTEngine(device_id, stream, cuda_graphs), OnnxRuntimeEngine(providers, max_batch,
    intra_op_num_threads, device_id), PyTorchEngine(device, precision, cuda_graphs, max_batch, seed, model).
    """
    if kind not in ENGINE_KINDS:
        raise ValueError(f"unknown engine kind {kind!r}; expected one of: {', '.join(ENGINE_KINDS)}")
    if kind == "auto":
        kind, path = resolve_auto(path)
        log.info("engine 'auto' chose %s (%s)", kind, path)
    else:
        engine, onnx, _checkpoint = _candidates(path)
        if kind == "tensorrt":
            path = engine
        elif kind == "onnxruntime":
            path = onnx
    if kind == "tensorrt":
        if path is None:
            raise ValueError("the tensorrt engine needs a path to an .engine file")
        from biomoe_edge.runtime.engines.tensorrt_engine import TensorRTEngine

        return TensorRTEngine(path, **options)
    if kind == "onnxruntime":
        if path is None:
            raise ValueError("the onnxruntime engine needs a path to an .onnx file")
        from biomoe_edge.runtime.engines.onnxruntime_engine import OnnxRuntimeEngine

        return OnnxRuntimeEngine(path, **options)
    from biomoe_edge.runtime.engines.pytorch_engine import PyTorchEngine

    return PyTorchEngine(path, **options)
