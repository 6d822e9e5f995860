"""ONNX -> TensorRT engine, against the TensorRT 10.x (JetPack 6: 10.3, JetPack 7: 10.13) and 11.x Python API.

Precision lives in the ONNX graph (fp16 casts, int8 Q/DQ), so the network is built strongly typed and no
precision builder flag is set: TensorRT 10 deprecated BuilderFlag.FP16/INT8 and TensorRT 11 removed them
(11 also always builds strongly typed and deprecates the STRONGLY_TYPED creation flag, so it is set only
on 10.x). One optimization profile covers batch 1..max_batch; a timing cache file is reused across
builds; the workspace pool is capped; a DLA core may be targeted with GPU fallback (static batch there).
TensorRT's log goes to Python ``logging`` (logger ``biomoe_edge.export.tensorrt_builder``).

Importing this module needs neither TensorRT nor torch; calling ``build_engine`` without TensorRT raises
``TensorRTUnavailableError`` saying how to get it on a Jetson.
"""

from __future__ import annotations

import logging
import pathlib
import time

from biomoe_edge.durable import atomic_write_bytes
from biomoe_edge.manifest import read_manifest, manifest_path, sha256_file, write_manifest
from biomoe_edge.runtime.engines.compatibility import ENGINE_MANIFEST_KIND, ENGINE_SUFFIX, normalize_compute_capability
from biomoe_edge.runtime.engines.exc import BackendUnavailableError, EngineBuildError, TensorRTUnavailableError
from biomoe_edge.runtime.engines.taps import tap_of_output
from biomoe_edge.runtime.engines.tensorrt_support import import_tensorrt, make_logger, tensorrt_major
from biomoe_edge.vocabulary import IMAGE_SHAPE

__all__ = ["DEFAULT_MAX_BATCH", "TensorRTUnavailableError", "build_engine", "default_engine_path", "gpu_identity",
           "write_engine_manifest"]

log = logging.getLogger(__name__)

#: Largest batch when neither the caller nor the export manifest says (export_onnx's default).
DEFAULT_MAX_BATCH = 32
#: Workspace pool cap: Jetson memory is shared with the CPU.
DEFAULT_WORKSPACE_MB = 1024
#: Timing cache file name, beside the engine unless a path is given; every build in that folder reuses it.
TIMING_CACHE_NAME = "tensorrt.timing.cache"


def default_engine_path(onnx_path) -> pathlib.Path:
    """``DIR/model.onnx`` -> ``DIR/model.trt.engine`` (manifest ``model.trt.json``, apart from the graph's ``model.json``)."""
    onnx_path = pathlib.Path(onnx_path)
    return onnx_path.with_name(f"{onnx_path.stem}{ENGINE_SUFFIX}")


def gpu_identity(device_id: int = 0) -> tuple[str, str]:
    """(GPU name, compute capability "major.minor") through CuPy, else through torch.cuda (build machines have it)."""
    from biomoe_edge.runtime.engines.tensorrt_support import cuda_device_identity

    try:
        return cuda_device_identity(device_id)
    except BackendUnavailableError as no_cupy:
        try:
            import torch
        except ImportError:
            raise no_cupy from None
        if not torch.cuda.is_available():
            raise no_cupy from None
        major, minor = torch.cuda.get_device_capability(device_id)
        return torch.cuda.get_device_name(device_id), f"{major}.{minor}"


def write_engine_manifest(
    engine_path,
    *,
    onnx_path,
    tensorrt_version: str,
    gpu_name: str,
    compute_capability,
    precision: str | None,
    min_batch: int,
    opt_batch: int,
    max_batch: int,
    dla_core: int | None = None,
    workspace_mb: int | None = None,
    extra: dict | None = None,
) -> pathlib.Path:
    """Write the manifest beside an engine: what the loader checks (TensorRT version, GPU, sha256) and its provenance."""
    onnx_path = pathlib.Path(onnx_path)
    export = read_manifest(onnx_path) if manifest_path(onnx_path).exists() else {}
    fields = {
        "kind": ENGINE_MANIFEST_KIND,
        "tensorrt_version": str(tensorrt_version),
        "gpu_name": str(gpu_name),
        "compute_capability": normalize_compute_capability(compute_capability),
        "precision": precision,
        "source_onnx": str(onnx_path),
        "source_onnx_sha256": sha256_file(onnx_path),
        "min_batch": int(min_batch),
        "opt_batch": int(opt_batch),
        "max_batch": int(max_batch),
        "dla_core": dla_core,
        "workspace_mb": workspace_mb,
    }
    if export.get("checkpoint_sha256"):
        fields["checkpoint_sha256"] = export["checkpoint_sha256"]
    # Provenance travels on: a graph of random weights (or of unknown weights: no manifest) gives such an engine.
    fields["random_weights"] = bool(export.get("random_weights", not export.get("checkpoint_sha256")))
    fields["seed"] = export.get("seed") if fields["random_weights"] else None
    if export.get("taps"):  # the engine returns the graph's tap outputs too
        fields["taps"] = export["taps"]
    fields.update(extra or {})
    return write_manifest(engine_path, fields)


