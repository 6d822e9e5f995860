"""A bleak backend on Bumble: production ``BleakClient``/``BleakScanner`` code with no Bluetooth hardware.

bleak has no such backend upstream. Pass the classes through bleak's ``backend=`` parameter::

    central = await network.central()                  # or await BumbleCentral.open("usb:0")
    device = await BleakScanner.find_device_by_name("wear-1", backend=BleakScannerBumble,
                                                     bumble_central=central)
    async with BleakClient(device, backend=BleakClientBumble) as client:
        print(client.mtu_size)                         # negotiated by an ATT Exchange MTU
        await client.start_notify(DATA_CHAR_UUID, callback)

A ``BLEDevice`` from ``BleakScannerBumble`` carries its central in ``details``; with a plain address
string, pass ``bumble_central=`` to ``BleakClient`` as well (bleak forwards extra keyword arguments to
the backend). Like BlueZ, the backend negotiates the ATT MTU on connect (default 247, ``mtu=``) and calls
the disconnected callback on every disconnection, the peripheral's included.

Security, as BlueZ does it: ``pair()`` runs Bumble's SMP (LE Secure Connections, Just Works: the gateway has no
display) and stores the bond in the central's key store, or, for a peer already bonded, encrypts the link with the
stored key (a peer that has lost it, or is not the bonded device, fails that: ``BleakError``); the scanner
reports a bonded device that advertises resolvable private addresses under its identity address (resolved
through the IRK it gave at pairing), and ``address`` becomes the identity address after pairing.
``link_security()`` says what the link is (encrypted, bonded, LE Secure Connections or legacy, identity, IRK),
which bleak's BlueZ backend cannot.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from dataclasses import dataclass
from typing import Any

from bleak import BleakScanner
from bleak.backends.characteristic import BleakGATTCharacteristic
from bleak.backends.client import BaseBleakClient, NotifyCallback
from bleak.backends.descriptor import BleakGATTDescriptor
from bleak.backends.device import BLEDevice
from bleak.backends.scanner import AdvertisementData, AdvertisementDataCallback, BaseBleakScanner
from bleak.backends.service import BleakGATTService, BleakGATTServiceCollection
from bleak.exc import BleakError, BleakGATTProtocolError
from bumble import att, core, hci
from bumble.core import AdvertisingData
from bumble.device import Advertisement, Connection, Peer
from bumble.keys import PairingKeys

from biomoe_edge.firmware_bridge.emulation.central import BumbleCentral

logger = logging.getLogger(__name__)

#: ATT MTU the backend asks for on connect (what BlueZ and most phones request is 247 or 517).
DEFAULT_MTU = 247
DEFAULT_ATT_MTU = att.ATT_DEFAULT_MTU  # 23, before any exchange

# Bumble errors that mean "this GATT operation or connection failed" (mapped to BleakError).
_BUMBLE_ERRORS = (core.BaseBumbleError, hci.HCI_Error, core.ProtocolError, asyncio.TimeoutError)

_SERVICE_UUID_TYPES = (
    AdvertisingData.COMPLETE_LIST_OF_16_BIT_SERVICE_CLASS_UUIDS,
    AdvertisingData.INCOMPLETE_LIST_OF_16_BIT_SERVICE_CLASS_UUIDS,
    AdvertisingData.COMPLETE_LIST_OF_32_BIT_SERVICE_CLASS_UUIDS,
    AdvertisingData.INCOMPLETE_LIST_OF_32_BIT_SERVICE_CLASS_UUIDS,
    AdvertisingData.COMPLETE_LIST_OF_128_BIT_SERVICE_CLASS_UUIDS,
    AdvertisingData.INCOMPLETE_LIST_OF_128_BIT_SERVICE_CLASS_UUIDS,
)


@dataclass(frozen=True)
class BumbleDeviceDetails:
    """``BLEDevice.details`` for a device seen through a ``BumbleCentral``."""

    central: BumbleCentral
    address: hci.Address


def bleak_uuid(value: core.UUID) -> str:
    """A Bumble UUID as bleak spells UUIDs: lower-case 128-bit string."""
    return str(uuid.UUID(bytes=bytes(reversed(value.to_bytes(force_128=True)))))


def address_string(address: hci.Address) -> str:
    return address.to_string(False)


def _properties(properties: int) -> list[str]:
    """GATT characteristic property bits as bleak's property names."""
    names = (
        (0x01, "broadcast"),
        (0x02, "read"),
        (0x04, "write-without-response"),
        (0x08, "write"),
        (0x10, "notify"),
        (0x20, "indicate"),
        (0x40, "authenticated-signed-writes"),
        (0x80, "extended-properties"),
    )
    return [name for bit, name in names if properties & bit]


