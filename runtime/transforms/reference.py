"""The reference renderer: matplotlib (Agg) + PIL, one window at a time, obviously right and slow.

Use it offline to build training sets, and as the yardstick the fast renderer is measured against
(PSNR). It computes each map with the reference libraries, not with the SDK's fast code: the spectrograms with
``scipy.signal.spectrogram``; the scalogram with ``reference_cwt`` (PyWavelets' ``cwt`` at the SDK's wavelet
precision where it takes one, PyWavelets' integrated wavelet and a plain ``numpy.convolve`` elsewhere); the
recurrence plot with ``scipy.spatial.distance.cdist`` on the delay embedding, thresholded as
``pyts.image.RecurrencePlot`` documents (the tests check it against pyts itself). It draws them with these
documented figure settings:

- maps: a figure exactly one pixel per map cell (``figsize=(W/100, H/100)``, ``dpi=100``), one axes filling
  it (``[0, 0, 1, 1]``), axis off, ``imshow(map, cmap, vmin, vmax, origin="lower", aspect="auto",
  interpolation="nearest")``; colormap and value range per representation as in ``render.py`` (viridis,
  PSD in dB over [max - 80 dB, max]; angle and phase
  drawn as angle 0 below that PSD floor; recurrence in matplotlib's ``binary``);
- waveform: a 224x224-pixel figure (2.24 in at 100 dpi), white, axis off, ``plot(x, color="black",
  linewidth=1.08 pt)`` (1.5 px), x from 0 to N - 1, y over [min - 5 %, max + 5 %] of the span, path
  simplification off so every sample is drawn;
- then ``savefig`` to PNG, ``PIL.Image.open(...).convert("RGB").resize((224, 224), BILINEAR)`` (torchvision's
  ``Resize((224, 224))`` on a PIL image) and ``ToTensor()``: float32 (3, 224, 224) in [0, 1].
"""

from __future__ import annotations

import inspect
import io
import math

import numpy as np

from biomoe_edge.runtime.transforms.defaults import representation_params
from biomoe_edge.runtime.transforms.render import COLORMAPS, PSD_FLOOR
from biomoe_edge.runtime.transforms.scalogram import WAVELET_PRECISION
from biomoe_edge.runtime.transforms.waveform import LINE_WIDTH_PX, Y_MARGIN
from biomoe_edge.vocabulary import IMAGE_SIZE, check_representations

DPI = 100


def cwt_precision_supported() -> bool:
    """Whether the installed PyWavelets' ``cwt`` takes ``precision`` (1.9 and newer; 1.8 and older fix it at 10)."""
    import pywt

    return "precision" in inspect.signature(pywt.cwt).parameters


def cwt_by_convolution(x, scales, wavelet: str, *, precision: int = WAVELET_PRECISION) -> np.ndarray:
    """PyWavelets' CWT written out with a plain convolution: (S, ..., N), float64 or complex128.

    The integrated wavelet from ``pywt.integrate_wavelet(wavelet, precision=precision)`` (conjugated for a
    complex wavelet), resampled at each scale by flooring the grid index, reversed, convolved with each row
    (``numpy.convolve``), differentiated, scaled by ``-sqrt(scale)``, and the N central points kept: the steps of
    ``pywt.cwt(..., method="conv")``, for a PyWavelets that does not take ``precision``.
    """
    import pywt

    x = np.asarray(x, dtype=np.float64)
    wavelet = pywt.ContinuousWavelet(wavelet)
    int_psi, grid = pywt.integrate_wavelet(wavelet, precision=precision)
    int_psi = np.conj(int_psi) if wavelet.complex_cwt else np.asarray(int_psi)
    grid = np.asarray(grid, dtype=np.float64)
    rows = x.reshape(-1, x.shape[-1])
    out = []
    for scale in np.atleast_1d(np.asarray(scales, dtype=np.float64)):
        step = grid[1] - grid[0]
        index = (np.arange(scale * (grid[-1] - grid[0]) + 1) / (scale * step)).astype(int)
        taps = int_psi[index[index < int_psi.size]][::-1]
        conv = np.stack([np.convolve(row, taps) for row in rows])
        coef = -np.sqrt(scale) * np.diff(conv, axis=-1)
        if not wavelet.complex_cwt:
            coef = coef.real
        crop = (coef.shape[-1] - x.shape[-1]) / 2
        if crop < 0:
            raise ValueError(f"scale {scale} is too small for {wavelet.name}")
        coef = coef[..., math.floor(crop) : coef.shape[-1] - math.ceil(crop)]
        out.append(coef.reshape(x.shape))
    return np.stack(out)


def reference_cwt(x, scales, wavelet: str, *, precision: int = WAVELET_PRECISION) -> np.ndarray:
    """CWT coefficients (S, ..., N) at ``precision``: ``pywt.cwt(x, scales, wavelet, method="fft",
    precision=precision)`` where PyWavelets takes ``precision`` (>= 1.9), else ``cwt_by_convolution``."""
    import pywt

    x = np.asarray(x, dtype=np.float64)
    if cwt_precision_supported():
        return pywt.cwt(x, np.asarray(scales), wavelet, method="fft", precision=precision)[0]
    return cwt_by_convolution(x, scales, wavelet, precision=precision)