def _network_precision(trt, network) -> str:
    """int8 when the graph quantizes, fp16 when any layer computes in half, fp32 otherwise."""
    half = False
    for i in range(network.num_layers):
        layer = network.get_layer(i)
        if layer.type == trt.LayerType.QUANTIZE:
            return "int8"
        if any(layer.get_output(j).dtype == trt.float16 for j in range(layer.num_outputs)):
            half = True
    return "fp16" if half else "fp32"


def _parse_onnx(trt, builder, parser_logger, onnx_path: pathlib.Path):
    flags = 0
    if tensorrt_major(trt) < 11:
        # 10.x: opt in to strong typing. 11.x: always strongly typed; the flag is deprecated and ignored.
        flags |= 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, parser_logger)
    # parse_from_file resolves external weight files relative to the model's folder.
    if not parser.parse_from_file(str(onnx_path)):
        errors = []
        for i in range(parser.num_errors):
            error = parser.get_error(i)
            node = error.node_name() if hasattr(error, "node_name") else error.node()
            errors.append(f"node {node}: {error.desc()}")
        raise EngineBuildError(f"TensorRT's ONNX parser rejected {onnx_path}: " + "; ".join(errors or ["no detail"]))
    return network, parser


def _batch_range(network_input, export: dict, *, max_batch, opt_batch, dla: bool) -> tuple[int, int, int]:
    shape = tuple(network_input.shape)
    if tuple(shape[1:]) != IMAGE_SHAPE:
        raise EngineBuildError(f"input {network_input.name!r} has shape {shape}, expected (B, *{IMAGE_SHAPE})")
    if shape[0] != -1:  # the graph fixes its batch
        if max_batch is not None and max_batch != shape[0]:
            raise ValueError(f"the ONNX graph has a fixed batch of {shape[0]}; it cannot be built for max_batch={max_batch}")
        return shape[0], shape[0], shape[0]
    if max_batch is None:
        max_batch = export.get("max_batch") or DEFAULT_MAX_BATCH
    max_batch = int(max_batch)
    if max_batch < 1:
        raise ValueError(f"max_batch must be at least 1, got {max_batch}")
    if dla:  # DLA runs static shapes only
        return max_batch, max_batch, max_batch
    opt_batch = max_batch if opt_batch is None else int(opt_batch)
    if not 1 <= opt_batch <= max_batch:
        raise ValueError(f"opt_batch must lie in 1..{max_batch}, got {opt_batch}")
    return 1, opt_batch, max_batch


