"""Per-modality defaults: model sample rate, filter band, normalisation, and each representation's
parameters for 10 s windows, with the physiological reason for each choice.

Parameters are stored in physical units (seconds, Hz) and turned into sample counts for the rate the
window actually has (``representation_params``), so a window at another rate gets the same picture.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from biomoe_edge.vocabulary import MODEL_RATES_HZ, Modality


@dataclass(frozen=True)
class SpectrogramDefaults:
    segment_s: float  # STFT segment length: sets frequency resolution 1 / segment_s
    step_s: float  # hop between segments: sets the number of time columns
    nfft_factor: int = 2  # zero padding: nfft = nfft_factor * nperseg (finer frequency grid)
    window: str = "hann"
    db_range: float = 80.0  # PSD picture spans [max - db_range, max] dB


@dataclass(frozen=True)
class ScalogramDefaults:
    f_min_hz: float
    f_max_hz: float
    n_scales: int = 64
    wavelet: str = "morl"


@dataclass(frozen=True)
class RecurrenceDefaults:
    dimension: int = 1
    time_delay: int = 1
    threshold: object = "distance"  # None | "point" | "distance" | float, as pyts
    percentage: float = 10.0


@dataclass(frozen=True)
class ModalityDefaults:
    """Everything the pipeline needs to know about one modality (see docs/transforms.md)."""

    modality: str
    model_fs: float  # rate the window is resampled to before any representation (vocabulary.MODEL_RATES_HZ)
    band_hz: tuple  # (low, high) Butterworth band; None for an open side
    filter_order: int  # Butterworth order (per side for band-pass), applied forward-backward (sosfiltfilt)
    normalisation: str  # "robust": (x - median) / (IQR / 1.349); "fixed": (x - centre) / scale
    spectrogram: SpectrogramDefaults
    scalogram: ScalogramDefaults
    recurrence: RecurrenceDefaults = field(default_factory=RecurrenceDefaults)
    fixed_centre: float = 0.0
    fixed_scale: float = 1.0
    reason: str = ""


MODALITY_DEFAULTS: dict[str, ModalityDefaults] = {
    Modality.BVP.value: ModalityDefaults(
        modality="bvp",
        model_fs=MODEL_RATES_HZ["bvp"],
        band_hz=(0.5, 8.0),
        filter_order=2,
        normalisation="robust",
        spectrogram=SpectrogramDefaults(segment_s=2.0, step_s=0.125),
        scalogram=ScalogramDefaults(f_min_hz=0.5, f_max_hz=8.0),
        reason=(
            "Pulse rate is 0.7-3.5 Hz (40-210 bpm); the dicrotic notch puts energy in harmonics up to ~8 Hz; "
            "below 0.5 Hz sits baseline wander (respiration, motion). 64 Hz is the Empatica E4 BVP rate and "
            "keeps 4x margin over 8 Hz. 2 s STFT segments resolve 0.5 Hz, enough to part the fundamental "
            "from its harmonic."
        ),
    ),
    Modality.ECG.value: ModalityDefaults(
        modality="ecg",
        model_fs=MODEL_RATES_HZ["ecg"],
        band_hz=(0.5, 40.0),
        filter_order=2,
        normalisation="robust",
        spectrogram=SpectrogramDefaults(segment_s=1.0, step_s=0.1),
        scalogram=ScalogramDefaults(f_min_hz=0.5, f_max_hz=40.0),
        reason=(
            "QRS energy is 5-25 Hz, P and T waves 0.5-10 Hz; 40 Hz keeps the QRS shape and cuts EMG and 50/60 Hz "
            "mains; 0.5 Hz removes baseline wander. 100 Hz keeps the 40 Hz band below Nyquist. 1 s segments "
            "hold about one beat, so the spectrogram follows beat-to-beat changes."
        ),
    ),
    Modality.RESP.value: ModalityDefaults(
        modality="resp",
        model_fs=MODEL_RATES_HZ["resp"],
        band_hz=(0.1, 1.0),
        filter_order=2,
        normalisation="robust",
        spectrogram=SpectrogramDefaults(segment_s=4.0, step_s=0.25),
        scalogram=ScalogramDefaults(f_min_hz=0.1, f_max_hz=2.0, n_scales=48),
        reason=(
            "Breathing is 0.1-1 Hz (6-60 breaths/min); 16 Hz oversamples it generously while keeping 10 s "
            "windows at 160 samples. 4 s segments resolve 0.25 Hz; a 10 s window holds 1-10 breaths."
        ),
    ),
    Modality.EDA.value: ModalityDefaults(
        modality="eda",
        model_fs=MODEL_RATES_HZ["eda"],
        band_hz=(None, 1.0),
        filter_order=4,
        normalisation="robust",
        spectrogram=SpectrogramDefaults(segment_s=4.0, step_s=0.25),
        scalogram=ScalogramDefaults(f_min_hz=0.2, f_max_hz=2.0, n_scales=32),
        reason=(
            "Skin conductance responses rise over 1-3 s (content below 1 Hz) on a slowly drifting tonic level; "
            "a 1 Hz low-pass removes electrode noise and keeps the tonic level (no high-pass). 8 Hz is twice "
            "the Empatica E4 EDA rate, 80 samples per 10 s window."
        ),
    ),
    Modality.SPO2.value: ModalityDefaults(
        modality="spo2",
        model_fs=MODEL_RATES_HZ["spo2"],
        band_hz=(None, 0.5),
        filter_order=2,
        normalisation="fixed",
        fixed_centre=95.0,
        fixed_scale=5.0,
        spectrogram=SpectrogramDefaults(segment_s=4.0, step_s=0.25),
        scalogram=ScalogramDefaults(f_min_hz=0.1, f_max_hz=1.0, n_scales=32),
        reason=(
            "Oximeters report saturation about once a second and it changes over tens of seconds "
            "(desaturations); 4 Hz with a 0.5 Hz low-pass keeps that trend smooth. The absolute level "
            "matters clinically (a flat 97 % is normal), so SpO2 is scaled by a fixed (x - 95) / 5 instead "
            "of a robust per-window scale that would blow up a flat, healthy window."
        ),
    ),
}


def modality_defaults(modality) -> ModalityDefaults:
    """Defaults for a modality name or ``Modality`` ("ppg" is accepted for BVP)."""
    return MODALITY_DEFAULTS[Modality.parse(modality).value]


#: Generic defaults when ``render`` gets no modality: phrased relative to the window.
_GENERIC = ModalityDefaults(
    modality="",
    model_fs=float("nan"),
    band_hz=(None, None),
    filter_order=0,
    normalisation="robust",
    spectrogram=SpectrogramDefaults(segment_s=float("nan"), step_s=float("nan")),
    scalogram=ScalogramDefaults(f_min_hz=float("nan"), f_max_hz=float("nan")),
)


def representation_params(fs: float, n_samples: int, modality=None) -> dict:
    """Concrete keyword arguments of spectrogram / scalogram / recurrence_plot for windows of
    ``n_samples`` at ``fs`` Hz, from the modality's defaults (or generic ones without a modality: 1/8 of the
    window per segment, 1/64 of it per step, scales from 4/N to fs/4)."""
    import pywt

    d = modality_defaults(modality) if modality is not None else _GENERIC
    if modality is not None:
        nperseg = int(round(d.spectrogram.segment_s * fs))
        step = max(1, int(round(d.spectrogram.step_s * fs)))
        f_lo, f_hi = d.scalogram.f_min_hz, min(d.scalogram.f_max_hz, fs / 2)
    else:
        nperseg = max(8, n_samples // 8)
        step = max(1, n_samples // 64)
        f_lo, f_hi = 4.0 * fs / n_samples, fs / 4
    nperseg = min(max(nperseg, 4), n_samples)
    step = min(step, nperseg - 1) if nperseg > 1 else 1
    s = d.spectrogram
    spectrogram = dict(
        nperseg=nperseg,
        noverlap=nperseg - step,
        nfft=int(2 ** math.ceil(math.log2(nperseg * s.nfft_factor))),
        window=s.window,
    )
    # Frequencies rise along the scale axis, so the picture (origin at the bottom) has low frequencies low.
    freqs = np.geomspace(f_lo, f_hi, d.scalogram.n_scales)
    scales = pywt.frequency2scale(d.scalogram.wavelet, freqs / fs)
    r = d.recurrence
    return dict(
        spectrogram=spectrogram,
        db_range=s.db_range,
        scalogram=dict(scales=tuple(float(v) for v in scales), wavelet=d.scalogram.wavelet),
        recurrence=dict(dimension=r.dimension, time_delay=r.time_delay, threshold=r.threshold, percentage=r.percentage),
    )
