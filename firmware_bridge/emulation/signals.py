"""Signals an emulated wearable streams: simulated (``biomoe_edge.simulation``), or recorded (arrays, CSV
files); and the vital signs of the once-a-second sensors.

A ``SignalSource`` is one modality's samples in physical units at the device's nominal rate; the wearable
loops over it and quantises it to the wire format with the scale and offset it publishes in its
description (physical = raw * scale + offset).
"""

from __future__ import annotations

import csv
import pathlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from biomoe_edge.firmware_bridge.packet import SampleFormat

#: What an emulated native wearable streams unless told otherwise, in stream-id order.
DEFAULT_MODALITIES = ("bvp", "eda", "resp", "ecg")
#: Device sample rates of the emulated wearable (Hz), per modality.
DEFAULT_RATES_HZ = {"ecg": 250.0, "bvp": 64.0, "eda": 16.0, "resp": 32.0, "spo2": 1.0}
UNITS = {"ecg": "mV", "bvp": "au", "eda": "uS", "resp": "au", "spo2": "%"}
#: int16 codes used for the signal's range, leaving headroom for excursions beyond the looped buffer.
_INT16_SPAN = 30000


@dataclass(frozen=True)
class SignalSource:
    """One stream's signal: ``values`` (n, channels) float64 in ``units`` at ``sample_rate_hz``, looped."""

    modality: str
    sample_rate_hz: float
    values: np.ndarray
    units: str = ""

    def __post_init__(self):
        values = np.asarray(self.values, dtype=np.float64)
        if values.ndim == 1:
            values = values[:, None]
        if values.ndim != 2 or values.shape[0] < 1 or values.shape[1] < 1:
            raise ValueError(f"{self.modality}: signal must be (n,) or (n, channels) with n >= 1, got {values.shape}")
        if not np.all(np.isfinite(values)):
            raise ValueError(f"{self.modality}: signal contains NaN or infinite values")
        if not (np.isfinite(self.sample_rate_hz) and self.sample_rate_hz > 0):
            raise ValueError(f"{self.modality}: sample_rate_hz must be > 0, got {self.sample_rate_hz!r}")
        values.setflags(write=False)
        object.__setattr__(self, "values", values)

    @property
    def channels(self) -> int:
        return int(self.values.shape[1])

    def quantisation(self, sample_format: SampleFormat) -> tuple[float, float]:
        """(scale, offset) mapping the signal's range onto the integer format (1, 0 for float32)."""
        if sample_format is SampleFormat.FLOAT32:
            return 1.0, 0.0
        low, high = float(self.values.min()), float(self.values.max())
        offset = (high + low) / 2.0
        span = _INT16_SPAN if sample_format is SampleFormat.INT16 else _INT16_SPAN * 256
        scale = (high - low) / (2 * span) if high > low else max(abs(offset), 1.0) * 1e-6
        return scale, offset

    def window(self, start_index: int, count: int) -> np.ndarray:
        """Samples ``start_index`` .. ``start_index + count`` of the looped signal, (count, channels)."""
        indices = (np.arange(start_index, start_index + count) % self.values.shape[0]).astype(np.intp)
        return self.values[indices]

    def resampled(self, sample_rate_hz: float) -> SignalSource:
        """The same signal at another rate (linear interpolation; CONFIGURE changes a stream's rate)."""
        duration = self.values.shape[0] / self.sample_rate_hz
        n = max(1, int(round(duration * sample_rate_hz)))
        t_old = np.arange(self.values.shape[0]) / self.sample_rate_hz
        t_new = np.arange(n) / sample_rate_hz
        values = np.column_stack([np.interp(t_new, t_old, column) for column in self.values.T])
        return SignalSource(self.modality, float(sample_rate_hz), values, self.units)


def quantise(values: np.ndarray, scale: float, offset: float, sample_format: SampleFormat) -> np.ndarray:
    """Physical values -> raw wire values (rounded and clipped to the integer format's range)."""
    if sample_format is SampleFormat.FLOAT32:
        return values.astype(np.float32)
    bits = 16 if sample_format is SampleFormat.INT16 else 24
    low, high = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    return np.clip(np.rint((values - offset) / scale), low, high).astype(np.int32)


