"""Fused CUDA kernels of the fast renderer (CuPy ``RawKernel``), used by ``render`` for CuPy inputs.

Each kernel writes finished pixels straight into the caller's NCHW buffer (float32 or float16) at image
``b * R + r``, so nothing is copied afterwards and nothing returns to the host:

- ``lut_resize``: normalise a map (per-map vmin / 1/span), look up the 256-entry colour table, and apply
  PIL's bilinear weights (tap tables from ``resize.resize_taps``) for the three channels in one pass;
- ``recurrence_resize``: the same, but each tap's value is computed on the fly from the window
  (|x_i - x_j|, thresholded or scaled), so the M x M recurrence plot is never stored (dimension 1);
- ``waveform``: the line coverage of ``waveform.py`` per pixel, over the segments near its column.

All launches go to the current CuPy stream, i.e. the one ``render(..., stream=...)`` entered.
Written against CuPy's RawKernel API; exercised by tests/transforms/test_transforms_cupy.py on a GPU.
"""

from __future__ import annotations

import functools

import numpy as np

from biomoe_edge.runtime.transforms._backend import cached_constant
from biomoe_edge.runtime.transforms.colormaps import LUTS
from biomoe_edge.runtime.transforms.resize import resize_taps
from biomoe_edge.runtime.transforms.waveform import segment_reach, y_limits
from biomoe_edge.vocabulary import IMAGE_SIZE

_THREADS = 256

_COMMON = r"""
#include <cuda_fp16.h>
// Clamped to [0, 1]: float32 resize weights can sum to 1 + 1e-7.
__device__ __forceinline__ void store(float* p, float v) { *p = fminf(fmaxf(v, 0.0f), 1.0f); }
__device__ __forceinline__ void store(__half* p, float v) { *p = __float2half(fminf(fmaxf(v, 0.0f), 1.0f)); }
__device__ __forceinline__ int lut_index(float v) {
    // matplotlib: floor(v * 256) clipped to [0, 255]
    float s = floorf(v * 256.0f);
    return (int)fminf(fmaxf(s, 0.0f), 255.0f);
}
// One thread per output pixel (b, row, col) of n_maps size x size pictures.
__device__ __forceinline__ bool pixel_of(int n_maps, int size, int* b, int* row, int* col) {
    long long tid = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (tid >= (long long)n_maps * size * size) return false;
    *col = tid % size;
    *row = (tid / size) % size;
    *b = tid / ((long long)size * size);
    return true;
}
// Write an RGB pixel of picture b into out[b * image_stride + image_offset] (NCHW).
template <typename T>
__device__ __forceinline__ void store_rgb(T* out, int b, int image_stride, int image_offset, int size,
                                          int row, int col, float r, float g, float bl) {
    long long plane = (long long)size * size;
    T* o = out + ((long long)b * image_stride + image_offset) * 3 * plane + (long long)row * size + col;
    store(o, r); store(o + plane, g); store(o + 2 * plane, bl);
}
"""

_LUT_RESIZE = _COMMON + r"""
extern "C" __global__ void lut_resize(
    const float* maps, int H, int W, const float* vmin, const float* inv_span,
    const float* lut,                      // 256 x 3, in [0, 1]
    const int* first_y, const float* weight_y, int ky,
    const int* first_x, const float* weight_x, int kx,
    OUT_T* out, int n_maps, int image_stride, int image_offset, int size)
{
    int b, oy, ox;
    if (!pixel_of(n_maps, size, &b, &oy, &ox)) return;
    const float* m = maps + (long long)b * H * W;
    float lo = vmin[b], inv = inv_span[b];
    float r = 0.f, g = 0.f, bl = 0.f;
    for (int ty = 0; ty < ky; ++ty) {
        float wy = weight_y[oy * ky + ty];
        if (wy == 0.f) continue;
        int iy = first_y[oy] + ty;
        const float* row = m + (long long)(H - 1 - iy) * W;   // picture row iy is map row H-1-iy (origin low)
        for (int tx = 0; tx < kx; ++tx) {
            float wx = weight_x[ox * kx + tx];
            if (wx == 0.f) continue;
            int ix = first_x[ox] + tx;
            int k = lut_index((row[ix] - lo) * inv);
            float w = wy * wx;
            r += w * lut[3 * k]; g += w * lut[3 * k + 1]; bl += w * lut[3 * k + 2];
        }
    }
    store_rgb(out, b, image_stride, image_offset, size, oy, ox, r, g, bl);
}
"""