def reference_recurrence(x, *, dimension: int, time_delay: int, threshold, percentage) -> np.ndarray:
    """Recurrence plot (M, M) of one window, float64, as ``pyts.image.RecurrencePlot`` defines it: Euclidean
    distances between the delay-embedded trajectories (``scipy.spatial.distance.cdist``); with a threshold, 1 where
    the distance is below it: ``"point"`` the ``percentage`` percentile of the plot's distances, ``"distance"``
    ``percentage`` % of its largest distance, a number that value."""
    import scipy.spatial.distance

    x = np.asarray(x, dtype=np.float64)
    n_trajectories = x.size - (dimension - 1) * time_delay
    trajectories = np.stack([x[d * time_delay : d * time_delay + n_trajectories] for d in range(dimension)], axis=1)
    distances = scipy.spatial.distance.cdist(trajectories, trajectories)
    if threshold is None:
        return distances
    if threshold == "point":
        cut = np.percentile(distances, percentage)
    elif threshold == "distance":
        cut = percentage / 100 * distances.max()
    else:
        cut = threshold
    return (distances < cut).astype(np.float64)


def reference_map(window: np.ndarray, fs: float, representation: str, *, modality=None):
    """(map (H, W), vmin, vmax) of one window by scipy / PyWavelets, float64."""
    import scipy.signal

    x = np.asarray(window, dtype=np.float64)
    params = representation_params(float(fs), x.shape[-1], modality)
    if representation.startswith("spectrogram_"):
        mode = representation.split("_", 1)[1]
        kwargs = dict(detrend=False, scaling="density", axis=-1, **params["spectrogram"])
        _, _, psd = scipy.signal.spectrogram(x, fs, mode="psd", **kwargs)
        psd_db = 10 * np.log10(np.maximum(psd, PSD_FLOOR))
        floor = psd_db.max() - params["db_range"]
        if mode == "psd":
            return psd_db, floor, psd_db.max()
        _, _, angle = scipy.signal.spectrogram(x, fs, mode="angle", **kwargs)
        angle = np.where(psd_db >= floor, angle, 0.0)  # below the PSD floor the phase is noise: angle 0
        if mode == "angle":
            return angle, -np.pi, np.pi
        phase = np.unwrap(angle, axis=0)  # along frequency
        return phase, phase.min(), phase.max()
    if representation == "scalogram":
        p = params["scalogram"]
        s = np.abs(reference_cwt(x, p["scales"], p["wavelet"]))
        return s, s.min(), s.max()
    if representation == "recurrence":
        p = params["recurrence"]
        s = reference_recurrence(x, **p)
        return s, 0.0, 1.0 if p["threshold"] is not None else s.max()
    raise ValueError(f"{representation!r} is not a map representation")


def _figure_png(draw, width_px: int, height_px: int) -> bytes:
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width_px / DPI, height_px / DPI), dpi=DPI, facecolor="white")
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_axis_off()
    draw(ax)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI, facecolor="white")
    return buffer.getvalue()


def _to_tensor(png: bytes) -> np.ndarray:
    from PIL import Image

    image = Image.open(io.BytesIO(png)).convert("RGB").resize((IMAGE_SIZE, IMAGE_SIZE), Image.BILINEAR)
    return np.asarray(image, dtype=np.float32).transpose(2, 0, 1) / 255.0


def reference_png(window, fs, representation: str, *, modality=None) -> bytes:
    """The PNG the reference renderer draws for one window (before PIL's resize)."""
    import matplotlib

    (representation,) = check_representations(representation)
    x = np.asarray(window, dtype=np.float64)
    if representation == "waveform":
        lo, hi = x.min(), x.max()
        pad = Y_MARGIN * (hi - lo) if hi > lo else 1.0

        def draw(ax):
            with matplotlib.rc_context({"path.simplify": False}):
                ax.plot(np.arange(x.size), x, color="black", linewidth=LINE_WIDTH_PX * 72 / DPI)
            ax.set_xlim(0, x.size - 1)
            ax.set_ylim(lo - pad, hi + pad)

        return _figure_png(draw, IMAGE_SIZE, IMAGE_SIZE)
    s, vmin, vmax = reference_map(x, fs, representation, modality=modality)

    def draw(ax):
        ax.imshow(
            s, cmap=COLORMAPS[representation], vmin=vmin, vmax=vmax, origin="lower", aspect="auto",
            interpolation="nearest",
        )

    return _figure_png(draw, s.shape[1], s.shape[0])


def reference_render(window, fs, representation: str, *, modality=None) -> np.ndarray:
    """One window (N,) as the documented picture: float32 (3, 224, 224) in [0, 1], via matplotlib + PIL."""
    return _to_tensor(reference_png(window, fs, representation, modality=modality))
