"""Representative images for INT8 calibration and fidelity checks: real signal windows rendered by the SDK.

Uses the SDK's own transforms (``biomoe_edge.runtime.transforms.render``) on real PPG recordings shipped
with HeartPy and on NeuroKit2-simulated ECG / EDA / respiration, so that calibration sees the images the
gateway will feed the engine. Raises RuntimeError (saying what is missing) when the transforms or the
signal helpers are not importable; callers then need an explicit ``calibration`` array.
"""

from __future__ import annotations

import logging

import numpy as np

log = logging.getLogger(__name__)

REPRESENTATIONS = ("spectrogram_psd", "scalogram", "recurrence", "waveform")
WINDOW_SECONDS = 10.0


def _transforms():
    try:
        from biomoe_edge.runtime.transforms import render
        from biomoe_edge.runtime.transforms import signals
    except ImportError as exc:
        raise RuntimeError("the SDK's transforms (biomoe_edge.runtime.transforms.render and .signals) are not "
                           f"available ({exc}); pass an explicit calibration array") from exc
    return render, signals


def real_signal_images(n: int = 32, *, seed: int = 0) -> np.ndarray:
    """(n, 3, 224, 224) float32 images in [0, 1]: real PPG windows and simulated ECG/EDA/RESP, each rendered
    in every representation of ``REPRESENTATIONS``, cycled until ``n`` images."""
    render, signals = _transforms()
    images = []
    sources = [("bvp", w, fs) for w, fs in _real_ppg(signals, max(1, n // 8))]
    rng = np.random.default_rng(seed)
    for modality in ("ecg", "eda", "resp"):
        fs, window = _simulated(signals, modality, int(rng.integers(1 << 31)))
        sources.append((modality, window, fs))
    for modality, window, fs in sources:
        batch = render(np.asarray(window, np.float64)[None, :], fs, REPRESENTATIONS, modality=modality)
        images.extend(np.asarray(batch, np.float32))
    if not images:
        raise RuntimeError("no real-signal windows could be rendered")
    out = np.stack([images[i % len(images)] for i in range(n)])
    log.info("rendered %d calibration images from %d signal windows", n, len(sources))
    return out


def _real_ppg(signals, count: int):
    windows = signals.real_ppg_windows(count, seconds=WINDOW_SECONDS)
    # the helper returns (windows, fs) or a list of (window, fs); accept both
    if isinstance(windows, tuple) and len(windows) == 2 and np.isscalar(windows[1]):
        arr, fs = windows
        return [(w, float(fs)) for w in np.atleast_2d(arr)]
    return [(w, float(fs)) for w, fs in windows]


def _simulated(signals, modality: str, seed: int):
    fs = 100.0
    window = signals.simulated_window(modality, WINDOW_SECONDS, fs, seed)
    return fs, window
