"""Representative images for INT8 calibration and fidelity checks: real signal windows rendered by the SDK.

Uses the SDK's own transforms (``biomoe_edge.runtime.transforms``: ``preprocess`` and ``render``) on real
PPG recordings shipped with HeartPy and on NeuroKit2-simulated ECG, EDA and respiration, so calibration
sees the images the gateway will feed the engine. Raises RuntimeError (saying what is missing) when the
transforms or the signal packages are not importable; callers then pass an explicit ``calibration`` array.
"""

from __future__ import annotations

import logging

import numpy as np

log = logging.getLogger(__name__)

REPRESENTATIONS = ("spectrogram_psd", "scalogram", "recurrence", "waveform")
SIMULATED_MODALITIES = ("ecg", "eda", "resp")
WINDOW_SECONDS = 10  # an int: NeuroKit2 sizes arrays with seconds * rate


def real_signal_images(n: int = 32, *, seed: int = 0, skip_ppg_windows: int = 0) -> np.ndarray:
    """(n, 3, 224, 224) float32 images in [0, 1], deterministic for a given ``n`` and ``seed``.

    Windows: real PPG from HeartPy (about two thirds) and one simulated window each of ECG, EDA and
    respiration (NeuroKit2, seeded); each window rendered in every representation of ``REPRESENTATIONS``.
    ``skip_ppg_windows`` starts further into the recordings (held-out images for a fidelity check).
    """
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    try:
        from biomoe_edge.runtime.transforms import preprocess, render, signals
    except ImportError as exc:
        raise RuntimeError("the SDK's transforms (biomoe_edge.runtime.transforms: preprocess, render, signals) are "
                           f"not available ({exc}); pass an explicit calibration array") from exc
    n_rep = len(REPRESENTATIONS)
    n_ppg = max(2, -(-n // n_rep) - len(SIMULATED_MODALITIES))
    try:
        ppg, ppg_fs = signals.real_ppg_windows(n_ppg + skip_ppg_windows, seconds=WINDOW_SECONDS)
        ppg = ppg[skip_ppg_windows:]
        batches = [render(ppg, ppg_fs, REPRESENTATIONS, modality="bvp")]
        for i, modality in enumerate(SIMULATED_MODALITIES):
            raw, fs = signals.simulated_signal(modality, WINDOW_SECONDS, seed=seed + i)
            window, model_fs = preprocess(raw, fs, modality)
            batches.append(render(window, model_fs, REPRESENTATIONS, modality=modality))
    except (ImportError, RuntimeError) as exc:  # HeartPy or NeuroKit2 missing
        raise RuntimeError(f"cannot render real-signal images: {exc}") from exc
    # one group of images per window; real and simulated windows alternate so that any prefix (the fidelity
    # check uses the first images) covers several sources
    ppg_groups = [np.asarray(batches[0][i * n_rep:(i + 1) * n_rep]) for i in range(len(ppg))]
    sim_groups = [np.asarray(b) for b in batches[1:]]
    groups = []
    while ppg_groups or sim_groups:
        for source in (ppg_groups, sim_groups):
            if source:
                groups.append(source.pop(0))
    images = np.concatenate(groups).astype(np.float32)
    log.info("rendered %d images from %d real PPG and %d simulated windows", len(images), len(ppg),
             len(SIMULATED_MODALITIES))
    return np.ascontiguousarray(images[np.arange(n) % len(images)])
