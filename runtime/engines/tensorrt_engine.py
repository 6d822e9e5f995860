"""Tiny-BioMoE as a TensorRT engine (TensorRT 10.x / 11.x), with CuPy device buffers and CUDA graph replay.

The engine file is checked against its manifest (TensorRT version, GPU, sha256) before TensorRT
deserializes it. Inputs and outputs live in preallocated CuPy buffers sized for ``max_batch``; TensorRT
runs with ``execute_async_v3`` on one CUDA stream (the caller's, or one of its own). With CUDA graphs on,
the first batch of each size is captured into a graph and later batches of that size replay it.
pycuda is never needed.
"""

from __future__ import annotations

import logging
import pathlib

import numpy as np

from biomoe_edge.runtime.engines._cuda import cuda_device_identity, import_cupy
from biomoe_edge.runtime.engines._tensorrt import import_tensorrt, make_logger
from biomoe_edge.runtime.engines.base import IMAGE_SHAPE, Engine
from biomoe_edge.runtime.engines.compatibility import read_verified_engine
from biomoe_edge.runtime.engines.exc import EngineCompatibilityError, EngineError
from biomoe_edge.runtime.engines.provenance import weights_provenance
from biomoe_edge.runtime.engines.taps import tap_of_output, tap_output_name
from biomoe_edge.vocabulary import EMBEDDING_DIM

log = logging.getLogger(__name__)


