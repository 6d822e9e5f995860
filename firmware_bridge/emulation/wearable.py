"""An emulated wearable: a Bumble peripheral serving one profile of ``firmware_bridge.profiles.registry``, in real
time or faster, with seeded loss, reordering, garbage, disconnects and clock drift.

``EmulatedWearable(name, profile=..., **options)`` gives the server of that profile (as ``pathlib.Path`` gives a
``PosixPath``), chosen by the profile's ``Emulation`` kind:

- ``native_server.NativeWearable``: the native protocol (PROTOCOL.md) from real or simulated signals;
- ``measurement_server.MeasurementWearable``: a Bluetooth SIG profile of one measurement per second (Heart Rate,
  Pulse Oximeter), encoded by the profile's own ``emulated_measurement``;
- ``pmd_server.PmdWearable``: Polar PMD frames of a sampled signal, started through the PMD control point.

This module holds what they share: the Bumble device's life cycle, advertising, the connection and subscription,
the device clock, delivery through the link faults with the counters that account for every packet, and link
security: what the board requires before it serves its characteristics (``security``, the rules of
``board_security`` that PROTOCOL.md section 11 sets for native boards), how it answers pairing (``pairing``: Bumble's
real SMP, keys in the device's key store) and its resolvable private addresses (``privacy``).

What it counts as sent: on a ``VirtualBleNetwork`` (whose radio reports the fate of every PDU), a notification that
reached the central; one notified as the link dropped and lost on the way (still queued in the host, dropped by a
controller, or arriving at a central that had gone) is counted lost in flight. On any other link or controller the
air is out of sight: a notification handed to the Bluetooth stack counts as sent.

Time: the device clock starts at ``start()`` and runs ``speed`` times faster than the event loop's clock,
times ``1 + drift_ppm * 1e-6``. Packets made while nobody is subscribed are counted as unsent, or buffered and
sent as a burst after the next subscription when ``buffer_packets`` > 0.
"""

from __future__ import annotations

import asyncio
import collections
import hashlib
import logging
import math
from dataclasses import dataclass, field

from bumble import att, gatt, hci, smp
from bumble.core import AdvertisingData, UUID
from bumble.device import Connection, Device
from bumble.pairing import PairingConfig, PairingDelegate

from biomoe_edge.firmware_bridge.emulation.board_security import access_error, pairing_refusal
from biomoe_edge.vocabulary import SecurityLevel
from biomoe_edge.firmware_bridge.emulation.faults import FaultInjector, LinkFaults
from biomoe_edge.firmware_bridge.packet import ATT_NOTIFY_OVERHEAD, TIMESTAMP_MODULO
from biomoe_edge.firmware_bridge.profiles.registry import Emulation, Profile, ProfileSpec, profile_spec

logger = logging.getLogger(__name__)


@dataclass
class StreamCounters:
    """What the wearable did with one stream's packets.

    generated = sent + dropped + unsent + lost_in_flight + pending (buffered, held back, or notified and not yet
    arrived)."""

    packets_generated: int = 0  # sequence numbers used
    packets_sent: int = 0  # notified and arrived at the central (see the module's docstring)
    packets_dropped: int = 0  # dropped on purpose (``loss``)
    packets_unsent: int = 0  # nobody subscribed (disconnected, before subscription), buffer overflow
    packets_lost_in_flight: int = 0  # notified as the link dropped, never arrived
    packets_reordered: int = 0  # held back and sent after the next packet (also counted in packets_sent)
    samples_generated: int = 0
    samples_sent: int = 0
    samples_dropped: int = 0
    samples_unsent: int = 0
    samples_lost_in_flight: int = 0


@dataclass
class WearableCounters:
    streams: dict[int, StreamCounters] = field(default_factory=dict)
    garbage_sent: int = 0  # notifications of random bytes (``garbage``) that arrived
    garbage_lost_in_flight: int = 0
    connections: int = 0
    disconnections: int = 0
    disconnects_injected: int = 0  # peripheral-initiated (``disconnect_at``/``disconnect_every``/``disconnect()``)
    pairings: int = 0  # pairings completed (keys made and, with bonding, stored)
    pairings_refused: int = 0  # pairing requests the board answered with Pairing Failed, or that failed
    accesses_refused: int = 0  # ATT reads/writes of its characteristics refused for link security (0x05, 0x0F)

    def total(self, name: str) -> int:
        """Sum of one ``StreamCounters`` field over the streams, e.g. ``total("packets_sent")``."""
        return sum(getattr(c, name) for c in self.streams.values())


