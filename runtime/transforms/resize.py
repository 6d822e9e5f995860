"""PIL's bilinear resize (``Image.resize(size, Image.BILINEAR)``, i.e. torchvision ``Resize`` on a PIL image)
as two dense weight matrices: ``out = Wy @ image @ Wx.T``.

PIL's bilinear filter is a triangle whose support widens with the reduction factor, so downscaling
averages (antialiases) rather than skipping pixels; the weights below are PIL's ``precompute_coeffs``
(Resample.c) in float64, normalised per output pixel. On NumPy and CuPy the resize is then two batched
matrix products (BLAS / cuBLAS), and the weights are built once per (in, out) size and cached.
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


def resize(images, out_height: int, out_width: int):
    """Resize the last two axes of ``images`` (..., H, W) to (out_height, out_width), float32."""
    xp = array_module(images)
    height, width = images.shape[-2:]
    wy = cached_constant(xp, ("resize", height, out_height), lambda: resize_weights(height, out_height))
    wx = cached_constant(xp, ("resize", width, out_width), lambda: resize_weights(width, out_width))
    return xp.matmul(xp.matmul(wy, images), wx.T)
