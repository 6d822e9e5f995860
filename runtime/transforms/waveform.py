"""Waveform rasterisation: the window drawn as an antialiased black line on white, no axes.

Geometry (the documented figure, see ``reference.py``): sample ``n`` of ``N`` sits at x = n * W / (N - 1)
pixels from the left edge, the y range is [min - 5 % span, max + 5 % span] (±1 around a flat line) mapped
to the full height, pixel centres sit at half-integers, and the stroke is ``LINE_WIDTH_PX`` wide. A pixel's
ink is the sum over segments of (coverage across the segment, ``clip(w/2 + 0.5 - d, 0, 1)``) x (overlap of
a one-pixel box with the segment along it), clipped at 1: exact for straight runs, and like Agg (which
accumulates coverage where a stroke folds over itself) on dense signals. Against matplotlib's Agg it
measures ~48 dB PSNR on smooth lines, 36-38 dB on real PPG and ECG windows, 31 dB on white noise.
"""

from __future__ import annotations

import math

from biomoe_edge.runtime.transforms._backend import array_module

#: Stroke width in pixels of a 224-pixel picture (matplotlib: 1.08 pt at 100 dpi).
LINE_WIDTH_PX = 1.5
#: Vertical margin as a fraction of the window's peak-to-peak amplitude.
Y_MARGIN = 0.05


def y_limits(x):
    """(low, high) of the plotted y range per window, (..., 1) each."""
    xp = array_module(x)
    lo = x.min(axis=-1, keepdims=True)
    hi = x.max(axis=-1, keepdims=True)
    span = hi - lo
    pad = xp.where(span > 0, Y_MARGIN * span, 1.0)
    return lo - pad, hi + pad


def segment_reach(n_samples: int, size: int, line_width: float) -> int:
    """How many consecutive segments can come within reach of one pixel column."""
    dx = size / (n_samples - 1)
    reach = line_width / 2 + 1.0
    return min(n_samples - 1, int(math.ceil(2 * reach / dx)) + 2)


def waveform_image(x, size: int = 224, line_width: float = LINE_WIDTH_PX):
    """Grey levels (..., size, size) float32 in [0, 1] (1 = white paper, 0 = full ink) of windows x (..., N)."""
    xp = array_module(x)
    x = xp.asarray(x, dtype=xp.float32)
    lead, n = x.shape[:-1], x.shape[-1]
    x = x.reshape(-1, n)
    if n < 2:
        raise ValueError("a waveform needs at least 2 samples")
    lo, hi = y_limits(x)
    py = (size * (1.0 - (x - lo) / (hi - lo))).astype(xp.float32)  # (B, N) from the top
    dx = size / (n - 1)
    n_seg = segment_reach(n, size, line_width)
    reach = line_width / 2 + 1.0
    centres = xp.arange(size, dtype=xp.float32) + 0.5
    first = xp.clip(xp.floor((centres - reach) / dx).astype(xp.int64), 0, n - 1 - n_seg)  # (C,)
    k = first[:, None] + xp.arange(n_seg)[None, :]  # (C, K) segment starts
    x0 = (k * dx).astype(xp.float32)
    x1 = ((k + 1) * dx).astype(xp.float32)
    y0 = py[:, k]  # (B, C, K)
    y1 = py[:, k + 1]
    # Each segment is a butt-ended band of width w: a pixel's ink from it is (perpendicular coverage) x
    # (overlap of a 1-pixel box with the segment's length), and the inks of all segments add up, clipped at
    # 1, as Agg's non-zero coverage accumulation does where the stroke folds over itself (dense signals).
    ex = (x1 - x0)[None, :, :, None]
    ey = (y1 - y0)[..., None]
    length = xp.sqrt(ex * ex + ey * ey)
    ux, uy = ex / length, ey / length
    px = centres[None, :, None, None] - x0[None, :, :, None]  # (1, C, K, 1)
    pyy = centres[None, None, None, :] - y0[..., None]  # (B, C, K, R)
    along = px * ux + pyy * uy
    across = xp.abs(px * uy - pyy * ux)
    along_cover = xp.clip(xp.minimum(along + 0.5, length) - xp.maximum(along - 0.5, 0.0), 0.0, 1.0)
    cover = xp.clip(line_width / 2 + 0.5 - across, 0.0, 1.0) * along_cover
    ink = xp.clip(cover.sum(axis=2), 0.0, 1.0)  # (B, C, R)
    image = 1.0 - xp.swapaxes(ink, -1, -2)  # (B, R, C)
    return xp.ascontiguousarray(image.astype(xp.float32)).reshape(lead + (size, size))
