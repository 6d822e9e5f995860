"""Tiny-BioMoE in PyTorch eager mode: CPU or CUDA, optional FP16 autocast, optional CUDA graphs.

The only runtime module that imports torch (lazily, when the engine is opened) and the only place the
runtime touches ``biomoe_edge.export`` (for ``load_tiny_biomoe``).
"""

from __future__ import annotations

import logging
import pathlib
import warnings

import numpy as np

from biomoe_edge.runtime.engines.base import IMAGE_SHAPE, Engine
from biomoe_edge.runtime.engines.exc import BackendUnavailableError
from biomoe_edge.runtime.engines.provenance import verified_manifest

log = logging.getLogger(__name__)

PRECISIONS = ("fp32", "fp16")


def import_torch():
    try:
        import torch
    except ImportError as exc:
        raise BackendUnavailableError(
            f"torch is not installed: the pytorch engine needs it (`pip install torch`; on a Jetson, NVIDIA's "
            f"JetPack wheel); the gateway runs without it on the tensorrt or onnxruntime engine ({exc})"
        ) from None
    return torch


class PyTorchEngine(Engine):
    """Tiny-BioMoE as a ``torch.nn.Module``.

    ``checkpoint``: a Tiny-BioMoE ``.pth`` (None: deterministic random weights from ``seed``, with a
    warning), or pass a loaded ``model``. A checkpoint with a manifest beside it (``X.pth`` -> ``X.json``
    recording a ``sha256``) is checked against it. ``strict``: refuse checkpoint entries that are not part of
    Tiny-BioMoE instead of ignoring them (see ``load_tiny_biomoe``). ``device``: "cpu", "cuda" or "cuda:N".
    ``precision``: "fp32" or "fp16" (``torch.autocast``, which keeps LayerNorm and Softmax in FP32).
    ``cuda_graphs``: capture one CUDA graph per batch size and replay it (CUDA only). ``max_batch``: largest
    batch per run.
    """

    def __init__(self, checkpoint=None, *, device: str = "cpu", precision: str = "fp32", cuda_graphs: bool = False,
                 max_batch: int = 32, seed: int = 0, model=None, strict: bool = False):
        super().__init__()
        torch = import_torch()
        self._torch = torch
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS} for the pytorch engine, got {precision!r}")
        if int(max_batch) < 1:
            raise ValueError(f"max_batch must be at least 1, got {max_batch}")
        self.device = torch.device(device)
        if self.device.type == "cuda" and not torch.cuda.is_available():
            raise BackendUnavailableError(f"device {device!r} requested but torch {torch.__version__} sees no CUDA device")
        if cuda_graphs and self.device.type != "cuda":
            raise ValueError("cuda_graphs=True needs a CUDA device")
        self.precision = precision
        self.max_batch = int(max_batch)
        self._cuda_graphs = bool(cuda_graphs)
        self._graphs: dict[int, tuple] = {}  # batch size -> (graph, static input, static output)

        manifest_verified = False
        if model is None:
            from biomoe_edge.export import RandomWeightsWarning, load_tiny_biomoe

            if isinstance(checkpoint, (str, pathlib.Path)):
                # A manifest beside the checkpoint, if any, vouches for its bytes before torch reads them.
                manifest_verified = bool(verified_manifest(checkpoint, only_with_sha256=True)[0])
            with warnings.catch_warnings():
                # Said once below as a log line (no Python source line in a user's terminal or journal).
                warnings.simplefilter("ignore", RandomWeightsWarning)
                model = load_tiny_biomoe(checkpoint, seed=seed, strict=strict)
        self._model = model.eval().to(self.device)
        from biomoe_edge.export.model.taps import INPUT_TAPS

        # The module can be read anywhere: every input tap (export/model/taps.py) is available.
        self.taps = tuple(INPUT_TAPS)

        # load_tiny_biomoe records where the weights came from; a model built elsewhere says nothing, so it
        # counts as random weights (biomoe_edge.identity).
        provenance = getattr(model, "source_checkpoint", None) or {}
        digest = provenance.get("sha256")
        random_weights = bool(provenance.get("random_weights", digest is None))
        self._identity = {
            "kind": "pytorch",
            "precision": precision,
            "model_sha256": digest,
            "source": provenance.get("path"),
            "device": str(self.device),
            "max_batch": self.max_batch,
            "checkpoint_sha256": None if random_weights else digest,
            "random_weights": random_weights,
            "seed": provenance.get("seed") if random_weights else None,
            "manifest_verified": manifest_verified,
            "cuda_graphs": self._cuda_graphs,
            "torch_version": torch.__version__,
        }
        if random_weights:
            log.warning("Tiny-BioMoE with RANDOM WEIGHTS (seed %s): the embeddings are meaningless without the "
                        "published Tiny-BioMoE.pth; every record says random_weights: true", self._identity["seed"])

    def _forward(self, x):
        torch = self._torch
        if self.precision == "fp16":
            with torch.autocast(device_type=self.device.type, dtype=torch.float16):
                return self._model(x)
        return self._model(x)

    def _to_tensor(self, images):
        torch = self._torch
        if isinstance(images, np.ndarray):
            tensor = torch.from_numpy(np.ascontiguousarray(images)).to(self.device, non_blocking=True)
        elif self.device.type == "cuda":
            tensor = torch.as_tensor(images, device=self.device)  # zero-copy through __cuda_array_interface__
        else:
            tensor = torch.from_numpy(images.get())
        return tensor.float()

    def _infer_batch(self, images) -> np.ndarray:
        torch = self._torch
        with torch.no_grad():
            x = self._to_tensor(images)
            if self._cuda_graphs:
                out = self._replay(x)
            else:
                out = self._forward(x)
            return out.float().cpu().numpy()

    def _infer_batch_tapped(self, images, taps):
        from biomoe_edge.export.model.taps import capture

        torch = self._torch
        with torch.no_grad():
            x = self._to_tensor(images)
            # The model's own modules in forward's order (export/model/taps.py): the embedding equals forward's.
            with torch.autocast(device_type=self.device.type, dtype=torch.float16,
                                enabled=self.precision == "fp16"):
                pooled, _ = capture(self._model, x, inputs=(*taps, "embedding"))
            return (pooled["embedding"].float().cpu().numpy(),
                    {t: pooled[t].float().cpu().numpy() for t in taps})

    def _replay(self, x):
        """Run through the CUDA graph captured for this batch size (capturing it on first use)."""
        torch = self._torch
        batch = x.shape[0]
        if batch not in self._graphs:
            static_in = torch.zeros((batch, *IMAGE_SHAPE), device=self.device)
            side = torch.cuda.Stream(device=self.device)
            side.wait_stream(torch.cuda.current_stream(self.device))
            with torch.cuda.stream(side):
                for _ in range(3):  # warm up (cuDNN/cuBLAS workspaces, lazy init) outside the capture
                    self._forward(static_in)
            torch.cuda.current_stream(self.device).wait_stream(side)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph):
                static_out = self._forward(static_in)
            self._graphs[batch] = (graph, static_in, static_out)
            log.info("captured a CUDA graph for batch %d", batch)
        graph, static_in, static_out = self._graphs[batch]
        static_in.copy_(x)
        graph.replay()
        return static_out.clone()

    def _release(self) -> None:
        self._graphs.clear()
        self._model = None
