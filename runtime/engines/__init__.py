"""Images to embeddings behind one interface: TensorRT, ONNX Runtime, PyTorch.

``open_engine(kind, path, **options)`` returns an :class:`Engine`; each backend module is imported only
when chosen, so the gateway imports torch only for the PyTorch engine, and tensorrt / cupy only for the
TensorRT engine. A model path where nothing exists is an error, never a fallback to random weights; every
engine checks its file against the manifest beside it (``provenance``) and says in its ``identity`` where
its weights came from.

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
    ModelIntegrityError,
    TensorRTUnavailableError,
)
from biomoe_edge.runtime.engines.provenance import describe_identity, verified_manifest, weights_provenance

__all__ = [
    "ENGINE_KINDS",
    "IMAGE_SHAPE",
    "BackendUnavailableError",
    "Engine",
    "EngineBuildError",
    "EngineCompatibilityError",
    "EngineError",
    "EngineInputError",
    "ModelIntegrityError",
    "TensorRTUnavailableError",
    "check_engine_manifest",
    "check_images",
    "check_model_path",
    "describe_identity",
    "engine_manifest_problems",
    "open_configured_engine",
    "open_engine",
    "read_verified_engine",
    "resolve_auto",
    "verified_manifest",
    "weights_provenance",
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


def _present(path) -> list[pathlib.Path]:
    """The model files ``path`` stands for that exist (engine, graph, checkpoint)."""
    return [candidate for candidate in _candidates(path) if candidate is not None and candidate.is_file()]


def check_model_path(path, *, what: str = "model path") -> pathlib.Path:
    """``path`` as a Path once something loadable exists there; FileNotFoundError naming it otherwise.

    A configured model that is not there is an error, never a reason to run something else (random weights)."""
    path = pathlib.Path(path)
    if _present(path):
        return path
    where = f"{path} (absolute: {path.resolve()})" if not path.is_absolute() else str(path)
    if path.is_dir():
        raise FileNotFoundError(f"{what}: the folder {where} holds no model.onnx or model.trt.engine; export one "
                                f"with `biomoe-edge export --checkpoint Tiny-BioMoE.pth --out {path}`")
    raise FileNotFoundError(f"{what}: no model at {where}; check the path (a TensorRT .engine, an .onnx from "
                            f"`biomoe-edge export --checkpoint Tiny-BioMoE.pth --out DIR`, a Tiny-BioMoE .pth, or a "
                            f"folder holding model.onnx). Random weights run only when asked for (`--random-weights`, "
                            f"`engine.random_weights = true`)")


def resolve_auto(path=None, *, random_weights: bool = False) -> tuple[str, pathlib.Path | None]:
    """What ``open_engine("auto", path)`` opens: TensorRT if importable and an engine file exists, else ONNX
    Runtime if importable and an .onnx exists, else PyTorch if ``path`` is a checkpoint.

    Never random weights by fallback: ``path=None`` needs ``random_weights=True`` (then PyTorch, no file), and
    a path where nothing loadable exists, or whose files no installed backend can run, is an error naming it."""
    if random_weights:
        if path is not None:
            raise ValueError(f"random weights and a model path ({path}) exclude each other: choose one")
        return "pytorch", None
    if path is None:
        raise ValueError("engine 'auto' needs a model path (a TensorRT .engine, an .onnx from `biomoe-edge export`, "
                         "a Tiny-BioMoE .pth, or a folder holding model.onnx); random weights only when asked for "
                         "(random_weights=True, `engine.random_weights = true`, `--random-weights`)")
    engine, onnx, checkpoint = _candidates(check_model_path(path))
    if engine is not None and engine.is_file() and _importable("tensorrt"):
        return "tensorrt", engine
    if onnx is not None and onnx.is_file() and _importable("onnxruntime"):
        return "onnxruntime", onnx
    if checkpoint is not None and checkpoint.is_file():
        return "pytorch", checkpoint
    found = ", ".join(str(p) for p in _present(path))
    raise BackendUnavailableError(
        f"engine 'auto' found {found} but no installed backend runs it: a .engine needs tensorrt (JetPack's "
        f"python3-libnvinfer), an .onnx needs onnxruntime (`pip install onnxruntime`)")


def open_engine(kind: str, path=None, *, random_weights: bool = False, **options) -> Engine:
    """Open an engine of ``kind`` ("tensorrt" | "onnxruntime" | "pytorch" | "auto") on ``path``.

    ``path``: a TensorRT ``.engine``, an ``.onnx`` graph, a Tiny-BioMoE ``.pth`` checkpoint (pytorch), or a
    folder holding ``model.onnx`` and/or ``model.trt.engine`` (``build_engine``'s default name;
    ``model.engine`` is found too). A path where no model exists is a FileNotFoundError naming it.
    ``random_weights=True`` (with no path): Tiny-BioMoE with seeded random weights on PyTorch, for plumbing
    and timing only; ``open_engine("pytorch", None)`` means the same (as ``load_tiny_biomoe(None)`` does),
    but "auto" never falls back to it. Every engine checks its model file against the manifest beside it.
    ``options`` go to the backend: TensorRTEngine(device_id, stream, cuda_graphs), OnnxRuntimeEngine(providers,
    max_batch, intra_op_num_threads, device_id), PyTorchEngine(device, precision, cuda_graphs, max_batch,
    seed, model, strict).
    """
    if kind not in ENGINE_KINDS:
        raise ValueError(f"unknown engine kind {kind!r}; expected one of: {', '.join(ENGINE_KINDS)}")
    if random_weights and kind not in ("auto", "pytorch"):
        raise ValueError(f"random weights run on the pytorch engine (kind 'pytorch' or 'auto'), not {kind!r}")
    if kind == "auto":
        kind, path = resolve_auto(path, random_weights=random_weights)
        log.info("engine 'auto' chose %s for %s", kind, path if path is not None else "random weights (asked for)")
    elif random_weights and path is not None:
        raise ValueError(f"random weights and a model path ({path}) exclude each other: choose one")
    elif path is not None:
        engine, onnx, _checkpoint = _candidates(check_model_path(path))
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


def open_configured_engine(config, *, strict: bool = False) -> Engine:
    """The engine a gateway's ``[engine]`` table describes (``GatewayConfig.engine``), opened and announced.

    ``engine.path`` must name a model that exists (FileNotFoundError naming the key and the path otherwise);
    no path is accepted only with ``engine.random_weights = true``. The chosen backend, its file and whether
    its weights are random are logged at info level (``biomoe-edge run`` shows it), random weights also as a
    warning."""
    random_weights = bool(getattr(config, "random_weights", False))
    path = config.path
    if random_weights and path is not None:
        raise ValueError(f"engine.random_weights = true and engine.path = {str(path)!r} exclude each other: "
                         "remove one")
    if path is None and not random_weights:
        raise ValueError("engine.path is not set: name a model (a TensorRT .engine, an .onnx from `biomoe-edge "
                         "export`, a Tiny-BioMoE .pth), or set engine.random_weights = true to run on random "
                         "weights (meaningless embeddings; every record then says random_weights: true)")
    if path is not None:
        check_model_path(path, what="engine.path")
    kind = config.kind
    if kind == "auto":
        kind, path = resolve_auto(path, random_weights=random_weights)
        log.info("engine.kind = \"auto\" chose %s for %s", kind, path if path is not None else "random weights")
    # Options each backend takes (a TensorRT engine's batch and precision are fixed when it is built).
    options = {"onnxruntime": {"max_batch": config.max_batch},
               "pytorch": {"max_batch": config.max_batch, "precision": config.precision, "device": config.device,
                           "strict": strict}}.get(kind, {})
    engine = open_engine(kind, path, random_weights=random_weights, **options)
    identity = engine.identity
    log.info("engine: %s", describe_identity(identity))
    if identity.get("random_weights") and not random_weights:
        # Asked-for random weights were announced by the PyTorch engine; these come with the file.
        log.warning("engine: %s holds RANDOM WEIGHTS (seed %s, %s): its embeddings are meaningless, and every "
                    "record says random_weights: true", identity.get("source"), identity.get("seed"),
                    "its manifest says so" if identity.get("manifest_verified") else "no manifest vouches for it")
    return engine
