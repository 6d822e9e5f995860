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


#: Rows per tile when the NumPy rasteriser walks a segment's bounding box.
_TILE = 8


def waveform_image(x, size: int = 224, line_width: float = LINE_WIDTH_PX):
    """Grey levels (..., size, size) float32 in [0, 1] (1 = white paper, 0 = full ink) of windows x (..., N).

    Segment by segment: every pixel in a segment's bounding box (grown by the stroke's reach) gets that
    segment's ink, and the inks are summed per pixel (``bincount``), then clipped at 1. The CUDA kernel
    computes the same sum pixel by pixel over the segments near the pixel's column.
    """
    xp = array_module(x)
    x = xp.asarray(x, dtype=xp.float32)
    lead, n = x.shape[:-1], x.shape[-1]
    x = x.reshape(-1, n)
    if n < 2:
        raise ValueError("a waveform needs at least 2 samples")
    n_windows = x.shape[0]
    lo, hi = y_limits(x)
    py = (size * (1.0 - (x - lo) / (hi - lo))).astype(xp.float32)  # (B, N) from the top
    dx = size / (n - 1)
    reach = line_width / 2 + 1.0

    # One entry per (window, segment, row tile) that the segment's grown bounding box touches.
    y0, y1 = py[:, :-1].ravel(), py[:, 1:].ravel()  # (B * (N - 1),)
    window = xp.repeat(xp.arange(n_windows), n - 1)
    segment = xp.tile(xp.arange(n - 1), n_windows)
    top_row = xp.floor(xp.minimum(y0, y1) - reach).astype(xp.int64)
    n_rows = xp.floor(xp.maximum(y0, y1) + reach).astype(xp.int64) - top_row + 1
    n_tiles = (n_rows + _TILE - 1) // _TILE
    entry = xp.repeat(xp.arange(y0.size), n_tiles)
    tile = xp.arange(entry.size) - xp.repeat(xp.cumsum(n_tiles) - n_tiles, n_tiles)

    rows = (top_row[entry] + tile * _TILE)[:, None, None] + xp.arange(_TILE)[None, None, :]  # (Q, 1, T)
    n_cols = int(math.ceil(dx + 2 * reach)) + 1
    first_col = xp.floor(segment[entry] * dx - reach).astype(xp.int64)
    cols = first_col[:, None, None] + xp.arange(n_cols)[None, :, None]  # (Q, C, 1)

    sx0 = (segment[entry] * dx).astype(xp.float32)[:, None, None]
    sy0 = y0[entry][:, None, None]
    ex = xp.float32(dx)
    ey = (y1 - y0)[entry][:, None, None]
    length = xp.sqrt(ex * ex + ey * ey)
    ux, uy = ex / length, ey / length
    px = (cols + 0.5).astype(xp.float32) - sx0  # (Q, C, 1)
    pyy = (rows + 0.5).astype(xp.float32) - sy0  # (Q, 1, T)
    # A butt-ended band of width w: ink = (coverage across) x (overlap of a 1-pixel box along the segment);
    # the inks of all segments add up, clipped at 1, as Agg's non-zero coverage accumulation does where
    # the stroke folds over itself (dense signals).
    along = px * ux + pyy * uy  # (Q, C, T)
    across = xp.abs(px * uy - pyy * ux)
    along_cover = xp.clip(xp.minimum(along + 0.5, length) - xp.maximum(along - 0.5, 0.0), 0.0, 1.0)
    cover = xp.clip(line_width / 2 + 0.5 - across, 0.0, 1.0) * along_cover

    inside = (cols >= 0) & (cols < size) & (rows >= 0) & (rows < size)
    pixel = (window[entry][:, None, None] * size + rows) * size + cols
    pixel = xp.where(inside, pixel, 0)
    ink = xp.bincount(pixel.ravel(), weights=xp.where(inside, cover, 0.0).ravel(), minlength=n_windows * size * size)
    image = 1.0 - xp.clip(ink, 0.0, 1.0).astype(xp.float32).reshape(n_windows, size, size)
    return xp.ascontiguousarray(image).reshape(lead + (size, size))