def _simulate(modality: str, seconds: float, fs: float, seed: int) -> np.ndarray:
    # Whole seconds at whole-Hz rates (NeuroKit2's own sizes); "simple" is its fast Gaussian-wave ECG (ecgsyn takes
    # seconds per minute of signal, and a wearable loops a minute).
    from biomoe_edge.simulation import simulate

    if modality not in DEFAULT_RATES_HZ:
        raise ValueError(f"no simulator for modality {modality!r}; expected one of: {', '.join(DEFAULT_RATES_HZ)}")
    return simulate(modality, int(np.ceil(seconds)), int(fs), seed=seed, ecg_method="simple")[0]


def simulated_signals(
    modalities: Sequence[str], *, seconds: float = 60.0, seed: int = 0, rates_hz: Mapping[str, float] | None = None
) -> list[SignalSource]:
    """NeuroKit2 signals, one per modality (``seconds`` long, then looped), at the default device rates."""
    rates = {**DEFAULT_RATES_HZ, **(rates_hz or {})}
    sources = []
    for index, modality in enumerate(modalities):
        if modality not in rates:
            raise ValueError(f"no device rate for modality {modality!r}; expected one of: {', '.join(rates)}")
        values = np.asarray(_simulate(modality, seconds, rates[modality], seed + index), dtype=np.float64)
        sources.append(SignalSource(modality, rates[modality], values, UNITS.get(modality, "")))
    return sources


def recorded_signals(recording, *, sample_rate_hz: float | None = None, modalities: Sequence[str] | None = None) -> list[SignalSource]:
    """Recorded signals from ``{modality: (values, rate_hz)}`` (or ``{modality: values}`` with
    ``sample_rate_hz``), or from a CSV file whose header names the modalities (one column each, all at
    ``sample_rate_hz``). ``modalities`` selects and orders them."""
    if isinstance(recording, (str, pathlib.Path)):
        if sample_rate_hz is None:
            raise ValueError(f"{recording}: a CSV recording needs sample_rate_hz (biomoe-edge emulate --recording-rate)")
        with open(recording, newline="") as handle:
            header = next(csv.reader(handle), None)
        if not header:
            raise ValueError(f"{recording}: empty CSV file (expected a header naming the modalities)")
        table = np.loadtxt(recording, delimiter=",", skiprows=1, ndmin=2)
        recording = {name.strip().lower(): table[:, i] for i, name in enumerate(header)}
    sources = []
    names = list(modalities) if modalities is not None else list(recording)
    for modality in names:
        if modality not in recording:
            raise ValueError(f"recording has no {modality!r} signal; it has: {', '.join(recording)}")
        entry = recording[modality]
        if isinstance(entry, tuple):
            values, rate = entry
        else:
            if sample_rate_hz is None:
                raise ValueError(f"recorded {modality!r}: give (values, rate_hz) or sample_rate_hz")
            values, rate = entry, sample_rate_hz
        sources.append(SignalSource(modality, float(rate), values, UNITS.get(modality, "")))
    return sources


@dataclass(frozen=True)
class VitalSigns:
    """What a once-a-second sensor reads: the current heart rate (bpm), the RR intervals (s) of the beats since
    the last reading, oldest first, and SpO2 (%)."""

    bpm: float
    rr_intervals_s: tuple[float, ...]
    spo2: float


class VitalSignsWalk:
    """Heart rate and SpO2 as seeded random walks (around 70 bpm, within 45..150; around 97 %, within 90..100),
    read at increasing device times: each beat steps the heart rate, each reading steps SpO2."""

    #: Mixed into the seed (the Heart Rate Measurement characteristic's 16-bit UUID, as it always was).
    SEED_TAG = 0x2A37

    def __init__(self, seed: int = 0):
        self._rng = np.random.default_rng([seed, self.SEED_TAG])
        self.bpm, self.spo2 = 70.0, 97.0
        self._last_beat_s = 0.0

    def read(self, time_s: float) -> VitalSigns:
        rr_s = []
        while self._last_beat_s + 60.0 / self.bpm <= time_s:
            rr_s.append(60.0 / self.bpm)
            self._last_beat_s += 60.0 / self.bpm
            self.bpm = float(np.clip(self.bpm + self._rng.normal(0.0, 1.0), 45.0, 150.0))
        self.spo2 = float(np.clip(self.spo2 + self._rng.normal(0.0, 0.2), 90.0, 100.0))
        return VitalSigns(self.bpm, tuple(rr_s), self.spo2)
