"""Simulated labelled sessions: NeuroKit2 biosignals whose physiology differs by class, for a task one can run
without AI4PAIN (the paper's data) or the published weights.

Each simulated subject goes through blocks of each class (in a subject-specific order). The classes differ the
way acute pain changes physiology, in the direction the literature reports and with made-up sizes: a faster
heart with less beat-to-beat variability, faster breathing, more skin-conductance responses, and a barely
lower SpO2. Each subject has its own baseline (heart rate, breathing rate, skin-conductance responsiveness,
SpO2), so classes overlap between subjects and a classifier must generalise across people, as in the real task.

Everything here is SIMULATED: accuracies measured on it say that the SDK's path works end to end, not how
Tiny-BioMoE does on real pain data.

The result is plain arrays at device rates plus label intervals, so both the emulated wearables
(``firmware_bridge.emulation.signals.recorded_signals(session.recording())``) and dataset building use it.
ECG, BVP, EDA and respiration come from the SDK's one simulator (``biomoe_edge.simulation``, NeuroKit2, the
``signals`` extra) at each block's physiology; SpO2 is a walk towards the class's level at 0.1 % resolution.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

#: The simulated classes, in this order wherever an order is needed (a rest state and two intensities).
CLASSES: tuple[str, ...] = ("rest", "mild", "strong")
#: Modalities the simulator makes (the paper's four, plus ECG for chest straps).
MODALITIES: tuple[str, ...] = ("eda", "bvp", "resp", "spo2", "ecg")
#: Where each modality is worn: one simulated subject wears a wristband (EDA, BVP), a chest strap (respiration,
#: ECG) and a finger oximeter (SpO2), so multimodal heads fuse across devices as they would on a person.
WEARABLE_OF_MODALITY: dict[str, str] = {"eda": "wrist", "bvp": "wrist", "resp": "chest", "ecg": "chest",
                                        "spo2": "finger"}
#: Device sample rates (Hz): the emulated native wearable's defaults.
DEFAULT_RATES_HZ: dict[str, float] = {"ecg": 250.0, "bvp": 64.0, "eda": 16.0, "resp": 32.0, "spo2": 1.0}


@dataclass(frozen=True)
class Physiology:
    """What one class (or one subject in one class) looks like."""

    heart_rate_bpm: float
    #: Beat-to-beat variability of the pulse (NeuroKit2's ``ibi_randomness``; lower under stress).
    ibi_randomness: float
    respiratory_rate_bpm: float
    #: Skin-conductance responses per minute.
    scr_per_minute: float
    spo2_percent: float


#: The class means. Made-up sizes, plausible directions.
CLASS_PHYSIOLOGY: dict[str, Physiology] = {
    "rest": Physiology(heart_rate_bpm=66.0, ibi_randomness=0.10, respiratory_rate_bpm=12.0, scr_per_minute=1.0,
                       spo2_percent=97.8),
    "mild": Physiology(heart_rate_bpm=76.0, ibi_randomness=0.06, respiratory_rate_bpm=16.0, scr_per_minute=3.0,
                       spo2_percent=97.5),
    "strong": Physiology(heart_rate_bpm=88.0, ibi_randomness=0.03, respiratory_rate_bpm=20.0, scr_per_minute=6.0,
                         spo2_percent=97.2),
}


@dataclass(frozen=True)
class LabelInterval:
    """``label`` holds from ``start_s`` (inclusive) to ``end_s`` (exclusive), in session seconds."""

    start_s: float
    end_s: float
    label: str


@dataclass(frozen=True)
class SimulatedSession:
    """One simulated subject's session: ``signals[modality]`` float64 (n,) in physical units at
    ``rates_hz[modality]``, all starting at session time 0, and the label intervals covering it."""

    subject: str
    signals: Mapping[str, np.ndarray]
    rates_hz: Mapping[str, float]
    labels: tuple[LabelInterval, ...]
    duration_s: float
    #: Each block's physiology (subject baseline + class effect), for checks and reports.
    block_physiology: tuple[Physiology, ...] = ()

    def label_of(self, start_s: float, end_s: float) -> str | None:
        """The label of a window [start_s, end_s) in session time, or None when it is not inside one interval
        (it straddles a class change, or lies outside the session)."""
        for interval in self.labels:
            if interval.start_s - 1e-9 <= start_s and end_s <= interval.end_s + 1e-9:
                return interval.label
        return None

    def recording(self, modalities: Sequence[str] | None = None) -> dict[str, tuple[np.ndarray, float]]:
        """``{modality: (values, rate_hz)}``: what ``firmware_bridge.emulation.signals.recorded_signals`` takes,
        so an emulated wearable plays this session."""
        names = list(self.signals) if modalities is None else list(modalities)
        missing = [m for m in names if m not in self.signals]
        if missing:
            raise ValueError(f"{self.subject}: no simulated {missing}; it has {list(self.signals)}")
        return {m: (self.signals[m], float(self.rates_hz[m])) for m in names}


def subject_name(index: int) -> str:
    """The name of simulated subject ``index``: ``sim-01``, ``sim-02``..."""
    return f"sim-{int(index):02d}"


def wearables_of(subject: str, modalities: Sequence[str]) -> dict[str, tuple[str, ...]]:
    """``{device name: modalities}`` a simulated subject wears for ``modalities`` (``WEARABLE_OF_MODALITY``):
    ``{"sim-01-wrist": ("eda", "bvp"), "sim-01-chest": ("resp",)}``."""
    out: dict[str, list[str]] = {}
    for modality in modalities:
        if modality not in WEARABLE_OF_MODALITY:
            raise ValueError(f"no simulated wearable carries {modality!r}; expected some of {', '.join(MODALITIES)}")
        out.setdefault(f"{subject}-{WEARABLE_OF_MODALITY[modality]}", []).append(modality)
    return {device: tuple(mods) for device, mods in out.items()}


def subject_baseline(index: int, *, seed: int = 0) -> dict[str, float]:
    """Subject ``index``'s own offsets (deterministic in ``index`` and ``seed``, whatever other subjects exist):
    heart rate and breathing rate offsets, a skin-conductance responsiveness factor, an SpO2 offset."""
    rng = np.random.default_rng([int(seed), int(index), 1])
    return {
        "heart_rate_offset_bpm": float(rng.normal(0.0, 5.0)),
        "respiratory_rate_offset_bpm": float(rng.normal(0.0, 1.5)),
        "scr_factor": float(np.exp(rng.normal(0.0, 0.3))),
        "spo2_offset_percent": float(rng.normal(0.0, 0.4)),
        "ibi_factor": float(np.exp(rng.normal(0.0, 0.2))),
    }


def simulate_session(index: int, *, modalities: Sequence[str] = ("eda", "bvp", "resp", "spo2"),
                     block_s: float = 60.0, repeats: int = 1, classes: Sequence[str] = CLASSES,
                     rates_hz: Mapping[str, float] | None = None, seed: int = 0) -> SimulatedSession:
    """Simulated subject ``index``: ``repeats`` rounds of one ``block_s`` block per class, in an order drawn per
    subject and round; every modality simulated block by block at its device rate.

    Deterministic in (``index``, ``seed``): subject 7 is the same whether 3 or 30 subjects are simulated."""
    rates = {**DEFAULT_RATES_HZ, **(rates_hz or {})}
    unknown = [m for m in modalities if m not in MODALITIES]
    if unknown:
        raise ValueError(f"no simulator for modalities {unknown}; expected some of {', '.join(MODALITIES)}")
    unknown = [c for c in classes if c not in CLASS_PHYSIOLOGY]
    if unknown or not classes:
        raise ValueError(f"unknown simulated classes {unknown or list(classes)}; expected some of {', '.join(CLASSES)}")
    if not (math.isfinite(block_s) and block_s >= 10.0):
        raise ValueError(f"block_s must be at least 10 s (a window), got {block_s!r}")
    if int(repeats) < 1:
        raise ValueError(f"repeats must be at least 1, got {repeats!r}")
    for m in modalities:
        if not rates[m] > 0 or (rates[m] != int(rates[m])):
            raise ValueError(f"{m}: NeuroKit2 simulates at whole rates in Hz, got {rates[m]!r}")

    baseline = subject_baseline(index, seed=seed)
    rng = np.random.default_rng([int(seed), int(index), 2])
    order = [label for _ in range(int(repeats)) for label in rng.permutation(list(classes))]
    pieces: dict[str, list[np.ndarray]] = {m: [] for m in modalities}
    labels, physiology = [], []
    spo2_level = CLASS_PHYSIOLOGY[order[0]].spo2_percent + baseline["spo2_offset_percent"]
    for block, label in enumerate(order):
        mean = CLASS_PHYSIOLOGY[label]
        # A little block-to-block variation on top of the subject's baseline.
        p = Physiology(
            heart_rate_bpm=mean.heart_rate_bpm + baseline["heart_rate_offset_bpm"] + rng.normal(0.0, 1.5),
            ibi_randomness=float(np.clip(mean.ibi_randomness * baseline["ibi_factor"], 0.005, 0.3)),
            respiratory_rate_bpm=max(6.0, mean.respiratory_rate_bpm + baseline["respiratory_rate_offset_bpm"]
                                     + rng.normal(0.0, 0.7)),
            scr_per_minute=max(0.0, mean.scr_per_minute * baseline["scr_factor"]),
            spo2_percent=mean.spo2_percent + baseline["spo2_offset_percent"],
        )
        physiology.append(p)
        start = float(block * block_s)
        labels.append(LabelInterval(start, start + block_s, str(label)))
        block_seed = int(rng.integers(0, 2**31 - 1))
        for modality in modalities:
            fs = int(rates[modality])
            if modality == "spo2":
                values, spo2_level = _spo2(block_s, fs, p.spo2_percent, spo2_level, np.random.default_rng(block_seed))
            else:
                values = _simulate(modality, block_s, fs, p, block_seed)
            n = int(round(block_s * fs))
            pieces[modality].append(np.asarray(values, dtype=np.float64)[:n])
    signals = {m: np.concatenate(parts) for m, parts in pieces.items()}
    for m, values in signals.items():
        if not np.isfinite(values).all():  # NeuroKit2 should never do this; a NaN must not reach a wearable
            raise RuntimeError(f"simulated {m} of {subject_name(index)} holds non-finite values")
    return SimulatedSession(subject=subject_name(index), signals=signals,
                            rates_hz={m: float(rates[m]) for m in modalities}, labels=tuple(labels),
                            duration_s=len(order) * block_s, block_physiology=tuple(physiology))


def _simulate(modality: str, seconds: float, fs: int, p: Physiology, seed: int) -> np.ndarray:
    """One block of one modality from the SDK's one simulator (``biomoe_edge.simulation``) at this physiology."""
    from biomoe_edge.simulation import simulate

    scr = int(np.random.default_rng(seed).poisson(p.scr_per_minute * seconds / 60.0))
    values, _ = simulate(modality, seconds, fs, seed=seed, ecg_method="simple", heart_rate_bpm=p.heart_rate_bpm,
                         ibi_randomness=p.ibi_randomness, respiratory_rate_bpm=p.respiratory_rate_bpm, scr_number=scr)
    return values


def _spo2(seconds: float, fs: int, target: float, level: float, rng) -> tuple[np.ndarray, float]:
    """SpO2 (%) as an oximeter reports it: a mean-reverting walk towards ``target`` with measurement noise,
    rounded to 0.1 % (a pulse oximeter's resolution), continuing from ``level`` across blocks."""
    n = int(round(seconds * fs))
    values = np.empty(n)
    for i in range(n):
        level += 0.05 * (target - level) + rng.normal(0.0, 0.08)
        values[i] = level
    values = np.round(np.clip(values + rng.normal(0.0, 0.15, n), 85.0, 100.0), 1)
    return values, level
