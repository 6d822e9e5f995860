"""The fast renderer: windows -> (B*R, 3, 224, 224) images in [0, 1], written into the caller's buffer.

The documented rendering (one definition; ``reference.py`` draws the same with matplotlib + PIL):

=====================  ====================================================  =========  ==================
representation         2-D map (rows low -> high, drawn with origin at the    colormap   value range
                       bottom)
=====================  ====================================================  =========  ==================
``spectrogram_psd``    10 log10 of ``spectrogram(mode="psd")`` (dB)           viridis    [max - 80 dB, max]
``spectrogram_angle``  ``spectrogram(mode="angle")``, 0 below the PSD floor  viridis    [-pi, pi]
``spectrogram_phase``  that angle unwrapped along frequency                   viridis    [min, max]
``scalogram``          ``scalogram`` (frequency rising upwards)               viridis    [min, max]
``recurrence``         ``recurrence_plot``                                    binary     [0, 1] thresholded,
                                                                                         [0, max] distances
``waveform``           black line on white, no axes (``waveform.py``)         --         --
=====================  ====================================================  =========  ==================

The PSD floor is the PSD picture's lowest level (max - 80 dB): a weaker bin's phase is rounding noise,
so the angle and phase pictures draw it as angle 0 (otherwise float32 and float64 disagree at random).
A map is normalised to its value range, coloured through the 256-entry table as matplotlib does
(index ``clip(floor(v * 256), 0, 255)``), and resized to 224x224 with PIL's bilinear filter (the
authors' ``Resize((224, 224))``); a map with an empty range is drawn in its lowest colour.

On CuPy every step stays on the device, inside the caller's stream: the colour lookup and resize of each
map are one fused kernel writing straight into ``out``, recurrence (dimension 1) plus threshold plus
resize is one kernel that never materialises the M x M plot, and the waveform is one rasterisation kernel.
"""

from __future__ import annotations

import math

import numpy as np

from biomoe_edge.runtime.transforms._backend import array_module, as_float32, cached_constant, stream_context
from biomoe_edge.runtime.transforms.colormaps import LUTS
from biomoe_edge.runtime.transforms.defaults import representation_params
from biomoe_edge.runtime.transforms.quality import require_finite
from biomoe_edge.runtime.transforms.recurrence import recurrence_plot
from biomoe_edge.runtime.transforms.resize import resize
from biomoe_edge.runtime.transforms.scalogram import scalogram
from biomoe_edge.runtime.transforms.spectrogram import density, stft
from biomoe_edge.runtime.transforms.waveform import LINE_WIDTH_PX, waveform_image
from biomoe_edge.vocabulary import IMAGE_SIZE, MIN_RENDER_SAMPLES, check_representations

#: Smallest power kept before taking dB (float32 PSD of an all-zero segment would give -inf).
PSD_FLOOR = 1e-30
#: Windows per chunk on NumPy for the memory-hungry maps (recurrence M x M, waveform distances).
_NUMPY_CHUNK = 8

COLORMAPS = {
    "spectrogram_psd": "viridis",
    "spectrogram_angle": "viridis",
    "spectrogram_phase": "viridis",
    "scalogram": "viridis",
    "recurrence": "binary",
}


def _spectral_maps(windows, fs, params: dict, cache: dict):
    """PSD in dB and the noise-floor-masked angle, (B, F, T) each, from one shared STFT per chunk."""
    if "psd_db" not in cache:
        xp = array_module(windows)
        spectrum, scale, (_, _, nfft) = stft(windows, fs, **params["spectrogram"])
        psd_db = 10.0 * xp.log10(xp.maximum(density(spectrum, scale, nfft), PSD_FLOOR))
        floor = psd_db.max(axis=(-2, -1), keepdims=True) - params["db_range"]
        # Below the PSD picture's floor a bin's phase is rounding noise (float32 and float64 disagree there):
        # draw it as angle 0 so both renderers, and two runs on different hardware, give the same pixels.
        angle = xp.where(psd_db >= floor, xp.angle(spectrum), 0.0).astype(xp.float32)
        cache["psd_db"] = xp.swapaxes(psd_db, -1, -2)
        cache["angle"] = xp.swapaxes(angle, -1, -2)
    return cache["psd_db"], cache["angle"]


