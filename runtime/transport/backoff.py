"""Exponential backoff with full jitter (AWS architecture blog, "Exponential Backoff And Jitter", 2015).

Delay before retry ``k`` (k = 0, 1, ...) is uniform in ``[0, min(max_s, initial_s * factor**k)]``: the cap
grows exponentially and the jitter spreads many gateways (or many devices of one gateway) apart.
"""

from __future__ import annotations

import random


class Backoff:
    def __init__(self, initial_s: float = 0.5, max_s: float = 30.0, factor: float = 2.0, *, seed: int | None = None) -> None:
        if not 0 < initial_s <= max_s:
            raise ValueError(f"backoff needs 0 < initial_s <= max_s, got initial_s={initial_s!r}, max_s={max_s!r}")
        if not factor >= 1:
            raise ValueError(f"backoff factor must be >= 1, got {factor!r}")
        self.initial_s = float(initial_s)
        self.max_s = float(max_s)
        self.factor = float(factor)
        self._random = random.Random(seed)
        self.attempt = 0  # retries since the last success

    def ceiling(self, attempt: int | None = None) -> float:
        """The upper bound of the delay before retry ``attempt`` (default: the next one)."""
        k = self.attempt if attempt is None else attempt
        try:
            return min(self.max_s, self.initial_s * self.factor**k)
        except OverflowError:  # a device gone for days: factor**k exceeds a float
            return self.max_s

    def next_delay(self) -> float:
        delay = self._random.uniform(0.0, self.ceiling())
        self.attempt += 1
        return delay

    def reset(self) -> None:
        self.attempt = 0
