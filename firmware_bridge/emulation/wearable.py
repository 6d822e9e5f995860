"""An emulated wearable: a Bumble peripheral serving the native protocol (PROTOCOL.md) from real or simulated
signals, in real time or faster, with seeded loss, reordering, garbage, disconnects and clock drift.

The GATT server is the one PROTOCOL.md specifies: data (notify), control (write: START, STOP, CONFIGURE) and
device description (read) in one service. Packets are encoded with ``firmware_bridge.packet`` and sized from
the ATT MTU negotiated on the current connection (Bumble truncates a notification to MTU - 3 bytes).

Time: the device clock starts at ``start()`` and runs ``speed`` times faster than the event loop's clock,
times ``1 + drift_ppm * 1e-6``. Samples are taken at the nominal rate of that clock and time-stamped by it,
so a drifting device delivers ``rate * (1 + drift)`` samples per true second, as a real crystal does.
Streams keep running, their sequence numbers counting, across disconnections (PROTOCOL.md, section 1);
packets made while nobody is subscribed are counted as unsent, or buffered and sent as a burst after the
next subscription when ``buffer_packets`` > 0.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

import numpy as np
from bumble import att, gatt, hci
from bumble.core import AdvertisingData, UUID
from bumble.device import Connection, Device

from biomoe_edge.firmware_bridge import gatt as native_gatt
from biomoe_edge.firmware_bridge.description import DeviceDescription, StreamDescription, encode_description
from biomoe_edge.firmware_bridge.exc import ControlError
from biomoe_edge.firmware_bridge.packet import (
    ATT_NOTIFY_OVERHEAD,
    SEQUENCE_MODULO,
    TIMESTAMP_MODULO,
    SampleFormat,
    encode_packet,
    max_samples_per_packet,
)
from biomoe_edge.firmware_bridge.emulation.faults import FaultInjector, LinkFaults
from biomoe_edge.firmware_bridge.profiles.polar_pmd import PMD_CONTROL_POINT_UUID, PMD_DATA_UUID, PMD_SERVICE_UUID
from biomoe_edge.firmware_bridge.emulation.signals import SignalSource, quantise, recorded_signals, simulated_signals

logger = logging.getLogger(__name__)

PROFILES = ("native", "heart_rate", "pulse_oximeter", "polar_pmd")
#: Bluetooth SIG services and their measurement characteristics (profiles "heart_rate", "pulse_oximeter").
HEART_RATE_SERVICE = 0x180D
HEART_RATE_MEASUREMENT = 0x2A37
PULSE_OXIMETER_SERVICE = 0x1822
PLX_CONTINUOUS_MEASUREMENT = 0x2A5F
_SIG_SERVICES = {"heart_rate": (HEART_RATE_SERVICE, HEART_RATE_MEASUREMENT), "pulse_oximeter": (PULSE_OXIMETER_SERVICE, PLX_CONTINUOUS_MEASUREMENT)}
# Polar PMD (profile "polar_pmd"): the H10's ECG as polar-ble-sdk documents it, or the Verity Sense's PPG.
PMD_ECG_RATE_HZ = 130.0
PMD_PPG_RATE_HZ = 55.0
PMD_ECG, PMD_PPG = 0, 1  # measurement types
#: modality -> (measurement type, rate, feature bitmap byte): a strap of ECG (H10) or an armband of PPG (Verity).
_PMD_SENSORS = {"ecg": (PMD_ECG, PMD_ECG_RATE_HZ, 0x01), "bvp": (PMD_PPG, PMD_PPG_RATE_HZ, 0x02)}
PMD_PPG_CHANNELS = 4  # PPG0, PPG1, PPG2, ambient
PMD_PPG_AMBIENT = -2000  # counts of the ambient channel (constant: the emulated room is dark and steady)
PMD_OP_START, PMD_OP_STOP = 2, 3
PMD_ERROR_INVALID_OP_CODE, PMD_ERROR_NOT_SUPPORTED, PMD_ERROR_ALREADY_IN_STATE = 1, 3, 6
PMD_FRAME_HEADER = 10  # type, u64 timestamp, frame type
PMD_CLOCK_BASE_NS = 820_454_400 * 10**9  # 2026-01-01 in Polar's 2000-01-01 epoch
DEFAULT_MODALITIES = ("bvp", "eda", "resp", "ecg")


@dataclass
class StreamCounters:
    """What the wearable did with one stream's packets. generated = sent + dropped + unsent + pending."""

    packets_generated: int = 0  # sequence numbers used
    packets_sent: int = 0  # notified to the central
    packets_dropped: int = 0  # dropped on purpose (``loss``)
    packets_unsent: int = 0  # nobody subscribed (disconnected, before subscription), buffer overflow
    packets_reordered: int = 0  # held back and sent after the next packet (also counted in packets_sent)
    samples_generated: int = 0
    samples_sent: int = 0
    samples_dropped: int = 0
    samples_unsent: int = 0


