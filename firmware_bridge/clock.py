"""Device clock -> gateway clock (PROTOCOL.md, "Time"): uint32 wrap, drift, BLE latency, clock jumps.

A packet's last sample cannot reach the gateway before it was taken, and BLE delivers it one connection
event later or more (late, never early). So the points (device time, arrival time) lie on or above a line
``arrival = offset + slope * device`` whose slope is 1 + drift. We fit that line to the *lower envelope* of
the points: the edge of their lower convex hull above the mean device time, which minimises the summed
distance to the points while staying below all of them (the linear-programming skew estimator of Moon,
Skelly and Towsley, "Estimation and removal of clock skew from network delay measurements", INFOCOM 1999).
Jitter only ever adds latency, so it lifts points off the envelope without biasing the slope.

Points are kept as the lowest (arrival - device) point per ``bucket_s`` of device time over the last
``window_s``; the hull then has at most window_s / bucket_s points, whatever the packet rate.

The gateway time given for a sample is therefore "the earliest it could have arrived": the true sampling
time plus the smallest transport latency seen, a constant of a few milliseconds on a BLE link.
"""

from __future__ import annotations

import math

import numpy as np

from .packet import TIMESTAMP_MODULO

_HALF = TIMESTAMP_MODULO // 2


class ClockMapper:
    """Running lower-envelope fit of gateway arrival time against the device's microsecond clock.

    - ``unwrap(timestamp_us)`` extends the device's uint32 microsecond counter (wraps every 71.6 minutes)
      to an unbounded integer; a step of less than 2**31 us either way is read as the nearest way round,
      so reordered packets step back a little and a wrap steps forward.
    - ``observe(device_us, arrival_s)`` adds one point (device_us from ``unwrap``) and returns True when it
      detected a clock jump: an arrival earlier than the envelope by more than ``jump_threshold_s`` (the
      device clock jumped forward), or ``jump_confirm`` consecutive arrivals later by more than that whose
      lateness does not shrink as device time advances (the device clock jumped back; a BLE stall instead
      delivers a burst whose lateness falls as fast as device time runs). A jump clears the points and
      re-anchors on the new one, keeping the drift estimate (a property of the crystal, not of the jump).
    - ``to_gateway(device_us)`` maps scalars or arrays of unwrapped device microseconds to gateway seconds.
    """

    def __init__(
        self,
        *,
        window_s: float = 120.0,
        bucket_s: float = 0.5,
        min_span_s: float = 5.0,
        max_drift_ppm: float = 1000.0,
        jump_threshold_s: float = 1.0,
        jump_confirm: int = 3,
    ):
        if not (window_s > 0 and bucket_s > 0 and min_span_s >= 0 and max_drift_ppm >= 0 and jump_threshold_s > 0):
            raise ValueError("window_s, bucket_s, jump_threshold_s must be > 0; min_span_s, max_drift_ppm >= 0")
        if jump_confirm < 1:
            raise ValueError(f"jump_confirm must be >= 1, got {jump_confirm}")
        self.window_s = float(window_s)
        self.bucket_s = float(bucket_s)
        self.min_span_s = float(min_span_s)
        self.max_drift = float(max_drift_ppm) * 1e-6
        self.jump_threshold_s = float(jump_threshold_s)
        self.jump_confirm = int(jump_confirm)
        self.jumps = 0  # clock jumps detected
        self.wraps = 0  # forward passes of the uint32 counter through zero
        self.observations = 0
        self._last_raw: int | None = None
        self._last_extended = 0
        self._anchor_us: int | None = None  # device time origin of the fit (keeps float64 precision)
        self._buckets: dict[int, tuple[float, float]] = {}  # bucket -> (x, y) with the lowest y - x
        self._slope = 1.0
        self._intercept: float | None = None
        self._suspect: list[tuple[float, float]] = []  # consecutive (x, residual) above +threshold

    # -- device clock ---------------------------------------------------------------------------------
    def unwrap(self, timestamp_us: int) -> int:
        """uint32 device microseconds -> unbounded integer microseconds (see class docstring)."""
        raw = int(timestamp_us) % TIMESTAMP_MODULO
        if self._last_raw is None:
            self._last_raw, self._last_extended = raw, raw
            return raw
        step = (raw - self._last_raw + _HALF) % TIMESTAMP_MODULO - _HALF
        extended = self._last_extended + step
        if step > 0:  # remember the newest point only: a reordered packet must not move the reference back
            if raw < self._last_raw:
                self.wraps += 1
            self._last_raw, self._last_extended = raw, extended
        return extended

    # -- fit ------------------------------------------------------------------------------------------
    @property
    def drift_ppm(self) -> float:
        """Device clock rate error as the fit sees it: +100 means the device clock runs 100 ppm slow."""
        return (self._slope - 1.0) * 1e6

    @property
    def ready(self) -> bool:
        return self._intercept is not None

    def _x(self, device_us) -> np.ndarray | float:
        return (np.asarray(device_us, dtype=np.float64) - self._anchor_us) * 1e-6

    def to_gateway(self, device_us):
        """Unwrapped device microseconds (scalar or array) -> gateway seconds on the current fit."""
        if self._intercept is None:
            raise RuntimeError("ClockMapper has no observation yet; call observe() first")
        result = self._intercept + self._slope * self._x(device_us)
        return float(result) if np.ndim(result) == 0 else result

    def residual(self, device_us: int, arrival_s: float) -> float:
        """How much later than the envelope an arrival is (seconds; negative = earlier)."""
        return float(arrival_s) - self.to_gateway(device_us)

    def reanchor(self, device_us: int, arrival_s: float) -> None:
        """Forget the points and start the fit again from this one, keeping the drift estimate: for a
        discontinuity known from elsewhere (the device restarted). Not counted in ``jumps``."""
        self._suspect.clear()
        self._buckets.clear()
        self._anchor_us = int(device_us)
        self._add_point(0.0, float(arrival_s))

    def observe(self, device_us: int, arrival_s: float) -> bool:
        """Add a (device time, arrival time) point; return True if it revealed a clock jump."""
        arrival_s = float(arrival_s)
        if not math.isfinite(arrival_s):
            raise ValueError(f"arrival time must be finite, got {arrival_s!r}")
        self.observations += 1
        jumped = False
        if self._intercept is None:
            self._anchor_us = int(device_us)
        else:
            residual = self.residual(device_us, arrival_s)
            x = float(self._x(device_us))
            if residual < -self.jump_threshold_s:
                jumped = True
            elif residual > self.jump_threshold_s:
                self._suspect.append((x, residual))
                if len(self._suspect) >= self.jump_confirm:
                    (x0, r0), (x1, r1) = self._suspect[0], self._suspect[-1]
                    # A stall's burst: lateness falls about as fast as device time runs. A jump: it stays.
                    if (r0 - r1) < 0.5 * (x1 - x0):
                        jumped = True
                    else:
                        self._suspect = self._suspect[-1:]
            else:
                self._suspect.clear()
            if jumped:
                self.jumps += 1
                self._suspect.clear()
                self._buckets.clear()
                self._anchor_us = int(device_us)
        self._add_point(float(self._x(device_us)), arrival_s)
        return jumped

    def _add_point(self, x: float, y: float) -> None:
        key = math.floor(x / self.bucket_s)
        best = self._buckets.get(key)
        if best is not None and y - x >= best[1] - best[0]:
            return  # above the bucket's lowest point: the envelope cannot change
        self._buckets[key] = (x, y)
        if best is None:  # a new bucket: forget the ones that slid out of the window
            keep_from = max(self._buckets) - math.ceil(self.window_s / self.bucket_s)
            for old in [k for k in self._buckets if k < keep_from]:
                del self._buckets[old]
        self._refit()

    def _refit(self) -> None:
        points = sorted(self._buckets.values())
        xs = np.array([p[0] for p in points])
        ys = np.array([p[1] for p in points])
        slope = self._slope
        if len(points) >= 2 and xs[-1] - xs[0] >= self.min_span_s:
            slope = _envelope_slope(points, float(xs.mean()))
            slope = min(max(slope, 1.0 - self.max_drift), 1.0 + self.max_drift)
        self._slope = slope
        self._intercept = float(np.min(ys - slope * xs))  # the line touches the envelope from below


def _lower_hull(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """Andrew's monotone chain, lower half; ``points`` sorted by x."""
    hull: list[tuple[float, float]] = []
    for p in points:
        while len(hull) >= 2:
            (x1, y1), (x2, y2) = hull[-2], hull[-1]
            if (x2 - x1) * (p[1] - y1) - (y2 - y1) * (p[0] - x1) <= 0:  # not a left turn: drop hull[-1]
                hull.pop()
            else:
                break
        hull.append(p)
    return hull


def _envelope_slope(points: list[tuple[float, float]], x_mean: float) -> float:
    """Slope of the lower-hull edge above ``x_mean``: the LP optimum of min sum(y - line) s.t. line <= y."""
    hull = _lower_hull(points)
    for (x1, y1), (x2, y2) in zip(hull, hull[1:]):
        if x2 >= x_mean:
            return (y2 - y1) / (x2 - x1)
    (x1, y1), (x2, y2) = hull[-2], hull[-1]
    return (y2 - y1) / (x2 - x1)


__all__ = ["ClockMapper"]
