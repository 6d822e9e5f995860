"""Tiny-BioMoE on ONNX Runtime: CPU everywhere, the CUDA execution provider where the installed build has it.

Runs any graph ``export_onnx`` wrote (fp32, fp16, int8 Q/DQ) and feeds it the input dtype the graph
declares. No torch: the gateway's CPU path.
"""

from __future__ import annotations

import logging
import pathlib

import numpy as np

from biomoe_edge.manifest import manifest_path, read_manifest
from biomoe_edge.runtime.engines.base import Engine
from biomoe_edge.runtime.engines.exc import BackendUnavailableError
from biomoe_edge.runtime.engines.provenance import verified_manifest, weights_provenance
from biomoe_edge.runtime.engines.taps import tap_of_output, tap_output_name

log = logging.getLogger(__name__)

#: Used when neither the caller, the export manifest nor the graph fixes the largest batch.
DEFAULT_MAX_BATCH = 32
_ONNX_DTYPES = {"tensor(float)": np.float32, "tensor(float16)": np.float16}


def import_onnxruntime():
    try:
        import onnxruntime
    except ImportError as exc:
        raise BackendUnavailableError(
            f"onnxruntime is not installed: `pip install onnxruntime` (CPU; on a Jetson, the onnxruntime-gpu wheel "
            f"from NVIDIA's Jetson AI Lab index for the CUDA provider) ({exc})"
        ) from None
    return onnxruntime


def session_options(*, intra_op_threads: int | None = None, inter_op_threads: int | None = None):
    """The ``onnxruntime.SessionOptions`` every session of the SDK runs with: errors only in the log, every graph
    optimisation, and the thread counts when given (None: ONNX Runtime's default)."""
    ort = import_onnxruntime()
    options = ort.SessionOptions()
    options.log_severity_level = 3
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if intra_op_threads is not None:
        options.intra_op_num_threads = int(intra_op_threads)
    if inter_op_threads is not None:
        options.inter_op_num_threads = int(inter_op_threads)
    return options


def cpu_session(path, *, intra_op_threads: int | None = None, inter_op_threads: int | None = None):
    """An ONNX Runtime session on the CPU provider with :func:`session_options` (heads, bridges, export checks)."""
    ort = import_onnxruntime()
    options = session_options(intra_op_threads=intra_op_threads, inter_op_threads=inter_op_threads)
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def export_manifest(onnx_path) -> dict:
    """The export manifest beside an ONNX file, or {} when there is none."""
    if not manifest_path(onnx_path).exists():
        return {}
    return read_manifest(onnx_path)


def graph_precision(onnx_path) -> str:
    """fp32 | fp16 | int8 read from the graph itself (used only when no export manifest says it); "unknown"
    where the ``onnx`` package (build time, not a gateway dependency) is not installed."""
    try:
        import onnx
    except ImportError:
        log.warning("%s: no export manifest says its precision and the onnx package is not installed to read it "
                    "from the graph; its records say precision 'unknown'", onnx_path)
        return "unknown"

    model = onnx.load(str(onnx_path), load_external_data=False)
    if any(node.op_type in ("QuantizeLinear", "DequantizeLinear") for node in model.graph.node):
        return "int8"
    if any(init.data_type == onnx.TensorProto.FLOAT16 for init in model.graph.initializer):
        return "fp16"
    return "fp32"


