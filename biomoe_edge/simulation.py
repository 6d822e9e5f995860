"""The one signal simulator: biosignals for emulated wearables, tests, INT8 calibration and the benchmarks.

``simulate(modality, seconds, fs, seed=...)`` gives NeuroKit2's physiological models (imported lazily; ``pip install
'biomoe-edge[signals]'``): ECG at 70 bpm, PPG at 70 bpm, EDA with a skin conductance response every 20 s or so
(at least two), respiration at 15 breaths a minute. NeuroKit2 has no SpO2 model: SpO2 is 97 % with slow drift, a
short desaturation and 1 %-quantised readings, like an oximeter's output.

``method="harmonic"`` needs no NeuroKit2 (a gateway has none): a fundamental at a typical rate of the modality, its
second harmonic, QRS-like spikes for ECG, and noise. Busy, physiology-shaped signals for timing, not physiology.
"""

from __future__ import annotations

import numpy as np

from biomoe_edge.vocabulary import Modality

METHODS = ("neurokit2", "harmonic")
#: ``method="harmonic"``: the fundamental (Hz) of each modality: pulse, heart beat, breathing, skin conductance.
HARMONIC_FUNDAMENTAL_HZ = {"bvp": 1.2, "ecg": 1.1, "resp": 0.25, "eda": 0.02}


def simulate(modality, seconds: float, fs: float, *, seed: int = 0, method: str = "neurokit2",
             ecg_method: str = "ecgsyn", heart_rate_bpm: float = 70.0, ibi_randomness: float = 0.1,
             respiratory_rate_bpm: float = 15.0, scr_number: int | None = None) -> tuple[np.ndarray, float]:
    """``(samples float64 (round(seconds * rate),), rate)``: ``rate`` is ``fs`` rounded to whole Hz for the
    NeuroKit2 models (they take an integer sampling rate), else ``fs``. ``ecg_method``: NeuroKit2's ECG model,
    "ecgsyn" (realistic, seconds per minute of signal) or "simple" (Gaussian waves, fast).

    The physiology of the NeuroKit2 models (the simulated labelled sessions vary it by class,
    ``biomoe_edge.simulated_sessions``): ``heart_rate_bpm`` (ECG, PPG), ``ibi_randomness`` (PPG beat-to-beat
    variability), ``respiratory_rate_bpm``, ``scr_number`` (skin conductance responses in the EDA; default one
    every 20 s or so, at least two)."""
    modality = Modality.parse(modality)
    if method not in METHODS:
        raise ValueError(f"unknown simulation method {method!r}; expected one of: {', '.join(METHODS)}")
    if not (np.isfinite(fs) and fs > 0 and np.isfinite(seconds) and seconds > 0):
        raise ValueError(f"simulate needs seconds > 0 and fs > 0, got {seconds!r} s at {fs!r} Hz")
    n = int(round(seconds * fs))
    if modality is Modality.SPO2:
        rng = np.random.default_rng(seed)
        t = np.arange(n) / fs
        dip = 3.0 * np.exp(-0.5 * ((t - rng.uniform(0.3, 0.7) * seconds) / (0.15 * seconds)) ** 2)
        return np.round(97.0 + 0.5 * np.sin(2 * np.pi * t / 60.0) - dip + 0.3 * rng.standard_normal(n)), float(fs)
    if method == "harmonic":
        return _harmonic(modality.value, n, float(fs), np.random.default_rng(seed)), float(fs)
    return _neurokit2(modality, seconds, fs, seed, ecg_method, heart_rate_bpm, ibi_randomness, respiratory_rate_bpm,
                      max(2, int(seconds // 20)) if scr_number is None else int(scr_number))


def _harmonic(modality: str, n: int, fs: float, rng) -> np.ndarray:
    t = np.arange(n) / fs
    base = HARMONIC_FUNDAMENTAL_HZ[modality]
    x = np.sin(2 * np.pi * base * t) + 0.3 * np.sin(2 * np.pi * 2 * base * t + 1.0)
    if modality == "ecg":
        x = x + 3.0 * (np.sin(2 * np.pi * base * t) > 0.97)
    return x + 0.05 * rng.standard_normal(n)


def _neurokit2(modality: Modality, seconds: float, fs: float, seed: int, ecg_method: str, heart_rate: float,
               ibi_randomness: float, respiratory_rate: float, scr_number: int) -> tuple[np.ndarray, float]:
    import neurokit2 as nk  # heavy (SciPy, pandas...): only when simulating

    rate = int(round(fs))
    n = int(round(seconds * rate))
    # NeuroKit2 sizes arrays with duration * sampling_rate: keep it an int when it can be.
    duration = int(seconds) if float(seconds).is_integer() else seconds
    if modality is Modality.ECG:
        x = nk.ecg_simulate(duration=duration, sampling_rate=rate, heart_rate=heart_rate, method=ecg_method,
                            random_state=seed)
    elif modality is Modality.BVP:
        x = nk.ppg_simulate(duration=duration, sampling_rate=rate, heart_rate=heart_rate, ibi_randomness=ibi_randomness,
                            random_state=seed)
    elif modality is Modality.EDA:
        x = nk.eda_simulate(duration=duration, sampling_rate=rate, scr_number=scr_number, random_state=seed)
    else:
        try:
            x = nk.rsp_simulate(duration=duration, sampling_rate=rate, respiratory_rate=respiratory_rate,
                                random_state=seed)
        except TypeError:
            # NeuroKit2's "breathmetrics" model indexes with floats for some seeds under NumPy 2; fall back to its
            # sinusoidal model for those seeds rather than fail.
            x = nk.rsp_simulate(duration=duration, sampling_rate=rate, respiratory_rate=respiratory_rate,
                                method="sinusoidal", random_state=seed)
    return np.asarray(x, dtype=np.float64)[:n], float(rate)


__all__ = ["METHODS", "HARMONIC_FUNDAMENTAL_HZ", "simulate"]
