"""Samples to windows: per-stream preallocated rings, gap filling, clock-fault handling, sliding windows on a
per-device time grid, resampling to the model rate, quality gating, and exact sample accounting.

Every received sample ends in exactly one place, at every moment:

    samples_received == samples_windowed + samples_pending + sum(samples_dropped.values())

``samples_windowed``: entered at least one emitted window (withheld or not, and even if the window is later
dropped downstream: those windows are counted where they are dropped). ``samples_pending``: buffered, in no
window yet. ``samples_dropped``: by reason, see ``DROP_REASONS``. Samples the device sent but the gateway
never received are not "received"; ``mark_lost`` counts them in ``samples_lost``.
"""

from __future__ import annotations

import collections
import logging
import math
from dataclasses import dataclass, field

import numpy as np

from biomoe_edge.vocabulary import Modality

from .exc import (
    ChannelCountError,
    DuplicateStreamError,
    IngestError,
    SampleDtypeError,
    SampleShapeError,
    TimestampError,
    UnknownStreamError,
)
from .quality import QualityConfig, assess_window, fill_gaps, is_withheld
from .resample import Resampler, model_rate_hz, resample_window
from .ring import SampleRing

logger = logging.getLogger("biomoe_edge.runtime.ingest")

#: Why a received sample never entered a window. Each is logged once per stream, then counted: as a warning,
#: except the reasons in ROUTINE_REASONS, which happen by design on every healthy stream (info).
DROP_REASONS: dict[str, str] = {
    "malformed": "the push was rejected (wrong dtype, shape or channel count, or times not one per sample); "
    "its samples were counted and the push raised a typed IngestError",
    "invalid": "the sample's value or gateway time was NaN or +-Inf (its slot becomes a gap in the window)",
    "late": "its gateway time was not after the stream's newest sample, by at most late_tolerance_s "
    "(out-of-order or re-sent data)",
    "clock_jump": "pending when the stream's gateway times went backwards by more than late_tolerance_s "
    "(or, for a push placed by count, disagreed with the sample count by more than that); the stream was "
    "re-anchored on the device's window grid at the new times",
    "gap": "pending when the stream's gateway times leapt forward by more than max_gap_fill_s (a long "
    "outage or a clock leap), or lost_before spanned more than that; the stream was re-anchored",
    "alignment": "arrived before the stream's first window on the device's window grid (less than one hop, "
    "at the start and after each re-anchor)",
    "hop_gap": "fell between two windows because hop_s is longer than window_length_s",
    "restart": "pending when the caller restarted the stream (Ingest.restart, default reason)",
}

#: Logged at info, not warning: the first hop of every stream (alignment) and gaps filled after packet loss.
ROUTINE_REASONS = frozenset({"alignment", "gap_filled"})

#: Why an emitted window was dropped before anyone popped it.
WINDOW_DROP_REASONS: dict[str, str] = {
    "ingest_overflow": "the ready-window queue was full (max_ready_windows); the oldest window was dropped",
}


@dataclass(frozen=True, order=True)
class StreamKey:
    """One stream: a device (its name or address) and a modality (normalised to the Modality value)."""

    device: str
    modality: str

    def __post_init__(self):
        if not isinstance(self.device, str) or not self.device:
            raise ValueError(f"StreamKey device must be a non-empty string, got {self.device!r}")
        object.__setattr__(self, "modality", Modality.parse(self.modality).value)

    def __str__(self) -> str:
        return f"{self.device}/{self.modality}"


