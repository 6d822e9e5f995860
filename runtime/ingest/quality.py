"""Quality gating of one window: flat line, saturation, non-finite samples, too many gaps.

Flags (``Window.quality``), in this order:
- ``"gaps"``: the fraction of the window's sample slots with no valid sample (lost packets filled in,
  non-finite samples) exceeds ``max_gap_fraction``, or the window holds no valid sample at all;
- ``"nonfinite"``: at least one sample in the window arrived as NaN or +-Inf (it was replaced by
  interpolation, never passed on);
- ``"flat"``: some channel's valid samples span no more than ``flat_tolerance`` times their magnitude, or
  exactly nothing (a detached or dead sensor; the same rule as ``transforms.check_window``);
- ``"saturated"``: more than ``max_saturated_fraction`` of some channel's valid samples sit at or beyond
  ``saturation_range`` (the ADC limits in physical units; only checked when the range is given).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

QUALITY_FLAGS: tuple[str, ...] = ("gaps", "nonfinite", "flat", "saturated")
QUALITY_ACTIONS = ("withhold", "flag")


@dataclass(frozen=True)
class QualityConfig:
    """Thresholds and the action taken on a flagged window.

    ``action="withhold"``: a window with any flag in ``withhold_on`` is emitted with ``withheld=True``
    (the gateway counts it and does not infer on it); ``action="flag"``: it is emitted for inference with
    its flags. A window without any valid sample is always withheld.
    """

    max_gap_fraction: float = 0.2
    flat_tolerance: float = 1e-6
    saturation_range: tuple[float, float] | None = None
    max_saturated_fraction: float = 0.05
    action: str = "withhold"
    withhold_on: tuple[str, ...] = QUALITY_FLAGS

    def __post_init__(self):
        if not 0.0 <= self.max_gap_fraction <= 1.0:
            raise ValueError(f"max_gap_fraction must be in [0, 1], got {self.max_gap_fraction!r}")
        if not 0.0 <= self.max_saturated_fraction <= 1.0:
            raise ValueError(f"max_saturated_fraction must be in [0, 1], got {self.max_saturated_fraction!r}")
        if self.flat_tolerance < 0:
            raise ValueError(f"flat_tolerance must be >= 0, got {self.flat_tolerance!r}")
        if self.action not in QUALITY_ACTIONS:
            raise ValueError(f"quality action must be one of {QUALITY_ACTIONS}, got {self.action!r}")
        unknown = [f for f in self.withhold_on if f not in QUALITY_FLAGS]
        if unknown:
            raise ValueError(f"unknown quality flag(s) {unknown} in withhold_on; expected some of {QUALITY_FLAGS}")
        if self.saturation_range is not None:
            low, high = self.saturation_range
            if not low < high:
                raise ValueError(f"saturation_range must be (low, high) with low < high, got {self.saturation_range!r}")


def assess_window(values: np.ndarray, real: np.ndarray, invalid: np.ndarray, config: QualityConfig) -> tuple[str, ...]:
    """Flags for a window: ``values`` (n, channels), ``real`` marks valid samples, ``invalid`` non-finite ones."""
    n = len(real)
    n_real = int(np.count_nonzero(real))
    flags = []
    if n_real == 0 or (n - n_real) / n > config.max_gap_fraction:
        flags.append("gaps")
    if invalid.any():
        flags.append("nonfinite")
    if n_real:
        valid = values[real]
        low, high = valid.min(axis=0), valid.max(axis=0)
        span = high - low
        if np.any((span == 0) | (span <= config.flat_tolerance * np.maximum(np.abs(low), np.abs(high)))):
            flags.append("flat")
        if config.saturation_range is not None:
            low, high = config.saturation_range
            pinned = np.count_nonzero((valid <= low) | (valid >= high), axis=0) / n_real
            if np.any(pinned > config.max_saturated_fraction):
                flags.append("saturated")
    return tuple(flags)


def is_withheld(flags: tuple[str, ...], n_real: int, config: QualityConfig) -> bool:
    if n_real == 0:
        return True
    return config.action == "withhold" and any(f in config.withhold_on for f in flags)


def fill_gaps(values: np.ndarray, real: np.ndarray, *, before=None, after=None) -> np.ndarray:
    """Copy of ``values`` (n, channels) with non-real slots linearly interpolated from real neighbours.

    ``before``/``after``: optional ``(position, row)`` real samples outside the window (position < 0 or
    >= n) to interpolate towards at the edges; without them the nearest real value is held.
    """
    filled = np.array(values, dtype=np.float64, copy=True)
    if real.all():
        return filled
    positions = np.flatnonzero(real)
    known = filled[real]
    if before is not None:
        positions = np.concatenate(([before[0]], positions))
        known = np.concatenate((np.asarray(before[1], dtype=np.float64)[None, :], known))
    if after is not None:
        positions = np.concatenate((positions, [after[0]]))
        known = np.concatenate((known, np.asarray(after[1], dtype=np.float64)[None, :]))
    if len(positions) == 0:
        filled[:] = 0.0
        return filled
    missing = np.flatnonzero(~real)
    for channel in range(filled.shape[1]):
        filled[missing, channel] = np.interp(missing, positions, known[:, channel])
    return filled