_RECURRENCE_RESIZE = _COMMON + r"""
extern "C" __global__ void recurrence_resize(
    const float* x, int M, const float* cut, const float* inv_span, int thresholded,
    const float* lut,
    const int* first_y, const float* weight_y, int ky,
    const int* first_x, const float* weight_x, int kx,
    OUT_T* out, int n_maps, int image_stride, int image_offset, int size)
{
    int b, oy, ox;
    if (!pixel_of(n_maps, size, &b, &oy, &ox)) return;
    const float* xb = x + (long long)b * M;
    float c = cut[b], inv = inv_span[b];
    float r = 0.f, g = 0.f, bl = 0.f;
    for (int ty = 0; ty < ky; ++ty) {
        float wy = weight_y[oy * ky + ty];
        if (wy == 0.f) continue;
        float xi = xb[M - 1 - (first_y[oy] + ty)];            // origin at the bottom
        for (int tx = 0; tx < kx; ++tx) {
            float wx = weight_x[ox * kx + tx];
            if (wx == 0.f) continue;
            float d = fabsf(xi - xb[first_x[ox] + tx]);
            float v = thresholded ? (d < c ? 1.f : 0.f) : d * inv;
            int k = lut_index(v);
            float w = wy * wx;
            r += w * lut[3 * k]; g += w * lut[3 * k + 1]; bl += w * lut[3 * k + 2];
        }
    }
    store_rgb(out, b, image_stride, image_offset, size, oy, ox, r, g, bl);
}
"""

_WAVEFORM = _COMMON + r"""
extern "C" __global__ void waveform(
    const float* py, int N, float dx, int n_seg, float reach, float half_width,
    OUT_T* out, int n_maps, int image_stride, int image_offset, int size)
{
    int b, row, col;
    if (!pixel_of(n_maps, size, &b, &row, &col)) return;
    const float* y = py + (long long)b * N;
    float cx = col + 0.5f, cy = row + 0.5f;
    int first = (int)floorf((cx - reach) / dx);
    first = max(0, min(first, N - 1 - n_seg));
    float ink = 0.f;
    for (int s = 0; s < n_seg; ++s) {
        int k = first + s;
        float x0 = k * dx, x1 = (k + 1) * dx, y0 = y[k], y1 = y[k + 1];
        float ex = x1 - x0, ey = y1 - y0;
        float len = sqrtf(ex * ex + ey * ey);
        float ux = ex / len, uy = ey / len;
        float px = cx - x0, pq = cy - y0;
        float along = px * ux + pq * uy;
        float across = fabsf(px * uy - pq * ux);
        float a = fminf(fmaxf(fminf(along + 0.5f, len) - fmaxf(along - 0.5f, 0.f), 0.f), 1.f);
        ink += fminf(fmaxf(half_width + 0.5f - across, 0.f), 1.f) * a;
    }
    float v = 1.f - fminf(ink, 1.f);
    store_rgb(out, b, image_stride, image_offset, size, row, col, v, v, v);
}
"""


@functools.lru_cache(maxsize=None)
def _kernel(name: str, out_type: str):
    import cupy

    source = {"lut_resize": _LUT_RESIZE, "recurrence_resize": _RECURRENCE_RESIZE, "waveform": _WAVEFORM}[name]
    return cupy.RawKernel(source.replace("OUT_T", out_type), name)


def _out_type(out) -> str:
    return "__half" if out.dtype == np.float16 else "float"


def _launch(kernel, n_pixels: int, args):
    blocks = (n_pixels + _THREADS - 1) // _THREADS
    kernel((blocks,), (_THREADS,), args)


def _taps(cp, in_size: int):
    first = cached_constant(cp, ("taps-first", in_size, IMAGE_SIZE), lambda: resize_taps(in_size, IMAGE_SIZE)[0])
    weight = cached_constant(cp, ("taps-weight", in_size, IMAGE_SIZE), lambda: resize_taps(in_size, IMAGE_SIZE)[1])
    return first, weight, int(weight.shape[1])


def _lut(cp, name: str):
    return cached_constant(cp, ("lut-flat", name), lambda: (LUTS[name].astype(np.float32) / 255.0).ravel())


