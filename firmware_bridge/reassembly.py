"""One stream's packets -> in-order blocks of physical samples on the gateway clock, with exact accounting.

Sequence numbers are 16-bit and wrap; the reassembler extends them to unbounded integers by taking, for each
packet, the nearest extension to the next expected number (a distance in [-32768, 32767]).

- in order: delivered at once;
- ahead (a gap or a reordering): held until the missing packets come or until a packet ``horizon`` sequence
  numbers ahead of the first missing one is held (or, with ``max_wait_s``, the oldest held packet waited that
  long): then the missing ones are declared lost and delivery goes on;
- behind: a duplicate (same sequence and timestamp as one delivered or held), a late packet (its number was
  declared lost before it came; dropped and counted), or otherwise (the number was delivered with another
  timestamp, or lies further back than the last 4096 remembered) a device restart: what is held is
  flushed and the stream starts over from that packet;
- a jump ahead of more than ``horizon`` numbers that the device timestamps contradict (the time elapsed
  could not hold that many packets of 1..255 samples) is a restart too, not a loss.

Accounting (``ReassemblyStats``), exact at every moment, for packets and for samples alike::

    received = delivered + duplicated + late + stale + rejected + pending

``stale``: a packet reordered behind the first packet of a run (the stream's first packet, or the first after a
restart, is delivered at once: there is nothing to wait for). It lies before the output timeline, so it is neither
delivered (that would put the output back in time) nor counted lost. It is told from a device restart by the
device clock, not by how far back its number lies (the horizon bounds the wait for packets ahead, not how far a
packet can be reordered): its timestamps place it, with room for the packets between, before that first packet
(each of them 1..255 samples), and it arrives no later than a reordered packet can (within the clock's
``jump_threshold_s`` of the arrival envelope). A number behind the first packet that the clock contradicts (a later
timestamp, or one from long ago: a rebooted device counting from zero) is a restart.

``*_lost`` counts what the output timeline misses: sequence numbers skipped, and the samples they held,
known from the device timestamps (the gap between the packets either side, at the stream's sample rate)
or, where timestamps cannot tell (a restart, a clock jump), from the packet sizes. A late packet is one of
the lost ones arriving after all, so the number that never arrived is ``packets_lost - packets_late``.
"""

from __future__ import annotations

import collections
import math
from dataclasses import dataclass, field

import numpy as np

from .clock import ClockMapper
from .description import StreamDescription
from .packet import SEQUENCE_MODULO, Packet

_HALF_SEQUENCE = SEQUENCE_MODULO // 2
_MEMORY = 4096  # sequence numbers remembered as delivered or lost, to tell duplicates from late packets


@dataclass(frozen=True, eq=False)
class SampleBlock:
    """Consecutive samples of one packet, in physical units on the gateway clock.

    ``samples_lost_before``: samples the stream lost just before this block (0 when contiguous), so a consumer
    can mark the gap (``Ingest.mark_lost``) instead of joining both sides.
    """

    stream_id: int
    first_sequence: int
    samples: np.ndarray  # (n, channels) float64, raw * scale + offset
    gateway_times_s: np.ndarray  # (n,) float64
    device_times_us: np.ndarray  # (n,) float64, unwrapped device clock
    samples_lost_before: int = 0


@dataclass
class ReassemblyStats:
    """Counters of one stream; see the module docstring for the identities they satisfy."""

    packets_received: int = 0
    packets_delivered: int = 0
    packets_lost: int = 0
    packets_duplicated: int = 0
    packets_late: int = 0
    packets_stale: int = 0
    packets_rejected: int = 0
    packets_pending: int = 0
    samples_received: int = 0
    samples_delivered: int = 0
    samples_lost: int = 0
    samples_duplicated: int = 0
    samples_late: int = 0
    samples_stale: int = 0
    samples_rejected: int = 0
    samples_pending: int = 0
    gaps: int = 0
    restarts: int = 0
    clock_jumps: int = 0
    rejected_reasons: dict = field(default_factory=dict)


@dataclass
class _Held:
    packet: Packet
    device_us: int
    arrival_s: float


