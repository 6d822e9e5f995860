"""Seeded link faults of an emulated wearable: packet loss, reordering, garbage, peripheral disconnects.

All decisions come from one ``numpy.random.Generator`` seeded by the caller, so a run is reproducible.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class LinkFaults:
    """What goes wrong on the emulated link.

    loss: probability that a data packet is dropped (its sequence number is consumed, as a lost radio
        packet would be). reorder: probability that a packet is held back and sent after the next one.
    garbage: probability, per data packet, of an extra notification of random bytes that is no packet.
    disconnect_at: device times (s) at which the peripheral drops the connection.
    disconnect_every: period (s, device time) of peripheral-initiated disconnects; ``disconnect_jitter``
        (0..1) draws each interval uniformly in ``every * (1 +- jitter)``.
    """

    loss: float = 0.0
    reorder: float = 0.0
    garbage: float = 0.0
    disconnect_at: Sequence[float] = ()
    disconnect_every: float | None = None
    disconnect_jitter: float = 0.0

    def __post_init__(self):
        for name in ("loss", "reorder", "garbage", "disconnect_jitter"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be a probability in [0, 1], got {value!r}")
        if self.disconnect_every is not None and not self.disconnect_every > 0:
            raise ValueError(f"disconnect_every must be > 0 seconds, got {self.disconnect_every!r}")
        object.__setattr__(self, "disconnect_at", tuple(sorted(float(t) for t in self.disconnect_at)))


class FaultInjector:
    """Draws the faults of ``LinkFaults`` from a seeded generator."""

    def __init__(self, faults: LinkFaults, seed: int) -> None:
        self.faults = faults
        self._rng = np.random.default_rng(seed)
        self._scheduled = list(faults.disconnect_at)
        self._periodic_next = self._periodic_interval(0.0) if faults.disconnect_every else None

    def drop(self) -> bool:
        return self.faults.loss > 0 and self._rng.random() < self.faults.loss

    def hold_back(self) -> bool:
        return self.faults.reorder > 0 and self._rng.random() < self.faults.reorder

    def garbage(self) -> bytes | None:
        """Random bytes to notify (not a packet: first byte is never the protocol version), or None."""
        if not (self.faults.garbage > 0 and self._rng.random() < self.faults.garbage):
            return None
        data = self._rng.integers(0, 256, int(self._rng.integers(1, 20)), dtype=np.uint8)
        data[0] = 0xEE  # never version 1, so it can never decode as a packet by chance
        return data.tobytes()

    def random_bytes(self, n: int) -> bytes:
        return self._rng.integers(0, 256, n, dtype=np.uint8).tobytes()

    def integer(self, high: int) -> int:
        return int(self._rng.integers(0, high))

    def _periodic_interval(self, now: float) -> float:
        every, jitter = self.faults.disconnect_every, self.faults.disconnect_jitter
        return now + every * (1.0 + (self._rng.uniform(-jitter, jitter) if jitter else 0.0))

    def next_disconnect(self) -> float | None:
        """Device time of the next scheduled disconnect, or None."""
        candidates = [t for t in (self._scheduled[0] if self._scheduled else None, self._periodic_next) if t is not None]
        return min(candidates) if candidates else None

    def disconnect_done(self, now: float) -> None:
        """Consume every disconnect due at or before ``now``."""
        while self._scheduled and self._scheduled[0] <= now:
            self._scheduled.pop(0)
        while self._periodic_next is not None and self._periodic_next <= now:
            self._periodic_next = self._periodic_interval(self._periodic_next)
