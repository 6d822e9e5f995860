"""One BLE connection to one wearable, kept alive: scan (allow-listed only), connect with
bleak-retry-connector's ``establish_connection`` (each attempt bounded by ``connect_timeout_s``), bring the link
to the device's security level (pair, encrypt, check the bonded identity: ``runtime.transport.security``), read
the device description, subscribe, START; on loss, reconnect with exponential backoff and full jitter, and
subscribe again.

Every notification goes to ``on_packet(device_name, payload, arrival_time_s)`` as it came, garbage included
(decoding and counting rejected packets is the gateway's job); connection changes go to
``on_state(device_name, state, reason)``; devices refused for security go to ``on_refused(device_name,
advertised_name, address, reason)`` (an impostor of a pinned name before any connection; a link that cannot be
brought to the level after connecting), are counted (``stats.refusals``) and never deliver a notification.
Nothing a device does (vanishing, garbage, refusing a write or pairing, dropping the link mid-set-up) raises out of
``run()``.
"""

from __future__ import annotations

import asyncio
import collections
import enum
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from biomoe_edge.firmware_bridge import gatt as native_gatt
from biomoe_edge.firmware_bridge.description import DeviceDescription, decode_description
from biomoe_edge.firmware_bridge.exc import PacketError
from biomoe_edge.firmware_bridge.profiles.registry import profile_spec
from biomoe_edge.runtime.transport.adapter_errors import adapter_of, describe_error
from biomoe_edge.runtime.transport.allow_list import DeviceTarget, normalize_address
from biomoe_edge.runtime.transport.backend import TransportBackend
from biomoe_edge.runtime.transport.backoff import Backoff
from biomoe_edge.runtime.transport.security import (IdentityPins, LinkSecurity, SecurityLevel, SecurityRefused,
                                                    secure_link)

logger = logging.getLogger(__name__)

PacketCallback = Callable[[str, bytes, float], None]
StateCallback = Callable[[str, str, str], None]
RefusedCallback = Callable[[str, "str | None", "str | None", str], None]

#: Why a device is refused (``stats.refusals`` keys, the gateway's ``refused_devices``).
REFUSED_IMPOSTOR = "advertises a name pinned to another identity"
REFUSED_IDENTITY = "bonded identity is not the one pinned to the name"
REFUSED_KEYS = "bonded again with other keys than the pinned identity's"


class ConnectionState(str, enum.Enum):
    CONNECTING = "connecting"  # scanning / connecting / setting up
    CONNECTED = "connected"  # subscribed, streams started
    DISCONNECTED = "disconnected"  # link lost or attempt failed; a retry is scheduled
    FAILED = "failed"  # gave up: the device is not one we can talk to (bad description)
    STOPPED = "stopped"  # stop() was called


@dataclass
class ConnectionStats:
    connects: int = 0  # successful set-ups (first connection included)
    disconnects: int = 0  # links lost after a successful set-up
    failed_attempts: int = 0  # scans that found nothing, refused connections, failed set-ups
    consecutive_failures: int = 0  # since the last success (what the backoff grows with)
    notifications: int = 0
    notification_bytes: int = 0
    callback_errors: int = 0  # on_packet/on_state raised (logged once, then counted)
    #: devices refused for security, by reason: impostors seen while scanning (once per scan and address), links
    #: that could not be brought to the level (once per connection)
    refusals: collections.Counter = field(default_factory=collections.Counter)
    mtu: int | None = None
    last_error: str | None = None
    backoff_delays_s: collections.deque = field(default_factory=lambda: collections.deque(maxlen=64))


class _GiveUp(Exception):
    """The device answered with something we cannot use; retrying will not help."""


class _Stopped(Exception):
    """stop() was called while a connection attempt was under way (the attempt was cancelled)."""


class _Refused(Exception):
    """The connected device was refused (counted and reported already): disconnect, back off, retry."""

    def __init__(self, reason: str, detail: str = ""):
        self.reason, self.detail = reason, detail
        super().__init__(reason)


