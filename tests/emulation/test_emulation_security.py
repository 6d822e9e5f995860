"""Link security of the emulated wearables and of the bleak backend on Bumble: the board's rules (PROTOCOL.md section
11) enforced over Bumble's real SMP and ATT, BleakClient.pair() (pairing, or encryption with the stored bond),
link_security(), resolvable private addresses, and cancellation told apart from a lost link on every Python."""

from __future__ import annotations

import asyncio

import pytest
from bleak import BleakClient, BleakScanner
from bleak.exc import BleakError, BleakGATTProtocolError
from bumble import gatt
from bumble.core import AdvertisingData
from bumble.pairing import PairingConfig

from biomoe_edge.firmware_bridge import decode_description
from biomoe_edge.firmware_bridge import gatt as native_gatt
from biomoe_edge.firmware_bridge.emulation import BleakClientBumble, BleakScannerBumble, VirtualBleNetwork
from biomoe_edge.firmware_bridge.emulation.board_security import (ATT_ERROR_INSUFFICIENT_AUTHENTICATION,
                                                                  ATT_ERROR_INSUFFICIENT_ENCRYPTION)


def _client(central, address) -> BleakClient:
    return BleakClient(address, backend=BleakClientBumble, bumble_central=central, timeout=5.0)


async def _att_error(operation) -> int:
    with pytest.raises(BleakGATTProtocolError) as error:
        await operation
    return error.value.args[0]


async def test_a_bonded_board_serves_nothing_before_pairing_and_everything_after(recording):
    async with VirtualBleNetwork() as network:
        wearable = await network.add_wearable("wear-1", signals=recording, modalities=("bvp",), speed=20)
        central = await network.central()
        async with _client(central, wearable.address) as client:
            unpaired = [
                await _att_error(client.read_gatt_char(native_gatt.DESCRIPTION_CHAR_UUID)),
                await _att_error(client.start_notify(native_gatt.DATA_CHAR_UUID, lambda _c, _d: None)),
                await _att_error(client.write_gatt_char(native_gatt.CONTROL_CHAR_UUID,
                                                        native_gatt.encode_control(native_gatt.ControlOpcode.START),
                                                        response=True)),
            ]
            assert unpaired == [ATT_ERROR_INSUFFICIENT_AUTHENTICATION] * 3
            assert wearable.counters.accesses_refused == 3 and wearable.counters.total("packets_sent") == 0
            await client.pair()
            link = client._backend.link_security()
            assert decode_description(await client.read_gatt_char(native_gatt.DESCRIPTION_CHAR_UUID)) == \
                wearable.description()
        assert link == {"encrypted": True, "bonded": True, "secure_connections": True,
                        "identity_address": wearable.address, "paired_now": True, "irk": wearable.device.irk.hex()}
        assert wearable.counters.pairings == 1 and wearable.counters.accesses_refused == 3


async def test_a_reconnection_encrypts_with_the_bond_and_a_board_that_lost_it_is_refused_not_re_paired(recording):
    async with VirtualBleNetwork() as network:
        wearable = await network.add_wearable("wear-1", signals=recording, modalities=("bvp",), speed=20)
        central = await network.central()
        async with _client(central, wearable.address) as client:
            await client.pair()
        async with _client(central, wearable.address) as client:
            # Before encryption the board knows the central: "encrypt", not "pair".
            assert await _att_error(client.read_gatt_char(native_gatt.DESCRIPTION_CHAR_UUID)) == \
                ATT_ERROR_INSUFFICIENT_ENCRYPTION
            await client.pair()
            assert client._backend.link_security()["paired_now"] is False
            await client.read_gatt_char(native_gatt.DESCRIPTION_CHAR_UUID)
        assert wearable.counters.pairings == 1
        await wearable.device.keystore.delete_all()  # a factory reset
        async with _client(central, wearable.address) as client:
            with pytest.raises(BleakError, match="stored bond failed: PIN_OR_KEY_MISSING"):
                await client.pair()
        assert wearable.counters.pairings == 1


