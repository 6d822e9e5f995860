"""What the emulated wearables that stream sampled signals share (native packets, Polar PMD frames): the streams,
their signals, and the loop that cuts them into packets at the device clock's pace.

Samples are taken at the nominal rate of the device clock and time-stamped by it, so a drifting device delivers
``rate * (1 + drift)`` samples per true second, as a real crystal does. Streams keep running, their sequence
numbers counting, across disconnections (PROTOCOL.md, section 1).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from biomoe_edge.firmware_bridge.description import StreamDescription
from biomoe_edge.firmware_bridge.emulation.signals import SignalSource, quantise, recorded_signals, simulated_signals
from biomoe_edge.firmware_bridge.emulation.wearable import EmulatedWearable, StreamCounters
from biomoe_edge.firmware_bridge.packet import SEQUENCE_MODULO


@dataclass
class _Stream:
    description: StreamDescription
    source: SignalSource
    samples_per_packet_cap: int | None = None  # CONFIGURE; None = fill to the MTU (up to the packet interval)
    running: bool = False
    origin_s: float = 0.0  # device time of sample 0 since the last START
    index: int = 0  # index of the next packet's first sample since the last START
    next_count: int = 1  # samples in the next packet
    sequence: int = 0

    def due_s(self) -> float:
        return self.origin_s + (self.index + self.next_count) / self.description.sample_rate_hz


class StreamingWearable(EmulatedWearable):
    """A wearable streaming sampled signals. Subclasses say how samples are described (``_describe``), how many
    fit a notification (``_fit``) and how a packet is encoded (``_payload``).

    Args (beside ``EmulatedWearable``'s):
        signals: "simulated" (NeuroKit2), a mapping ``{modality: (values, rate_hz)}``, a CSV path (with
            ``recording_rate_hz``), or a list of ``SignalSource``.
        modalities: streams, in stream-id order.
        packet_interval_s: packets carry at most this much signal (bounds latency of slow streams).
    """

    def __init__(self, name: str, *, signals="simulated", modalities=(), packet_interval_s: float = 0.25,
                 recording_rate_hz: float | None = None, **options) -> None:
        super().__init__(name, **options)
        if not packet_interval_s > 0:
            raise ValueError(f"packet_interval_s must be > 0, got {packet_interval_s!r}")
        self.packet_interval_s = float(packet_interval_s)
        self._streams: list[_Stream] = []
        for stream_id, source in enumerate(self._signal_sources(signals, tuple(modalities), recording_rate_hz)):
            description = self._describe(stream_id, source)
            self._streams.append(_Stream(description, source, sequence=self._injector.integer(SEQUENCE_MODULO)))
            self.counters.streams[stream_id] = StreamCounters()

    def _signal_sources(self, signals, modalities, recording_rate_hz) -> list[SignalSource]:
        if isinstance(signals, str) and signals == "simulated":
            return simulated_signals(list(modalities), seed=self.seed)
        if isinstance(signals, (list, tuple)) and all(isinstance(s, SignalSource) for s in signals):
            return list(signals)
        if isinstance(signals, (str, Mapping)) or hasattr(signals, "__fspath__"):
            return recorded_signals(signals, sample_rate_hz=recording_rate_hz, modalities=modalities)
        raise ValueError(f"signals must be 'simulated', a recording mapping, a CSV path or SignalSources; got {signals!r}")

    # What each kind of packet decides
    def _describe(self, stream_id: int, source: SignalSource) -> StreamDescription:
        """The stream's description: its wire format and the scale and offset back to physical units."""
        raise NotImplementedError

    def _fit(self, stream: _Stream, mtu: int) -> int:
        """How many samples of ``stream`` fit one notification at ``mtu``."""
        raise NotImplementedError

    def _payload(self, stream: _Stream, raw, count: int) -> bytes:
        """The notification carrying ``raw`` (count, channels), the stream's next ``count`` samples."""
        raise NotImplementedError

    # Streams
    def _start_now(self) -> None:
        self._start_streams(range(len(self._streams)))

    def _start_streams(self, stream_ids) -> None:
        now = self.device_time_s()
        for stream_id in stream_ids:
            stream = self._streams[stream_id]
            if not stream.running:
                stream.running = True
                stream.origin_s = now
                stream.index = 0
                stream.next_count = self._packet_samples(stream)

    def _packet_samples(self, stream: _Stream) -> int:
        d = stream.description
        fit = max(1, self._fit(stream, self._current_mtu()))
        cap = stream.samples_per_packet_cap or max(1, int(round(d.sample_rate_hz * self.packet_interval_s)))
        return min(fit, cap)

    async def _run(self) -> None:
        while True:
            # Plan from the state as it is now; a control write or subscription after this clear sets the event
            # again and the sleep below ends early to plan again (no wake-up is lost).
            self._wake.clear()
            if self._subscribed and self._backlog:
                await self._flush_backlog()
            running = [s for s in self._streams if s.running]
            next_disconnect = self._injector.next_disconnect()
            candidates = [s.due_s() for s in running] + ([next_disconnect] if next_disconnect is not None else [])
            if not candidates:
                await self._wake.wait()
                continue
            due = min(candidates)
            if not await self._sleep_until(due):
                continue  # woken by a control write or a subscription: plan again
            if next_disconnect is not None and next_disconnect <= due:
                self._injector.disconnect_done(next_disconnect)
                await self.disconnect()
                continue
            await self._emit(min(running, key=lambda s: s.due_s()))

    async def _emit(self, stream: _Stream) -> None:
        d = stream.description
        count = stream.next_count
        raw = quantise(stream.source.window(stream.index, count), d.scale, d.offset, d.sample_format)
        payload = self._payload(stream, raw, count)
        stream.sequence = (stream.sequence + 1) % SEQUENCE_MODULO
        stream.index += count
        stream.next_count = self._packet_samples(stream)
        self._count_generated(d.stream_id, count)
        await self._deliver_or_keep(d.stream_id, payload, count)