class DeviceConnection:
    """Keeps one allow-listed wearable connected and streaming. ``await start()`` / ``await stop()``.

    Args:
        target: which device (address and/or advertised name) and its profile.
        on_packet: called per notification with (device label, payload bytes, ``clock()`` at arrival).
        on_state: called on state changes with (device label, ``ConnectionState`` value, reason).
        backend: ``TransportBackend`` (default: bleak's platform backend, BlueZ on Linux).
        backoff: reconnection delays (default ``Backoff()``: 0.5 s doubling to 30 s, full jitter).
        scan_timeout_s: how long one scan looks for the device.
        connect_timeout_s: bounds one connection attempt (connect, and on bleak what connect does: service
            discovery); setup_timeout_s bounds security + description read + subscribe + START.
        connect_attempts: ``establish_connection``'s ``max_attempts`` per cycle (then our backoff).
        start_streams: write START (all streams; native) or the profile's start commands after subscribing.
        start_commands: control-point commands of a standard profile that has a control point (Polar PMD), written
            in order after subscribing (default: the profile's, for its default modalities: an H10's ECG).
        clock: arrival-time clock (default ``time.monotonic``, the gateway's clock).
        pins: the names pinned to bonded identities (``IdentityPins``; default: in memory, for this connection only).
        on_refused: called with (device label, advertised name, address, reason) for each refusal.
        check_description: called with (device label, ``DeviceDescription``) before subscribing to a native
            device: a reason (str) refuses the device (``on_refused``; no subscription), None takes it. The
            gateway refuses a known device that comes back with another description.
    """

    def __init__(
        self,
        target: DeviceTarget,
        *,
        on_packet: PacketCallback,
        on_state: StateCallback | None = None,
        backend: TransportBackend | None = None,
        backoff: Backoff | None = None,
        scan_timeout_s: float = 10.0,
        connect_timeout_s: float = 20.0,
        setup_timeout_s: float = 10.0,
        connect_attempts: int = 2,
        start_streams: bool = True,
        start_commands: Sequence[bytes] | None = None,
        clock: Callable[[], float] = time.monotonic,
        pins: IdentityPins | None = None,
        on_refused: RefusedCallback | None = None,
        check_description: Callable[[str, DeviceDescription], "str | None"] | None = None,
    ) -> None:
        try:
            self.profile = profile_spec(target.profile)
        except ValueError as exc:
            raise ValueError(f"{target.label}: {exc}") from None
        self.target = target
        self.label = target.label
        self.security = SecurityLevel.parse(target.security)
        self.pins = pins if pins is not None else IdentityPins(None)
        #: the current (or last) link: its address, and what it is (None at level none)
        self.address: str | None = None
        self.link: LinkSecurity | None = None
        self._on_refused = on_refused
        self._check_description = check_description
        self._refused_in_scan: set[str] = set()
        self.backend = backend or TransportBackend.platform()
        self.backoff = backoff or Backoff()
        self.scan_timeout_s = float(scan_timeout_s)
        self.connect_timeout_s = float(connect_timeout_s)
        self.setup_timeout_s = float(setup_timeout_s)
        self.connect_attempts = int(connect_attempts)
        self.start_streams = start_streams
        if start_commands is None:
            start_commands = self.profile.start_commands(self.profile.default_modalities)
        self.start_commands = tuple(bytes(c) for c in start_commands)
        self._stop_commands: tuple[tuple[str, bytes], ...] = ()  # (characteristic, value) written on stop()
        self.stats = ConnectionStats()
        self.state = ConnectionState.DISCONNECTED
        self.description: DeviceDescription | None = None
        self._on_packet = on_packet
        self._on_state = on_state
        self._clock = clock
        self._client = None
        self._link_lost = asyncio.Event()
        self._stopping = asyncio.Event()
        self._task: asyncio.Task | None = None
        self._callback_error_logged = False

    # Public life cycle
    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self.run(), name=f"ble-connection-{self.label}")

    async def stop(self) -> None:
        self._stopping.set()
        if self._task is not None:
            await self._task
            self._task = None

    async def run(self) -> None:
        """Connect, stream, reconnect, until ``stop()``. Never raises for what a device does."""
        try:
            while not self._stopping.is_set():
                if self.stats.consecutive_failures == 0:
                    self._set_state(ConnectionState.CONNECTING, "scanning")
                try:
                    await self._unless_stopped(self._connect_once())
                except _Stopped:
                    break
                except _Refused as exc:
                    await self._close_client()
                    if self._stopping.is_set():
                        break
                    self.stats.failed_attempts += 1
                    self.stats.consecutive_failures += 1
                    self.stats.last_error = f"refused: {exc.reason}" + (f": {exc.detail}" if exc.detail else "")
                    self._set_state(ConnectionState.DISCONNECTED, f"refused: {exc.reason}")
                    await self._pause(self.backoff.next_delay())
                    continue
                except _GiveUp as exc:
                    self.stats.last_error = str(exc)
                    logger.error("%s: giving up: %s", self.label, exc)
                    self._set_state(ConnectionState.FAILED, str(exc))
                    await self._close_client()
                    return
                except Exception as exc:  # noqa: BLE001 - bleak/BlueZ/D-Bus raise many types; all mean "retry"
                    await self._close_client()
                    if self._stopping.is_set():
                        break
                    self._attempt_failed(exc)
                    await self._pause(self.backoff.next_delay())
                    continue
                self._connected()
                await self._wait_for(self._link_lost)
                if self._stopping.is_set():
                    break
                self.stats.disconnects += 1
                logger.info("%s: link lost; reconnecting", self.label)
                self._set_state(ConnectionState.DISCONNECTED, "link lost")
                await self._close_client()
                await self._pause(self.backoff.next_delay())
        finally:
            await self._close_client(stop_streams=True)
            self._set_state(ConnectionState.STOPPED, "stopped")

    # One connection cycle
    async def _connect_once(self) -> None:
        from bleak import BleakScanner
        from bleak_retry_connector import establish_connection

        from biomoe_edge.runtime.transport.bounded_client import AttemptBoundedClient

        self._refused_in_scan.clear()
        device = await BleakScanner.find_device_by_filter(
            self._is_candidate,
            timeout=self.scan_timeout_s,
            backend=self.backend.scanner_backend,
            **self.backend.scanner_kwargs,
        )
        if device is None:
            raise LookupError(f"not found: no allow-listed advertisement in {self.scan_timeout_s:g} s")
        self._link_lost.clear()
        self.address, self.link = device.address, None
        self._client = await establish_connection(
            AttemptBoundedClient,
            device,
            self.label,
            disconnected_callback=self._on_disconnected,
            max_attempts=self.connect_attempts,
            timeout=self.connect_timeout_s,
            backend=self.backend.client_backend,
            **self.backend.client_kwargs,
        )
        await asyncio.wait_for(self._set_up(self._client), self.setup_timeout_s)
        if self._link_lost.is_set() or not self._client.is_connected:
            raise ConnectionError("disconnected during set-up")

    def _is_candidate(self, device, advertisement) -> bool:
        """The scan filter: allow-listed, and at ``bonded`` not an impostor of a name pinned to another identity
        (refused here, before any connection: counted once per scan and address)."""
        name = advertisement.local_name or device.name
        if not self.target.matches(device.address, name):
            return False
        expected = self._expected_identity()
        if expected is None or _same_address(device.address, expected):
            return True
        if device.address not in self._refused_in_scan:
            self._refused_in_scan.add(device.address)
            self._refuse(name, device.address, REFUSED_IMPOSTOR, f"pinned to {expected}")
        return False

    def _expected_identity(self) -> str | None:
        """The identity the device must have at ``bonded``: its configured address, else the pin of its name."""
        if self.security is not SecurityLevel.BONDED:
            return None
        if self.target.address is not None:
            return self.target.address
        pin = self.pins.get(self.target.name)
        return pin.identity_address if pin is not None else None

    async def _secure(self, client) -> None:
        """Bring the link to the device's level (pairing, encryption, bond) and, at ``bonded``, check its identity
        against the pin of its name (pinning it on the first bond); refuse it (``_Refused``) otherwise."""
        name = self.target.name
        try:
            self.link = await secure_link(client, self.security)
        except SecurityRefused as exc:
            self._refuse(name, self.address, exc.reason, exc.detail)
            raise _Refused(exc.reason, exc.detail) from None
        if self.security is not SecurityLevel.BONDED:
            return
        identity = self.link.identity_address
        expected = self._expected_identity()
        if expected is not None and not _same_address(identity, expected):
            self._refuse(name, identity, REFUSED_IDENTITY, f"pinned to {expected}")
            raise _Refused(REFUSED_IDENTITY)
        pin = self.pins.get(name) if self.target.address is None else None
        if pin is not None and pin.irk and self.link.irk and self.link.paired_now and self.link.irk != pin.irk:
            self._refuse(name, identity, REFUSED_KEYS, "its identity resolving key differs from the pinned one")
            raise _Refused(REFUSED_KEYS)
        if self.target.address is None and pin is None:
            self.pins.pin(name, self.link)
            logger.info("%s: pinned to the bonded identity %s (the first device bonded under this name; another "
                        "device advertising it will be refused)", self.label, identity)

    def _refuse(self, name: str | None, address: str | None, reason: str, detail: str = "") -> None:
        self.stats.refusals[reason] += 1
        if self.stats.refusals[reason] == 1:
            logger.warning("%s: refused %s (%s)%s; further refusals are counted", self.label, address or "?", reason,
                           f": {detail}" if detail else "")
        if self._on_refused is not None:
            self._call(self._on_refused, self.label, name, address, reason)

    async def _set_up(self, client) -> None:
        self.stats.mtu = await self._mtu(client)
        await self._secure(client)  # before anything is read or subscribed to
        if not self.profile.describes_itself:
            await self._set_up_profile(client)
            return
        raw = await client.read_gatt_char(native_gatt.DESCRIPTION_CHAR_UUID)
        try:
            description = decode_description(raw)
        except PacketError as exc:
            raise _GiveUp(f"unusable device description: {exc}") from exc
        reason = self._check_description(self.label, description) if self._check_description is not None else None
        if reason is not None:
            self._refuse(self.target.name, self.address, reason, f"firmware {description.firmware_version!r}")
            raise _Refused(reason)
        self.description = description
        await client.start_notify(native_gatt.DATA_CHAR_UUID, self._on_notification)
        if self.start_streams:
            await client.write_gatt_char(
                native_gatt.CONTROL_CHAR_UUID, native_gatt.encode_control(native_gatt.ControlOpcode.START), response=True
            )
            self._stop_commands = ((native_gatt.CONTROL_CHAR_UUID, native_gatt.encode_control(native_gatt.ControlOpcode.STOP)),)

    async def _set_up_profile(self, client) -> None:
        """A standard profile describes itself by its characteristic: subscribe to it. With a control point
        (Polar PMD): its indications on first, then each start command, checking the device's answer to each."""
        profile = self.profile
        if profile.control_uuid is None:
            await client.start_notify(profile.data_uuid, self._on_notification)
            return
        responses: asyncio.Queue = asyncio.Queue()
        await client.start_notify(profile.control_uuid, lambda _c, data: responses.put_nowait(bytes(data)))
        await client.start_notify(profile.data_uuid, self._on_notification)
        if not self.start_streams:
            return
        for command in self.start_commands:
            await client.write_gatt_char(profile.control_uuid, command, response=True)
            try:
                refusal = profile.start_refusal(await responses.get())
            except PacketError as exc:
                raise _GiveUp(f"unusable {profile.name} control response: {exc}") from exc
            if refusal is not None:
                raise _GiveUp(f"{profile.name} refused {command.hex(' ')}: {refusal}")
        self._stop_commands = tuple((profile.control_uuid, profile.stop_command(command)) for command in self.start_commands)

    async def _mtu(self, client) -> int:
        from bleak.backends import BleakBackend

        if client.backend_id == BleakBackend.BLUEZ_DBUS:
            # BlueZ negotiates the MTU itself but reports 23 until asked (bleak's examples/mtu_size.py).
            try:
                await client._backend._acquire_mtu()
            except Exception as exc:  # noqa: BLE001 - only a diagnostic figure is lost
                logger.debug("%s: could not read the MTU from BlueZ: %r", self.label, exc)
        return int(client.mtu_size)

    # Callbacks from bleak
    def _on_notification(self, _characteristic, data: bytearray) -> None:
        arrival = self._clock()
        self.stats.notifications += 1
        self.stats.notification_bytes += len(data)
        self._call(self._on_packet, self.label, bytes(data), arrival)

    def _on_disconnected(self, client) -> None:
        if client is self._client:
            self._link_lost.set()

    # Helpers
    def _call(self, callback, *args) -> None:
        try:
            callback(*args)
        except Exception:  # noqa: BLE001 - a consumer bug must not take the link down
            self.stats.callback_errors += 1
            if not self._callback_error_logged:
                self._callback_error_logged = True
                logger.exception("%s: callback %r raised (logged once; see stats.callback_errors)", self.label, callback)

    def _set_state(self, state: ConnectionState, reason: str) -> None:
        self.state = state
        if self._on_state is not None:
            self._call(self._on_state, self.label, state.value, reason)

    def _attempt_failed(self, exc: BaseException) -> None:
        reason = describe_error(exc, adapter_of(self.backend))  # no adapter / BlueZ / D-Bus: what to do
        self.stats.failed_attempts += 1
        self.stats.consecutive_failures += 1
        self.stats.last_error = reason
        if self.stats.consecutive_failures == 1:
            logger.warning(
                "%s: %s; retrying with backoff up to %g s (further failures are counted, not logged)",
                self.label,
                reason,
                self.backoff.max_s,
            )
            self._set_state(ConnectionState.DISCONNECTED, reason)
        else:
            logger.debug("%s: attempt %d failed: %s", self.label, self.stats.consecutive_failures, reason)

    def _connected(self) -> None:
        if self.stats.consecutive_failures:
            logger.info("%s: connected after %d failed attempts", self.label, self.stats.consecutive_failures)
        self.stats.connects += 1
        self.stats.consecutive_failures = 0
        self.backoff.reset()
        self._set_state(ConnectionState.CONNECTED, f"mtu {self.stats.mtu}")

    async def _pause(self, delay_s: float) -> None:
        self.stats.backoff_delays_s.append(delay_s)
        try:
            await asyncio.wait_for(self._stopping.wait(), delay_s)
        except asyncio.TimeoutError:
            pass

    async def _unless_stopped(self, coroutine) -> None:
        """Run ``coroutine``; cancel it and raise ``_Stopped`` if ``stop()`` comes first (a scan can take
        ``scan_timeout_s``; shutting down must not wait for it)."""
        attempt = asyncio.ensure_future(coroutine)
        stopping = asyncio.ensure_future(self._stopping.wait())
        try:
            await asyncio.wait([attempt, stopping], return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopping.cancel()
        if not attempt.done():
            attempt.cancel()
            try:
                await attempt
            except BaseException:  # noqa: BLE001 - whatever the cancelled attempt ends with, we are stopping
                pass
            raise _Stopped()
        if attempt.cancelled():  # a backend let a stack-internal cancellation out: a failed attempt, not ours
            raise ConnectionError("connection attempt cancelled under us")
        attempt.result()  # re-raise what the attempt raised

    async def _wait_for(self, event: asyncio.Event) -> None:
        """Wait for ``event`` or ``stop()``."""
        waiters = [asyncio.ensure_future(event.wait()), asyncio.ensure_future(self._stopping.wait())]
        try:
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()

    async def _close_client(self, *, stop_streams: bool = False) -> None:
        client, self._client = self._client, None
        if client is None or not client.is_connected:
            return
        try:
            for characteristic, value in self._stop_commands if stop_streams else ():  # let the board stop sampling
                await asyncio.wait_for(client.write_gatt_char(characteristic, value, response=True), 2.0)
            await asyncio.wait_for(client.disconnect(), 5.0)
        except Exception as exc:  # noqa: BLE001 - the link is going away anyway
            logger.debug("%s: disconnect: %r", self.label, exc)


def _same_address(address: str | None, expected: str) -> bool:
    try:
        return address is not None and normalize_address(address) == expected
    except ValueError:  # not an address (macOS UUIDs): never a bonded identity
        return False
