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
        address = address_string(advertisement.address)
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
        timeout = kwargs.get("timeout", self._timeout)
        try:
            connection = await self._central.connect(self._peer_address, timeout)
        except _BUMBLE_ERRORS as exc:
            raise BleakError(f"{self.address}: connection failed: {exc!r}") from exc
        self._connection = connection
        self._peer = Peer(connection)
        connection.on("disconnection", self._on_disconnection)
        try:
            await asyncio.wait_for(self._set_up(self._peer, pair), timeout)
        except asyncio.CancelledError:
            self._raise_if_link_lost(connection, "connection setup")
            raise
        except _BUMBLE_ERRORS as exc:
            await self._drop_connection()
            raise BleakError(f"{self.address}: connection setup failed: {exc!r}") from exc
        if self._connection is None:  # the peripheral dropped us during setup
            raise BleakError(f"{self.address}: disconnected during connection setup")

    async def _set_up(self, peer: Peer, pair: bool) -> None:
        await peer.request_mtu(self._requested_mtu)
        self.services = await self._discover_services(peer)
        if pair:
            await peer.connection.pair()

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
        connection = self._connection
        if connection is None:
            raise BleakError("Not connected")
        await connection.pair()

    async def unpair(self) -> None:
        raise BleakError("unpair is not supported by the Bumble backend (it keeps no bonds)")

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
    def _raise_if_link_lost(self, connection: Connection | None, what: str) -> None:
        """Bumble cancels a pending ATT request when the link drops: for the caller that is a lost link, a
        BleakError as on BlueZ, not a cancellation of its own task (which is re-raised as it is)."""
        task = asyncio.current_task()
        cancelling = getattr(task, "cancelling", None)  # Python 3.11+
        if self._connection is not connection and not (cancelling is not None and cancelling()):
            raise BleakError(f"{self.address}: disconnected during {what}") from None

    async def _gatt(self, operation):
        connection = self._connection
        try:
            return await operation
        except asyncio.CancelledError:
            self._raise_if_link_lost(connection, "a GATT operation")
            raise
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

