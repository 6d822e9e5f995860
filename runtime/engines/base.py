"""The one interface every engine implements: images in, 192-D embeddings out.

Written for the people who implement a backend (the way bleak's ``BaseBleakClient`` is): a backend
subclasses :class:`Engine`, sets ``max_batch`` and ``_identity`` (every key of ``IDENTITY_KEYS``) in
``__init__`` and implements ``_infer_batch`` for at most ``max_batch`` validated images. Input checking,
batch splitting and the context-manager protocol live here, once.
"""

from __future__ import annotations

import abc

import numpy as np

from biomoe_edge.runtime.engines.exc import EngineError, EngineInputError
from biomoe_edge.vocabulary import EMBEDDING_DIM, IMAGE_SHAPE, IMAGE_SIZE  # images: RGB in [0, 1]

#: Image dtypes an engine accepts; each backend converts to what its graph declares.
ACCEPTED_DTYPES = (np.dtype(np.float32), np.dtype(np.float16))
#: The keys of ``Engine.identity`` every backend fills.
IDENTITY_KEYS = ("kind", "precision", "model_sha256", "source", "device", "max_batch", "checkpoint_sha256",
                 "random_weights", "seed")


def is_device_array(images) -> bool:
    """True for CUDA arrays (CuPy, PyTorch CUDA tensors, Numba...): anything with ``__cuda_array_interface__``."""
    return hasattr(images, "__cuda_array_interface__")


def check_images(images):
    """Validate an image batch; return it as a NumPy or CuPy array, or raise EngineInputError naming the fault.

    Accepts a NumPy array or any ``__cuda_array_interface__`` array, shape (B, 3, 224, 224), float32 or
    float16, every value finite.
    """
    if is_device_array(images):
        from biomoe_edge.runtime.engines._cuda import import_cupy

        xp = import_cupy()
        images = xp.asarray(images)  # zero-copy view of the caller's device memory
    elif isinstance(images, np.ndarray):
        xp = np
    else:
        raise EngineInputError(
            f"images must be a NumPy array or a CUDA array (__cuda_array_interface__), got {type(images).__name__}"
        )
    if images.ndim != 4 or tuple(images.shape[1:]) != IMAGE_SHAPE:
        raise EngineInputError(f"images must have shape (B, 3, {IMAGE_SIZE}, {IMAGE_SIZE}), got {tuple(images.shape)}")
    if np.dtype(images.dtype) not in ACCEPTED_DTYPES:
        raise EngineInputError(f"images must be float32 or float16, got dtype {np.dtype(images.dtype).name}")
    if images.shape[0]:
        finite_rows = xp.isfinite(images).reshape(images.shape[0], -1).all(axis=1)
        if not bool(finite_rows.all()):
            bad = [int(i) for i in np.flatnonzero(~_to_host(finite_rows))]
            raise EngineInputError(f"images hold NaN or infinite values (batch indices {bad[:10]})")
    return images


def _to_host(array) -> np.ndarray:
    return array.get() if hasattr(array, "get") and not isinstance(array, np.ndarray) else np.asarray(array)