class StreamReassembler:
    """Reassemble one described stream. ``push`` every decoded packet of that stream, in arrival order."""

    def __init__(self, stream: StreamDescription, *, horizon: int = 8, max_wait_s: float | None = None,
                 clock: ClockMapper | None = None):
        if not 1 <= int(horizon) < _HALF_SEQUENCE:
            raise ValueError(f"horizon must be 1..{_HALF_SEQUENCE - 1}, got {horizon!r}")
        self.stream = stream
        self.horizon = int(horizon)
        self.max_wait_s = max_wait_s
        self.clock = clock if clock is not None else ClockMapper()
        self.stats = ReassemblyStats()
        self._us_per_sample = 1e6 / float(stream.sample_rate_hz)
        self._next: int | None = None  # extended sequence number expected next
        self._run_start = 0  # extended sequence number the stream (re)started from
        self._run_first_us = 0  # unwrapped device time of that packet's first sample
        self._held: dict[int, _Held] = {}
        self._delivered = collections.OrderedDict()  # extended sequence -> raw timestamp
        self._skipped = collections.OrderedDict()  # extended sequence -> None
        self._last: _Held | None = None  # last delivered packet
        self._lost_before = 0

    # -- public ---------------------------------------------------------------------------------------
    def push(self, packet: Packet, arrival_time_s: float) -> list[SampleBlock]:
        """Take one packet; return the blocks that became deliverable (possibly none)."""
        n = packet.sample_count
        self.stats.packets_received += 1
        self.stats.samples_received += n
        reason = self._rejection(packet, arrival_time_s)
        if reason is not None:
            self.stats.packets_rejected += 1
            self.stats.samples_rejected += n
            self.stats.rejected_reasons[reason] = self.stats.rejected_reasons.get(reason, 0) + 1
            return []
        device_us = self.clock.unwrap(packet.timestamp_us)
        last_sample_us = device_us + round((n - 1) * self._us_per_sample)
        # How late this packet is against the clock fit so far (before it joins the fit): a reordered packet is late
        # by a connection event or a few; a packet from before a device restart, by as long as the device ran since.
        lateness_s = self.clock.residual(last_sample_us, arrival_time_s) if self.clock.ready else 0.0
        if self.clock.observe(last_sample_us, arrival_time_s):
            self.stats.clock_jumps += 1
        held = _Held(packet, device_us, float(arrival_time_s))
        out: list[SampleBlock] = []
        if self._next is None:
            self._next = self._run_start = packet.sequence
            self._run_first_us = device_us
        distance = (packet.sequence - self._next + _HALF_SEQUENCE) % SEQUENCE_MODULO - _HALF_SEQUENCE
        extended = self._next + distance
        if distance < 0:
            if self._delivered.get(extended) == packet.timestamp_us:
                return self._count_duplicate(n)
            if extended in self._skipped:  # declared lost already: too late to place
                self.stats.packets_late += 1
                self.stats.samples_late += n
                return []
            if extended not in self._delivered and self._before_run_start(extended, device_us, n, lateness_s):
                # Reordered behind the first packet of the run, which was delivered at once.
                self.stats.packets_stale += 1
                self.stats.samples_stale += n
                return []
            # Delivered with another timestamp, or further back than we remember: the device started over.
            out = self.flush()
            self._restart_at(extended, held)
        if extended in self._held:
            return self._count_duplicate(n)
        self._held[extended] = held
        self.stats.packets_pending += 1
        self.stats.samples_pending += n
        out.extend(self._drain(float(arrival_time_s)))
        return out

    def flush(self) -> list[SampleBlock]:
        """Deliver everything held, declaring the missing numbers between held packets lost."""
        out: list[SampleBlock] = []
        while self._held:
            if self._next not in self._held:
                self._declare_lost(min(self._held))
            out.append(self._deliver(self._held.pop(self._next)))
        return out

    # -- internals ------------------------------------------------------------------------------------
    def _rejection(self, packet: Packet, arrival_time_s: float) -> str | None:
        s = self.stream
        if not math.isfinite(arrival_time_s):
            return "arrival time not finite"
        if packet.stream_id != s.stream_id:
            return f"stream id {packet.stream_id} (expected {s.stream_id})"
        if packet.sample_format != s.sample_format:
            return f"sample format {packet.sample_format.name.lower()} (described {s.sample_format.name.lower()})"
        if packet.channels != s.channels:
            return f"{packet.channels} channels (described {s.channels})"
        return None

    def _before_run_start(self, extended: int, device_us: int, n: int, lateness_s: float) -> bool:
        """Whether a packet numbered behind the run's first packet was made before it (a reordered packet)."""
        behind = self._run_start - extended  # this packet and the behind - 1 packets between it and the first
        if behind <= 0:
            return False
        elapsed = round((self._run_first_us - device_us) / self._us_per_sample)  # samples from it to the first
        fits = n + (behind - 1) <= elapsed <= n + 255 * (behind - 1)
        return fits and lateness_s <= self.clock.jump_threshold_s

    def _restart_at(self, extended: int, held: _Held) -> None:
        """The device started over with this packet: new run, fresh memories, clock fit re-anchored on it."""
        self.stats.restarts += 1
        self._delivered.clear()
        self._skipped.clear()
        self._next = self._run_start = extended
        self._run_first_us = held.device_us
        last_sample_us = held.device_us + round((held.packet.sample_count - 1) * self._us_per_sample)
        self.clock.reanchor(last_sample_us, held.arrival_s)  # its clock restarted with it

    def _count_duplicate(self, n: int) -> list[SampleBlock]:
        self.stats.packets_duplicated += 1
        self.stats.samples_duplicated += n
        return []

    def _drain(self, now_s: float) -> list[SampleBlock]:
        out: list[SampleBlock] = []
        while self._held:
            if self._next in self._held:
                out.append(self._deliver(self._held.pop(self._next)))
                continue
            waited_too_long = self.max_wait_s is not None and now_s - min(
                h.arrival_s for h in self._held.values()
            ) >= self.max_wait_s
            if max(self._held) - self._next >= self.horizon or waited_too_long:
                self._declare_lost(min(self._held))
                continue
            break
        return out

    def _declare_lost(self, first_held: int) -> None:
        """Sequence numbers self._next .. first_held - 1 will not be delivered; count them and their samples."""
        missing = first_held - self._next
        following = self._held[first_held]
        lost_samples = None
        if self._last is not None:
            elapsed_us = following.device_us - self._last.device_us
            from_time = round(elapsed_us / self._us_per_sample) - self._last.packet.sample_count
            if missing <= from_time <= missing * 255:  # each missing packet held 1..255 samples
                lost_samples = from_time
            elif missing > self.horizon:
                # A long jump of the sequence that the device clock does not back: the device started over
                # (its new sequence happened to land ahead). Nothing is known lost; the stream restarts here.
                self._restart_at(first_held, following)
                return
        self.stats.packets_lost += missing
        self.stats.gaps += 1
        if lost_samples is None:  # no usable timestamps: assume the packets were the size of their neighbour
            size = (self._last or following).packet.sample_count
            lost_samples = missing * size
        self.stats.samples_lost += lost_samples
        self._lost_before += lost_samples
        for sequence in range(max(self._next, first_held - _MEMORY), first_held):
            self._remember(self._skipped, sequence, None)
        self._next = first_held

    def _deliver(self, held: _Held) -> SampleBlock:
        packet = held.packet
        n = packet.sample_count
        self.stats.packets_pending -= 1
        self.stats.samples_pending -= n
        self.stats.packets_delivered += 1
        self.stats.samples_delivered += n
        self._remember(self._delivered, self._next, packet.timestamp_us)
        self._next += 1
        self._last = held
        device_times = held.device_us + np.arange(n) * self._us_per_sample
        samples = packet.samples.astype(np.float64) * self.stream.scale + self.stream.offset
        block = SampleBlock(
            stream_id=packet.stream_id,
            first_sequence=packet.sequence,
            samples=samples,
            gateway_times_s=np.asarray(self.clock.to_gateway(device_times), dtype=np.float64).reshape(n),
            device_times_us=device_times,
            samples_lost_before=self._lost_before,
        )
        self._lost_before = 0
        return block

    @staticmethod
    def _remember(memory: collections.OrderedDict, key: int, value) -> None:
        memory[key] = value
        if len(memory) > _MEMORY:
            memory.popitem(last=False)


__all__ = ["SampleBlock", "ReassemblyStats", "StreamReassembler"]
