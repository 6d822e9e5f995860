"""PIL's bilinear resize (``Image.resize(size, Image.BILINEAR)``, i.e. torchvision ``Resize`` on a PIL image),
separable: first along the width, then along the height, each as a short weighted sum of input taps.

PIL's bilinear filter is a triangle whose support widens with the reduction factor, so downscaling
averages (antialiases) rather than skipping pixels; the weights are PIL's ``precompute_coeffs``
(Resample.c) in float64, normalised per output pixel. Each output pixel reads at most ``max_taps`` inputs
(7 for 640 -> 224), so the resize gathers those taps instead of multiplying by a mostly-zero dense matrix
(250 MFLOP -> 2 MFLOP for a 640 x 640 recurrence plot). Tap tables are built once per size and cached
(on the GPU for CuPy, where the fused kernels read the same tables).
"""

from __future__ import annotations

import math

import numpy as np

from biomoe_edge.runtime.transforms._backend import array_module, cached_constant


def resize_weights(in_size: int, out_size: int) -> np.ndarray:
    """(out_size, in_size) float32 matrix of PIL's bilinear resampling weights along one axis."""
    scale = in_size / out_size
    filterscale = max(scale, 1.0)
    support = 1.0 * filterscale  # the bilinear (triangle) filter has support 1
    weights = np.zeros((out_size, in_size), dtype=np.float64)
    for xx in range(out_size):
        center = (xx + 0.5) * scale
        xmin = max(int(center - support + 0.5), 0)
        xmax = min(int(center + support + 0.5), in_size)
        taps = np.arange(xmin, xmax)
        w = np.clip(1.0 - np.abs((taps - center + 0.5) / filterscale), 0.0, None)
        total = w.sum()
        weights[xx, xmin:xmax] = w / total if total != 0 else w
    return weights.astype(np.float32)


def max_taps(in_size: int, out_size: int) -> int:
    """Most input pixels one output pixel reads along an axis (PIL's ``ksize``)."""
    return int(math.ceil(max(in_size / out_size, 1.0))) * 2 + 1


def resize_taps(in_size: int, out_size: int) -> tuple[np.ndarray, np.ndarray]:
    """PIL's weights as tap tables: (first input (out,) int32, weights (out, K) float32), zero-padded.
    The fused CUDA kernels read these; ``K`` is at most ``max_taps(in_size, out_size)``."""
    dense = resize_weights(in_size, out_size)
    nonzero = dense != 0
    first = np.argmax(nonzero, axis=1)
    last = in_size - 1 - np.argmax(nonzero[:, ::-1], axis=1)
    k = int((last - first).max()) + 1
    weights = np.zeros((out_size, k), dtype=np.float32)
    for row in range(out_size):
        taps = dense[row, first[row] : first[row] + k]
        weights[row, : taps.size] = taps
    return first.astype(np.int32), weights


def _sparse_weights(in_size: int, out_size: int):
    import scipy.sparse

    return scipy.sparse.csr_matrix(resize_weights(in_size, out_size))


_SPARSE: dict = {}


def resize(images, out_height: int, out_width: int):
    """Resize the last two axes of ``images`` (..., H, W) to (out_height, out_width), float32.

    NumPy: two sparse products (scipy.sparse CSR, ~7 taps per output pixel); CuPy: two dense cuBLAS
    products (the render path on the GPU uses the fused kernels in ``_cuda.py`` instead).
    """
    xp = array_module(images)
    lead, (height, width) = images.shape[:-2], images.shape[-2:]
    if xp is not np:
        wy = cached_constant(xp, ("resize", height, out_height), lambda: resize_weights(height, out_height))
        wx = cached_constant(xp, ("resize", width, out_width), lambda: resize_weights(width, out_width))
        return xp.matmul(wy, xp.matmul(images, wx.T))
    for size in ((width, out_width), (height, out_height)):
        if size not in _SPARSE:
            _SPARSE[size] = _sparse_weights(*size)
    sx, sy = _SPARSE[(width, out_width)], _SPARSE[(height, out_height)]
    flat = np.ascontiguousarray(images, dtype=np.float32).reshape(-1, height, width)
    out = np.empty((flat.shape[0], out_height, out_width), dtype=np.float32)
    for i, image in enumerate(flat):
        # Height first on the C-ordered image; only the already reduced (out_h, W) result is transposed.
        down = sy @ image
        out[i] = (sx @ np.ascontiguousarray(down.T)).T
    return out.reshape(lead + (out_height, out_width))