class Engine(abc.ABC):
    """Tiny-BioMoE behind one backend.

    ``infer(images)`` takes (B, 3, 224, 224) float32 or float16 images, NumPy or any
    ``__cuda_array_interface__`` array, and returns (B, 192) float32 embeddings as NumPy. Batches larger
    than ``max_batch`` are split and run in turn; ``runs`` counts backend invocations.

    ``identity`` says what produced the embeddings: ``kind`` (tensorrt | onnxruntime | pytorch),
    ``precision`` (fp32 | fp16 | int8), ``model_sha256`` (of the file the engine loaded, checked against its
    manifest at open), ``source`` (that file's path, or None for random weights built in memory), ``device``,
    ``max_batch``, and where the weights came from: ``checkpoint_sha256`` (the Tiny-BioMoE checkpoint; None
    for random weights), ``random_weights`` (True also when no manifest vouches for the weights) and ``seed``
    (of random weights); backends may add keys (``tensorrt_version``...).
    """

    #: Largest batch one backend invocation takes; ``infer`` splits larger batches.
    max_batch: int
    #: The image dtype the backend reads natively (others are cast): where a caller preallocates its buffer.
    input_dtype: np.dtype = np.dtype(np.float32)
    #: Counts backend invocations (``_infer_batch`` calls) since the engine was opened.
    runs: int = 0
    #: Feature taps the backend returns beside the embedding (``infer_tapped``; runtime/engines/taps.py).
    taps: tuple[str, ...] = ()

    def __init__(self):
        self._identity: dict = {}
        self._closed = False
        self.runs = 0

    @property
    def identity(self) -> dict:
        """What produced the embeddings (a copy; see the class docstring for the keys)."""
        return dict(self._identity)

    def infer(self, images) -> np.ndarray:
        """Embeddings (B, 192) float32 of images (B, 3, 224, 224); EngineInputError names bad input."""
        if self._closed:
            raise EngineError(f"{type(self).__name__} is closed")
        images = check_images(images)
        batch = images.shape[0]
        if batch == 0:
            return np.empty((0, EMBEDDING_DIM), dtype=np.float32)
        parts = []
        for start in range(0, batch, self.max_batch):
            out = np.asarray(self._infer_batch(images[start : start + self.max_batch]), dtype=np.float32)
            self.runs += 1
            expected = (min(self.max_batch, batch - start), EMBEDDING_DIM)
            if out.shape != expected:
                raise EngineError(f"{type(self).__name__} returned shape {out.shape}, expected {expected}")
            parts.append(out)
        return parts[0] if len(parts) == 1 else np.concatenate(parts)

    def infer_tapped(self, images, taps) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """Embeddings (B, 192) and, from the same run, the pooled features (B, dim) float32 of each of ``taps``
        (names among ``self.taps``); EngineError names a tap the engine does not provide."""
        taps = tuple(dict.fromkeys(taps))
        missing = [t for t in taps if t not in self.taps]
        if missing:
            raise EngineError(f"{type(self).__name__} provides taps {list(self.taps)}, not {missing} (export the "
                              f"graph with `biomoe-edge export --taps {','.join(missing)}`)")
        if not taps:
            return self.infer(images), {}
        if self._closed:
            raise EngineError(f"{type(self).__name__} is closed")
        images = check_images(images)
        batch = images.shape[0]
        if batch == 0:
            return np.empty((0, EMBEDDING_DIM), dtype=np.float32), {t: np.empty((0, 0), np.float32) for t in taps}
        embeddings, tapped = [], {t: [] for t in taps}
        for start in range(0, batch, self.max_batch):
            out, features = self._infer_batch_tapped(images[start : start + self.max_batch], taps)
            self.runs += 1
            rows = min(self.max_batch, batch - start)
            out = np.asarray(out, dtype=np.float32)
            if out.shape != (rows, EMBEDDING_DIM):
                raise EngineError(f"{type(self).__name__} returned shape {out.shape}, expected {(rows, EMBEDDING_DIM)}")
            embeddings.append(out)
            for t in taps:
                value = np.asarray(features[t], dtype=np.float32)
                if value.ndim != 2 or value.shape[0] != rows:
                    raise EngineError(f"{type(self).__name__} returned tap {t!r} of shape {value.shape}, expected "
                                      f"({rows}, dim)")
                tapped[t].append(value)
        return np.concatenate(embeddings), {t: np.concatenate(parts) for t, parts in tapped.items()}

    def warmup(self, batch_sizes=None) -> None:
        """Run zero images at each batch size (default: 1 and ``max_batch``), so that first-use costs (CUDA
        graph capture, TensorRT's per-shape setup, lazy initialisation) are paid now, not on live data."""
        sizes = sorted({1, self.max_batch}) if batch_sizes is None else batch_sizes
        for size in sizes:
            if not 1 <= int(size) <= self.max_batch:
                raise ValueError(f"warm-up batch size {size} is outside 1..{self.max_batch}")
            self.infer(np.zeros((int(size), *IMAGE_SHAPE), dtype=self.input_dtype))

    @abc.abstractmethod
    def _infer_batch(self, images) -> np.ndarray:
        """Embeddings of 1..max_batch validated images (NumPy or CuPy array, float32 or float16)."""

    def _infer_batch_tapped(self, images, taps) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """Embeddings and ``taps`` (a non-empty subset of ``self.taps``) of 1..max_batch validated images, from one
        run. Backends that set ``taps`` implement it."""
        raise EngineError(f"{type(self).__name__} provides no feature taps")

    def close(self) -> None:
        """Release the backend's resources (sessions, device buffers, CUDA graphs). Safe to call twice."""
        if not self._closed:
            self._closed = True
            self._release()

    def _release(self) -> None:
        """Backends free their resources here; called once by ``close``."""

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()

    def __repr__(self) -> str:
        ident = self._identity
        return (
            f"<{type(self).__name__} {ident.get('precision', '?')} on {ident.get('device', '?')}, "
            f"max_batch={getattr(self, 'max_batch', '?')}, source={ident.get('source')}>"
        )