def build_engine(
    onnx_path,
    engine_path=None,
    *,
    max_batch: int | None = None,
    opt_batch: int | None = None,
    workspace_mb: int = DEFAULT_WORKSPACE_MB,
    dla_core: int | None = None,
    timing_cache=None,
    optimization_level: int | None = None,
    tf32: bool = True,
    device_id: int = 0,
) -> pathlib.Path:
    """Build a TensorRT engine from an ONNX graph written by ``export_onnx``; write it and its manifest.

    ``engine_path``: default ``DIR/model.trt.engine`` beside ``DIR/model.onnx``; the manifest goes to
    ``engine_path.with_suffix(".json")``, which must not be the graph's own manifest. ``max_batch``: top of the batch range (default: the export
    manifest's ``max_batch``, else 32; a graph with a fixed batch keeps it). ``opt_batch``: the batch
    TensorRT tunes for (default ``max_batch``). ``workspace_mb``: workspace pool cap. ``dla_core``: build
    for that DLA core with GPU fallback, at the static batch ``max_batch``. ``timing_cache``: the timing
    cache file to read and update (default ``tensorrt.timing.cache`` beside the engine).
    ``optimization_level``: TensorRT's builder optimization level (0..5; default TensorRT's 3).
    ``tf32``: let fp32 layers use TF32 tensor cores (TensorRT's default; False for bit-faithful fp32).

    Raises TensorRTUnavailableError without TensorRT, EngineBuildError when parsing or building fails.
    """
    onnx_path = pathlib.Path(onnx_path)
    if not onnx_path.is_file():
        raise FileNotFoundError(f"no ONNX model at {onnx_path}: export one with `biomoe-edge export`")
    engine_path = default_engine_path(onnx_path) if engine_path is None else pathlib.Path(engine_path)
    if engine_path.suffix == ".json" or engine_path.resolve() == onnx_path.resolve():
        raise ValueError(f"engine path {engine_path} would overwrite its own manifest or the ONNX graph; use .engine")
    if manifest_path(engine_path).resolve() == manifest_path(onnx_path).resolve():
        raise ValueError(
            f"engine {engine_path} and graph {onnx_path} would share the manifest {manifest_path(onnx_path)}; "
            f"name the engine differently, e.g. {default_engine_path(onnx_path)}"
        )
    if int(workspace_mb) < 1:
        raise ValueError(f"workspace_mb must be at least 1, got {workspace_mb}")
    timing_cache = engine_path.parent / TIMING_CACHE_NAME if timing_cache is None else pathlib.Path(timing_cache)
    export = read_manifest(onnx_path) if manifest_path(onnx_path).exists() else {}

    trt = import_tensorrt()
    gpu_name, compute_capability = gpu_identity(device_id)
    trt_logger = make_logger(trt, log)
    builder = trt.Builder(trt_logger)
    network, _parser = _parse_onnx(trt, builder, trt_logger, onnx_path)  # the parser must outlive the network
    # A graph exported with taps has one output per tap beside the embedding (runtime/engines/taps.py).
    outputs = [network.get_output(i).name for i in range(network.num_outputs)]
    embedding_outputs = [name for name in outputs if tap_of_output(name) is None]
    if network.num_inputs != 1 or len(embedding_outputs) != 1:
        raise EngineBuildError(f"{onnx_path}: expected one input and one output besides the tap outputs, got "
                               f"{network.num_inputs} and {outputs}")
    network_input = network.get_input(0)
    min_b, opt_b, max_b = _batch_range(network_input, export, max_batch=max_batch, opt_batch=opt_batch, dla=dla_core is not None)
    precision = export.get("precision") or _network_precision(trt, network)

    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_mb) << 20)
    if optimization_level is not None:
        config.builder_optimization_level = int(optimization_level)
    if not tf32 and hasattr(trt.BuilderFlag, "TF32"):
        config.clear_flag(trt.BuilderFlag.TF32)
    profile = builder.create_optimization_profile()
    profile.set_shape(network_input.name, (min_b, *IMAGE_SHAPE), (opt_b, *IMAGE_SHAPE), (max_b, *IMAGE_SHAPE))
    config.add_optimization_profile(profile)

    if dla_core is not None:
        available = builder.num_DLA_cores
        if not 0 <= int(dla_core) < available:
            raise ValueError(f"DLA core {dla_core} requested; this device has {available} DLA core(s)")
        if precision == "fp32":
            log.warning("DLA runs fp16/int8 layers only: an fp32 graph falls back to the GPU layer by layer")
        config.default_device_type = trt.DeviceType.DLA
        config.DLA_core = int(dla_core)
        config.set_flag(trt.BuilderFlag.GPU_FALLBACK)

    # The timing cache: reuse what earlier builds measured on this GPU and TensorRT version.
    cache_bytes = timing_cache.read_bytes() if timing_cache.is_file() else b""
    cache = config.create_timing_cache(cache_bytes)
    if cache is None or not config.set_timing_cache(cache, ignore_mismatch=False):
        # A cache from another GPU or TensorRT version (or a damaged file): never mix its timings in.
        log.warning("timing cache %s does not fit this GPU / TensorRT %s; starting a fresh one", timing_cache, trt.__version__)
        cache = config.create_timing_cache(b"")
        config.set_timing_cache(cache, ignore_mismatch=False)

    log.info("building %s engine from %s: batch %d..%d (opt %d), workspace %d MB%s, TensorRT %s on %s (sm %s)",
             precision, onnx_path, min_b, max_b, opt_b, workspace_mb,
             f", DLA core {dla_core}" if dla_core is not None else "", trt.__version__, gpu_name, compute_capability)
    started = time.monotonic()
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise EngineBuildError(f"TensorRT could not build an engine from {onnx_path}: "
                               + ("; ".join(trt_logger.errors) or "see the TensorRT log (-v)"))
    build_s = time.monotonic() - started

    engine_path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(engine_path, serialized)
    timing_cache.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(timing_cache, config.get_timing_cache().serialize())
    write_engine_manifest(
        engine_path,
        onnx_path=onnx_path,
        tensorrt_version=trt.__version__,
        gpu_name=gpu_name,
        compute_capability=compute_capability,
        precision=precision,
        min_batch=min_b,
        opt_batch=opt_b,
        max_batch=max_b,
        dla_core=dla_core,
        workspace_mb=int(workspace_mb),
        extra={"tf32": bool(tf32), "timing_cache": str(timing_cache), "build_seconds": round(build_s, 1)},
    )
    log.info("wrote %s (%.1f MB) in %.0f s", engine_path, engine_path.stat().st_size / 1e6, build_s)
    return engine_path