#: How an emulated board answers pairing (``EmulatedWearable(pairing=...)``).
PAIRING_MODES = ("secure_connections", "legacy", "refuse")


def server_class(profile) -> type:
    """The ``EmulatedWearable`` subclass that serves ``profile``; ValueError naming the profiles."""
    emulation = profile_spec(profile).emulation
    if emulation is Emulation.NATIVE_PACKETS:
        from biomoe_edge.firmware_bridge.emulation.native_server import NativeWearable as server
    elif emulation is Emulation.MEASUREMENT_PER_SECOND:
        from biomoe_edge.firmware_bridge.emulation.measurement_server import MeasurementWearable as server
    else:
        from biomoe_edge.firmware_bridge.emulation.pmd_server import PmdWearable as server
    return server


class EmulatedWearable:
    """A wearable on a Bumble link (in-process or a real HCI controller); the base of the profile servers.

    Args (every profile):
        name: advertised complete local name.
        address: static random address (default: allocated by the ``VirtualBleNetwork``).
        profile: a ``Profile`` name (default "native"); the profile's server documents its own options.
        loss, reorder, garbage, disconnect_at, disconnect_every, disconnect_jitter: see ``LinkFaults``.
        drift_ppm: device clock error. speed: device time per loop-clock second (> 0).
        seed: seeds the faults, the clock start, the sequence starts and the simulated signals.
        buffer_packets: packets kept while nobody is subscribed and sent as a burst on the next subscription.
        autostart: stream without waiting for a start command (profiles that have one).
        reconnect_delay_s: device time before advertising again after a disconnection.
        security: what the board requires of a link before it serves its characteristics: "none", "encrypted" or
            "bonded" (``board_security``; default: "bonded" for the native profile, as PROTOCOL.md section 11
            recommends, "none" for the standard profiles, as most straps on the market). Its answers: ATT errors
            0x05/0x0F, and at "bonded" SMP Pairing Failed 0x03 to a request without bonding and Secure Connections.
        pairing: "secure_connections" (LE Secure Connections, Just Works, bonding; it gives its IRK and identity
            address), "legacy" (LE legacy pairing only) or "refuse" (Pairing Failed, Pairing Not Supported).
        privacy: advertise resolvable private addresses made from its IRK (a fresh one each time it advertises);
            its identity address (``address``) then never appears on the air.
        irk: its identity resolving key (16 bytes; default derived from the seed and the address).
    """

    def __new__(cls, name: str, *args, profile=Profile.NATIVE.value, **options):
        if cls is EmulatedWearable:
            cls = server_class(profile)
        return super().__new__(cls)

    def __init__(
        self,
        name: str,
        *,
        address: str | None = None,
        profile=Profile.NATIVE.value,
        loss: float = 0.0,
        reorder: float = 0.0,
        garbage: float = 0.0,
        disconnect_at=(),
        disconnect_every: float | None = None,
        disconnect_jitter: float = 0.0,
        drift_ppm: float = 0.0,
        speed: float = 1.0,
        seed: int = 0,
        buffer_packets: int = 0,
        autostart: bool = False,
        reconnect_delay_s: float = 0.0,
        advertising_interval_ms: float = 20.0,
        security=None,
        pairing: str = "secure_connections",
        privacy: bool = False,
        irk: bytes | None = None,
    ) -> None:
        self.spec: ProfileSpec = profile_spec(profile)
        if security is None:
            security = SecurityLevel.BONDED if self.spec.name == Profile.NATIVE.value else SecurityLevel.NONE
        self.security = SecurityLevel.parse(security)
        if pairing not in PAIRING_MODES:
            raise ValueError(f"pairing must be one of {', '.join(PAIRING_MODES)}, got {pairing!r}")
        if irk is not None and len(bytes(irk)) != 16:
            raise ValueError(f"irk must be 16 bytes, got {len(bytes(irk))}")
        self.pairing = pairing
        self.privacy = bool(privacy)
        self._irk = None if irk is None else bytes(irk)
        if not (math.isfinite(speed) and speed > 0):
            raise ValueError(f"speed must be a finite number > 0, got {speed!r}")
        if not (math.isfinite(drift_ppm) and abs(drift_ppm) < 1e6):
            raise ValueError(f"drift_ppm must be finite and above -1e6, got {drift_ppm!r}")
        if buffer_packets < 0:
            raise ValueError(f"buffer_packets must be >= 0, got {buffer_packets!r}")
        self.name = name
        self.address = address
        self.profile = self.spec.name
        self.faults = LinkFaults(loss, reorder, garbage, disconnect_at, disconnect_every, disconnect_jitter)
        self.drift_ppm = float(drift_ppm)
        self.speed = float(speed)
        self.seed = seed
        self.buffer_packets = int(buffer_packets)
        self.autostart = autostart
        self.reconnect_delay_s = float(reconnect_delay_s)
        self.advertising_interval_ms = float(advertising_interval_ms)
        self.counters = WearableCounters()

        self._injector = FaultInjector(self.faults, seed)
        #: device clock (us) at device time 0; the board "may start its clock anywhere"
        self.clock_start_us = self._injector.integer(TIMESTAMP_MODULO)

        self.device: Device | None = None
        #: the address it advertises now (its resolvable private address with ``privacy``, else ``address``)
        self.advertised_address: str | None = None
        self._transport = None
        self._data_characteristic: gatt.Characteristic | None = None
        self._connection: Connection | None = None
        self._last_mtu = att.ATT_DEFAULT_MTU  # packets made while disconnected keep the last link's size
        self._subscribed = False
        self._backlog: collections.deque = collections.deque()
        self._held: tuple[int, bytes, int] | None = None  # a packet held back for reordering
        self._air_reports = False  # on a ReportingLink: each notification is counted when it arrives or is lost
        #: notifications handed to Bumble whose fate the link has not reported yet, in order:
        #: (stream_id, sample count), or None for garbage
        self._in_flight: collections.deque[tuple[int, int] | None] = collections.deque()
        self._task: asyncio.Task | None = None
        self._wake = asyncio.Event()
        self._advertising_lock = asyncio.Lock()  # one HCI advertising command sequence at a time
        self._stopped = False
        self._loop_time_zero = 0.0

    # What each profile server provides
    def _services(self) -> list[gatt.Service]:
        """The GATT services, with ``self._data_characteristic`` (notify) among their characteristics."""
        raise NotImplementedError

    async def _run(self) -> None:
        """The streaming loop, from ``start()`` until ``stop()``."""
        raise NotImplementedError

    def _start_now(self) -> None:
        """``autostart``: begin streaming without a start command (profiles that wait for one)."""

    @property
    def connected(self) -> bool:
        return self._connection is not None

    def device_time_s(self) -> float:
        """Seconds on the device clock since ``start()``."""
        elapsed = asyncio.get_running_loop().time() - self._loop_time_zero
        return elapsed * self.speed * (1.0 + self.drift_ppm * 1e-6)

    def _loop_time_of(self, device_time_s: float) -> float:
        return self._loop_time_zero + device_time_s / (self.speed * (1.0 + self.drift_ppm * 1e-6))

    def _data_characteristic_for(self, uuid) -> gatt.Characteristic:
        """The notify characteristic of the data, with the subscription (CCCD write) watched and, when the board
        requires security, its CCCD guarded: nobody subscribes on a link short of it."""
        if self.security is SecurityLevel.NONE:
            characteristic = gatt.Characteristic(gatt_uuid(uuid), gatt.Characteristic.Properties.NOTIFY,
                                                 gatt.Characteristic.READABLE, b"")
        else:
            characteristic = gatt.Characteristic(gatt_uuid(uuid), gatt.Characteristic.Properties.NOTIFY,
                                                 gatt.Characteristic.READABLE, self.guarded_value(read=lambda _c: b""))
            characteristic.descriptors = [self._guarded_cccd(characteristic)]
        characteristic.on("subscription", self._on_subscription)
        self._data_characteristic = characteristic
        return characteristic

    # Link security
    def guarded_value(self, *, read=None, write=None) -> gatt.CharacteristicValue:
        """A characteristic value whose reads and writes first pass the board's access check (``security``)."""
        async def guarded_read(connection):
            await self._check_access(connection)
            return read(connection)

        async def guarded_write(connection, value):
            await self._check_access(connection)
            return write(connection, value)

        return gatt.CharacteristicValue(read=guarded_read if read else None, write=guarded_write if write else None)

    def _guarded_cccd(self, characteristic: gatt.Characteristic) -> gatt.Descriptor:
        """The data characteristic's CCCD (Bumble adds a plain one otherwise), serving the GATT server's
        subscription state behind the access check."""
        async def read(bearer):
            await self._check_access(_connection_of(bearer))
            return self.device.gatt_server.read_cccd(bearer, characteristic)

        async def write(bearer, value):
            await self._check_access(_connection_of(bearer))
            self.device.gatt_server.write_cccd(bearer, characteristic, value)

        return gatt.Descriptor(gatt.GATT_CLIENT_CHARACTERISTIC_CONFIGURATION_DESCRIPTOR,
                               gatt.Descriptor.READABLE | gatt.Descriptor.WRITEABLE, att.AttributeValueV2(read, write))

    async def _check_access(self, connection: Connection) -> None:
        if self.security is SecurityLevel.NONE:
            return
        keys = await self.device.keystore.get(str(connection.peer_address)) if self.device.keystore else None
        error = access_error(self.security, encrypted=connection.is_encrypted, bonded=keys is not None,
                             secure_connections=keys is not None and keys.ltk is not None)
        if error:
            self.counters.accesses_refused += 1
            raise att.ATT_Error(error)

    def _pairing_config(self, connection: Connection) -> PairingConfig:
        delegate = _RefusingDelegate() if self.pairing == "refuse" else PairingDelegate(
            PairingDelegate.IoCapability.NO_OUTPUT_NO_INPUT)  # a wearable has no display: Just Works
        return PairingConfig(sc=self.pairing == "secure_connections", mitm=False, bonding=True, delegate=delegate,
                             identity_address_type=PairingConfig.AddressType.RANDOM)

    def _identity_resolving_key(self) -> bytes:
        if self._irk is None:
            self._irk = hashlib.sha256(f"biomoe-edge irk/{self.seed}/{self.address}".encode()).digest()[:16]
        return self._irk

    # Life cycle
    async def start(self, link_or_transport) -> None:
        """Power on and advertise on a ``VirtualBleNetwork``, a Bumble ``LocalLink``, or an HCI transport
        spec string (``usb:0``, ``hci-socket:0``, ``serial:/dev/ttyACM0,1000000`` ...)."""
        from bumble.link import LocalLink

        from biomoe_edge.firmware_bridge.emulation.link import (ReportingLink, VirtualBleNetwork, device_and_controller_on_link,
                                                                 device_on_transport, virtual_address)

        if isinstance(link_or_transport, (VirtualBleNetwork, LocalLink)):
            if isinstance(link_or_transport, VirtualBleNetwork):
                self.address = self.address or link_or_transport.allocate_address()
                link = link_or_transport.link
            else:
                self.address = self.address or virtual_address(1)
                link = link_or_transport
            self.device, controller = device_and_controller_on_link(link, self.name, self.address)
            if isinstance(link, ReportingLink):
                controller.air_listener = self._on_air
                self._air_reports = True
        elif isinstance(link_or_transport, str):
            self.address = self.address or virtual_address(1)
            self.device, self._transport = await device_on_transport(link_or_transport, self.name, self.address)
        else:
            raise ValueError(f"start() needs a VirtualBleNetwork, a LocalLink or a transport spec, got {link_or_transport!r}")
        self.device.irk = self._identity_resolving_key()
        self.device.pairing_config_factory = self._pairing_config
        self.device.smp_session_proxy = _board_session(self.security)
        for service in self._services():
            self.device.add_service(service)
        self.device.on("connection", self._on_connection)
        await self.device.power_on()
        self._loop_time_zero = asyncio.get_running_loop().time()
        if self.autostart:
            self._start_now()
        async with self._advertising_lock:
            await self._advertise()
        self._task = asyncio.create_task(self._run_logged(), name=f"emulated-wearable-{self.name}")

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

    async def _run_logged(self) -> None:
        try:
            await self._run()
        except asyncio.CancelledError:
            raise
        except Exception:  # a bug here must be visible, not a silently silent device
            logger.exception("%s: streaming loop failed", self.name)
            raise

    async def _advertise(self) -> None:
        # Legacy advertising carries 31 bytes: flags and the complete name always; the service UUID too when it
        # fits (a 128-bit one: names up to 8 bytes), else only in the scan response. (Bumble's virtual controller
        # answers scans with a copy of the advertising data, so on a virtual link the UUID is seen only where it
        # fits.)
        flags = (AdvertisingData.FLAGS, bytes([AdvertisingData.LE_GENERAL_DISCOVERABLE_MODE_FLAG | AdvertisingData.BR_EDR_NOT_SUPPORTED_FLAG]))
        name = (AdvertisingData.COMPLETE_LOCAL_NAME, self.name.encode("utf-8"))
        uuid = gatt_uuid(self.spec.service_uuid)
        kind = (AdvertisingData.COMPLETE_LIST_OF_16_BIT_SERVICE_CLASS_UUIDS if len(uuid.to_bytes()) == 2
                else AdvertisingData.COMPLETE_LIST_OF_128_BIT_SERVICE_CLASS_UUIDS)
        service = (kind, uuid.to_bytes())
        advertising_data = bytes(AdvertisingData([flags, name, service]))
        if len(advertising_data) > 31:
            advertising_data = bytes(AdvertisingData([flags, name]))
        if len(advertising_data) > 31:
            raise ValueError(f"name {self.name!r} too long to advertise (at most 26 UTF-8 bytes)")
        if self.privacy:  # a fresh resolvable private address from its IRK, as a privacy-enabled board rotates them
            address = hci.Address.generate_private_address(self.device.irk)
            await self.device.send_command(hci.HCI_LE_Set_Random_Address_Command(random_address=address))
            self.device.random_address = address
        self.advertised_address = self.device.random_address.to_string(False)
        await self.device.start_advertising(
            advertising_data=advertising_data,
            scan_response_data=bytes(AdvertisingData([service])),
            advertising_interval_min=self.advertising_interval_ms,
            advertising_interval_max=self.advertising_interval_ms,
        )

    # Connection and subscription
    def _on_connection(self, connection: Connection) -> None:
        if self._connection is not None:  # one central at a time, as most wearables
            asyncio.get_running_loop().create_task(self._disconnect(connection))
            return
        self._connection = connection
        self._subscribed = False
        self.counters.connections += 1
        connection.on("disconnection", lambda reason: self._on_disconnection(connection, reason))
        connection.on("pairing", lambda _keys: self._count("pairings"))
        connection.on("pairing_failure", lambda _reason: self._count("pairings_refused"))

    def _count(self, counter: str) -> None:
        setattr(self.counters, counter, getattr(self.counters, counter) + 1)

    def _on_disconnection(self, connection: Connection, reason: int) -> None:
        if connection is not self._connection:
            return
        self._last_mtu = connection.att_mtu
        self._connection = None
        self._subscribed = False
        self.counters.disconnections += 1
        # Everything this connection put on the air has arrived or not by now (the link delivers in order, before
        # the controller reports the disconnection); what is left never left this device: flushed from the host's
        # ACL queue, or dropped by the controller after the link ended.
        while self._in_flight:
            self._count_lost_in_flight(self._in_flight.popleft())
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

    def _current_mtu(self) -> int:
        return self._connection.att_mtu if self._connection is not None else self._last_mtu

    # Timing and disconnect faults
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

    # Delivery through the link faults
    def _count_generated(self, stream_id: int, count: int) -> None:
        counters = self.counters.streams[stream_id]
        counters.packets_generated += 1
        counters.samples_generated += count

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
        if garbage is not None:
            await self._send(garbage, None)

    async def _notify(self, stream_id: int, payload: bytes, count: int) -> None:
        connection = self._connection
        if connection is None or len(payload) > connection.att_mtu - ATT_NOTIFY_OVERHEAD or not await self._send(payload, (stream_id, count)):
            self._count_unsent(stream_id, count)

    async def _send(self, value: bytes, what: tuple[int, int] | None) -> bool:
        """Notify ``value`` (a packet of ``what`` = (stream_id, sample count), or garbage: None); False if it was
        not handed to the Bluetooth stack. Counted sent or lost in flight when the link reports its fate, or at
        once where the link does not report."""
        connection = self._connection
        if connection is None or not self._subscribed:
            return False
        queue = self.device.host.get_data_packet_queue(connection.handle)
        queued_before = queue.queued if queue is not None else None
        try:
            await self.device.notify_subscriber(connection, self._data_characteristic, value)
        except Exception as exc:  # noqa: BLE001 - the link dropped under us: the packet is unsent
            logger.debug("%s: notification failed: %r", self.name, exc)
            return False
        if queue is not None and queue.queued == queued_before:  # the GATT server sent nothing (no subscriber)
            return False
        if self._air_reports:
            self._in_flight.append(what)  # Bumble queued it synchronously; the link reports it later, in order
        else:
            self._count_sent(what)
        return True

    def _on_air(self, l2cap_pdu: bytes, arrived: bool) -> None:
        """The link's report on one PDU this device sent: a notification of the data characteristic is the oldest
        one in flight (L2CAP basic header: length, CID; then the ATT opcode and the attribute handle)."""
        if (len(l2cap_pdu) < 7 or int.from_bytes(l2cap_pdu[2:4], "little") != att.ATT_CID
                or l2cap_pdu[4] != att.Opcode.ATT_HANDLE_VALUE_NOTIFICATION
                or int.from_bytes(l2cap_pdu[5:7], "little") != self._data_characteristic.handle):
            return
        if not self._in_flight:  # a notification not sent by _send: a bug here, not a count to guess
            logger.error("%s: the link reported a data notification that was never sent", self.name)
            return
        what = self._in_flight.popleft()
        if arrived:
            self._count_sent(what)
        else:
            self._count_lost_in_flight(what)

    def _count_sent(self, what: tuple[int, int] | None) -> None:
        if what is None:
            self.counters.garbage_sent += 1
            return
        stream_id, count = what
        counters = self.counters.streams[stream_id]
        counters.packets_sent += 1
        counters.samples_sent += count

    def _count_lost_in_flight(self, what: tuple[int, int] | None) -> None:
        if what is None:
            self.counters.garbage_lost_in_flight += 1
            return
        stream_id, count = what
        counters = self.counters.streams[stream_id]
        counters.packets_lost_in_flight += 1
        counters.samples_lost_in_flight += count


