"""Real and simulated biosignals for tests, INT8 calibration and the demo.

Real: the PPG recordings bundled in HeartPy's wheel (``heartpy/data/*.csv``), read straight from the
installed package with NumPy (HeartPy itself is not imported). Simulated: the SDK's one simulator,
``biomoe_edge.simulation`` (NeuroKit2, imported lazily; ``pip install biomoe-edge[signals]``), at the
modality's model rate.

===========  ===========================================  ====================================
file         content                                      sample rate
===========  ===========================================  ====================================
data.csv     one column of raw PPG values                 100 Hz (HeartPy's documented rate)
data2.csv    ``timer`` (ms), ``hr`` (raw PPG)              ~117 Hz, from the timer column
data3.csv    ``datetime``, ``hr`` (raw PPG)                ~100 Hz, from the time stamps (they
                                                          jitter, so the mean interval is used)
===========  ===========================================  ====================================
"""

from __future__ import annotations

import datetime
import functools
import importlib.util
import pathlib

import numpy as np

from biomoe_edge.simulation import simulate
from biomoe_edge.vocabulary import Modality, model_rate_hz

HEARTPY_RECORDINGS = ("data.csv", "data2.csv", "data3.csv")


def heartpy_data_dir() -> pathlib.Path:
    spec = importlib.util.find_spec("heartpy")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("HeartPy is not installed: pip install 'biomoe-edge[signals]' (or heartpy)")
    return pathlib.Path(next(iter(spec.submodule_search_locations))) / "data"


@functools.lru_cache(maxsize=None)
def real_ppg(recording: str = "data.csv") -> tuple[np.ndarray, float]:
    """A whole HeartPy PPG recording: (samples float64 (n,), sample rate in Hz)."""
    if recording not in HEARTPY_RECORDINGS:
        raise ValueError(f"unknown HeartPy recording {recording!r}; expected one of {HEARTPY_RECORDINGS}")
    path = heartpy_data_dir() / recording
    if recording == "data.csv":
        return np.loadtxt(path, dtype=np.float64), 100.0
    if recording == "data2.csv":
        table = np.genfromtxt(path, delimiter=",", names=True)
        timer_s = table["timer"] / 1000.0
        return table["hr"].astype(np.float64), float((len(timer_s) - 1) / (timer_s[-1] - timer_s[0]))
    table = np.genfromtxt(path, delimiter=",", names=True, dtype=None, encoding="utf-8")
    stamps = [datetime.datetime.fromisoformat(s).timestamp() for s in (table["datetime"][0], table["datetime"][-1])]
    return table["hr"].astype(np.float64), float((len(table) - 1) / (stamps[1] - stamps[0]))


def real_ppg_windows(n: int, seconds: float = 10.0, *, preprocessed: bool = True, hop_s: float | None = None):
    """``n`` real PPG windows of ``seconds`` from HeartPy's recordings, taken in order through data.csv,
    data2.csv, data3.csv with hop ``hop_s`` (default: half a window; more windows than that need
    raises ValueError).

    Returns ``(windows (n, N) float32, fs)``: preprocessed for ``bvp`` at its model rate (64 Hz) by default.
    With ``preprocessed=False`` the raw windows of data.csv at 100 Hz (the files' rates differ, so raw
    windows of all three cannot share one array).
    """
    from biomoe_edge.runtime.transforms.preprocess import preprocess

    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    hop_s = seconds / 2 if hop_s is None else hop_s
    recordings = HEARTPY_RECORDINGS if preprocessed else ("data.csv",)
    windows, fs_out = [], None
    for name in recordings:
        signal, fs = real_ppg(name)
        length, hop = int(round(seconds * fs)), int(round(hop_s * fs))
        starts = range(0, len(signal) - length + 1, hop)
        raw = np.stack([signal[s : s + length] for s in starts])[: n - len(windows)]
        if preprocessed:
            batch, fs_out = preprocess(raw, fs, "bvp")
            # Resampling 117 Hz or 100.4 Hz windows can leave one sample more or less: trim to the model length.
            batch = batch[:, : int(round(seconds * fs_out))]
        else:
            batch, fs_out = raw.astype(np.float32), fs
        windows.extend(batch)
        if len(windows) >= n:
            return np.stack(windows[:n]).astype(np.float32), float(fs_out)
    raise ValueError(f"HeartPy's recordings hold fewer than {n} windows of {seconds} s at hop {hop_s} s")


def simulated_signal(modality, seconds: float = 10.0, fs: float | None = None, seed: int = 0) -> tuple[np.ndarray, float]:
    """A simulated signal (``biomoe_edge.simulation``, NeuroKit2): (samples float64 (round(seconds * fs),), fs);
    fs defaults to the modality's model rate."""
    modality = Modality.parse(modality)
    return simulate(modality, seconds, float(model_rate_hz(modality) if fs is None else fs), seed=seed)


def simulated_window(modality, seconds: float = 10.0, fs: float | None = None, seed: int = 0) -> np.ndarray:
    """One simulated raw window (N,) float64 at ``fs`` (default: the modality's model rate)."""
    return simulated_signal(modality, seconds, fs, seed)[0]
