"""Bumble devices on an in-process virtual link, or on a real HCI controller.

``VirtualBleNetwork`` is one Bumble ``LocalLink`` (a virtual radio) with helpers to add emulated wearables
and to create the central-side Bumble device that the bleak backend drives. Everything here speaks real
HCI, L2CAP, ATT and GATT; only the radio is simulated.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any, Callable

from bumble import core, hci
from bumble.controller import Controller
from bumble.device import Device
from bumble.host import Host
from bumble.link import LocalLink
from bumble.transport.common import AsyncPipeSink

if TYPE_CHECKING:
    from biomoe_edge.firmware_bridge.emulation.central import BumbleCentral
    from biomoe_edge.firmware_bridge.emulation.wearable import EmulatedWearable

logger = logging.getLogger(__name__)

#: Address of the gateway's central on a virtual link (static random: the two top bits are 1).
CENTRAL_ADDRESS = "F0:00:00:00:C0:01"


class ReportingLink(LocalLink):
    """Bumble's virtual radio, telling each sending controller the fate of every LE ACL PDU it put on the air.

    A PDU sent as the link drops may reach a central that has already gone: Bumble's ``LocalLink`` then drops it
    (the receiving controller has no connection to the sender any more). This link reports, at the moment of
    delivery, whether the receiver still had the connection (``VirtualController.on_air``), so an emulated
    wearable can count what reached its central and what was lost in flight.
    """

    def send_acl_data(self, sender_controller: Controller, destination_address: hci.Address,
                      transport: core.PhysicalTransport, data: bytes) -> None:
        if transport != core.PhysicalTransport.LE:
            super().send_acl_data(sender_controller, destination_address, transport, data)
            return
        # As LocalLink.send_acl_data (Bumble 0.0.235-0.0.236), with the report added.
        destination_controller = self.find_le_controller(destination_address)
        source_address = sender_controller.random_address

        def deliver() -> None:
            arrived = destination_controller is not None and source_address in destination_controller.le_connections
            if destination_controller is not None:
                destination_controller.on_link_acl_data(source_address, transport, data)
            on_air = getattr(sender_controller, "on_air", None)
            if on_air is not None:
                on_air(data, arrived)

        asyncio.get_running_loop().call_soon(deliver)


class VirtualController(Controller):
    """Bumble's virtual controller, with LE Create Connection Cancel completed as the Core spec says, and a hook
    for the fate of what it sends on a ``ReportingLink``.

    Bumble 0.0.236 acknowledges the cancel but neither clears the pending connection nor sends the LE
    Connection Complete event (status Unknown Connection Identifier) that the host waits for, so a
    connection attempt to a device that stopped advertising would hang the central forever. Vol 4, Part E,
    7.8.13: after a successful cancel the controller shall send that event.

    ``air_listener(l2cap_pdu, arrived)``, when set, hears of each LE ACL PDU this controller sent on a
    ``ReportingLink``, in the order sent, as it is delivered: ``arrived`` False when the receiver had already
    dropped the connection.
    """

    air_listener: Callable[[bytes, bool], None] | None = None

    def on_air(self, l2cap_pdu: bytes, arrived: bool) -> None:
        if self.air_listener is not None:
            self.air_listener(l2cap_pdu, arrived)

    def on_hci_le_create_connection_cancel_command(self, command):
        pending = self.pending_le_connection
        self.pending_le_connection = None
        if pending is not None:
            event = hci.HCI_LE_Connection_Complete_Event(
                status=hci.HCI_ErrorCode.UNKNOWN_CONNECTION_IDENTIFIER_ERROR,
                connection_handle=0,
                role=hci.Role.CENTRAL,
                peer_address_type=pending.peer_address_type,
                peer_address=pending.peer_address,
                connection_interval=0,
                peripheral_latency=0,
                supervision_timeout=0,
                central_clock_accuracy=0,
            )
            # After the Command Complete that the return value below produces.
            asyncio.get_running_loop().call_soon(self.send_hci_packet, event)
        return super().on_hci_le_create_connection_cancel_command(command)


def device_on_link(link: LocalLink, name: str, address: str) -> Device:
    """A Bumble device whose host talks to a fresh virtual controller on ``link`` (needs a running loop)."""
    return device_and_controller_on_link(link, name, address)[0]


def device_and_controller_on_link(link: LocalLink, name: str, address: str) -> tuple[Device, VirtualController]:
    """``device_on_link``, and the device's controller."""
    controller = VirtualController(name, link=link, public_address=address)
    device = Device(name=name, address=hci.Address(address), host=Host(controller, AsyncPipeSink(controller)))
    return device, controller


async def device_on_transport(spec: str, name: str, address: str) -> tuple[Device, Any]:
    """A Bumble device on a real HCI controller, e.g. ``usb:0``, ``hci-socket:0``, ``serial:/dev/ttyACM0``.

    Returns ``(device, transport)``; close the transport when done (``await transport.close()``).
    """
    from bumble.transport import open_transport

    try:
        transport = await open_transport(spec)
    except Exception as exc:  # noqa: BLE001 - Bumble raises bare Exception, usb1/serial errors...: one clear error
        raise OSError(f"cannot open the HCI transport {spec!r}: {type(exc).__name__}: {exc}") from exc
    device = Device.with_hci(name, hci.Address(address), transport.source, transport.sink)
    return device, transport


def virtual_address(index: int) -> str:
    """A static random address for the ``index``-th emulated device on a virtual link."""
    if not 0 <= index < 1 << 24:
        raise ValueError(f"virtual device index out of range: {index}")
    low = f"{index:06X}"
    return f"F0:00:00:{low[0:2]}:{low[2:4]}:{low[4:6]}"


class VirtualBleNetwork:
    """One in-process virtual radio: emulated wearables on one side, the gateway's central on the other.

    Use as an async context manager (it must be created inside a running event loop)::

        async with VirtualBleNetwork() as network:
            wearable = await network.add_wearable("wear-1", loss=0.01, speed=20)
            central = await network.central()          # for BleakClientBumble / BleakScannerBumble
    """

    def __init__(self) -> None:
        self.link = ReportingLink()
        self.wearables: list[EmulatedWearable] = []
        self._central: BumbleCentral | None = None
        self._next_index = 1

    def allocate_address(self) -> str:
        address = virtual_address(self._next_index)
        self._next_index += 1
        return address

    def create_device(self, name: str, address: str | None = None) -> Device:
        """A Bumble device with its own virtual controller on this network's link."""
        return device_on_link(self.link, name, address or self.allocate_address())

    async def add_wearable(self, name: str, **options) -> EmulatedWearable:
        """Create an ``EmulatedWearable`` (same keyword options), start it on this link and return it."""
        from biomoe_edge.firmware_bridge.emulation.wearable import EmulatedWearable

        wearable = EmulatedWearable(name, **options)
        await wearable.start(self)
        self.wearables.append(wearable)
        return wearable

    async def central(self) -> BumbleCentral:
        """The gateway-side central (created and powered on at the first call, then shared)."""
        if self._central is None:
            from biomoe_edge.firmware_bridge.emulation.central import BumbleCentral

            central = BumbleCentral(self.create_device("biomoe-gateway", CENTRAL_ADDRESS))
            await central.power_on()
            self._central = central
        return self._central

    async def close(self) -> None:
        for wearable in self.wearables:
            await wearable.stop()
        if self._central is not None:
            await self._central.close()
            self._central = None

    async def __aenter__(self) -> VirtualBleNetwork:
        return self

    async def __aexit__(self, *exc_info) -> None:
        await self.close()
