"""The emulated wearable's faults, seen from a real bleak client over the virtual link: every packet the
wearable counts as sent arrives, every one it drops on purpose shows as a sequence gap."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
from bleak import BleakClient

from biomoe_edge.firmware_bridge import PacketError, decode_packet
from biomoe_edge.firmware_bridge import gatt as native_gatt
from biomoe_edge.firmware_bridge.emulation import BleakClientBumble, EmulatedWearable, VirtualBleNetwork


async def _stream(network, wearable, until, *, subscribe_first=True):
    """Connect a BleakClient, subscribe, START; collect (loop time, payload) until ``until(received)``."""
    central = await network.central()
    received: list[tuple[float, bytes]] = []
    loop = asyncio.get_running_loop()
    async with BleakClient(wearable.address, backend=BleakClientBumble, bumble_central=central) as client:
        await client.pair()  # a native board serves nothing on a link short of a bond (PROTOCOL.md section 11)
        await client.start_notify(native_gatt.DATA_CHAR_UUID, lambda _c, d: received.append((loop.time(), bytes(d))))
        await client.write_gatt_char(native_gatt.CONTROL_CHAR_UUID, native_gatt.encode_control(native_gatt.ControlOpcode.START), response=True)
        deadline = loop.time() + 15.0
        while not until(received):
            assert loop.time() < deadline, "not enough packets in time"
            await asyncio.sleep(0.01)
        await client.write_gatt_char(native_gatt.CONTROL_CHAR_UUID, native_gatt.encode_control(native_gatt.ControlOpcode.STOP), response=True)
        await asyncio.sleep(0.05)
    return received


def _missing(sequences: list[int]) -> int:
    """Sequence numbers skipped between the first and the last received (16-bit wrap)."""
    span = (max(sequences) - min(sequences)) % 65536 + 1 if sequences else 0
    return span - len(set(sequences))


async def test_loss_is_exact_and_seeded(recording):
    results = []
    for _ in range(2):
        async with VirtualBleNetwork() as network:
            wearable = await network.add_wearable("wear-1", signals=recording, modalities=("bvp", "ecg"), speed=60, loss=0.2, seed=11)
            received = await _stream(network, wearable, lambda r: len(r) >= 150)
        packets = [decode_packet(p) for _, p in received]
        counters = wearable.counters
        assert len(packets) == counters.total("packets_sent")
        for stream_id, stream_counters in counters.streams.items():
            sequences = [p.sequence for p in packets if p.stream_id == stream_id]
            # Drops after the last received packet cannot show as a gap; every other one does.
            assert _missing(sequences) <= stream_counters.packets_dropped <= _missing(sequences) + 3
            assert stream_counters.packets_generated == (
                stream_counters.packets_sent + stream_counters.packets_dropped + stream_counters.packets_unsent
                + stream_counters.packets_lost_in_flight
            )
        dropped = counters.total("packets_dropped")
        total = dropped + counters.total("packets_sent")
        # Binomial(total, 0.2) within 5 sd.
        assert abs(dropped - 0.2 * total) < 5 * np.sqrt(total * 0.16)
        results.append({(p.stream_id, p.sequence) for p in packets})
    # Same seed, same packets dropped: compare each stream over the sequence range both runs covered.
    for stream_id in (0, 1):
        runs = [sorted(seq for sid, seq in r if sid == stream_id) for r in results]
        horizon = min(run[-1] for run in runs)
        first, second = ([seq for seq in run if seq <= horizon] for run in runs)
        assert first == second and len(first) > 20


async def test_reordering_swaps_packets_without_losing_any(recording):
    async with VirtualBleNetwork() as network:
        wearable = await network.add_wearable("wear-1", signals=recording, modalities=("ecg",), speed=60, reorder=0.3, seed=2)
        received = await _stream(network, wearable, lambda r: len(r) >= 80)
    sequences = [decode_packet(p).sequence for _, p in received]
    inversions = sum(1 for a, b in zip(sequences, sequences[1:]) if (b - a) % 65536 > 32768)
    assert inversions >= 5 and wearable.counters.total("packets_reordered") >= inversions
    assert _missing(sequences) == 0 and len(set(sequences)) == len(sequences)


async def test_garbage_notifications_are_counted_and_never_decode(recording):
    async with VirtualBleNetwork() as network:
        wearable = await network.add_wearable("wear-1", signals=recording, modalities=("bvp",), speed=60, garbage=0.3, seed=4)
        received = await _stream(network, wearable, lambda r: len(r) >= 60)
    rejected = 0
    for _, payload in received:
        try:
            decode_packet(payload)
        except PacketError:
            rejected += 1
    assert rejected == wearable.counters.garbage_sent > 5
    assert len(received) - rejected == wearable.counters.total("packets_sent")


async def test_clock_drift_shows_in_the_device_timestamps(recording):
    slopes = {}
    for drift_ppm in (0.0, 200_000.0):  # 20 %: large enough to measure over a short, jittery run
        async with VirtualBleNetwork() as network:
            wearable = await network.add_wearable("wear-1", signals=recording, modalities=("ecg",), speed=20, drift_ppm=drift_ppm)
            received = await _stream(network, wearable, lambda r: len(r) >= 2 and r[-1][0] - r[0][0] > 1.5)
        arrival = np.array([t for t, _ in received])
        device_s = np.unwrap(np.array([decode_packet(p).timestamp_us for _, p in received], dtype=np.float64), period=2**32) / 1e6
        slopes[drift_ppm] = np.polyfit(arrival, device_s, 1)[0]
    assert slopes[0.0] == pytest.approx(20.0, rel=0.05)
    assert slopes[200_000.0] / slopes[0.0] == pytest.approx(1.2, rel=0.05)


async def test_packets_made_while_disconnected_come_as_a_burst_when_buffered(recording):
    async with VirtualBleNetwork() as network:
        wearable = await network.add_wearable("wear-1", signals=recording, modalities=("bvp",), speed=20, buffer_packets=5000, autostart=True)
        central = await network.central()
        # Nobody connected yet: packets accumulate (autostart), then arrive at once after subscription.
        await asyncio.sleep(0.5)
        backlog = wearable.counters.total("packets_generated")
        assert backlog >= 20 and wearable.counters.total("packets_sent") == 0
        received = []
        loop = asyncio.get_running_loop()
        connect_device_us = wearable.clock_start_us + wearable.device_time_s() * 1e6
        async with BleakClient(wearable.address, backend=BleakClientBumble, bumble_central=central) as client:
            await client.pair()
            await client.start_notify(native_gatt.DATA_CHAR_UUID, lambda _c, d: received.append((loop.time(), bytes(d))))
            while len(received) < backlog + 5:
                await asyncio.sleep(0.01)
        packets = [decode_packet(p) for _, p in received]
        assert _missing([p.sequence for p in packets]) == 0  # nothing lost across the gap
        # Every packet made before anyone connected was delivered, first, in order.
        device_us = np.unwrap(np.array([p.timestamp_us for p in packets], dtype=np.float64), period=2**32)
        made_before = int(np.sum(device_us - device_us[0] < connect_device_us - device_us[0] - 1e6 / 64))
        assert made_before >= backlog and np.all(np.diff(device_us) > 0)
        assert wearable.counters.total("packets_unsent") == 0


async def test_a_burst_cut_by_the_central_counts_what_arrived_as_sent_and_the_rest_as_lost_in_flight(recording):
    # A backlog notified as one burst fills Bumble's ACL queue (27-byte ACL packets, 64 in flight); the central
    # drops the link at the first packet, so most of the burst is still queued or on its way: lost in flight.
    async with VirtualBleNetwork() as network:
        wearable = await network.add_wearable("wear-1", signals=recording, modalities=("ecg",), speed=20, buffer_packets=5000, autostart=True)
        central = await network.central()
        counters = wearable.counters.streams[0]
        await asyncio.sleep(0.5)
        received = []
        arrived = asyncio.Event()

        def on_data(_c, data):
            received.append(bytes(data))
            arrived.set()

        async with BleakClient(wearable.address, backend=BleakClientBumble, bumble_central=central) as client:
            await client.pair()
            await client.start_notify(native_gatt.DATA_CHAR_UUID, on_data)
            await arrived.wait()
        while wearable.connected:  # the wearable hears of the drop a moment after the central
            await asyncio.sleep(0.01)
        on_first_link = len(received)
        assert on_first_link == counters.packets_sent
        lost_on_first_link = counters.packets_lost_in_flight
        assert lost_on_first_link > 10 and counters.packets_unsent == 0
        # The rest of the backlog, and live packets, on a second link.
        backlog = counters.packets_generated - counters.packets_sent - lost_on_first_link
        async with BleakClient(wearable.address, backend=BleakClientBumble, bumble_central=central) as client:
            await client.pair()  # bonded: encrypts with the stored keys
            await client.start_notify(native_gatt.DATA_CHAR_UUID, on_data)
            while len(received) < on_first_link + backlog + 5:
                await asyncio.sleep(0.01)
        await wearable.stop()
    # Exactly the packets counted sent arrived, in order, once each; those lost in flight on the first link are
    # the one run of sequence numbers missing, right after what it delivered.
    assert len(received) == counters.packets_sent
    sequences = [decode_packet(p).sequence for p in received]
    sequences = [(q - sequences[0]) % 65536 for q in sequences]
    assert sequences == sorted(set(sequences))
    missing = sorted(set(range(sequences[-1] + 1)) - set(sequences))
    assert missing == list(range(on_first_link, on_first_link + lost_on_first_link))
    # Only the second link's last notifications may have been lost in flight as it dropped.
    assert counters.packets_lost_in_flight - lost_on_first_link <= 2


async def test_argument_errors_name_the_argument(recording):
    with pytest.raises(ValueError, match="profile"):
        EmulatedWearable("w", profile="polar", signals=recording, modalities=("bvp",))
    with pytest.raises(ValueError, match="speed"):
        EmulatedWearable("w", speed=0, signals=recording, modalities=("bvp",))
    with pytest.raises(ValueError, match="loss"):
        EmulatedWearable("w", loss=-0.1, signals=recording, modalities=("bvp",))
    async with VirtualBleNetwork() as network:
        with pytest.raises(ValueError, match="too long"):
            await network.add_wearable("x" * 40, signals=recording, modalities=("bvp",))


async def test_heart_rate_profile_serves_standard_measurements_that_the_sig_parser_reads():
    from biomoe_edge.firmware_bridge.profiles.heart_rate import HEART_RATE_MEASUREMENT_UUID, HEART_RATE_SERVICE_UUID, parse_measurement

    async with VirtualBleNetwork() as network:
        wearable = await network.add_wearable("hr-1", profile="heart_rate", speed=20, loss=0.1, seed=3)
        central = await network.central()
        received = []
        async with BleakClient(wearable.address, backend=BleakClientBumble, bumble_central=central) as client:
            assert client.services.get_service(HEART_RATE_SERVICE_UUID) is not None
            assert client.services.get_service(native_gatt.SERVICE_UUID) is None
            await client.start_notify(HEART_RATE_MEASUREMENT_UUID, lambda _c, d: received.append(bytes(d)))
            deadline = asyncio.get_running_loop().time() + 15.0
            while len(received) < 30:
                assert asyncio.get_running_loop().time() < deadline
                await asyncio.sleep(0.01)
        measurements = [parse_measurement(value) for value in received]
        assert all(45 <= m.bpm <= 150 and m.contact is True and m.energy_kj is None for m in measurements)
        rr = np.concatenate([m.rr_intervals_s for m in measurements])
        # Each RR interval is the beat period of the current rate (quantised to 1/1024 s).
        assert np.all((rr > 60 / 151) & (rr < 60 / 44))
        assert len(rr) >= 0.8 * len(measurements)  # about 70 beats a minute: about one RR interval per second
        counters = wearable.counters.streams[0]
        assert len(received) == counters.packets_sent and counters.packets_dropped > 0


async def test_an_hci_transport_that_cannot_be_opened_is_one_clear_os_error(recording):
    wearable = EmulatedWearable("w", signals=recording, modalities=("bvp",))
    with pytest.raises(OSError, match="tcp-client:127.0.0.1:9"):  # nothing listens on the discard port
        await wearable.start("tcp-client:127.0.0.1:9")