class OnnxRuntimeEngine(Engine):
    """An ONNX graph run by ONNX Runtime.

    ``providers``: ONNX Runtime execution providers, in order of preference; default CUDA (when this
    build has it) then CPU. ``max_batch``: largest batch per run (default: the export manifest's
    ``max_batch``, else the graph's fixed batch, else 32); larger batches are split. ``intra_op_num_threads``:
    CPU threads per run (ONNX Runtime's default: all cores).
    """

    def __init__(self, path, *, providers=None, max_batch: int | None = None, intra_op_num_threads: int | None = None,
                 device_id: int = 0):
        super().__init__()
        ort = import_onnxruntime()
        self.path = pathlib.Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"no ONNX model at {self.path}: export one with `biomoe-edge export`")
        # Before the graph is trusted: its bytes must be the ones its manifest describes.
        manifest, digest = verified_manifest(self.path)
        if not manifest:
            log.warning("no manifest beside %s (expected %s): nothing vouches for its weights, so its records say "
                        "random_weights: true; `biomoe-edge export` writes graphs with one", self.path,
                        manifest_path(self.path))

        available = ort.get_available_providers()
        if providers is None:
            providers = [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in available]
        else:
            providers = list(providers)
            unknown = [p for p in providers if p not in available]
            if unknown:
                raise BackendUnavailableError(
                    f"ONNX Runtime execution provider(s) {unknown} are not in this build (available: {available})"
                )
        provider_options = [{"device_id": device_id} if p == "CUDAExecutionProvider" else {} for p in providers]
        options = session_options(intra_op_threads=intra_op_num_threads)
        self._session = ort.InferenceSession(
            str(self.path), sess_options=options, providers=providers, provider_options=provider_options
        )

        inputs, outputs = self._session.get_inputs(), self._session.get_outputs()
        # Besides the embedding, a graph exported with taps has one output per tap (runtime/engines/taps.py).
        embedding_outputs = [o.name for o in outputs if tap_of_output(o.name) is None]
        if len(inputs) != 1 or len(embedding_outputs) != 1:
            raise ValueError(f"{self.path}: expected one input and one output besides the tap outputs, got "
                             f"{[i.name for i in inputs]} and {embedding_outputs}")
        self._input_name, self._output_name = inputs[0].name, embedding_outputs[0]
        self.taps = tuple(tap_of_output(o.name) for o in outputs if tap_of_output(o.name) is not None)
        if inputs[0].type not in _ONNX_DTYPES:
            raise ValueError(f"{self.path}: input {self._input_name!r} has type {inputs[0].type}, expected float or float16")
        self.input_dtype = np.dtype(_ONNX_DTYPES[inputs[0].type])

        graph_batch = inputs[0].shape[0] if isinstance(inputs[0].shape[0], int) else None
        if max_batch is None:
            max_batch = graph_batch or manifest.get("max_batch") or DEFAULT_MAX_BATCH
        elif graph_batch is not None and max_batch != graph_batch:
            raise ValueError(f"{self.path} has a fixed batch of {graph_batch}; max_batch={max_batch} cannot run on it")
        if int(max_batch) < 1:
            raise ValueError(f"max_batch must be at least 1, got {max_batch}")
        self.max_batch = int(max_batch)
        self._fixed_batch = graph_batch

        active = self._session.get_providers()
        device = f"cuda:{device_id}" if active and active[0] == "CUDAExecutionProvider" else "cpu"
        self._identity = {
            "kind": "onnxruntime",
            "precision": manifest.get("precision") or graph_precision(self.path),
            "model_sha256": digest,
            "source": str(self.path),
            "device": device,
            "max_batch": self.max_batch,
            **weights_provenance(manifest),
            "manifest_verified": bool(manifest),
            "providers": active,
            "onnxruntime_version": ort.__version__,
        }
        log.info("ONNX Runtime engine %s: %s on %s, max_batch %d", self.path, self._identity["precision"], active, self.max_batch)

    def _infer_batch(self, images) -> np.ndarray:
        (out,) = self._run(images, [self._output_name])
        return out

    def _infer_batch_tapped(self, images, taps):
        out, *features = self._run(images, [self._output_name, *map(tap_output_name, taps)])
        return out, dict(zip(taps, features))

    def _run(self, images, outputs: list[str]) -> list[np.ndarray]:
        if not isinstance(images, np.ndarray):  # a CuPy array: ONNX Runtime's Python API reads host memory
            images = images.get()
        images = np.ascontiguousarray(images, dtype=self.input_dtype)
        batch = images.shape[0]
        if self._fixed_batch is not None and batch < self._fixed_batch:
            # A static-batch graph: pad with zero images, keep the real rows.
            padded = np.zeros((self._fixed_batch, *images.shape[1:]), dtype=self.input_dtype)
            padded[:batch] = images
            images = padded
        results = self._session.run(outputs, {self._input_name: images})
        return [np.asarray(r[:batch], dtype=np.float32) for r in results]

    def _release(self) -> None:
        self._session = None
