"""The gateway side of a Bumble link: one Bumble device acting as central for the bleak backend.

Bumble's ``Device`` scans once and connects one peer at a time; bleak users expect many scanners and
many concurrent ``connect()`` calls. ``BumbleCentral`` multiplexes advertisements to every active
scanner and serialises connection attempts, as BlueZ does for an adapter. Like BlueZ it pairs as a headless
device (LE Secure Connections, Just Works), keeps the bonds in the device's key store (in memory, or a JSON file:
``keystore=``) and resolves bonded devices' resolvable private addresses to their identity addresses.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Callable
from typing import Any

from bumble import core, hci
from bumble.device import Advertisement, Connection, Device
from bumble.pairing import PairingConfig, PairingDelegate

logger = logging.getLogger(__name__)

AdvertisementListener = Callable[[Advertisement], None]


class BumbleCentral:
    """A powered Bumble ``Device`` used as a BLE central by ``BleakClientBumble``/``BleakScannerBumble``."""

    def __init__(self, device: Device, *, transport: Any = None, keystore=None) -> None:
        """``keystore``: a JSON file for the bonds (Bumble's ``JsonKeyStore``); default in memory."""
        self.device = device
        self._transport = transport  # an opened bumble transport to close, when on real hardware
        if device.irk == bytes(16):  # Bumble's placeholder: a real IRK, as any host generates one
            device.irk = secrets.token_bytes(16)
        device.pairing_config_factory = gateway_pairing_config
        if keystore is not None:
            from bumble.keys import JsonKeyStore

            device.keystore = JsonKeyStore(str(device.static_address), str(keystore))
        self._listeners: set[AdvertisementListener] = set()
        self._scan_lock = asyncio.Lock()
        self._connect_lock = asyncio.Lock()
        device.on("advertisement", self._on_advertisement)

    @classmethod
    async def open(cls, transport_spec: str, *, address: str = "F0:00:00:00:C0:01", keystore=None) -> BumbleCentral:
        """A central on a real HCI controller (``usb:0``, ``hci-socket:0``...): bleak over Bumble on hardware.
        ``keystore``: a JSON file keeping the bonds across restarts (as BlueZ's /var/lib/bluetooth does)."""
        from biomoe_edge.firmware_bridge.emulation.link import device_on_transport

        device, transport = await device_on_transport(transport_spec, "biomoe-gateway", address)
        central = cls(device, transport=transport, keystore=keystore)
        await central.power_on()
        return central

    async def power_on(self) -> None:
        await self.device.power_on()

    async def close(self) -> None:
        for connection in list(self.device.connections.values()):
            try:
                await connection.disconnect()
            except (core.BaseBumbleError, hci.HCI_Error, asyncio.TimeoutError) as exc:
                logger.debug("disconnect on close failed: %s", exc)
        if self.device.scanning:
            await self.device.stop_scanning()
        if self._transport is not None:
            await self._transport.close()
            self._transport = None

    def identity_of(self, address: hci.Address) -> hci.Address | None:
        """The identity address a resolvable private address resolves to through a bonded device's IRK, or None."""
        resolver = self.device.address_resolver
        if resolver is None or not address.is_resolvable:
            return None
        return resolver.resolve(address)

    # Scanning, shared by every scanner.
    def _on_advertisement(self, advertisement: Advertisement) -> None:
        for listener in list(self._listeners):
            listener(advertisement)

    async def add_scan_listener(self, listener: AdvertisementListener) -> None:
        """Deliver advertisements to ``listener``, scanning if nobody was. Failed or cancelled (a gateway closing
        under it), the listener is not left registered: its scanner never started, so nobody would remove it."""
        self._listeners.add(listener)
        try:
            async with self._scan_lock:
                if self._listeners and not self.device.scanning:
                    # Active scanning: the scan response carries the service UUID.
                    await self.device.start_scanning(active=True, filter_duplicates=False)
        except BaseException:
            await self._discard_listener(listener)
            raise

    async def remove_scan_listener(self, listener: AdvertisementListener) -> None:
        """Stop delivering to ``listener``; the scan stops with the last one."""
        await self._discard_listener(listener)

    async def _discard_listener(self, listener: AdvertisementListener) -> None:
        # Discarded at once, before any wait: a removal cancelled while it waits for the lock (or while the scan
        # stops) must not leave the listener behind.
        self._listeners.discard(listener)
        async with self._scan_lock:
            if not self._listeners and self.device.scanning:
                await self.device.stop_scanning()

    # Connections, one attempt at a time (a controller has one LE initiator).
    async def connect(self, address: hci.Address, timeout: float) -> Connection:
        """Connect to ``address``; ``asyncio.TimeoutError`` after ``timeout`` seconds, the wait for the attempts
        queued before it included. An attempt cancelled (by that timeout or by the caller) is called off at the
        controller, and a connection it made all the same is dropped."""
        return await asyncio.wait_for(self._connect(address), timeout)

    async def _connect(self, address: hci.Address) -> Connection:
        async with self._connect_lock:
            # For the identity address of a bonded device, Bumble first scans for the address it advertises now
            # (Device.find_peer_by_identity_address), starting and stopping the controller's scan itself when it was
            # off: a scanner ending meanwhile stopped the scan under that search (which then never ended), and the
            # search's end stopped the scan under the scanners. Our own listener keeps the scan on throughout.
            def searching(_advertisement: Advertisement) -> None:
                pass

            search = self._searches_before_connecting(address)
            if search:
                await self.add_scan_listener(searching)
            try:
                # No timeout of Bumble's (ours bounds the whole attempt, its search included)
                attempt = asyncio.ensure_future(self.device.connect(address, transport=core.PhysicalTransport.LE,
                                                                    timeout=None))
                try:
                    return await asyncio.shield(attempt)
                except asyncio.CancelledError:
                    await self._abandon(attempt)
                    raise
            finally:
                if search:
                    await self.remove_scan_listener(searching)

    def _searches_before_connecting(self, address: hci.Address) -> bool:
        """Whether Bumble's ``Device.connect_le`` scans for ``address`` first: the identity address of a bonded
        device (its IRK in the resolving list), unless the controller resolves addresses itself."""
        resolver = self.device.address_resolver
        return (not self.device.address_resolution_offload and resolver is not None
                and resolver.can_resolve_to(address))

    async def _abandon(self, attempt: asyncio.Future) -> None:
        """End a connection attempt that nobody waits for any more. Cancelling Bumble's ``connect`` while the
        controller is initiating would leave the controller initiating (Bumble cancels at the controller only on
        its own timeout): the next attempt is refused (Command Disallowed) and the peer, once it advertises,
        connected to nobody's use. So: cancel at the controller, which ends the attempt with a failure."""
        if self.device.is_le_connecting:
            try:
                await self.device.cancel_connection()
            except (core.BaseBumbleError, hci.HCI_Error) as exc:  # connected or failed meanwhile: the attempt says
                logger.debug("cancelling a connection attempt: %r", exc)
        else:  # still searching for the peer's address: nothing at the controller yet
            attempt.cancel()
        try:
            connection = await attempt
        except (asyncio.CancelledError, core.BaseBumbleError, hci.HCI_Error, asyncio.TimeoutError):
            return
        try:  # connected before the cancel reached the controller
            await connection.disconnect()
        except (core.BaseBumbleError, hci.HCI_Error) as exc:
            logger.debug("dropping an abandoned connection: %r", exc)


def gateway_pairing_config(connection: Connection) -> PairingConfig:
    """How the gateway pairs: LE Secure Connections (legacy only where the peer cannot), bonding, no MITM (no
    display, no keyboard: Just Works); its identity is its static random address."""
    return PairingConfig(sc=True, mitm=False, bonding=True,
                         delegate=PairingDelegate(PairingDelegate.IoCapability.NO_OUTPUT_NO_INPUT),
                         identity_address_type=PairingConfig.AddressType.RANDOM)