def lut_resize_into(out, maps, vmin, vmax, cmap: str, n_rep: int, r: int):
    """Colour + resize maps (B, H, W) into out[b * n_rep + r] for every b."""
    import cupy as cp

    maps = cp.ascontiguousarray(maps, dtype=cp.float32)
    b, h, w = maps.shape
    span = (vmax - vmin).astype(cp.float32)
    inv_span = cp.where(span > 0, 1.0 / cp.where(span > 0, span, 1.0), 0.0).astype(cp.float32)
    fy, wy, ky = _taps(cp, h)
    fx, wx, kx = _taps(cp, w)
    args = (
        maps, np.int32(h), np.int32(w), cp.ascontiguousarray(vmin, dtype=cp.float32), inv_span, _lut(cp, cmap),
        fy, wy, np.int32(ky), fx, wx, np.int32(kx),
        out, np.int32(b), np.int32(n_rep), np.int32(r), np.int32(IMAGE_SIZE),
    )
    _launch(_kernel("lut_resize", _out_type(out)), b * IMAGE_SIZE * IMAGE_SIZE, args)


def recurrence_resize_into(out, windows, threshold, percentage, n_rep: int, r: int):
    """Recurrence (dimension 1, threshold None / "distance" / float) + threshold + colour + resize, fused."""
    import cupy as cp

    b, m = windows.shape
    largest = (windows.max(axis=-1) - windows.min(axis=-1)).astype(cp.float32)  # max |x_i - x_j|
    if threshold is None:
        cut = cp.zeros(b, dtype=cp.float32)
        inv_span = cp.where(largest > 0, 1.0 / cp.where(largest > 0, largest, 1.0), 0.0).astype(cp.float32)
        thresholded = 0
    else:
        cut = (percentage / 100 * largest) if threshold == "distance" else cp.full(b, threshold, dtype=cp.float32)
        cut = cut.astype(cp.float32)
        inv_span = cp.ones(b, dtype=cp.float32)
        thresholded = 1
    fy, wy, ky = _taps(cp, m)
    args = (
        cp.ascontiguousarray(windows, dtype=cp.float32), np.int32(m), cut, inv_span, np.int32(thresholded),
        _lut(cp, "binary"), fy, wy, np.int32(ky), fy, wy, np.int32(ky),
        out, np.int32(b), np.int32(n_rep), np.int32(r), np.int32(IMAGE_SIZE),
    )
    _launch(_kernel("recurrence_resize", _out_type(out)), b * IMAGE_SIZE * IMAGE_SIZE, args)


def waveform_into(out, windows, line_width: float, n_rep: int, r: int):
    import cupy as cp

    b, n = windows.shape
    lo, hi = y_limits(windows)
    py = cp.ascontiguousarray((IMAGE_SIZE * (1.0 - (windows - lo) / (hi - lo))).astype(cp.float32))
    reach = line_width / 2 + 1.0
    args = (
        py, np.int32(n), np.float32(IMAGE_SIZE / (n - 1)), np.int32(segment_reach(n, IMAGE_SIZE, line_width)),
        np.float32(reach), np.float32(line_width / 2),
        out, np.int32(b), np.int32(n_rep), np.int32(r), np.int32(IMAGE_SIZE),
    )
    _launch(_kernel("waveform", _out_type(out)), b * IMAGE_SIZE * IMAGE_SIZE, args)


def fuses_recurrence(params: dict) -> bool:
    """The fused recurrence kernel covers dimension 1 with threshold None, "distance" or a float."""
    rp = params["recurrence"]
    return rp["dimension"] == 1 and rp["threshold"] != "point"


def render_into(out, windows, fs: float, names: tuple, params: dict, map_fn, colormaps: dict, line_width: float):
    """Every representation of every window into ``out`` on the current stream; ``map_fn`` is
    ``render.representation_map`` (maps by cuFFT through the array-generic code)."""
    n_rep = len(names)
    cache: dict = {}
    for r, name in enumerate(names):
        if name == "waveform":
            waveform_into(out, windows, line_width, n_rep, r)
        elif name == "recurrence" and fuses_recurrence(params):
            rp = params["recurrence"]
            recurrence_resize_into(out, windows, rp["threshold"], rp["percentage"], n_rep, r)
        else:
            maps, vmin, vmax = map_fn(windows, fs, name, params, cache)
            lut_resize_into(out, maps, vmin, vmax, colormaps[name], n_rep, r)