#: Bluetooth SIG UUIDs are 16-bit aliases within the Bluetooth Base UUID, 0000xxxx-0000-1000-8000-00805f9b34fb.
_SIG_BASE_SUFFIX = "-0000-1000-8000-00805f9b34fb"


def gatt_uuid(text: str) -> UUID:
    """A Bluetooth SIG UUID by its 16-bit alias (as SIG services are declared and advertised), any other in full."""
    if text.startswith("0000") and text.lower().endswith(_SIG_BASE_SUFFIX):
        return UUID.from_16_bits(int(text[4:8], 16))
    return UUID(text)


def _connection_of(bearer) -> Connection:
    """The ACL connection of an ATT bearer (an enhanced bearer is an L2CAP channel on one)."""
    return bearer if isinstance(bearer, Connection) else bearer.connection


class _RefusingDelegate(PairingDelegate):
    """A board that does not pair (not in pairing mode): every Pairing Request gets Pairing Not Supported."""

    async def accept(self) -> bool:
        return False


def _board_session(required: SecurityLevel) -> type:
    """Bumble's SMP session, with the board's own check of a Pairing Request (``pairing_refusal``) first."""

    class BoardSession(smp.Session):
        async def on_smp_pairing_request_command_async(self, command) -> None:
            reason = pairing_refusal(required, int(command.auth_req))
            if reason:
                self.send_pairing_failed(smp.ErrorCode(reason))
                return
            await super().on_smp_pairing_request_command_async(command)

    return BoardSession
