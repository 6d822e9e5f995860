"""The reference renderer: matplotlib (Agg) + PIL, one window at a time, obviously right and slow.

Use it offline to build training sets, and as the yardstick the fast renderer is measured against
(PSNR). It computes each map with the reference libraries themselves (``scipy.signal.spectrogram``,
``pywt.cwt``, ``pyts.image.RecurrencePlot``) and draws it with these documented figure settings:

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

import io

import numpy as np

from biomoe_edge.runtime.transforms.defaults import representation_params
from biomoe_edge.runtime.transforms.render import COLORMAPS, PSD_FLOOR
from biomoe_edge.runtime.transforms.waveform import LINE_WIDTH_PX, Y_MARGIN
from biomoe_edge.vocabulary import IMAGE_SIZE, check_representations

DPI = 100


def pyts_recurrence_plot_class():
    """``pyts.image.RecurrencePlot``, loaded from its own module file.

    ``import pyts.image`` compiles every numba kernel of the Gramian, Markov and approximation modules
    too (about 45 s of CPU); loading ``pyts/image/_recurrence.py`` alone compiles only the recurrence
    kernels. The class is pyts' own code, unchanged.
    """
    import importlib.util
    import pathlib
    import sys

    name = "_biomoe_pyts_recurrence"
    if name not in sys.modules:
        spec = importlib.util.find_spec("pyts")
        if spec is None or not spec.submodule_search_locations:
            raise RuntimeError("pyts is not installed: pip install pyts")
        path = pathlib.Path(next(iter(spec.submodule_search_locations))) / "image" / "_recurrence.py"
        module_spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(module_spec)
        module_spec.loader.exec_module(module)
        sys.modules[name] = module
    return sys.modules[name].RecurrencePlot


def reference_map(window: np.ndarray, fs: float, representation: str, *, modality=None):
    """(map (H, W), vmin, vmax) of one window by scipy / PyWavelets / pyts, float64."""
    import pywt
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
        coef, _ = pywt.cwt(x, np.asarray(p["scales"]), p["wavelet"], sampling_period=1 / fs, method="fft")
        s = np.abs(coef)
        return s, s.min(), s.max()
    if representation == "recurrence":
        p = params["recurrence"]
        s = pyts_recurrence_plot_class()(**p).transform(x[None, :])[0]
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