class TensorRTEngine(Engine):
    """A serialized TensorRT engine written by ``build_engine``.

    ``path``: the ``.engine`` file (its manifest ``.json`` beside it). ``device_id``: the CUDA device.
    ``stream``: a ``cupy.cuda.Stream`` (or a raw ``cudaStream_t`` handle as int) to run on; pass the stream
    your transforms render on so that rendering and inference stay ordered without a host sync. Default:
    a non-blocking stream of the engine's own. ``cuda_graphs``: capture and replay one CUDA graph per batch size.
    ``max_batch``: run at most this many images at once (default and ceiling: the engine's profile maximum).
    """

    def __init__(self, path, *, device_id: int = 0, stream=None, cuda_graphs: bool = True, max_batch: int | None = None):
        super().__init__()
        trt = import_tensorrt()
        cupy = import_cupy()
        self._trt, self._cupy = trt, cupy
        self.path = pathlib.Path(path)
        self._device = cupy.cuda.Device(device_id)
        with self._device:
            gpu_name, compute_capability = cuda_device_identity(device_id)
            data, manifest = read_verified_engine(
                self.path, tensorrt_version=trt.__version__, gpu_name=gpu_name, compute_capability=compute_capability
            )
            self._trt_logger = make_logger(trt, log)
            self._runtime = trt.Runtime(self._trt_logger)
            if manifest.get("dla_core") is not None:
                self._runtime.DLA_core = int(manifest["dla_core"])
            self._engine = self._runtime.deserialize_cuda_engine(data)
            if self._engine is None:
                raise EngineCompatibilityError(
                    f"TensorRT {trt.__version__} could not deserialize {self.path}: "
                    + ("; ".join(self._trt_logger.errors) or "see the TensorRT log")
                )
            self._context = self._engine.create_execution_context()
            if self._context is None:
                raise EngineError(f"TensorRT could not create an execution context for {self.path} (out of GPU memory?)")
            self._bind_io(trt, cupy)
            if max_batch is not None:
                if int(max_batch) < 1:
                    raise ValueError(f"max_batch must be at least 1, got {max_batch}")
                if int(max_batch) > self.max_batch:
                    log.warning("max_batch %d exceeds the engine's profile (%d); running at most %d images at once",
                                max_batch, self.max_batch, self.max_batch)
                elif self.min_batch == self.max_batch and int(max_batch) < self.max_batch:
                    log.info("static-batch engine: batches of up to %d are padded to %d", max_batch, self.max_batch)
                self.max_batch = min(int(max_batch), self.max_batch)
            if isinstance(stream, int):
                stream = cupy.cuda.ExternalStream(stream)
            self._stream = stream if stream is not None else cupy.cuda.Stream(non_blocking=True)

        self._use_graphs = bool(cuda_graphs)
        self._graphs: dict[int, object] = {}  # batch size -> cupy.cuda.Graph
        self._shape_batch: int | None = None  # the batch the context's input shape is set to
        self._identity = {
            "kind": "tensorrt",
            "precision": manifest.get("precision"),
            "model_sha256": manifest["sha256"],
            "source": str(self.path),
            "device": f"cuda:{device_id}" + (f"+dla:{manifest['dla_core']}" if manifest.get("dla_core") is not None else ""),
            "max_batch": self.max_batch,
            "tensorrt_version": trt.__version__,
            "gpu_name": gpu_name,
            "compute_capability": compute_capability,
            "cuda_graphs": self._use_graphs,
            **weights_provenance(manifest),
            "manifest_verified": True,  # read_verified_engine checked the bytes against the manifest's sha256
        }

    def _bind_io(self, trt, cupy) -> None:
        engine = self._engine
        names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
        inputs = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        outputs = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.OUTPUT]
        # Besides the embedding, an engine built from a graph exported with taps has one output per tap.
        embedding_outputs = [n for n in outputs if tap_of_output(n) is None]
        if len(inputs) != 1 or len(embedding_outputs) != 1:
            raise EngineError(f"{self.path}: expected one input and one output tensor besides the tap outputs, got "
                              f"{inputs} and {outputs}")
        self._input_name, self._output_name = inputs[0], embedding_outputs[0]
        self.taps = tuple(tap_of_output(n) for n in outputs if tap_of_output(n) is not None)
        shape = tuple(engine.get_tensor_shape(self._input_name))
        if tuple(shape[1:]) != IMAGE_SHAPE:
            raise EngineError(f"{self.path}: input {self._input_name!r} has shape {shape}, expected (B, *{IMAGE_SHAPE})")
        if shape[0] == -1:  # dynamic batch: the range of optimization profile 0
            min_shape, _opt_shape, max_shape = engine.get_tensor_profile_shape(self._input_name, 0)
            self.min_batch, self.max_batch = int(min_shape[0]), int(max_shape[0])
        else:  # static batch (DLA builds): smaller batches are padded
            self.min_batch = self.max_batch = int(shape[0])
        self.input_dtype = np.dtype(trt.nptype(engine.get_tensor_dtype(self._input_name)))
        out_dtype = np.dtype(trt.nptype(engine.get_tensor_dtype(self._output_name)))
        # Fixed buffers: their addresses are bound once and baked into every captured CUDA graph.
        self._input = cupy.zeros((self.max_batch, *IMAGE_SHAPE), dtype=self.input_dtype)
        self._output = cupy.zeros((self.max_batch, EMBEDDING_DIM), dtype=out_dtype)
        # Every tap output gets its buffer too (TensorRT needs an address for each output, wanted or not).
        self._tap_outputs = {}
        for tap in self.taps:
            name = tap_output_name(tap)
            dim = int(engine.get_tensor_shape(name)[-1])
            self._tap_outputs[tap] = cupy.zeros((self.max_batch, dim),
                                                dtype=np.dtype(trt.nptype(engine.get_tensor_dtype(name))))
        addresses = [(self._input_name, self._input), (self._output_name, self._output),
                     *((tap_output_name(t), buffer) for t, buffer in self._tap_outputs.items())]
        if not all(self._context.set_tensor_address(name, buffer.data.ptr) for name, buffer in addresses):
            raise EngineError(f"TensorRT refused the I/O buffer addresses for {self.path}")

    @property
    def stream(self):
        """The ``cupy.cuda.Stream`` inference runs on."""
        return self._stream

    def _infer_batch(self, images) -> np.ndarray:
        batch = images.shape[0]
        with self._device:
            if not isinstance(images, np.ndarray):
                # Order the copy after whatever the caller queued on its current stream (it made the images).
                caller = self._cupy.cuda.get_current_stream()
                if caller.ptr != self._stream.ptr:
                    self._stream.wait_event(caller.record())
            with self._stream:
                return self._run(images, batch)

    def _infer_batch_tapped(self, images, taps):
        embeddings = self._infer_batch(images)  # synchronous: the tap buffers below hold this batch's features
        batch = images.shape[0]
        with self._device, self._stream:
            return embeddings, {t: self._tap_outputs[t][:batch].get(stream=self._stream).astype(np.float32, copy=False)
                                for t in taps}

    def _run(self, images, batch: int) -> np.ndarray:
        """Copy in, execute, copy out; on the engine's device and stream."""
        if isinstance(images, np.ndarray):  # host -> device into the bound input buffer
            self._input[:batch].set(np.ascontiguousarray(images, dtype=self._input.dtype), stream=self._stream)
        else:  # device -> device (and cast) on this stream
            self._input[:batch] = images
        # A static-batch engine runs its full batch; rows past `batch` hold earlier, finite images.
        self._execute(max(batch, self.min_batch))
        return self._output[:batch].get(stream=self._stream).astype(np.float32, copy=False)

    def _set_batch(self, batch: int) -> None:
        if self._shape_batch != batch:
            if not self._context.set_input_shape(self._input_name, (batch, *IMAGE_SHAPE)):
                raise EngineError(f"TensorRT refused input shape {(batch, *IMAGE_SHAPE)} for {self.path}")
            self._shape_batch = batch

    def _enqueue(self) -> None:
        if not self._context.execute_async_v3(self._stream.ptr):
            raise EngineError("TensorRT execute_async_v3 failed: " + ("; ".join(self._trt_logger.errors) or "see the log"))

    def _execute(self, batch: int) -> None:
        # Keep the context's shape equal to the shape a graph was captured with whenever it replays.
        self._set_batch(batch)
        graph = self._graphs.get(batch) if self._use_graphs else None
        if graph is None and self._use_graphs:
            graph = self._capture(batch)
        if graph is not None:
            graph.launch(stream=self._stream)
        else:
            self._enqueue()

    def _capture(self, batch: int):
        """Capture ``execute_async_v3`` for this batch into a CUDA graph; None (and graphs off) if it cannot be."""
        # TensorRT does deferred, shape-dependent work on the first enqueue after a shape change: not in a capture.
        self._enqueue()
        self._stream.synchronize()
        try:
            self._stream.begin_capture()
            try:
                captured = self._context.execute_async_v3(self._stream.ptr)
            finally:
                graph = self._stream.end_capture()
            reason = None if captured else "; ".join(self._trt_logger.errors) or "execute_async_v3 returned False"
        except self._cupy.cuda.runtime.CUDARuntimeError as exc:
            reason = str(exc)
        if reason is not None:  # e.g. DLA layers or an engine TensorRT cannot enqueue under capture
            log.warning("CUDA graph capture failed for batch %d (%s); running %s without CUDA graphs", batch, reason, self.path)
            self._use_graphs = False
            self._identity["cuda_graphs"] = False
            return None
        self._graphs[batch] = graph
        log.info("captured a CUDA graph for batch %d of %s", batch, self.path)
        return graph

    def _release(self) -> None:
        self._graphs.clear()
        # The context goes before the engine, the engine before the runtime.
        self._context = None
        self._engine = None
        self._runtime = None
        self._input = self._output = None
        self._tap_outputs = {}