def advertisement_data(advertisement: Advertisement) -> AdvertisementData:
    """bleak's ``AdvertisementData`` from a Bumble advertisement (advertising data + scan response)."""
    data = advertisement.data
    name = data.get(AdvertisingData.COMPLETE_LOCAL_NAME) or data.get(AdvertisingData.SHORTENED_LOCAL_NAME)
    service_uuids: list[str] = []
    for ad_type in _SERVICE_UUID_TYPES:
        for uuids in data.get_all(ad_type):
            service_uuids.extend(bleak_uuid(u) for u in uuids)
    manufacturer_data = {company: bytes(payload) for company, payload in data.get_all(AdvertisingData.MANUFACTURER_SPECIFIC_DATA)}
    tx_power = data.get(AdvertisingData.TX_POWER_LEVEL)
    return AdvertisementData(
        local_name=name,
        manufacturer_data=manufacturer_data,
        service_data={},
        service_uuids=service_uuids,
        tx_power=tx_power,
        rssi=advertisement.rssi,
        platform_data=(advertisement,),
    )


class BleakScannerBumble(BaseBleakScanner):
    """bleak scanner backend over a ``BumbleCentral`` (pass ``bumble_central=`` through ``BleakScanner``)."""

    def __init__(
        self,
        detection_callback: AdvertisementDataCallback | None,
        service_uuids: list[str] | None,
        scanning_mode: str = "active",
        *,
        bumble_central: BumbleCentral | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(detection_callback, service_uuids)
        if bumble_central is None:
            raise BleakError("BleakScannerBumble needs bumble_central=<BumbleCentral>")
        self._central = bumble_central

    async def start(self) -> None:
        self.seen_devices = {}
        await self._central.add_scan_listener(self._on_advertisement)

    async def stop(self) -> None:
        await self._central.remove_scan_listener(self._on_advertisement)

    def _on_advertisement(self, advertisement: Advertisement) -> None:
        data = advertisement_data(advertisement)
        if not self.is_allowed_uuid(data.service_uuids):
            return
        # As BlueZ does: a bonded device's resolvable private address is reported as its identity address.
        address = address_string(self._central.identity_of(advertisement.address) or advertisement.address)
        details = BumbleDeviceDetails(self._central, advertisement.address)
        device = self.create_or_update_device(address, address, data.local_name, details, data)
        self.call_detection_callbacks(device, data)


async def discover(central: BumbleCentral, timeout: float = 1.0, **kwargs: Any) -> list[BLEDevice]:
    """Scan through ``central`` for ``timeout`` seconds; the advertising devices as bleak ``BLEDevice``s."""
    return await BleakScanner.discover(timeout, backend=BleakScannerBumble, bumble_central=central, **kwargs)


class BleakClientBumble(BaseBleakClient):
    """bleak client backend over a ``BumbleCentral``: ``BleakClient(device, backend=BleakClientBumble)``."""

    def __init__(
        self,
        address_or_ble_device: BLEDevice | str,
        *,
        disconnected_callback=None,
        timeout: float = 10.0,
        bumble_central: BumbleCentral | None = None,
        mtu: int = DEFAULT_MTU,
        services: set[str] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(address_or_ble_device, disconnected_callback=disconnected_callback, timeout=timeout)
        details = address_or_ble_device.details if isinstance(address_or_ble_device, BLEDevice) else None
        if isinstance(details, BumbleDeviceDetails):
            self._central = bumble_central or details.central
            self._peer_address = details.address
        else:
            self._central = bumble_central
            self._peer_address = hci.Address(self.address)
        if self._central is None:
            raise BleakError(
                "BleakClientBumble needs a BLEDevice from BleakScannerBumble or bumble_central=<BumbleCentral>"
            )
        self._device_name = address_or_ble_device.name if isinstance(address_or_ble_device, BLEDevice) else None
        self._requested_mtu = mtu
        self._service_filter = services
        self._connection: Connection | None = None
        self._peer: Peer | None = None
        self._subscribers: dict[int, Any] = {}
        self._link: dict[str, Any] = {}  # what pair() found out about the current link (link_security())

    # Identity and state
    @property
    def name(self) -> str:
        return self._device_name or self.address.replace(":", "-")

    @property
    def mtu_size(self) -> int:
        return self._connection.att_mtu if self._connection is not None else DEFAULT_ATT_MTU

    @property
    def is_connected(self) -> bool:
        return self._connection is not None

    def _require_peer(self) -> Peer:
        if self._peer is None:
            raise BleakError("Not connected")
        return self._peer

    # Connectivity
    async def connect(self, pair: bool, **kwargs: Any) -> None:
        """Connect, exchange the MTU, discover the services and, with ``pair``, pair or encrypt: all of it within
        ``timeout`` (keyword; default the constructor's). A connection made is dropped again when what follows
        fails or is cancelled (the board serves one central: a connection left behind would lock us out)."""
        loop = asyncio.get_running_loop()
        timeout = kwargs.get("timeout", self._timeout)
        deadline = loop.time() + timeout
        try:
            connection = await self._central.connect(self._peer_address, timeout)
        except _BUMBLE_ERRORS as exc:
            raise BleakError(f"{self.address}: connection failed: {exc!r}") from exc
        self._connection = connection
        self._peer = Peer(connection)
        self._link = {}
        connection.on("disconnection", self._on_disconnection)
        try:
            await asyncio.wait_for(self._stack(self._set_up(self._peer, pair), "connection setup"),
                                   max(0.0, deadline - loop.time()))
        except _BUMBLE_ERRORS as exc:
            await self._drop_connection()
            raise BleakError(f"{self.address}: connection setup failed: {exc!r}") from exc
        except asyncio.CancelledError:
            await self._drop_connection()
            raise
        if self._connection is None:  # the peripheral dropped us during setup
            raise BleakError(f"{self.address}: disconnected during connection setup")

    async def _set_up(self, peer: Peer, pair: bool) -> None:
        await peer.request_mtu(self._requested_mtu)
        self.services = await self._discover_services(peer)
        if pair:
            await self._pair_or_encrypt(peer.connection)

    async def _drop_connection(self) -> None:
        connection = self._connection
        if connection is not None:
            try:
                await connection.disconnect()
            except _BUMBLE_ERRORS as exc:
                logger.debug("%s: disconnect after failed setup: %r", self.address, exc)

    def _on_disconnection(self, reason: int) -> None:
        logger.debug("%s: disconnected (HCI reason 0x%02X)", self.address, reason)
        self._connection = None
        self._peer = None
        self._subscribers.clear()
        if self._disconnected_callback is not None:
            self._disconnected_callback()

    async def disconnect(self) -> None:
        connection = self._connection
        if connection is None:
            return
        disconnected = asyncio.get_running_loop().create_future()
        connection.once("disconnection", lambda reason: disconnected.done() or disconnected.set_result(reason))
        try:
            await connection.disconnect()
            await asyncio.wait_for(disconnected, self._timeout)
        except _BUMBLE_ERRORS as exc:
            raise BleakError(f"{self.address}: disconnect failed: {exc!r}") from exc

    async def pair(self, *args: Any, **kwargs: Any) -> None:
        """Pair (LE Secure Connections where the peer can, bonding), or encrypt with the stored bond of a peer
        already bonded, as BlueZ's Device1.Pair does; BleakError when the peer refuses or fails either."""
        connection = self._connection
        if connection is None:
            raise BleakError("Not connected")
        try:
            await self._stack(self._pair_or_encrypt(connection), "pairing")
        except hci.HCI_Error as exc:  # e.g. PIN_OR_KEY_MISSING: the peer has no key for our stored bond
            raise BleakError(f"{self.address}: encryption with the stored bond failed: {exc.error_name}") from exc
        except core.ProtocolError as exc:  # SMP Pairing Failed, from either side
            raise BleakError(f"{self.address}: pairing failed: {exc.error_name or repr(exc)}") from exc
        except _BUMBLE_ERRORS as exc:
            raise BleakError(f"{self.address}: pairing failed: {exc!r}") from exc

    async def _pair_or_encrypt(self, connection: Connection) -> None:
        device = self._central.device
        keystore = device.keystore
        bond = await keystore.get(str(connection.peer_address)) if keystore is not None else None
        if bond is not None and (bond.ltk is not None or bond.ltk_central is not None):
            await connection.encrypt()
            self._link = _link_from_keys(bond, paired_now=False, bonded=True)
        else:
            made: list[PairingKeys] = []
            on_pairing = made.append
            connection.on("pairing", on_pairing)
            try:
                await connection.pair()
            finally:
                connection.remove_listener("pairing", on_pairing)
            session = device.smp_manager.sessions.get(connection.handle)
            bonded = bool(session.bonding) if session is not None else False
            if not bonded and keystore is not None:  # Bumble keeps the keys anyway; without a bond they are no use
                await keystore.delete(str(connection.peer_address))
            self._link = _link_from_keys(made[0] if made else PairingKeys(), paired_now=True, bonded=bonded)
        if not connection.peer_address.is_resolvable:  # the identity address, once the peer gave it
            self.address = address_string(connection.peer_address)

    def link_security(self) -> dict[str, Any]:
        """What the current link is (``runtime.transport.security.LinkSecurity`` fields): encrypted, bonded,
        secure_connections, identity_address, paired_now, irk (hex). Raises BleakError when not connected."""
        connection = self._connection
        if connection is None:
            raise BleakError("Not connected")
        peer = connection.peer_address
        return {
            "encrypted": bool(connection.is_encrypted),
            "bonded": bool(self._link.get("bonded", False)),
            "secure_connections": self._link.get("secure_connections"),
            "identity_address": None if peer.is_resolvable else address_string(peer),
            "paired_now": self._link.get("paired_now"),
            "irk": self._link.get("irk"),
        }

    async def unpair(self) -> None:
        """Forget the peer's bond (the central's key store) and disconnect."""
        connection = self._connection
        keystore = self._central.device.keystore
        if connection is not None and keystore is not None:
            await keystore.delete(str(connection.peer_address))
            await self._central.device.refresh_resolving_list()
        await self.disconnect()

    # Service discovery
    async def _discover_services(self, peer: Peer) -> BleakGATTServiceCollection:
        await peer.discover_services()
        collection = BleakGATTServiceCollection()
        for service in peer.services:
            service_uuid = bleak_uuid(service.uuid)
            if self._service_filter and service_uuid not in self._service_filter:
                continue
            await peer.discover_characteristics(service=service)
            bleak_service = BleakGATTService(service, service.handle, service_uuid)
            collection.add_service(bleak_service)
            for characteristic in service.characteristics:
                await peer.discover_descriptors(characteristic=characteristic)
                bleak_characteristic = BleakGATTCharacteristic(
                    characteristic,
                    characteristic.handle,
                    bleak_uuid(characteristic.uuid),
                    _properties(characteristic.properties),
                    lambda: self.mtu_size - 3,
                    bleak_service,
                )
                collection.add_characteristic(bleak_characteristic)
                for descriptor in characteristic.descriptors:
                    collection.add_descriptor(
                        BleakGATTDescriptor(descriptor, descriptor.handle, bleak_uuid(descriptor.type), bleak_characteristic)
                    )
        return collection

    # I/O
    async def _stack(self, operation, what: str):
        """Await a Bumble operation in a task of its own. Bumble cancels what is pending on a link when the link
        drops; for the caller that is a lost link, a BleakError as on BlueZ. A cancellation of the caller's own
        task (stop(), a timeout) is re-raised as it is, and cancels the operation. Told apart by which task was
        cancelled, so on every Python version (3.10 has no Task.cancelling())."""
        inner = asyncio.ensure_future(operation)
        try:
            await asyncio.wait((inner,))
        except asyncio.CancelledError:
            inner.cancel()
            raise
        if inner.cancelled():
            raise BleakError(f"{self.address}: disconnected during {what}") from None
        return inner.result()

    async def _gatt(self, operation):
        try:
            return await self._stack(operation, "a GATT operation")
        except att.ATT_Error as exc:
            raise BleakGATTProtocolError(int(exc.error_code)) from exc
        except _BUMBLE_ERRORS as exc:
            raise BleakError(f"{self.address}: GATT operation failed: {exc!r}") from exc

    async def read_gatt_char(self, characteristic: BleakGATTCharacteristic, *, use_cached: bool = False, **kwargs: Any) -> bytearray:
        return bytearray(await self._gatt(self._require_peer().read_value(characteristic.obj)))

    async def read_gatt_descriptor(self, descriptor: BleakGATTDescriptor, *, use_cached: bool = False, **kwargs: Any) -> bytearray:
        return bytearray(await self._gatt(self._require_peer().read_value(descriptor.obj)))

    async def write_gatt_char(self, characteristic: BleakGATTCharacteristic, data, response: bool) -> None:
        await self._gatt(self._require_peer().write_value(characteristic.obj, bytes(data), with_response=response))

    async def write_gatt_descriptor(self, descriptor: BleakGATTDescriptor, data) -> None:
        await self._gatt(self._require_peer().write_value(descriptor.obj, bytes(data), with_response=True))

    async def start_notify(self, characteristic: BleakGATTCharacteristic, callback: NotifyCallback, **kwargs: Any) -> None:
        def subscriber(value: bytes) -> None:
            callback(bytearray(value))

        await self._gatt(self._require_peer().subscribe(characteristic.obj, subscriber, prefer_notify=True))
        self._subscribers[characteristic.handle] = subscriber

    async def stop_notify(self, characteristic: BleakGATTCharacteristic) -> None:
        subscriber = self._subscribers.pop(characteristic.handle, None)
        await self._gatt(self._require_peer().unsubscribe(characteristic.obj, subscriber))



def _link_from_keys(keys: PairingKeys, *, paired_now: bool, bonded: bool) -> dict[str, Any]:
    """LE Secure Connections gives one LTK (``ltk``); legacy pairing one per direction (``ltk_central``...)."""
    secure_connections = keys.ltk is not None if (keys.ltk or keys.ltk_central or keys.ltk_peripheral) else None
    return {"bonded": bonded, "secure_connections": secure_connections, "paired_now": paired_now,
            "irk": keys.irk.value.hex() if keys.irk is not None else None}