@dataclass(frozen=True)
class IngestConfig:
    """How one stream is windowed.

    ``window_length_s``/``hop_s``: sliding windows (10 s every 1 s by default). ``model_rate_hz``: rate of the
    emitted windows; None takes the modality's model rate (``resample.model_rate_hz``). ``max_gap_fill_s``:
    a gap in gateway time up to this long is filled (and counted in the window's gap fraction); longer ones
    re-anchor the stream. ``late_tolerance_s``: samples going back in time by at most this much are dropped
    as "late"; a larger backward step is a clock jump.
    """

    window_length_s: float = 10.0
    hop_s: float = 1.0
    model_rate_hz: float | None = None
    max_gap_fill_s: float = 1.0
    late_tolerance_s: float = 1.0
    quality: QualityConfig = field(default_factory=QualityConfig)

    def __post_init__(self):
        for name in ("window_length_s", "hop_s"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be a positive number of seconds, got {value!r}")
        if self.model_rate_hz is not None and not self.model_rate_hz > 0:
            raise ValueError(f"model_rate_hz must be positive, got {self.model_rate_hz!r}")
        if not self.max_gap_fill_s >= 0:
            raise ValueError(f"max_gap_fill_s must be >= 0, got {self.max_gap_fill_s!r}")
        if not self.late_tolerance_s >= 0:
            raise ValueError(f"late_tolerance_s must be >= 0, got {self.late_tolerance_s!r}")


@dataclass(frozen=True, eq=False)
class Window:
    """One window of one stream, at the model rate, on its grid (its device's, or its subject's: ``grid``).

    ``samples``: float64 (channels, n) with n = round(window_length_s * fs), time on the last axis (as the
    transforms expect), always finite (gaps and non-finite samples are interpolated and flagged).
    ``start_s``/``end_s``: the grid times in gateway time, identical for all streams of a grid (a device, or
    the devices of one subject) that share length and hop; the samples start at the sample slot nearest ``start_s`` (within half an input
    sample period). ``quality``: flags (see ``quality.QUALITY_FLAGS``). ``withheld``: gated out,
    do not run inference on it. ``arrival_time_s``: arrival time of the push that completed the window.
    ``index``: the window's number on the grid. ``gap_fraction``: share of slots with no valid sample.
    """

    key: StreamKey
    start_s: float
    end_s: float
    samples: np.ndarray
    fs: float
    quality: tuple[str, ...]
    withheld: bool
    arrival_time_s: float
    index: int = 0
    gap_fraction: float = 0.0

    @property
    def device(self) -> str:
        return self.key.device

    @property
    def modality(self) -> str:
        return self.key.modality


@dataclass(frozen=True)
class StreamAccount:
    """A snapshot of one stream's counters. ``balanced`` checks the accounting identity."""

    device: str
    modality: str
    samples_received: int
    samples_windowed: int
    samples_pending: int
    samples_dropped: dict[str, int]
    samples_lost: dict[str, int]
    windows_emitted: int
    windows_withheld: int
    windows_flagged: dict[str, int]
    windows_dropped: dict[str, int]
    events: dict[str, int]

    @property
    def balanced(self) -> bool:
        dropped = sum(self.samples_dropped.values())
        return self.samples_received == self.samples_windowed + self.samples_pending + dropped

    def as_dict(self) -> dict:
        return {
            "device": self.device,
            "modality": self.modality,
            "samples_received": self.samples_received,
            "samples_windowed": self.samples_windowed,
            "samples_pending": self.samples_pending,
            "samples_dropped": dict(self.samples_dropped),
            "samples_lost": dict(self.samples_lost),
            "windows_emitted": self.windows_emitted,
            "windows_withheld": self.windows_withheld,
            "windows_flagged": dict(self.windows_flagged),
            "windows_dropped": dict(self.windows_dropped),
            "events": dict(self.events),
        }


class _Stream:
    """Mutable state of one stream (private to Ingest)."""

    def __init__(self, key: StreamKey, sample_rate_hz: float, channels: int, config: IngestConfig, grid: str):
        self.key = key
        self.grid = grid  # whose window grid the stream is cut on: its device's, or its subject's
        self.fs_in = float(sample_rate_hz)
        self.channels = channels
        self.config = config
        self.model_fs = float(config.model_rate_hz or model_rate_hz(key.modality))
        self.n_in = max(1, round(config.window_length_s * self.fs_in))
        self.n_out = max(1, round(config.window_length_s * self.model_fs))
        hop_in = math.ceil(config.hop_s * self.fs_in)
        self.max_fill = math.floor(config.max_gap_fill_s * self.fs_in)
        # One window, the longest gap filling (so a gap's real neighbour after it is in the ring when the
        # window is cut) and some room to write; bursts are written in chunks of whatever is free.
        self.ring = SampleRing(self.n_in + self.max_fill + max(64, min(hop_in, self.n_in)), channels)
        self.previous_real: tuple[int, np.ndarray] | None = None  # last released real slot: (index, values)
        self.gap_threshold_s = 1.5 / self.fs_in
        self.last_time: float | None = None  # newest slot's gateway time; None: (re)starting
        self.next_index = 0  # grid number of the next window
        self.windows_since_start = 0
        self.windowed_upto = 0  # slots below this absolute index are windowed or dropped
        self.received = 0
        self.windowed = 0
        self.dropped: collections.Counter = collections.Counter()
        self.lost: collections.Counter = collections.Counter()
        self.events: collections.Counter = collections.Counter()
        self.windows_emitted = 0
        self.windows_withheld = 0
        self.windows_flagged: collections.Counter = collections.Counter()
        self.windows_dropped: collections.Counter = collections.Counter()
        self.logged: set[str] = set()

    @property
    def pending(self) -> int:
        return self.ring.count_real(self.windowed_upto, self.ring.end)

    def account(self) -> StreamAccount:
        return StreamAccount(
            device=self.key.device,
            modality=self.key.modality,
            samples_received=self.received,
            samples_windowed=self.windowed,
            samples_pending=self.pending,
            samples_dropped=dict(self.dropped),
            samples_lost=dict(self.lost),
            windows_emitted=self.windows_emitted,
            windows_withheld=self.windows_withheld,
            windows_flagged=dict(self.windows_flagged),
            windows_dropped=dict(self.windows_dropped),
            events=dict(self.events),
        )


def _as_real_array(value, what: str, error: type[IngestError], key: StreamKey) -> np.ndarray:
    try:
        array = np.asarray(value)
    except (ValueError, TypeError) as exc:  # ragged nested lists
        raise error(f"{key}: {what} is not a rectangular array: {exc}") from None
    if array.dtype.kind not in "iuf":
        raise (SampleDtypeError if error is SampleShapeError else error)(
            f"{key}: {what} must be real numbers (int or float), got dtype {array.dtype}"
        )
    return array


def _leading_length(value) -> int:
    try:
        return len(value)
    except TypeError:
        return 0


class Ingest:
    """Windows for many streams. Pure NumPy; clock-agnostic (times are passed in); not thread-safe.

    ``max_ready_windows`` bounds the queue of emitted windows not yet popped (oldest dropped and counted as
    ``windows_dropped["ingest_overflow"]``). ``resampler(x, fs_in, fs_out, n_out)`` replaces the default
    ``resample.resample_window``.
    """

    def __init__(self, *, max_ready_windows: int = 1024, resampler: Resampler | None = None):
        if max_ready_windows < 1:
            raise ValueError(f"max_ready_windows must be at least 1, got {max_ready_windows!r}")
        self.max_ready_windows = int(max_ready_windows)
        self._resample = resampler or resample_window
        self._streams: dict[StreamKey, _Stream] = {}
        self._anchors: dict[str, float] = {}  # grid (device or subject) -> gateway time of the window grid's origin
        self._ready: collections.deque[Window] = collections.deque()

    # -- streams ------------------------------------------------------------------------------------------

    def add_stream(
        self, key: StreamKey | tuple[str, str], sample_rate_hz: float, *, channels: int = 1, config: IngestConfig | None = None,
        grid: str | None = None,
    ) -> StreamKey:
        """Register a stream; its ring is allocated here, once, and never grows.

        ``grid``: the window grid the stream is cut on, by name; streams of one grid with the same hop get windows
        at the same gateway times. Default: the stream's device. Give the devices a person wears one grid (their
        subject) and their windows coincide, so heads can fuse them by window time."""
        key = key if isinstance(key, StreamKey) else StreamKey(*key)
        if key in self._streams:
            raise DuplicateStreamError(f"stream {key} was already added")
        if not (isinstance(sample_rate_hz, (int, float)) and math.isfinite(sample_rate_hz) and sample_rate_hz > 0):
            raise ValueError(f"{key}: sample_rate_hz must be a positive number, got {sample_rate_hz!r}")
        if not (isinstance(channels, int) and channels >= 1):
            raise ValueError(f"{key}: channels must be a positive integer, got {channels!r}")
        if grid is not None and (not isinstance(grid, str) or not grid):
            raise ValueError(f"{key}: grid must be a non-empty string, got {grid!r}")
        self._streams[key] = _Stream(key, sample_rate_hz, channels, config or IngestConfig(), grid or key.device)
        return key

    @property
    def keys(self) -> tuple[StreamKey, ...]:
        return tuple(self._streams)

    def model_rate_hz(self, key) -> float:
        return self._get(key).model_fs

    def _get(self, key) -> _Stream:
        key = key if isinstance(key, StreamKey) else StreamKey(*key)
        try:
            return self._streams[key]
        except KeyError:
            known = ", ".join(str(k) for k in self._streams) or "none"
            raise UnknownStreamError(f"unknown stream {key}; added streams: {known}") from None

    # -- input --------------------------------------------------------------------------------------------

    def push(
        self,
        key,
        samples,
        gateway_times_s,
        *,
        arrival_time_s: float | None = None,
        lost_before: int | None = None,
    ) -> int:
        """Add samples ((n,) or (n, channels), physical units) with their gateway times ((n,) seconds).

        ``lost_before``: when the caller knows from sequence numbers how many samples were lost just before
        this push (``SampleBlock.samples_lost_before``), the push is placed by sample count: it continues the
        stream after exactly that many gap slots (counted in ``samples_lost["packet_loss"]``), and its gateway
        times only need to agree within ``late_tolerance_s`` (clock-fit jitter is absorbed, never read as a
        gap or as late data). Without it, gaps and late data are read from the gateway times.

        Windows completed by these samples are cut at once (so a burst never overflows the ring) and queued
        for ``pop_windows``. Returns how many windows this push emitted. Raises a typed ``IngestError`` for a
        malformed push, after counting its samples as received and dropped ("malformed").
        """
        stream = self._get(key)
        if lost_before is not None and (
            isinstance(lost_before, bool) or not isinstance(lost_before, (int, np.integer)) or lost_before < 0
        ):
            raise IngestError(f"{stream.key}: lost_before must be a non-negative integer, got {lost_before!r}")
        if lost_before:  # lost whatever becomes of this push
            stream.lost["packet_loss"] += int(lost_before)
        values, times = self._validate(stream, samples, gateway_times_s)
        n = len(times)
        if n == 0:
            return 0
        stream.received += n
        finite_time = np.isfinite(times)
        if arrival_time_s is None:
            arrival_time_s = float(times[finite_time].max()) if finite_time.any() else math.nan
        if not finite_time.all():
            self._drop(stream, "invalid", int(n - finite_time.sum()), "gateway time is NaN or Inf")
            values, times = values[finite_time], times[finite_time]
        emitted_before = stream.windows_emitted
        if lost_before is not None and len(times):
            self._place_by_count(stream, values, times, int(lost_before), float(arrival_time_s))
        else:
            self._place(stream, values, times, float(arrival_time_s))
        return stream.windows_emitted - emitted_before

    def push_block(self, key, block, *, arrival_time_s: float | None = None) -> int:
        """``push`` a firmware_bridge ``SampleBlock``: ``.samples`` (n, channels), ``.gateway_times_s``, and
        ``.samples_lost_before`` as ``lost_before`` (so do not also call ``mark_lost`` for those)."""
        return self.push(
            key,
            block.samples,
            block.gateway_times_s,
            arrival_time_s=arrival_time_s,
            lost_before=getattr(block, "samples_lost_before", None),
        )

    def mark_lost(self, key, n_samples: int, reason: str = "packet_loss") -> None:
        """Count samples the device sent that never arrived (e.g. ``ReassemblyStats.samples_lost`` deltas)."""
        stream = self._get(key)
        if isinstance(n_samples, bool) or not isinstance(n_samples, (int, np.integer)) or n_samples < 0:
            raise IngestError(f"{stream.key}: n_samples must be a non-negative integer, got {n_samples!r}")
        stream.lost[str(reason)] += int(n_samples)

    def restart(self, key, reason: str = "restart") -> int:
        """Declare a discontinuity (e.g. the device disconnected): pending samples are dropped with ``reason``
        and the stream re-anchors on its next sample. Returns how many samples were dropped."""
        stream = self._get(key)
        return self._restart(stream, str(reason), "restarted by the caller")

    def _validate(self, stream: _Stream, samples, gateway_times_s) -> tuple[np.ndarray, np.ndarray]:
        key = stream.key
        try:
            values = _as_real_array(samples, "samples", SampleShapeError, key)
            if values.ndim == 1 and stream.channels == 1:
                values = values[:, None]
            if values.ndim != 2:
                raise SampleShapeError(
                    f"{key}: samples must be shaped (n, {stream.channels})"
                    + (" or (n,)" if stream.channels == 1 else "")
                    + f", got shape {values.shape}"
                )
            if values.shape[1] != stream.channels:
                raise ChannelCountError(f"{key}: expected {stream.channels} channel(s), got {values.shape[1]}")
            times = _as_real_array(gateway_times_s, "gateway_times_s", TimestampError, key)
            if times.shape != (values.shape[0],):
                raise TimestampError(f"{key}: expected {values.shape[0]} gateway times (n,), got shape {times.shape}")
        except IngestError as exc:
            n = _leading_length(samples)
            stream.received += n
            self._drop(stream, "malformed", n, str(exc))
            raise
        return values.astype(np.float64, copy=False), times.astype(np.float64, copy=False)

    # -- placing samples in time --------------------------------------------------------------------------

    def _place(self, stream: _Stream, values: np.ndarray, times: np.ndarray, arrival: float) -> None:
        config = stream.config
        i, n = 0, len(times)
        while i < n:
            if stream.last_time is None:
                self._begin(stream, float(times[i]))
                self._write(stream, values[i : i + 1], times[i : i + 1], arrival)
                i += 1
                continue
            steps = np.diff(times[i:], prepend=stream.last_time)
            abnormal = (steps <= 0) | (steps >= stream.gap_threshold_s)
            run = int(np.argmax(abnormal)) if abnormal.any() else n - i
            if run:
                self._write(stream, values[i : i + run], times[i : i + run], arrival)
                i += run
                continue
            step = float(steps[0])
            if step <= 0 and -step <= config.late_tolerance_s:
                late = times[i:] <= stream.last_time
                count = int(np.argmin(late)) if not late.all() else n - i
                self._drop(stream, "late", count, f"gateway time {times[i]:.6f} s not after {stream.last_time:.6f} s")
                i += count
            elif step <= 0:
                self._restart(stream, "clock_jump", f"gateway time went back {-step:.3f} s")
            else:
                missing = round(step * stream.fs_in) - 1
                if missing / stream.fs_in <= config.max_gap_fill_s:
                    self._note_gap_filled(stream, missing)
                    filler_times = np.linspace(stream.last_time, times[i], missing + 2)[1:-1]
                    self._write(stream, None, filler_times, arrival, cut=False)
                else:
                    self._restart(stream, "gap", f"gateway time leapt {step:.3f} s forward")

    def _place_by_count(self, stream: _Stream, values: np.ndarray, times: np.ndarray, lost_before: int, arrival: float) -> None:
        """Place a block known to follow the previous one after exactly ``lost_before`` missing samples."""
        config = stream.config
        if stream.last_time is not None:
            expected = stream.last_time + (lost_before + 1) / stream.fs_in
            deviation = float(times[0]) - expected
            if abs(deviation) > config.late_tolerance_s:
                self._restart(stream, "clock_jump", f"gateway time is {deviation:+.3f} s off the sample count")
            elif lost_before / stream.fs_in > config.max_gap_fill_s:
                self._restart(stream, "gap", f"{lost_before} sample(s) lost ({lost_before / stream.fs_in:.3f} s)")
        if stream.last_time is None:
            self._begin(stream, float(times[0]))
        elif lost_before:
            self._note_gap_filled(stream, lost_before)
            filler = np.linspace(stream.last_time, max(float(times[0]), stream.last_time), lost_before + 2)[1:-1]
            self._write(stream, None, filler, arrival, cut=False)
        if stream.last_time is not None:  # keep the ring's times non-decreasing through clock-fit jitter
            times = np.maximum.accumulate(np.maximum(times, stream.last_time))
        self._write(stream, values, times, arrival)

    def _note_gap_filled(self, stream: _Stream, slots: int) -> None:
        stream.events["gap_filled"] += 1
        self._log_once(stream, "gap_filled", f"{slots} missing sample(s) filled by interpolation (see gap_fraction)")

    def _begin(self, stream: _Stream, t: float) -> None:
        """(Re)start a stream at time ``t`` on its grid (device or subject): the first window starts at or after ``t``."""
        anchor = self._anchors.setdefault(stream.grid, t)
        stream.next_index = math.ceil((t - anchor) / stream.config.hop_s - 1e-9)
        stream.windows_since_start = 0

    def _restart(self, stream: _Stream, reason: str, detail: str) -> int:
        pending = stream.pending
        if pending:
            stream.dropped[reason] += pending
        stream.events[reason] += 1
        self._log_once(stream, reason, f"{detail}; stream re-anchored, {pending} pending sample(s) dropped")
        stream.ring.clear()
        stream.windowed_upto = stream.ring.end
        stream.previous_real = None
        stream.last_time = None
        return pending

    def _write(self, stream: _Stream, values: np.ndarray | None, times: np.ndarray, arrival: float, *, cut: bool = True) -> None:
        """Append slots (``values=None``: gap fillers), cutting windows after each chunk. ``cut=False`` (gap
        fillers) defers cutting to the next write, whose first real sample closes the gap, unless the ring
        is full."""
        ring = stream.ring
        start = 0
        while start < len(times):
            stop = start + min(ring.free, len(times) - start)
            chunk_times = times[start:stop]
            if values is None:
                chunk = np.zeros((stop - start, stream.channels))
                real = invalid = np.zeros(stop - start, dtype=bool)
            else:
                chunk = values[start:stop]
                invalid = ~np.isfinite(chunk).all(axis=1)
                real = ~invalid
                if invalid.any():
                    chunk = np.where(invalid[:, None], 0.0, chunk)
                    self._drop(stream, "invalid", int(invalid.sum()), "sample value is NaN or Inf")
            ring.append(chunk, chunk_times, real, invalid)
            stream.last_time = float(chunk_times[-1])
            start = stop
            if cut or start < len(times):
                self._cut_windows(stream, arrival)

    # -- windows ------------------------------------------------------------------------------------------

    def _window_start_s(self, stream: _Stream) -> float:
        return self._anchors[stream.grid] + stream.next_index * stream.config.hop_s

    def _cut_windows(self, stream: _Stream, arrival: float) -> None:
        ring = stream.ring
        while True:
            start_s = self._window_start_s(stream)
            first = ring.first_at_or_after(start_s)
            if first == ring.end:  # nothing at or after the start yet: the newest slot may prove the nearest
                self._release(stream, max(ring.start, first - 1))
                return
            if first > ring.start and start_s - ring.time(first - 1) < ring.time(first) - start_s:
                first -= 1  # the window starts at the slot nearest its grid time
            self._release(stream, first)
            if ring.end - first < stream.n_in:
                return
            self._emit(stream, first, start_s, arrival)
            stream.next_index += 1

    def _release(self, stream: _Stream, upto: int) -> None:
        """Forget slots before the next window; real ones that never entered a window are dropped."""
        ring = stream.ring
        if upto > stream.windowed_upto:
            unwindowed = ring.count_real(stream.windowed_upto, upto)
            reason = "alignment" if stream.windows_since_start == 0 else "hop_gap"
            self._drop(stream, reason, unwindowed, "samples outside every window")
            stream.windowed_upto = upto
        if upto > ring.start:
            real = ring.real(ring.start, upto)
            if real.any():  # kept so that a gap at the next window's start is interpolated, not held
                last = ring.start + len(real) - 1 - int(np.argmax(real[::-1]))
                stream.previous_real = (last, ring.values(last, last + 1)[0].copy())
        ring.release(upto)

    def _emit(self, stream: _Stream, first: int, start_s: float, arrival: float) -> None:
        ring, quality = stream.ring, stream.config.quality
        stop = first + stream.n_in
        values, real, invalid = ring.values(first, stop), ring.real(first, stop), ring.invalid(first, stop)
        if stop > stream.windowed_upto:
            stream.windowed += ring.count_real(max(first, stream.windowed_upto), stop)
            stream.windowed_upto = stop
        n_real = int(np.count_nonzero(real))
        flags = assess_window(values, real, invalid, quality)
        samples = self._resample(self._gap_free(stream, first, stop).T, stream.fs_in, stream.model_fs, stream.n_out)
        if not np.isfinite(samples).all():  # a custom resampler misbehaved: never pass a NaN on
            samples = np.nan_to_num(samples, nan=0.0, posinf=0.0, neginf=0.0)
            flags = flags if "nonfinite" in flags else flags + ("nonfinite",)
        withheld = is_withheld(flags, n_real, quality)
        window = Window(
            key=stream.key,
            start_s=start_s,
            end_s=start_s + stream.config.window_length_s,
            samples=samples,
            fs=stream.model_fs,
            quality=flags,
            withheld=withheld,
            arrival_time_s=arrival,
            index=stream.next_index,
            gap_fraction=1.0 - n_real / stream.n_in,
        )
        stream.windows_emitted += 1
        stream.windows_since_start += 1
        stream.windows_withheld += withheld
        stream.windows_flagged.update(flags)
        if len(self._ready) >= self.max_ready_windows:
            dropped = self._ready.popleft()
            victim = self._streams[dropped.key]
            victim.windows_dropped["ingest_overflow"] += 1
            self._log_once(victim, "ingest_overflow", f"ready-window queue full ({self.max_ready_windows})")
        self._ready.append(window)

    @staticmethod
    def _gap_free(stream: _Stream, first: int, stop: int) -> np.ndarray:
        """The window's values with gap slots interpolated between the real samples either side of them,
        looking past the window's edges (previous released real slot, next real slot in the ring)."""
        ring = stream.ring
        values, real = ring.values(first, stop), ring.real(first, stop)
        if real.all() or not real.any():  # no valid sample at all: zeros (the window is withheld)
            return fill_gaps(values, real)
        before = after = None
        if not real[0] and stream.previous_real is not None:
            index, row = stream.previous_real
            before = (index - first, row)
        if not real[-1]:
            beyond = ring.real(stop, ring.end)
            if beyond.any():
                index = int(np.argmax(beyond))
                after = (stop - first + index, ring.values(stop + index, stop + index + 1)[0])
        return fill_gaps(values, real, before=before, after=after)

    # -- output and counters ------------------------------------------------------------------------------

    def pop_windows(self, max_windows: int | None = None) -> list[Window]:
        """Emitted windows, oldest first (per stream in grid order), withheld ones included."""
        count = len(self._ready) if max_windows is None else min(max_windows, len(self._ready))
        return [self._ready.popleft() for _ in range(count)]

    @property
    def windows_ready(self) -> int:
        return len(self._ready)

    def account(self, key) -> StreamAccount:
        return self._get(key).account()

    def accounts(self) -> dict[StreamKey, StreamAccount]:
        return {key: stream.account() for key, stream in self._streams.items()}

    @property
    def buffer_bytes(self) -> int:
        """Bytes held by all rings (fixed once the streams are added)."""
        return sum(stream.ring.nbytes for stream in self._streams.values())

    def _drop(self, stream: _Stream, reason: str, count: int, detail: str) -> None:
        if count <= 0:
            return
        stream.dropped[reason] += count
        self._log_once(stream, reason, f"{detail}: {count} sample(s) dropped")

    def _log_once(self, stream: _Stream, reason: str, message: str) -> None:
        if reason in stream.logged:
            logger.debug("%s: %s: %s", stream.key, reason, message)
            return
        stream.logged.add(reason)
        level = logging.INFO if reason in ROUTINE_REASONS else logging.WARNING
        logger.log(level, "%s: %s: %s (logged once per stream; further ones are counted)", stream.key, reason, message)