def representation_map(windows, fs, name: str, params: dict, cache: dict | None = None):
    """The 2-D map of ``name`` for windows (B, N) with its value range: (maps (B, H, W), vmin (B,), vmax (B,)).
    Row 0 is the lowest frequency (or the first trajectory): the picture puts it at the bottom.
    ``cache`` (a dict per chunk of windows) lets the three spectrogram maps share one STFT."""
    xp = array_module(windows)
    cache = {} if cache is None else cache
    b = windows.shape[0]
    if name == "spectrogram_psd":
        psd_db, _ = _spectral_maps(windows, fs, params, cache)
        vmax = psd_db.max(axis=(-2, -1))
        return psd_db, vmax - params["db_range"], vmax
    if name == "spectrogram_angle":
        _, angle = _spectral_maps(windows, fs, params, cache)
        return angle, xp.full(b, -math.pi, dtype=xp.float32), xp.full(b, math.pi, dtype=xp.float32)
    if name == "spectrogram_phase":
        _, angle = _spectral_maps(windows, fs, params, cache)
        phase = xp.unwrap(angle, axis=-2).astype(xp.float32)  # unwrapped along frequency
        return phase, phase.min(axis=(-2, -1)), phase.max(axis=(-2, -1))
    if name == "scalogram":
        maps = scalogram(windows, fs, **params["scalogram"])
        return maps, maps.min(axis=(-2, -1)), maps.max(axis=(-2, -1))
    if name == "recurrence":
        rp = params["recurrence"]
        maps = recurrence_plot(windows, **rp)
        vmax = xp.ones(b, dtype=xp.float32) if rp["threshold"] is not None else maps.max(axis=(-2, -1))
        return maps, xp.zeros(b, dtype=xp.float32), vmax
    raise ValueError(f"{name!r} is not a map representation")


def normalise(maps, vmin, vmax):
    """(map - vmin) / (vmax - vmin) per map, 0 where the range is empty (matplotlib's Normalize)."""
    xp = array_module(maps)
    span = (vmax - vmin)[:, None, None]
    safe = xp.where(span > 0, span, 1.0)
    return xp.where(span > 0, (maps - vmin[:, None, None]) / safe, 0.0).astype(xp.float32)


def colour_indices(v):
    """matplotlib's lookup index for normalised values: clip(floor(v * 256), 0, 255)."""
    xp = array_module(v)
    return xp.clip(xp.floor(v * 256.0), 0, 255).astype(xp.int32)


def _lut(xp, name: str):
    return cached_constant(xp, ("lut", name), lambda: LUTS[name].astype(np.float32) / 255.0)


def _resize_to_image(images):
    """Bilinear resize to 224x224, clipped to [0, 1]: float32 weights can sum to 1 + 1e-7."""
    xp = array_module(images)
    resized = resize(images, IMAGE_SIZE, IMAGE_SIZE)
    return xp.clip(resized, 0.0, 1.0, out=resized)


def _colour_resize_numpy(v, cmap: str):
    """Colour lookup then bilinear resize: (B, H, W) in [0, 1] -> (B, 3, 224, 224), origin at the bottom."""
    xp = array_module(v)
    rgb = _lut(xp, cmap)[colour_indices(v[:, ::-1, :])]  # (B, H, W, 3), row 0 now the top
    rgb = xp.ascontiguousarray(xp.moveaxis(rgb, -1, 1))
    return _resize_to_image(rgb)


def _grey_resize_numpy(v, cmap: str):
    """A grey colormap (R = G = B): look up one channel, resize it once, repeat it three times."""
    xp = array_module(v)
    grey = _lut(xp, cmap)[:, 0][colour_indices(v[:, ::-1, :])]  # (B, H, W), row 0 now the top
    small = _resize_to_image(grey)
    return xp.broadcast_to(small[:, None], (small.shape[0], 3, IMAGE_SIZE, IMAGE_SIZE))


def _check_out(out, xp, n_images: int):
    shape = (n_images, 3, IMAGE_SIZE, IMAGE_SIZE)
    if out is None:
        return xp.empty(shape, dtype=xp.float32)
    if array_module(out) is not xp:
        raise ValueError("out must live where the windows live (both NumPy or both CuPy)")
    if tuple(out.shape) != shape:
        raise ValueError(f"out has shape {tuple(out.shape)}, expected {shape} (B*R, 3, 224, 224)")
    if out.dtype not in (np.float32, np.float16):
        raise ValueError(f"out must be float32 or float16, got {out.dtype}")
    if not out.flags.c_contiguous:
        raise ValueError("out must be C-contiguous (NCHW)")
    return out


