"""The production BleakClient/BleakScanner facades, on the Bumble backend, against the emulated wearable."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
from bleak import BleakClient, BleakScanner
from bleak.exc import BleakError, BleakGATTProtocolError

from biomoe_edge.firmware_bridge import decode_description, decode_packet
from biomoe_edge.firmware_bridge import gatt as native_gatt
from biomoe_edge.firmware_bridge.emulation import BleakClientBumble, BleakScannerBumble, VirtualBleNetwork, discover


async def _start(client: BleakClient, received: list) -> None:
    await client.start_notify(native_gatt.DATA_CHAR_UUID, lambda _c, data: received.append(bytes(data)))
    await client.write_gatt_char(native_gatt.CONTROL_CHAR_UUID, native_gatt.encode_control(native_gatt.ControlOpcode.START), response=True)


async def _wait_for(predicate, timeout: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)


async def test_scanner_backend_lists_advertising_devices_with_names_and_service_uuid(recording):
    async with VirtualBleNetwork() as network:
        await network.add_wearable("wear-a", signals=recording, modalities=("bvp",), speed=20)
        await network.add_wearable("wear-b", signals=recording, modalities=("bvp",), speed=20)
        central = await network.central()
        found = await BleakScanner.discover(0.3, return_adv=True, backend=BleakScannerBumble, bumble_central=central)
        names = {adv.local_name: address for address, (_device, adv) in found.items()}
        assert set(names) == {"wear-a", "wear-b"}
        assert names["wear-a"] == "F0:00:00:00:00:01" and names["wear-b"] == "F0:00:00:00:00:02"
        for _device, adv in found.values():
            assert native_gatt.SERVICE_UUID in adv.service_uuids
        # The service-UUID filter of BleakScanner works through the backend too.
        filtered = await BleakScanner.discover(0.2, service_uuids=["0000180d-0000-1000-8000-00805f9b34fb"], backend=BleakScannerBumble, bumble_central=central)
        assert filtered == []
        assert {d.name for d in await discover(central, 0.2)} == {"wear-a", "wear-b"}


async def test_bleak_client_connects_negotiates_mtu_discovers_reads_and_streams(recording):
    async with VirtualBleNetwork() as network:
        wearable = await network.add_wearable("wear-1", signals=recording, modalities=("bvp", "ecg"), speed=40, seed=5)
        central = await network.central()
        device = await BleakScanner.find_device_by_name("wear-1", timeout=2.0, backend=BleakScannerBumble, bumble_central=central)
        assert device is not None and device.address == wearable.address
        received: list[bytes] = []
        async with BleakClient(device, backend=BleakClientBumble) as client:
            assert client.backend_id == "BleakClientBumble"
            assert client.mtu_size == 247  # ATT Exchange MTU really happened (Bumble's server offers 517)
            await client.pair()  # the native board serves its characteristics on a bonded link only
            service = client.services.get_service(native_gatt.SERVICE_UUID)
            properties = {c.uuid: c.properties for c in service.characteristics}
            assert properties == {
                native_gatt.DATA_CHAR_UUID: ["notify"],
                native_gatt.CONTROL_CHAR_UUID: ["write"],
                native_gatt.DESCRIPTION_CHAR_UUID: ["read"],
            }
            data_char = service.get_characteristic(native_gatt.DATA_CHAR_UUID)
            assert [d.uuid for d in data_char.descriptors] == ["00002902-0000-1000-8000-00805f9b34fb"]  # CCCD
            # The description is longer than MTU - 1 for many devices: read blob through bleak's plain read.
            description = decode_description(await client.read_gatt_char(native_gatt.DESCRIPTION_CHAR_UUID))
            assert description == wearable.description()
            assert [s.modality for s in description.streams] == ["bvp", "ecg"]
            await _start(client, received)
            await _wait_for(lambda: len(received) >= 40)
            await client.stop_notify(native_gatt.DATA_CHAR_UUID)
            count_after_stop = len(received)
            await asyncio.sleep(0.2)
            assert len(received) <= count_after_stop + 1  # at most one notification in flight
        packets = [decode_packet(p) for p in received]
        assert max(len(p) for p in received) <= 247 - 3
        by_stream = {0: [], 1: []}
        for packet in packets:
            by_stream[packet.stream_id].append(packet)
        for stream_id, modality in ((0, "bvp"), (1, "ecg")):
            stream = description.stream(stream_id)
            values, rate = recording[modality]
            chain = by_stream[stream_id]
            assert len(chain) >= 5
            assert [(p.sequence - chain[0].sequence) % 65536 for p in chain] == list(range(len(chain)))  # no loss configured
            samples = np.concatenate([p.samples[:, 0] for p in chain]).astype(np.float64) * stream.scale + stream.offset
            # Where in the recording the stream started follows from the device clock and the nominal rate.
            first_index = 0  # START at device time t: sample 0 of the stream is recording sample 0
            expected = values[first_index : first_index + samples.size]
            np.testing.assert_allclose(samples, expected, atol=stream.scale / 2 + 1e-12)
            steps = np.diff([p.timestamp_us for p in chain]) % (1 << 32)
            counts = np.array([p.sample_count for p in chain[:-1]])
            np.testing.assert_allclose(steps, counts * 1e6 / rate, atol=1.0)


async def test_default_mtu_client_gets_packets_that_fit_23_bytes(recording):
    async with VirtualBleNetwork() as network:
        await network.add_wearable("wear-1", signals=recording, modalities=("ecg",), speed=40, security="none")
        central = await network.central()
        received: list[bytes] = []
        # An address string works too when the central is named (bleak forwards the keyword to the backend).
        async with BleakClient("F0:00:00:00:00:01", backend=BleakClientBumble, bumble_central=central, mtu=23) as client:
            assert client.mtu_size == 23
            await _start(client, received)
            await _wait_for(lambda: len(received) >= 10)
        assert max(len(p) for p in received) <= 20  # MTU 23 - 3: nothing truncated by the stack
        assert {decode_packet(p).sample_count for p in received} == {3}  # PROTOCOL.md: 3 int16 samples at MTU 23


async def test_control_errors_come_back_as_gatt_protocol_errors(recording):
    async with VirtualBleNetwork() as network:
        wearable = await network.add_wearable("wear-1", signals=recording, modalities=("bvp",), speed=40, security="none")
        central = await network.central()
        async with BleakClient("F0:00:00:00:00:01", backend=BleakClientBumble, bumble_central=central) as client:
            write = client.write_gatt_char
            with pytest.raises(BleakGATTProtocolError) as error:
                await write(native_gatt.CONTROL_CHAR_UUID, b"\x09\x00", response=True)
            assert error.value.args[0] == native_gatt.ATT_ERROR_UNKNOWN_OPCODE
            with pytest.raises(BleakGATTProtocolError) as error:
                await write(native_gatt.CONTROL_CHAR_UUID, native_gatt.encode_control(native_gatt.ControlOpcode.START, 7), response=True)
            assert error.value.args[0] == native_gatt.ATT_ERROR_UNKNOWN_STREAM
            with pytest.raises(BleakGATTProtocolError) as error:
                await write(native_gatt.CONTROL_CHAR_UUID, b"\x01", response=True)
            assert error.value.args[0] == native_gatt.ATT_ERROR_INVALID_LENGTH
            # CONFIGURE a stopped stream: the new rate shows in the description.
            await write(native_gatt.CONTROL_CHAR_UUID, native_gatt.encode_control(native_gatt.ControlOpcode.CONFIGURE, 0, sample_rate_hz=32.0, samples_per_packet=4), response=True)
            description = decode_description(await client.read_gatt_char(native_gatt.DESCRIPTION_CHAR_UUID))
            assert description.stream(0).sample_rate_hz == 32.0
            received: list[bytes] = []
            await _start(client, received)
            with pytest.raises(BleakGATTProtocolError) as error:  # running streams cannot be reconfigured
                await write(native_gatt.CONTROL_CHAR_UUID, native_gatt.encode_control(native_gatt.ControlOpcode.CONFIGURE, 0, sample_rate_hz=64.0), response=True)
            assert error.value.args[0] == native_gatt.ATT_ERROR_BUSY
            await _wait_for(lambda: len(received) >= 5)
        packets = [decode_packet(p) for p in received]
        assert {p.sample_count for p in packets} == {4}
        assert np.diff([p.timestamp_us for p in packets]).tolist() == [125_000] * (len(packets) - 1)  # 4 samples at 32 Hz
        assert wearable.counters.total("packets_dropped") == 0


async def test_peripheral_disconnect_calls_the_disconnected_callback(recording):
    async with VirtualBleNetwork() as network:
        wearable = await network.add_wearable("wear-1", signals=recording, modalities=("bvp",), speed=40)
        central = await network.central()
        lost = asyncio.Event()
        client = BleakClient("F0:00:00:00:00:01", disconnected_callback=lambda c: lost.set(), backend=BleakClientBumble, bumble_central=central)
        await client.connect()
        assert client.is_connected
        await wearable.disconnect()
        await asyncio.wait_for(lost.wait(), 5.0)
        assert not client.is_connected
        assert wearable.counters.disconnects_injected == 1
        with pytest.raises(BleakError):
            await client.read_gatt_char(native_gatt.DESCRIPTION_CHAR_UUID)
        # The wearable advertises again and the same client object reconnects.
        await client.connect()
        assert client.is_connected and client.mtu_size == 247
        await client.disconnect()
        assert not client.is_connected


async def test_connecting_to_a_device_that_does_not_advertise_fails_with_bleak_error_and_central_recovers(recording):
    async with VirtualBleNetwork() as network:
        central = await network.central()
        client = BleakClient("F0:00:00:00:0A:0A", backend=BleakClientBumble, bumble_central=central, timeout=0.3)
        with pytest.raises(BleakError):
            await client.connect()
        # The cancelled connection attempt must not wedge the central's controller.
        await network.add_wearable("wear-1", signals=recording, modalities=("bvp",), speed=40)
        async with BleakClient("F0:00:00:00:00:01", backend=BleakClientBumble, bumble_central=central, timeout=2.0) as client:
            assert client.is_connected