@pytest.mark.parametrize("sc, bonding", [(False, True), (True, False)])
async def test_a_bonded_board_refuses_pairing_without_secure_connections_or_bonding(recording, sc, bonding):
    async with VirtualBleNetwork() as network:
        wearable = await network.add_wearable("wear-1", signals=recording, modalities=("bvp",), speed=20)
        central = await network.central()
        central.device.pairing_config_factory = lambda _c: PairingConfig(
            sc=sc, mitm=False, bonding=bonding, identity_address_type=PairingConfig.AddressType.RANDOM)
        async with _client(central, wearable.address) as client:
            with pytest.raises(BleakError, match="AUTHENTICATION_REQUIREMENTS"):
                await client.pair()
        assert wearable.counters.pairings_refused == 1 and wearable.counters.pairings == 0


async def test_resolvable_private_addresses_are_reported_under_the_identity_once_bonded(recording):
    async with VirtualBleNetwork() as network:
        wearable = await network.add_wearable("wear-1", signals=recording, modalities=("bvp",), speed=20, privacy=True)
        central = await network.central()
        first = wearable.advertised_address
        device = await BleakScanner.find_device_by_name("wear-1", 2.0, backend=BleakScannerBumble, bumble_central=central)
        assert device.address == first != wearable.address  # no bond yet: the address on the air
        async with BleakClient(device, backend=BleakClientBumble) as client:
            await client.pair()
            assert client.address == wearable.address  # the identity, as bleak on BlueZ reports it after Pair()
        await asyncio.sleep(0.1)  # the board advertises again, from a new resolvable private address
        device = await BleakScanner.find_device_by_name("wear-1", 2.0, backend=BleakScannerBumble, bumble_central=central)
        assert wearable.advertised_address != first
        assert device.address == wearable.address and device.details.address.to_string(False) == \
            wearable.advertised_address


async def _slow_peripheral(network, read_s: float):
    """A peripheral whose one characteristic takes ``read_s`` to answer a read."""
    device = network.create_device("slow")

    async def slow_read(_connection):
        await asyncio.sleep(read_s)
        return b"late"

    characteristic = gatt.Characteristic(native_gatt.DESCRIPTION_CHAR_UUID, gatt.Characteristic.Properties.READ,
                                         gatt.Characteristic.READABLE, gatt.CharacteristicValue(read=slow_read))
    device.add_service(gatt.Service(native_gatt.SERVICE_UUID, [characteristic]))
    await device.power_on()
    await device.start_advertising(advertising_data=bytes(AdvertisingData([(AdvertisingData.COMPLETE_LOCAL_NAME,
                                                                           b"slow")])), auto_restart=True)
    return device


async def test_cancelling_a_gatt_operation_is_a_cancellation_and_a_link_lost_under_it_a_bleak_error():
    """stop() cancels the connection task mid-operation: that must stay a cancellation (on Python 3.10 too, which has
    no Task.cancelling()), or the retry logic takes it for a failed attempt and tries again. A peripheral that drops
    the link under a pending read is a lost link: BleakError, as on BlueZ."""
    async with VirtualBleNetwork() as network:
        peripheral = await _slow_peripheral(network, read_s=5.0)
        central = await network.central()
        async with _client(central, peripheral.random_address.to_string(False)) as client:
            read = asyncio.ensure_future(client.read_gatt_char(native_gatt.DESCRIPTION_CHAR_UUID))
            await asyncio.sleep(0.2)
            read.cancel()
            with pytest.raises(asyncio.CancelledError):
                await read
            assert client.is_connected
            read = asyncio.ensure_future(client.read_gatt_char(native_gatt.DESCRIPTION_CHAR_UUID))
            await asyncio.sleep(0.2)
            await next(iter(peripheral.connections.values())).disconnect()
            with pytest.raises(BleakError, match="disconnected during a GATT operation"):
                await asyncio.wait_for(read, 3.0)
        # Both at once, as when the gateway stops while a wearable drops its link: the task was cancelled, so it
        # ends cancelled (on 3.10 the backend used to see only the lost link and raise BleakError instead).
        async with _client(central, peripheral.random_address.to_string(False)) as client:
            read = asyncio.ensure_future(client.read_gatt_char(native_gatt.DESCRIPTION_CHAR_UUID))
            await asyncio.sleep(0.2)
            client._backend._connection.on("disconnection", lambda _reason: read.cancel())
            await next(iter(peripheral.connections.values())).disconnect()
            with pytest.raises(asyncio.CancelledError):
                await asyncio.wait_for(read, 3.0)
