"""The native protocol's GATT server (PROTOCOL.md): data (notify), control (write: START, STOP, CONFIGURE) and
device description (read) in one service, each behind the board's link security (section 11). Packets are encoded with ``firmware_bridge.packet`` and sized from
the ATT MTU negotiated on the current connection (Bumble truncates a notification to MTU - 3 bytes)."""

from __future__ import annotations

from dataclasses import replace

from bumble import att, gatt
from bumble.device import Connection

from biomoe_edge.firmware_bridge import gatt as native_gatt
from biomoe_edge.firmware_bridge.description import DeviceDescription, StreamDescription, encode_description
from biomoe_edge.firmware_bridge.emulation.signals import DEFAULT_MODALITIES, SignalSource
from biomoe_edge.firmware_bridge.emulation.streaming import StreamingWearable, _Stream
from biomoe_edge.firmware_bridge.exc import ControlError
from biomoe_edge.firmware_bridge.packet import TIMESTAMP_MODULO, SampleFormat, encode_packet, max_samples_per_packet


class NativeWearable(StreamingWearable):
    """A wearable speaking the native protocol from real or simulated signals (``EmulatedWearable`` and
    ``StreamingWearable`` options, and):

        sample_format: the packets' sample format ("int16", "int24", "float32"), quantised with a scale and an
            offset that span each signal. firmware_version: what the description reports.
    """

    def __init__(self, name: str, *, modalities=DEFAULT_MODALITIES, sample_format="int16",
                 firmware_version: str = "emulated-1.0", **options) -> None:
        self.sample_format = SampleFormat.parse(sample_format)
        self.firmware_version = firmware_version
        super().__init__(name, modalities=modalities, **options)

    def _describe(self, stream_id: int, source: SignalSource) -> StreamDescription:
        scale, offset = source.quantisation(self.sample_format)
        return StreamDescription(stream_id, source.modality, source.sample_rate_hz, source.channels,
                                 self.sample_format, scale, offset, source.units)

    def description(self) -> DeviceDescription:
        return DeviceDescription(self.firmware_version, tuple(s.description for s in self._streams))

    def _fit(self, stream: _Stream, mtu: int) -> int:
        d = stream.description
        return max_samples_per_packet(mtu, d.channels, d.sample_format)

    def _payload(self, stream: _Stream, raw, count: int) -> bytes:
        d = stream.description
        timestamp_us = self.clock_start_us + round((stream.origin_s + stream.index / d.sample_rate_hz) * 1e6)
        return encode_packet(stream_id=d.stream_id, sequence=stream.sequence, timestamp_us=timestamp_us % TIMESTAMP_MODULO,
                             samples=raw, sample_format=d.sample_format)

    # GATT server
    def _services(self) -> list[gatt.Service]:
        props = gatt.Characteristic.Properties
        data = self._data_characteristic_for(native_gatt.DATA_CHAR_UUID)
        # Every protocol characteristic behind the board's security (PROTOCOL.md section 11): the description is
        # not read, START not written, the data CCCD not set on a link short of it.
        control = gatt.Characteristic(
            native_gatt.CONTROL_CHAR_UUID, props.WRITE, gatt.Characteristic.WRITEABLE, self.guarded_value(write=self._on_control)
        )
        description = gatt.Characteristic(
            native_gatt.DESCRIPTION_CHAR_UUID,
            props.READ,
            gatt.Characteristic.READABLE,
            self.guarded_value(read=lambda connection: encode_description(self.description())),
        )
        return [gatt.Service(native_gatt.SERVICE_UUID, [data, control, description])]

    def _on_control(self, connection: Connection, value: bytes) -> None:
        """CharacteristicValue write handler; an ATT_Error becomes the ATT Error Response."""
        try:
            command = native_gatt.decode_control(value)
        except ControlError as exc:
            raise att.ATT_Error(exc.att_error) from exc
        streams = self._select(command.stream_id)
        if command.opcode is native_gatt.ControlOpcode.START:
            for stream in streams:
                d = stream.description
                if max_samples_per_packet(connection.att_mtu, d.channels, d.sample_format) == 0:
                    raise att.ATT_Error(native_gatt.ATT_ERROR_MTU_TOO_SMALL)
            self._start_streams(s.description.stream_id for s in streams)
        elif command.opcode is native_gatt.ControlOpcode.STOP:
            for stream in streams:
                stream.running = False
        else:
            self._configure(streams, command)
        self._wake.set()

    def _select(self, stream_id: int) -> list[_Stream]:
        if stream_id == native_gatt.ALL_STREAMS:
            return list(self._streams)
        if not 0 <= stream_id < len(self._streams):
            raise att.ATT_Error(native_gatt.ATT_ERROR_UNKNOWN_STREAM)
        return [self._streams[stream_id]]

    def _configure(self, streams: list[_Stream], command) -> None:
        if any(s.running for s in streams):
            raise att.ATT_Error(native_gatt.ATT_ERROR_BUSY)
        for stream in streams:
            if command.sample_rate_hz is not None:
                rate = float(command.sample_rate_hz)
                if not 0 < rate <= 10_000:
                    raise att.ATT_Error(native_gatt.ATT_ERROR_INVALID_PARAMETER)
                stream.source = stream.source.resampled(rate)
                stream.description = replace(stream.description, sample_rate_hz=rate)
            if command.samples_per_packet is not None:
                stream.samples_per_packet_cap = int(command.samples_per_packet)
