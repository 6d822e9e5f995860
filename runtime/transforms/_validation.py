"""Parameter checks, kept apart from the array kernels (pyts style). Each raises ValueError naming the parameter."""

from __future__ import annotations

import numbers


def check_positive_int(name: str, value, *, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def check_sample_rate(fs) -> float:
    if isinstance(fs, bool) or not isinstance(fs, numbers.Real) or not fs > 0 or fs != fs or fs == float("inf"):
        raise ValueError(f"sample rate fs must be a positive finite number of Hz, got {fs!r}")
    return float(fs)


def check_signal(x, *, min_length: int = 1, name: str = "x"):
    """The last axis is time; floating/integer dtype only."""
    if x.ndim < 1:
        raise ValueError(f"{name} must have at least one axis (time last), got a scalar")
    if x.dtype.kind not in "fiu":
        raise ValueError(f"{name} must hold real numbers, got dtype {x.dtype}")
    if x.shape[-1] < min_length:
        raise ValueError(f"{name} has {x.shape[-1]} samples along its last axis; at least {min_length} are needed")


def check_spectrogram_params(n_samples: int, nperseg, noverlap, nfft, mode) -> tuple[int, int, int]:
    nperseg = check_positive_int("nperseg", nperseg)
    if nperseg > n_samples:
        raise ValueError(f"nperseg={nperseg} is longer than the signal ({n_samples} samples)")
    noverlap = check_positive_int("noverlap", noverlap, minimum=0)
    if noverlap >= nperseg:
        raise ValueError(f"noverlap={noverlap} must be less than nperseg={nperseg}")
    nfft = nperseg if nfft is None else check_positive_int("nfft", nfft)
    if nfft < nperseg:
        raise ValueError(f"nfft={nfft} must be >= nperseg={nperseg}")
    if mode not in ("psd", "angle", "phase"):
        raise ValueError(f"mode must be 'psd', 'angle' or 'phase', got {mode!r}")
    return nperseg, noverlap, nfft


def check_recurrence_params(n_samples: int, dimension, time_delay, threshold, percentage) -> tuple[int, int]:
    """pyts.image.RecurrencePlot's rules (an integer or a fraction of the length for dimension/time_delay)."""

    def resolve(name, value):
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise ValueError(f"{name} must be an integer or a float, got {value!r}")
        if isinstance(value, numbers.Integral):
            if not 1 <= value <= n_samples:
                raise ValueError(f"{name} must be between 1 and the length {n_samples}, got {value}")
            return int(value)
        if not 0 < value <= 1:
            raise ValueError(f"{name} as a float is a fraction of the length in (0, 1], got {value}")
        return int(-(-value * n_samples // 1))  # ceil

    dimension = resolve("dimension", dimension)
    time_delay = resolve("time_delay", time_delay)
    if n_samples - (dimension - 1) * time_delay < 1:
        raise ValueError(
            f"dimension={dimension} and time_delay={time_delay} leave no trajectory in {n_samples} samples"
        )
    if threshold not in (None, "point", "distance"):
        if isinstance(threshold, bool) or not isinstance(threshold, numbers.Real) or not threshold >= 0:
            raise ValueError(f"threshold must be None, 'point', 'distance' or a non-negative float, got {threshold!r}")
    if threshold in ("point", "distance"):
        if isinstance(percentage, bool) or not isinstance(percentage, numbers.Real) or not 0 <= percentage <= 100:
            raise ValueError(f"percentage must be between 0 and 100, got {percentage!r}")
    return dimension, time_delay