@dataclass
class WearableCounters:
    streams: dict[int, StreamCounters] = field(default_factory=dict)
    garbage_sent: int = 0  # notifications of random bytes (``garbage``)
    connections: int = 0
    disconnections: int = 0
    disconnects_injected: int = 0  # peripheral-initiated (``disconnect_at``/``disconnect_every``/``disconnect()``)

    def total(self, name: str) -> int:
        """Sum of one ``StreamCounters`` field over the streams, e.g. ``total("packets_sent")``."""
        return sum(getattr(c, name) for c in self.streams.values())


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


class EmulatedWearable:
    """A wearable on a Bumble link (in-process or a real HCI controller) speaking the native protocol.

    Args:
        name: advertised complete local name.
        address: static random address (default: allocated by the ``VirtualBleNetwork``).
        profile: "native" (PROTOCOL.md); "heart_rate": a chest strap serving only the standard Heart Rate
            service (one Heart Rate Measurement notification per device second, bpm and RR intervals from
            a seeded random walk around 70 bpm; ``signals`` and ``modalities`` are not used); "pulse_oximeter":
            the standard PLX service, one Continuous Measurement (SpO2 and pulse rate as SFLOAT, from seeded
            random walks around 97 % and 70 bpm) per device second; "polar_pmd": a
            Polar H10-like strap serving PMD ECG (130 Hz, raw int24 uV frames, started through the PMD
            control point; ``modalities`` ("ecg",)), or with ``modalities`` ("bvp",) a Polar Verity Sense-like
            armband serving PMD PPG (55 Hz, raw 4-channel int24 frames: three photodiodes carrying the same
            signal, in counts, and a constant ambient channel).
        signals: "simulated" (NeuroKit2), a mapping ``{modality: (values, rate_hz)}``, a CSV path (with
            ``recording_rate_hz``), or a list of ``SignalSource``.
        modalities: streams, in stream-id order.
        loss, reorder, garbage, disconnect_at, disconnect_every, disconnect_jitter: see ``LinkFaults``.
        drift_ppm: device clock error. speed: device time per loop-clock second (> 0).
        seed: seeds the faults, the clock start, the sequence start and the simulated signals.
        packet_interval_s: packets carry at most this much signal (bounds latency of slow streams).
        buffer_packets: packets kept while nobody is subscribed and sent as a burst on the next subscription.
        autostart: stream without waiting for a START write.
        reconnect_delay_s: device time before advertising again after a disconnection.
    """

    def __init__(
        self,
        name: str,
        *,
        address: str | None = None,
        profile: str = "native",
        signals="simulated",
        modalities: Sequence[str] = DEFAULT_MODALITIES,
        loss: float = 0.0,
        reorder: float = 0.0,
        garbage: float = 0.0,
        disconnect_at: Sequence[float] = (),
        disconnect_every: float | None = None,
        disconnect_jitter: float = 0.0,
        drift_ppm: float = 0.0,
        speed: float = 1.0,
        seed: int = 0,
        sample_format="int16",
        packet_interval_s: float = 0.25,
        buffer_packets: int = 0,
        autostart: bool = False,
        reconnect_delay_s: float = 0.0,
        recording_rate_hz: float | None = None,
        firmware_version: str = "emulated-1.0",
        advertising_interval_ms: float = 20.0,
    ) -> None:
        if profile not in PROFILES:
            raise ValueError(f"unknown profile {profile!r}; expected one of: {', '.join(PROFILES)}")
        if not (math.isfinite(speed) and speed > 0):
            raise ValueError(f"speed must be a finite number > 0, got {speed!r}")
        if not (math.isfinite(drift_ppm) and abs(drift_ppm) < 1e6):
            raise ValueError(f"drift_ppm must be finite and above -1e6, got {drift_ppm!r}")
        if not packet_interval_s > 0:
            raise ValueError(f"packet_interval_s must be > 0, got {packet_interval_s!r}")
        if buffer_packets < 0:
            raise ValueError(f"buffer_packets must be >= 0, got {buffer_packets!r}")
        self.name = name
        self.address = address
        self.profile = profile
        self.faults = LinkFaults(loss, reorder, garbage, disconnect_at, disconnect_every, disconnect_jitter)
        self.drift_ppm = float(drift_ppm)
        self.speed = float(speed)
        self.seed = seed
        self.sample_format = SampleFormat.parse(sample_format)
        self.packet_interval_s = float(packet_interval_s)
        self.buffer_packets = int(buffer_packets)
        self.autostart = autostart
        self.reconnect_delay_s = float(reconnect_delay_s)
        self.firmware_version = firmware_version
        self.advertising_interval_ms = float(advertising_interval_ms)
        self.counters = WearableCounters()

        self._injector = FaultInjector(self.faults, seed)
        #: device clock (us) at device time 0; the board "may start its clock anywhere"
        self.clock_start_us = self._injector.integer(TIMESTAMP_MODULO)
        if profile == "polar_pmd" and tuple(modalities) not in (("ecg",), ("bvp",)):
            raise ValueError("the polar_pmd profile streams ECG (an H10) or PPG (a Verity Sense); modalities must be "
                             f"('ecg',) or ('bvp',), got {tuple(modalities)!r}")
        #: polar_pmd: (measurement type, rate, feature bitmap) of the one PMD measurement served
        self._pmd_sensor = _PMD_SENSORS[modalities[0]] if profile == "polar_pmd" else None
        if profile == "polar_pmd" and signals == "simulated":
            signals = simulated_signals(list(modalities), seed=seed, rates_hz={modalities[0]: self._pmd_sensor[1]})
        sources = [] if profile in _SIG_SERVICES else self._signal_sources(signals, modalities, recording_rate_hz, seed)
        self._streams: list[_Stream] = []
        for stream_id, source in enumerate(sources):
            scale, offset = source.quantisation(self.sample_format)
            sample_format = self.sample_format
            if profile == "polar_pmd" and source.modality == "ecg":  # PMD ECG is signed 24-bit uV; the signal, mV
                scale, offset, sample_format = 1e-3, 0.0, SampleFormat.INT24
            elif profile == "polar_pmd":  # PMD PPG: signed 24-bit counts spanning the signal
                sample_format = SampleFormat.INT24
                scale, offset = source.quantisation(sample_format)
            description = StreamDescription(
                stream_id, source.modality, source.sample_rate_hz, source.channels, sample_format, scale, offset, source.units
            )
            self._streams.append(_Stream(description, source, sequence=self._injector.integer(SEQUENCE_MODULO)))
            self.counters.streams[stream_id] = StreamCounters()
        if profile in _SIG_SERVICES:
            self.counters.streams[0] = StreamCounters()  # one "stream": the measurements
        self._heart_rng = np.random.default_rng([seed, HEART_RATE_MEASUREMENT])

        self.device: Device | None = None
        self._transport = None
        self._data_characteristic: gatt.Characteristic | None = None
        self._pmd_control_point: gatt.Characteristic | None = None
        self._connection: Connection | None = None
        self._last_mtu = att.ATT_DEFAULT_MTU  # packets made while disconnected keep the last link's size
        self._subscribed = False
        self._backlog: collections.deque = collections.deque()
        self._held: tuple[int, bytes, int] | None = None  # a packet held back for reordering
        self._task: asyncio.Task | None = None
        self._wake = asyncio.Event()
        self._advertising_lock = asyncio.Lock()  # one HCI advertising command sequence at a time
        self._stopped = False
        self._loop_time_zero = 0.0

    @staticmethod
    def _signal_sources(signals, modalities, recording_rate_hz, seed) -> list[SignalSource]:
        if isinstance(signals, str) and signals == "simulated":
            return simulated_signals(list(modalities), seed=seed)
        if isinstance(signals, (list, tuple)) and all(isinstance(s, SignalSource) for s in signals):
            return list(signals)
        if isinstance(signals, (str, Mapping)) or hasattr(signals, "__fspath__"):
            return recorded_signals(signals, sample_rate_hz=recording_rate_hz, modalities=modalities)
        raise ValueError(f"signals must be 'simulated', a recording mapping, a CSV path or SignalSources; got {signals!r}")

    # Description and state
    def pmd_features(self) -> bytes:
        """The PMD control point's read value: 0x0F, then the bitmap of measurements served (ECG bit 0, PPG bit 1)."""
        return bytes([0x0F, self._pmd_sensor[2] if self._pmd_sensor else 0, 0x00])

    def description(self) -> DeviceDescription:
        return DeviceDescription(self.firmware_version, tuple(s.description for s in self._streams))

    @property
    def connected(self) -> bool:
        return self._connection is not None

    def device_time_s(self) -> float:
        """Seconds on the device clock since ``start()``."""
        elapsed = asyncio.get_running_loop().time() - self._loop_time_zero
        return elapsed * self.speed * (1.0 + self.drift_ppm * 1e-6)

    def _loop_time_of(self, device_time_s: float) -> float:
        return self._loop_time_zero + device_time_s / (self.speed * (1.0 + self.drift_ppm * 1e-6))

    # Life cycle
    async def start(self, link_or_transport) -> None:
        """Power on and advertise on a ``VirtualBleNetwork``, a Bumble ``LocalLink``, or an HCI transport
        spec string (``usb:0``, ``hci-socket:0``, ``serial:/dev/ttyACM0,1000000`` ...)."""
        from bumble.link import LocalLink

        from biomoe_edge.firmware_bridge.emulation.link import VirtualBleNetwork, device_on_link, device_on_transport, virtual_address

        if isinstance(link_or_transport, VirtualBleNetwork):
            self.address = self.address or link_or_transport.allocate_address()
            self.device = link_or_transport.create_device(self.name, self.address)
        elif isinstance(link_or_transport, LocalLink):
            self.address = self.address or virtual_address(1)
            self.device = device_on_link(link_or_transport, self.name, self.address)
        elif isinstance(link_or_transport, str):
            self.address = self.address or virtual_address(1)
            self.device, self._transport = await device_on_transport(link_or_transport, self.name, self.address)
        else:
            raise ValueError(f"start() needs a VirtualBleNetwork, a LocalLink or a transport spec, got {link_or_transport!r}")
        self._add_gatt_services(self.device)
        self.device.on("connection", self._on_connection)
        await self.device.power_on()
        self._loop_time_zero = asyncio.get_running_loop().time()
        if self.autostart:
            self._start_streams(native_gatt.ALL_STREAMS)
        async with self._advertising_lock:
            await self._advertise()
        run = self._run_vital_signs() if self.profile in _SIG_SERVICES else self._run()
        self._task = asyncio.create_task(run, name=f"emulated-wearable-{self.name}")

    async def stop(self) -> None:
        """Stop streaming, drop the connection and stop advertising: the device is gone (it does not come back)."""
        if self._stopped:
            return
        self._stopped = True
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        if self.device is not None:
            async with self._advertising_lock:
                if self.device.is_advertising:
                    await self.device.stop_advertising()
            if self._connection is not None:
                await self._disconnect(self._connection)
        if self._transport is not None:
            await self._transport.close()
            self._transport = None

    async def disconnect(self) -> None:
        """Drop the current connection from the peripheral side (counted in ``disconnects_injected``)."""
        connection = self._connection
        if connection is not None:
            self.counters.disconnects_injected += 1
            await self._disconnect(connection)

    async def _disconnect(self, connection: Connection) -> None:
        try:
            await connection.disconnect(hci.HCI_REMOTE_USER_TERMINATED_CONNECTION_ERROR)
        except Exception as exc:  # noqa: BLE001 - the link may already be gone; nothing to undo
            logger.debug("%s: disconnect failed: %r", self.name, exc)

    async def _advertise(self) -> None:
        # Legacy advertising carries 31 bytes: flags and the complete name always; the 128-bit service UUID
        # too when it fits (names up to 8 bytes), else only in the scan response. (Bumble's virtual
        # controller answers scans with a copy of the advertising data, so on a virtual link the UUID is
        # seen only where it fits.)
        flags = (AdvertisingData.FLAGS, bytes([AdvertisingData.LE_GENERAL_DISCOVERABLE_MODE_FLAG | AdvertisingData.BR_EDR_NOT_SUPPORTED_FLAG]))
        name = (AdvertisingData.COMPLETE_LOCAL_NAME, self.name.encode("utf-8"))
        if self.profile in _SIG_SERVICES:
            service_uuid = UUID.from_16_bits(_SIG_SERVICES[self.profile][0])
            service = (AdvertisingData.COMPLETE_LIST_OF_16_BIT_SERVICE_CLASS_UUIDS, service_uuid.to_bytes())
        elif self.profile == "polar_pmd":
            service = (AdvertisingData.COMPLETE_LIST_OF_128_BIT_SERVICE_CLASS_UUIDS, UUID(PMD_SERVICE_UUID).to_bytes())
        else:
            service = (AdvertisingData.COMPLETE_LIST_OF_128_BIT_SERVICE_CLASS_UUIDS, UUID(native_gatt.SERVICE_UUID).to_bytes())
        advertising_data = bytes(AdvertisingData([flags, name, service]))
        if len(advertising_data) > 31:
            advertising_data = bytes(AdvertisingData([flags, name]))
        if len(advertising_data) > 31:
            raise ValueError(f"name {self.name!r} too long to advertise (at most 26 UTF-8 bytes)")
        await self.device.start_advertising(
            advertising_data=advertising_data,
            scan_response_data=bytes(AdvertisingData([service])),
            advertising_interval_min=self.advertising_interval_ms,
            advertising_interval_max=self.advertising_interval_ms,
        )

    # GATT server
    def _add_gatt_services(self, device: Device) -> None:
        props = gatt.Characteristic.Properties
        if self.profile in _SIG_SERVICES:
            data_uuid = UUID.from_16_bits(_SIG_SERVICES[self.profile][1])
        else:
            data_uuid = PMD_DATA_UUID if self.profile == "polar_pmd" else native_gatt.DATA_CHAR_UUID
        self._data_characteristic = gatt.Characteristic(data_uuid, props.NOTIFY, gatt.Characteristic.READABLE, b"")
        self._data_characteristic.on("subscription", self._on_subscription)  # CCCD written by the central
        if self.profile == "polar_pmd":
            self._pmd_control_point = gatt.Characteristic(
                PMD_CONTROL_POINT_UUID,
                props.READ | props.WRITE | props.INDICATE,
                gatt.Characteristic.READABLE | gatt.Characteristic.WRITEABLE,
                gatt.CharacteristicValue(read=lambda connection: self.pmd_features(), write=self._on_pmd_control),
            )
            device.add_service(gatt.Service(PMD_SERVICE_UUID, [self._pmd_control_point, self._data_characteristic]))
        elif self.profile in _SIG_SERVICES:
            device.add_service(gatt.Service(UUID.from_16_bits(_SIG_SERVICES[self.profile][0]), [self._data_characteristic]))
        else:
            control = gatt.Characteristic(
                native_gatt.CONTROL_CHAR_UUID, props.WRITE, gatt.Characteristic.WRITEABLE, gatt.CharacteristicValue(write=self._on_control)
            )
            description = gatt.Characteristic(
                native_gatt.DESCRIPTION_CHAR_UUID,
                props.READ,
                gatt.Characteristic.READABLE,
                gatt.CharacteristicValue(read=lambda connection: encode_description(self.description())),
            )
            device.add_service(gatt.Service(native_gatt.SERVICE_UUID, [self._data_characteristic, control, description]))

    def _on_connection(self, connection: Connection) -> None:
        if self._connection is not None:  # one central at a time, as most wearables
            asyncio.get_running_loop().create_task(self._disconnect(connection))
            return
        self._connection = connection
        self._subscribed = False
        self.counters.connections += 1
        connection.on("disconnection", lambda reason: self._on_disconnection(connection, reason))

    def _on_disconnection(self, connection: Connection, reason: int) -> None:
        if connection is not self._connection:
            return
        self._last_mtu = connection.att_mtu
        self._connection = None
        self._subscribed = False
        self.counters.disconnections += 1
        if self._held is not None:  # a packet held back for reordering dies with the link
            held_stream_id, _, held_count = self._held
            self._held = None
            self._count_unsent(held_stream_id, held_count)
        if not self._stopped:
            asyncio.get_running_loop().call_later(
                self.reconnect_delay_s / self.speed, lambda: asyncio.ensure_future(self._readvertise())
            )

    async def _readvertise(self) -> None:
        async with self._advertising_lock:
            if not self._stopped and self._connection is None and not self.device.is_advertising:
                await self._advertise()

    def _on_subscription(self, bearer, notify_enabled: bool, indicate_enabled: bool) -> None:
        if bearer is not self._connection:
            return
        self._subscribed = bool(notify_enabled)
        if self._subscribed and self._backlog:
            self._wake.set()  # the loop flushes the backlog as a burst

    def _on_pmd_control(self, connection: Connection, value: bytes) -> None:
        """PMD control point write: start/stop ECG; the answer comes as an indication (F0 op type status 00)."""
        op = value[0] if value else 0
        measurement = value[1] if len(value) > 1 else 0xFF
        if op not in (PMD_OP_START, PMD_OP_STOP):
            status = PMD_ERROR_INVALID_OP_CODE
        elif measurement != self._pmd_sensor[0]:
            status = PMD_ERROR_NOT_SUPPORTED
        elif op == PMD_OP_START and self._streams[0].running:
            status = PMD_ERROR_ALREADY_IN_STATE
        else:
            status = 0
            if op == PMD_OP_START:
                self._start_streams(0)
            else:
                self._streams[0].running = False
            self._wake.set()
        response = bytes([0xF0, op, measurement, status, 0])
        asyncio.get_running_loop().create_task(self._indicate_control_response(connection, response))

    async def _indicate_control_response(self, connection: Connection, response: bytes) -> None:
        try:
            await self.device.indicate_subscriber(connection, self._pmd_control_point, response)
        except Exception as exc:  # noqa: BLE001 - the central left before reading the answer
            logger.debug("%s: PMD control response not delivered: %r", self.name, exc)

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
            self._start_streams(command.stream_id)
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

    def _start_streams(self, stream_id: int) -> None:
        now = self.device_time_s()
        for stream in self._select(stream_id):
            if not stream.running:
                stream.running = True
                stream.origin_s = now
                stream.index = 0
                stream.next_count = self._packet_samples(stream)

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

    # Streaming
    def _packet_samples(self, stream: _Stream) -> int:
        d = stream.description
        mtu = self._connection.att_mtu if self._connection is not None else self._last_mtu
        if self.profile == "polar_pmd":
            fit = max(1, (mtu - ATT_NOTIFY_OVERHEAD - PMD_FRAME_HEADER) // (3 * (PMD_PPG_CHANNELS if d.modality == "bvp" else 1)))
        else:
            fit = max(1, max_samples_per_packet(mtu, d.channels, d.sample_format))
        cap = stream.samples_per_packet_cap or max(1, int(round(d.sample_rate_hz * self.packet_interval_s)))
        return min(fit, cap)

    async def _run(self) -> None:
        try:
            while True:
                # Plan from the state as it is now; a control write or subscription after this clear sets the
                # event again and the sleep below ends early to plan again (no wake-up is lost).
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
                stream = min(running, key=lambda s: s.due_s())
                await self._emit(stream)
        except asyncio.CancelledError:
            raise
        except Exception:  # a bug here must be visible, not a silently silent device
            logger.exception("%s: streaming loop failed", self.name)
            raise

    async def _run_vital_signs(self) -> None:
        """One measurement per device second: Heart Rate (bpm, RR intervals of the beats in that second) or
        PLX Continuous (SpO2, pulse rate). Scheduled disconnects (``disconnect_at``/``disconnect_every``) apply."""
        bpm, spo2, last_beat_s, next_s = 70.0, 97.0, 0.0, 1.0
        while True:
            self._wake.clear()
            if self._subscribed and self._backlog:
                await self._flush_backlog()
            next_disconnect = self._injector.next_disconnect()
            if next_disconnect is not None and next_disconnect <= next_s:  # disconnect faults, as in _run
                if await self._sleep_until(next_disconnect):
                    self._injector.disconnect_done(next_disconnect)
                    await self.disconnect()
                continue
            if not await self._sleep_until(next_s):
                continue
            rr_s = []
            while last_beat_s + 60.0 / bpm <= next_s:
                rr_s.append(60.0 / bpm)
                last_beat_s += 60.0 / bpm
                bpm = float(np.clip(bpm + self._heart_rng.normal(0.0, 1.0), 45.0, 150.0))
            spo2 = float(np.clip(spo2 + self._heart_rng.normal(0.0, 0.2), 90.0, 100.0))
            if self.profile == "heart_rate":
                value = heart_rate_measurement(round(bpm), rr_s)
            else:
                value = plx_continuous_measurement(spo2, bpm)
            counters = self.counters.streams[0]
            counters.packets_generated += 1
            counters.samples_generated += 1
            await self._deliver_or_keep(0, value, 1)
            next_s += 1.0

    async def _sleep_until(self, device_time_s: float) -> bool:
        """Wait until the device clock reads ``device_time_s``; False if woken earlier by ``_wake``."""
        delay = self._loop_time_of(device_time_s) - asyncio.get_running_loop().time()
        if self._wake.is_set():
            return False
        if delay <= 0:
            await asyncio.sleep(0)
            return True
        try:
            await asyncio.wait_for(self._wake.wait(), delay)
        except asyncio.TimeoutError:
            return True
        return False

    async def _emit(self, stream: _Stream) -> None:
        d = stream.description
        count = stream.next_count
        raw = quantise(stream.source.window(stream.index, count), d.scale, d.offset, d.sample_format)
        if self.profile == "polar_pmd":
            last_sample_s = stream.origin_s + (stream.index + count - 1) / d.sample_rate_hz
            timestamp_ns = PMD_CLOCK_BASE_NS + self.clock_start_us * 1000 + round(last_sample_s * 1e9)
            frame = pmd_ecg_frame if d.modality == "ecg" else pmd_ppg_frame
            payload = frame(timestamp_ns, raw[:, 0])
        else:
            timestamp_us = self.clock_start_us + round((stream.origin_s + stream.index / d.sample_rate_hz) * 1e6)
            payload = encode_packet(
                stream_id=d.stream_id,
                sequence=stream.sequence,
                timestamp_us=timestamp_us % TIMESTAMP_MODULO,
                samples=raw,
                sample_format=d.sample_format,
            )
        stream.sequence = (stream.sequence + 1) % SEQUENCE_MODULO
        stream.index += count
        stream.next_count = self._packet_samples(stream)
        counters = self.counters.streams[d.stream_id]
        counters.packets_generated += 1
        counters.samples_generated += count
        await self._deliver_or_keep(d.stream_id, payload, count)

    async def _deliver_or_keep(self, stream_id: int, payload: bytes, count: int) -> None:
        if self._subscribed and not self._backlog:
            await self._deliver(stream_id, payload, count)
            return
        self._keep(stream_id, payload, count)
        if self._subscribed:  # older packets still waiting go first, in order
            await self._flush_backlog()

    def _keep(self, stream_id: int, payload: bytes, count: int) -> None:
        """Buffer a packet for the next subscriber (bounded: the oldest goes, counted unsent)."""
        if self.buffer_packets == 0:
            self._count_unsent(stream_id, count)
            return
        if len(self._backlog) == self.buffer_packets:
            old_stream_id, _, old_count = self._backlog.popleft()
            self._count_unsent(old_stream_id, old_count)
        self._backlog.append((stream_id, payload, count))

    def _count_unsent(self, stream_id: int, count: int) -> None:
        counters = self.counters.streams[stream_id]
        counters.packets_unsent += 1
        counters.samples_unsent += count

    async def _flush_backlog(self) -> None:
        while self._backlog and self._subscribed:
            stream_id, payload, count = self._backlog.popleft()
            await self._deliver(stream_id, payload, count)

    async def _deliver(self, stream_id: int, payload: bytes, count: int) -> None:
        """Send one data packet through the faults: loss, reordering, then maybe a garbage notification."""
        counters = self.counters.streams[stream_id]
        if self._injector.drop():
            counters.packets_dropped += 1
            counters.samples_dropped += count
            return
        if self._held is None and self._injector.hold_back():
            self._held = (stream_id, payload, count)
            counters.packets_reordered += 1
            return
        await self._notify(stream_id, payload, count)
        if self._held is not None:
            held, self._held = self._held, None
            await self._notify(*held)
        garbage = self._injector.garbage()
        if garbage is not None and await self._send(garbage):
            self.counters.garbage_sent += 1

    async def _notify(self, stream_id: int, payload: bytes, count: int) -> None:
        connection = self._connection
        if connection is None or len(payload) > connection.att_mtu - ATT_NOTIFY_OVERHEAD or not await self._send(payload):
            self._count_unsent(stream_id, count)
            return
        counters = self.counters.streams[stream_id]
        counters.packets_sent += 1
        counters.samples_sent += count

    async def _send(self, value: bytes) -> bool:
        connection = self._connection
        if connection is None or not self._subscribed:
            return False
        try:
            await self.device.notify_subscriber(connection, self._data_characteristic, value)
        except Exception as exc:  # noqa: BLE001 - the link dropped under us: the packet is unsent
            logger.debug("%s: notification failed: %r", self.name, exc)
            return False
        return True


def heart_rate_measurement(bpm: int, rr_intervals_s: Sequence[float], *, contact: bool = True) -> bytes:
    """A Heart Rate Measurement value (GATT Specification Supplement 3.113): flags, uint8 (or uint16) bpm,
    RR intervals in 1/1024 s; sensor contact supported and ``contact``."""
    flags = 0x04 | (0x02 if contact else 0) | (0x10 if rr_intervals_s else 0)
    if bpm > 255:
        flags |= 0x01
        value = bytes([flags]) + int(bpm).to_bytes(2, "little")
    else:
        value = bytes([flags, int(bpm)])
    # At most 9 RR intervals fit a 20-byte notification with a uint8 bpm; keep the newest.
    for rr in list(rr_intervals_s)[-9:]:
        value += int(round(rr * 1024)).to_bytes(2, "little")
    return value


def pmd_ppg_frame(timestamp_ns: int, counts: np.ndarray) -> bytes:
    """A raw PMD PPG data frame (type 1, frame type 0): header, then per sample four signed 24-bit little-endian
    values, PPG0..PPG2 (each ``counts``) and the ambient channel (``PMD_PPG_AMBIENT``)."""
    values = np.asarray(counts, dtype=np.int64)
    channels = np.stack([values, values, values, np.full_like(values, PMD_PPG_AMBIENT)], axis=1) & 0xFFFFFF
    payload = np.stack([channels & 0xFF, (channels >> 8) & 0xFF, (channels >> 16) & 0xFF], axis=2).astype(np.uint8)
    return bytes([PMD_PPG]) + int(timestamp_ns).to_bytes(8, "little") + bytes([0x00]) + payload.tobytes()


def pmd_ecg_frame(timestamp_ns: int, microvolts: np.ndarray) -> bytes:
    """A raw PMD ECG data frame (type 0, frame type 0): header, then signed 24-bit little-endian uV."""
    values = np.asarray(microvolts, dtype=np.int64) & 0xFFFFFF
    payload = np.stack([values & 0xFF, (values >> 8) & 0xFF, (values >> 16) & 0xFF], axis=1).astype(np.uint8)
    return bytes([PMD_ECG]) + int(timestamp_ns).to_bytes(8, "little") + bytes([0x00]) + payload.tobytes()


def sfloat(value: float) -> int:
    """IEEE 11073-20601 16-bit SFLOAT with one decimal (4-bit exponent -1, 12-bit signed mantissa)."""
    mantissa = int(round(value * 10))
    if not -2046 < mantissa < 2046:  # +-2046..2047 and -2048 are the NaN, NRes and infinity codes
        raise ValueError(f"{value!r} does not fit an SFLOAT with one decimal")
    return (0xF << 12) | (mantissa & 0x0FFF)


def plx_continuous_measurement(spo2_percent: float, pulse_rate_bpm: float) -> bytes:
    """A PLX Continuous Measurement value (0x2A5F): flags 0 (no optional fields), SpO2 and pulse rate."""
    return bytes([0]) + sfloat(spo2_percent).to_bytes(2, "little") + sfloat(pulse_rate_bpm).to_bytes(2, "little")
