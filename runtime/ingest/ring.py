"""A preallocated ring of uniformly spaced sample slots, addressed by absolute slot index.

Each slot holds one sample row, its gateway time, and whether it holds a received valid sample ("real"),
a received non-finite sample ("invalid") or nothing (a gap filler). Storage is mirrored (every slot is
written at ``i % C`` and ``i % C + C``), so any run of up to ``C`` consecutive slots is one contiguous
view: windows are sliced, searched and resampled without copying or wrapping logic.
"""

from __future__ import annotations

import numpy as np


class SampleRing:
    """Fixed-capacity FIFO of sample slots; it never grows. ``start``/``end`` are absolute slot indices."""

    def __init__(self, capacity: int, channels: int):
        if capacity < 1:
            raise ValueError(f"ring capacity must be at least 1, got {capacity}")
        self.capacity = int(capacity)
        self.channels = int(channels)
        doubled = 2 * self.capacity
        self._values = np.zeros((doubled, self.channels), dtype=np.float64)
        self._times = np.zeros(doubled, dtype=np.float64)
        self._real = np.zeros(doubled, dtype=bool)
        self._invalid = np.zeros(doubled, dtype=bool)
        # Number of real slots before each slot (absolute, monotone): real count of any range in O(1).
        self._real_before = np.zeros(doubled, dtype=np.int64)
        self.start = 0
        self.end = 0
        self.real_total = 0

    def __len__(self) -> int:
        return self.end - self.start

    @property
    def free(self) -> int:
        return self.capacity - len(self)

    @property
    def nbytes(self) -> int:
        return sum(a.nbytes for a in (self._values, self._times, self._real, self._invalid, self._real_before))

    def append(self, values: np.ndarray, times: np.ndarray, real: np.ndarray, invalid: np.ndarray) -> None:
        """Write ``len(times)`` slots after ``end``; the caller keeps it within ``free``."""
        n = len(times)
        if n == 0:
            return
        if n > self.free:
            raise OverflowError(f"ring of {self.capacity} slots has {self.free} free, asked to write {n}")
        real_before = self.real_total + np.concatenate(([0], np.cumsum(real[:-1], dtype=np.int64)))
        first = self.end % self.capacity
        for array, data in (
            (self._values, values),
            (self._times, times),
            (self._real, real),
            (self._invalid, invalid),
            (self._real_before, real_before),
        ):
            self._put(array, first, data)
        self.end += n
        self.real_total += int(np.count_nonzero(real))

    def _put(self, array: np.ndarray, first: int, data: np.ndarray) -> None:
        """Write ``data`` at slot position ``first`` and at its mirror ``first + C`` (wrapping past 2C)."""
        n, doubled = len(data), 2 * self.capacity
        for base in (first, first + self.capacity):
            stop = base + n
            if stop <= doubled:
                array[base:stop] = data
            else:
                split = doubled - base
                array[base:] = data[:split]
                array[: stop - doubled] = data[split:]

    def _span(self, a: int, b: int) -> slice:
        if not self.start <= a <= b <= self.end:
            raise IndexError(f"slots [{a}, {b}) outside the ring's [{self.start}, {self.end})")
        first = a % self.capacity
        return slice(first, first + (b - a))

    def values(self, a: int, b: int) -> np.ndarray:
        return self._values[self._span(a, b)]

    def times(self, a: int, b: int) -> np.ndarray:
        return self._times[self._span(a, b)]

    def real(self, a: int, b: int) -> np.ndarray:
        return self._real[self._span(a, b)]

    def invalid(self, a: int, b: int) -> np.ndarray:
        return self._invalid[self._span(a, b)]

    def time(self, a: int) -> float:
        """Gateway time of retained slot ``a``."""
        self._span(a, a + 1)
        return float(self._times[a % self.capacity])

    def real_before(self, a: int) -> int:
        """Real slots with absolute index below ``a`` (``start <= a <= end``)."""
        if a == self.end:
            return self.real_total
        self._span(a, a)
        return int(self._real_before[a % self.capacity])

    def count_real(self, a: int, b: int) -> int:
        return self.real_before(b) - self.real_before(a)

    def first_at_or_after(self, t: float) -> int:
        """Absolute index of the first retained slot whose time is >= ``t`` (``end`` if none)."""
        return self.start + int(np.searchsorted(self.times(self.start, self.end), t, side="left"))

    def release(self, upto: int) -> None:
        """Forget slots below ``upto``."""
        self._span(upto, upto)
        self.start = upto

    def clear(self) -> None:
        self.start = self.end