def render(windows, fs, representations, *, modality=None, out=None, stream=None):
    """Images of windows (B, N) (or (N,), or (..., N) flattened to B) at ``fs`` Hz: (B*R, 3, 224, 224) in [0, 1].

    Window-major order: image ``b * R + r`` is window ``b`` in ``representations[r]``. Parameters come from
    ``MODALITY_DEFAULTS[modality]`` converted to ``fs`` (generic ones without a modality). Pass windows
    already preprocessed (``preprocess``). ``out``: a C-contiguous float32/float16 NCHW array of the same
    module (NumPy or CuPy) filled in place and returned, e.g. the engine's input binding. ``stream``: a
    ``cupy.cuda.Stream`` every kernel is queued on (ignored for NumPy). Raises ``SignalQualityError`` for a
    window with NaN/Inf, ValueError for bad arguments.
    """
    names = check_representations(representations)
    xp = array_module(windows)
    with stream_context(stream if xp is not np else None):
        windows = as_float32(windows, xp)
        if windows.ndim == 1:
            windows = windows[None, :]
        windows = windows.reshape(-1, windows.shape[-1])
        n_windows, n_samples = windows.shape
        if n_samples < MIN_RENDER_SAMPLES:
            raise ValueError(f"windows of {n_samples} samples are too short to render "
                             f"(need at least {MIN_RENDER_SAMPLES})")
        require_finite(windows, "windows")
        out = _check_out(out, xp, n_windows * len(names))
        params = representation_params(float(fs), n_samples, modality)
        n_rep = len(names)
        if xp is not np:
            from biomoe_edge.runtime.transforms import _cuda

            _cuda.render_into(out, windows, float(fs), names, params, representation_map, COLORMAPS, LINE_WIDTH_PX)
            return out
        # NumPy: small chunks keep the temporaries in cache (the waveform's per-pixel distances most of all).
        for start in range(0, n_windows, _NUMPY_CHUNK):
            chunk = windows[start : start + _NUMPY_CHUNK]
            cache: dict = {}
            for r, name in enumerate(names):
                first, stop = start * n_rep + r, (start + len(chunk)) * n_rep
                out[first:stop:n_rep] = _render_one(chunk, fs, name, params, cache)
        return out


def _render_one(chunk, fs, name: str, params: dict, cache: dict):
    """(b, 3, 224, 224) float32 images of one representation for a chunk of windows."""
    xp = array_module(chunk)
    if name == "waveform":
        grey = waveform_image(chunk, IMAGE_SIZE)
        return xp.broadcast_to(grey[:, None], (grey.shape[0], 3, IMAGE_SIZE, IMAGE_SIZE))
    if name == "recurrence" and params["recurrence"]["threshold"] is not None:
        # Binary plot: binary-LUT(v) is exactly 1 - v (white 255, black 0), so skip normalise and lookup.
        maps, _, _ = representation_map(chunk, fs, name, params, cache)
        small = _resize_to_image(xp.ascontiguousarray(1.0 - maps[:, ::-1, :]))
        return xp.broadcast_to(small[:, None], (small.shape[0], 3, IMAGE_SIZE, IMAGE_SIZE))
    maps, vmin, vmax = representation_map(chunk, fs, name, params, cache)
    v = normalise(maps, vmin, vmax)
    if COLORMAPS[name] == "binary":
        return _grey_resize_numpy(v, "binary")
    return _colour_resize_numpy(v, COLORMAPS[name])


def render_windows(windows, fs: float, modality, representation) -> np.ndarray:
    """Raw windows (B, N) at ``fs`` Hz -> (B, 3, 224, 224) float32 images on the CPU, drawn as the gateway draws
    them (``preprocess`` to the model rate, then :func:`render`): what training, evaluation and a served bridge
    must agree on."""
    from biomoe_edge.runtime.transforms.preprocess import preprocess

    x, model_fs = preprocess(np.asarray(windows, dtype=np.float32), fs, modality)
    out = np.empty((len(x), 3, IMAGE_SIZE, IMAGE_SIZE), dtype=np.float32)
    render(x, model_fs, (representation,), modality=modality, out=out)
    return out
