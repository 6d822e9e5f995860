"""ConnectionManager / DeviceConnection against emulated wearables: allow-list, many devices, reconnection and
resubscription, vanished devices, garbage, bursts after reconnect, unusable devices."""

from __future__ import annotations

import asyncio
import collections
import logging

import numpy as np
from bumble import gatt

from biomoe_edge.firmware_bridge import PacketError, decode_packet
from biomoe_edge.firmware_bridge import gatt as native_gatt
from biomoe_edge.firmware_bridge.emulation import VirtualBleNetwork
from biomoe_edge.runtime.transport import ConnectionManager, ConnectionState, DeviceConnection, DeviceTarget, TransportBackend

FAST = dict(scan_timeout_s=0.5, backoff_initial_s=0.02, backoff_max_s=0.2, seed=0)


class Recorder:
    """on_packet / on_state sink that keeps what arrived, per device."""

    def __init__(self, loop):
        self.loop = loop
        self.packets = collections.defaultdict(list)  # device -> [(arrival, payload)]
        self.states = collections.defaultdict(list)  # device -> [(state, reason)]

    def on_packet(self, device, payload, arrival):
        assert isinstance(payload, bytes)
        self.packets[device].append((arrival, payload))

    def on_state(self, device, state, reason):
        self.states[device].append((state, reason))

    async def until(self, predicate, timeout=15.0):
        deadline = self.loop.time() + timeout
        while not predicate():
            assert self.loop.time() < deadline, f"condition not met; states: {dict(self.states)}"
            await asyncio.sleep(0.01)


async def _manager(network, targets, recorder) -> ConnectionManager:
    backend = TransportBackend.bumble(await network.central())
    return ConnectionManager(targets, on_packet=recorder.on_packet, on_state=recorder.on_state, backend=backend, **FAST)


async def _hand_made_native_device(network, description_value):
    """A Bumble peripheral named wear-1 with the native service whose description is ``description_value``
    (bytes, or a CharacteristicValue): for devices the emulated wearable would never be."""
    from bumble.core import AdvertisingData

    device = network.create_device("wear-1")
    props = gatt.Characteristic.Properties
    characteristics = [
        gatt.Characteristic(native_gatt.DATA_CHAR_UUID, props.NOTIFY, gatt.Characteristic.READABLE, b""),
        gatt.Characteristic(native_gatt.CONTROL_CHAR_UUID, props.WRITE, gatt.Characteristic.WRITEABLE, b""),
        gatt.Characteristic(native_gatt.DESCRIPTION_CHAR_UUID, props.READ, gatt.Characteristic.READABLE, description_value),
    ]
    device.add_service(gatt.Service(native_gatt.SERVICE_UUID, characteristics))
    await device.power_on()
    advertising = bytes(AdvertisingData([(AdvertisingData.COMPLETE_LOCAL_NAME, b"wear-1")]))
    await device.start_advertising(advertising_data=advertising, auto_restart=True, advertising_interval_min=20, advertising_interval_max=20)
    return device


def _sequences(payloads, stream_id=0):
    out = []
    for payload in payloads:
        try:
            packet = decode_packet(payload)
        except PacketError:
            continue
        if packet.stream_id == stream_id:
            out.append(packet.sequence)
    return out


async def test_many_allow_listed_devices_stream_at_once_and_others_are_never_connected(recording):
    async with VirtualBleNetwork() as network:
        wearables = [
            await network.add_wearable(f"wear-{i}", signals=recording, modalities=("bvp", "ecg"), speed=20, seed=i)
            for i in range(3)
        ]
        intruder = await network.add_wearable("intruder", signals=recording, modalities=("bvp",), speed=20)
        by_address = wearables[2].address
        targets = [DeviceTarget(name="wear-0"), DeviceTarget(name="wear-1"), DeviceTarget(address=by_address.lower())]
        recorder = Recorder(asyncio.get_running_loop())
        manager = await _manager(network, targets, recorder)
        async with manager:
            await recorder.until(lambda: all(len(recorder.packets[t.label]) >= 30 for t in targets))
            for target, wearable in zip(targets, wearables):
                connection = manager.connections[target.label]
                assert connection.state is ConnectionState.CONNECTED
                assert connection.description == wearable.description()
                assert connection.stats.mtu == 247
        assert intruder.counters.connections == 0
        for target, wearable in zip(targets, wearables):
            # Every packet the wearable sent reached on_packet, under the right device label.
            assert len(recorder.packets[target.label]) == wearable.counters.total("packets_sent")
            assert recorder.states[target.label][:2] == [("connecting", "scanning"), ("connected", "mtu 247")]
            assert recorder.states[target.label][-1] == ("stopped", "stopped")
            assert wearable.counters.connections == 1
        assert set(recorder.packets) == {"wear-0", "wear-1", by_address}


async def test_a_device_that_is_not_listed_is_not_connected_even_when_it_is_the_only_one(recording):
    async with VirtualBleNetwork() as network:
        stranger = await network.add_wearable("wear-1", signals=recording, modalities=("bvp",), speed=20)
        recorder = Recorder(asyncio.get_running_loop())
        manager = await _manager(network, [DeviceTarget(name="wear-2")], recorder)
        async with manager:
            await recorder.until(lambda: manager.connections["wear-2"].stats.failed_attempts >= 2)
        assert stranger.counters.connections == 0
        assert recorder.packets == {}
        state, reason = recorder.states["wear-2"][1]
        assert state == "disconnected" and "not found" in reason


async def test_peripheral_disconnect_mid_stream_reconnects_resubscribes_and_packets_resume(recording):
    async with VirtualBleNetwork() as network:
        wearable = await network.add_wearable("wear-1", signals=recording, modalities=("ecg",), speed=20)
        recorder = Recorder(asyncio.get_running_loop())
        manager = await _manager(network, [DeviceTarget(name="wear-1")], recorder)
        async with manager:
            await recorder.until(lambda: len(recorder.packets["wear-1"]) >= 20)
            await wearable.disconnect()
            before = len(recorder.packets["wear-1"])
            await recorder.until(lambda: recorder.states["wear-1"][-1][0] == "connected" and len(recorder.states["wear-1"]) >= 4)
            await recorder.until(lambda: len(recorder.packets["wear-1"]) >= before + 20)
        stats = manager.connections["wear-1"].stats
        assert (stats.connects, stats.disconnects) == (2, 1)
        assert [s for s, _ in recorder.states["wear-1"]] == ["connecting", "connected", "disconnected", "connecting", "connected", "stopped"]
        assert wearable.counters.connections == 2 and wearable.counters.disconnects_injected == 1
        raw = _sequences(p for _, p in recorder.packets["wear-1"])
        sequences = [(q - raw[0]) % 65536 for q in raw]
        assert sequences == sorted(set(sequences))  # in order, once each
        # The stream kept counting while nobody listened: the gap in sequence numbers, one run after what came
        # before the drop, is what was notified on the old link as it dropped and lost in flight, and what went
        # unsent; every packet counted sent arrived.
        assert len(sequences) == wearable.counters.total("packets_sent")
        missing = sorted(set(range(sequences[-1] + 1)) - set(sequences))
        assert missing and missing == list(range(missing[0], missing[0] + len(missing))) and missing[0] >= before
        lost_in_flight = wearable.counters.total("packets_lost_in_flight")
        assert len(missing) == wearable.counters.total("packets_unsent") + lost_in_flight
        assert wearable.counters.total("packets_unsent") > 0 and lost_in_flight <= 4  # a few on their way


async def test_a_device_that_vanishes_for_good_is_retried_with_growing_backoff_and_logged_once(recording, caplog):
    async with VirtualBleNetwork() as network:
        wearable = await network.add_wearable("wear-1", signals=recording, modalities=("bvp",), speed=20)
        recorder = Recorder(asyncio.get_running_loop())
        connection = DeviceConnection(
            DeviceTarget(name="wear-1"), on_packet=recorder.on_packet, on_state=recorder.on_state,
            backend=TransportBackend.bumble(await network.central()), scan_timeout_s=0.05,
        )
        connection.backoff.initial_s, connection.backoff.max_s = 0.01, 0.08
        with caplog.at_level(logging.DEBUG, logger="biomoe_edge.runtime.transport"):
            await connection.start()
            await recorder.until(lambda: connection.state is ConnectionState.CONNECTED)
            await wearable.stop()  # gone: no more advertising
            await recorder.until(lambda: connection.stats.consecutive_failures >= 6)
            await connection.stop()
        stats = connection.stats
        assert stats.connects == 1 and stats.disconnects == 1 and stats.failed_attempts >= 6
        assert "not found" in stats.last_error
        # Ceilings 0.01, 0.02, 0.04, 0.08, 0.08...: each delay under its ceiling, and the ceiling reached.
        delays = list(stats.backoff_delays_s)
        ceilings = [min(0.08, 0.01 * 2**k) for k in range(len(delays))]
        assert all(0 <= d <= c for d, c in zip(delays, ceilings))
        assert max(delays) > 0.01
        warnings = [r for r in caplog.records if r.levelno >= logging.WARNING and "wear-1" in r.getMessage()]
        assert len(warnings) == 1 and "not found" in warnings[0].getMessage()
        states = [s for s, _ in recorder.states["wear-1"]]
        assert states == ["connecting", "connected", "disconnected", "connecting", "disconnected", "stopped"]


async def test_garbage_notifications_reach_on_packet_as_they_are_and_a_raising_consumer_does_not_break_the_link(recording, caplog):
    async with VirtualBleNetwork() as network:
        wearable = await network.add_wearable("wear-1", signals=recording, modalities=("bvp",), speed=20, garbage=0.3, seed=9)
        garbage, packets = [], []

        def strict_consumer(device, payload, arrival):
            try:
                packets.append(decode_packet(payload))
            except PacketError:
                garbage.append(payload)
                raise  # a consumer bug: the transport must count it and go on

        connection = DeviceConnection(
            DeviceTarget(name="wear-1"), on_packet=strict_consumer,
            backend=TransportBackend.bumble(await network.central()), scan_timeout_s=0.5,
        )
        with caplog.at_level(logging.ERROR, logger="biomoe_edge.runtime.transport"):
            await connection.start()
            recorder = Recorder(asyncio.get_running_loop())
            await recorder.until(lambda: len(garbage) >= 10 and len(packets) >= 30)
            assert connection.state is ConnectionState.CONNECTED
            await connection.stop()
        assert len(garbage) == wearable.counters.garbage_sent
        assert all(g[0] == 0xEE for g in garbage)  # the bytes, unchanged
        assert connection.stats.callback_errors == len(garbage)
        assert len([r for r in caplog.records if "raised" in r.getMessage()]) == 1
        assert len(packets) == wearable.counters.total("packets_sent")


async def test_burst_after_reconnect_delivers_the_backlog_without_gaps(recording):
    async with VirtualBleNetwork() as network:
        wearable = await network.add_wearable(
            "wear-1", signals=recording, modalities=("bvp",), speed=20, buffer_packets=1000, reconnect_delay_s=10.0
        )
        recorder = Recorder(asyncio.get_running_loop())
        manager = await _manager(network, [DeviceTarget(name="wear-1")], recorder)
        async with manager:
            await recorder.until(lambda: len(recorder.packets["wear-1"]) >= 10)
            await wearable.disconnect()  # the wearable keeps sampling for 10 device seconds (0.5 s here)
            made_before_the_drop = wearable.counters.total("packets_generated")  # sequence numbers used
            before = len(recorder.packets["wear-1"])
            await recorder.until(lambda: len(recorder.packets["wear-1"]) >= before + 60)
        payloads = [p for _, p in recorder.packets["wear-1"]]
        raw = _sequences(payloads)
        sequences = [(q - raw[0]) % 65536 for q in raw]
        # In order: the backlog came before anything newer. Nothing made during the outage is lost: only packets
        # notified on the old link as it dropped may be, lost in flight (as over the air), and every packet
        # counted sent arrived.
        assert sequences == sorted(set(sequences))
        assert len(sequences) == wearable.counters.total("packets_sent")
        missing = sorted(set(range(sequences[-1] + 1)) - set(sequences))
        assert all(before <= q < made_before_the_drop for q in missing)
        assert len(missing) == wearable.counters.total("packets_lost_in_flight") <= 4  # a few on their way
        assert wearable.counters.total("packets_unsent") == 0
        # Packets made while disconnected keep the size the last link allowed (64 Hz x 0.25 s), not MTU 23's 3
        # (packets made on the new link before its MTU exchange may be small: they come after the backlog).
        assert {decode_packet(p).sample_count for p in payloads[: before + 30]} == {16}
        # The packets made during the outage (10 device s, 40 packets at 4 per s) came after the reconnect.
        stamps = np.array([decode_packet(p).timestamp_us for p in payloads], dtype=np.float64)
        device_s = (np.unwrap(stamps, period=2**32) / 1e6).tolist()
        outage = max(b - a for a, b in zip(device_s[:before], device_s[1 : before + 1]))
        # consecutive packets (0.25 s apart, a packet lost in flight another 0.25 s), not a jump over the outage:
        # it was bridged by the backlog
        assert outage < 0.25 * (len(missing) + 1) + 0.1
        assert device_s[-1] - device_s[before] >= 10.0


async def test_a_device_with_an_unusable_description_is_given_up_not_retried():
    async with VirtualBleNetwork() as network:
        impostor = await _hand_made_native_device(network, b"\x07junk")
        recorder = Recorder(asyncio.get_running_loop())
        connection = DeviceConnection(
            DeviceTarget(name="wear-1"), on_packet=recorder.on_packet, on_state=recorder.on_state,
            backend=TransportBackend.bumble(await network.central()), scan_timeout_s=0.5,
        )
        await connection.start()
        await asyncio.wait_for(connection._task, 10.0)  # run() returns by itself: no retry loop
        assert connection.state is ConnectionState.STOPPED
        failed = [reason for state, reason in recorder.states["wear-1"] if state == "failed"]
        assert len(failed) == 1 and "description" in failed[0]
        assert connection.stats.failed_attempts == 0 and connection.stats.connects == 0
        assert not impostor.connections  # the link was closed


async def test_stop_interrupts_a_long_scan():
    async with VirtualBleNetwork() as network:
        recorder = Recorder(asyncio.get_running_loop())
        connection = DeviceConnection(
            DeviceTarget(name="ghost"), on_packet=recorder.on_packet, on_state=recorder.on_state,
            backend=TransportBackend.bumble(await network.central()), scan_timeout_s=60.0,
        )
        await connection.start()
        await asyncio.sleep(0.2)
        await asyncio.wait_for(connection.stop(), 10.0)  # not after the 60 s scan
        assert recorder.states["ghost"] == [("connecting", "scanning"), ("stopped", "stopped")]
        assert connection.stats.failed_attempts == 0
        assert not (await network.central()).device.scanning  # the cancelled scan was stopped


async def test_connect_timeout_bounds_each_attempt_at_a_board_that_never_answers():
    """bleak-retry-connector calls connect(timeout=20.0) inside a 60 s safety timeout of its own, whatever timeout the
    client was built with: a board that takes the connection and then never answers (here its ATT MTU exchange) held
    each attempt 20 s. Each attempt now ends after connect_timeout_s, and the board is left without the connection."""
    async with VirtualBleNetwork() as network:
        board = await _hand_made_native_device(network, b"")
        board.gatt_server.on_att_exchange_mtu_request = lambda bearer, request: None  # a firmware stuck: no answer
        reached = []
        board.on("connection", reached.append)
        recorder = Recorder(asyncio.get_running_loop())
        connection = DeviceConnection(
            DeviceTarget(name="wear-1", security="none"), on_packet=recorder.on_packet, on_state=recorder.on_state,
            backend=TransportBackend.bumble(await network.central()), scan_timeout_s=0.5, connect_timeout_s=1.0,
            connect_attempts=2,
        )
        await connection.start()
        await recorder.until(lambda: connection.stats.failed_attempts >= 1, timeout=8.0)  # 2 x 20 s before
        await asyncio.wait_for(connection.stop(), 10.0)
        assert connection.stats.connects == 0 and len(reached) >= 2  # both attempts of the cycle reached the board
        assert "TimeoutError" in connection.stats.last_error
        await recorder.until(lambda: not board.connections, timeout=5.0)  # each timed-out connection was dropped


async def test_a_standard_heart_rate_strap_streams_beside_a_native_wearable(recording):
    from biomoe_edge.firmware_bridge.profiles.heart_rate import parse_measurement

    async with VirtualBleNetwork() as network:
        strap = await network.add_wearable("hr-1", profile="heart_rate", speed=20, seed=1)
        native = await network.add_wearable("wear-1", signals=recording, modalities=("bvp",), speed=20)
        recorder = Recorder(asyncio.get_running_loop())
        targets = [DeviceTarget(name="hr-1", profile="heart_rate"), DeviceTarget(name="wear-1")]
        manager = await _manager(network, targets, recorder)
        async with manager:
            await recorder.until(lambda: len(recorder.packets["hr-1"]) >= 10 and len(recorder.packets["wear-1"]) >= 10)
            assert manager.connections["hr-1"].description is None
            assert manager.connections["wear-1"].description == native.description()
        beats = [parse_measurement(p) for _, p in recorder.packets["hr-1"]]
        assert all(45 <= m.bpm <= 150 for m in beats)
        assert len(beats) == strap.counters.total("packets_sent")
        assert len(recorder.packets["wear-1"]) == native.counters.total("packets_sent")


async def test_a_polar_pmd_strap_is_started_through_its_control_point_and_streams_ecg_frames(recording):
    from biomoe_edge.firmware_bridge.profiles.polar_pmd import parse_data_frame, start_measurement_command

    ecg_uv = np.round(recording["ecg"][0][:4000] * 1000)  # mV -> the uV the strap sends
    async with VirtualBleNetwork() as network:
        strap = await network.add_wearable("h10", profile="polar_pmd", signals={"ecg": (ecg_uv / 1000, 130.0)}, modalities=("ecg",), speed=20)
        recorder = Recorder(asyncio.get_running_loop())
        manager = await _manager(network, [DeviceTarget(name="h10", profile="polar_pmd")], recorder)
        async with manager:
            await recorder.until(lambda: len(recorder.packets["h10"]) >= 10)
        frames = [parse_data_frame(p) for _, p in recorder.packets["h10"]]
        assert len(frames) == strap.counters.total("packets_sent")
        uv = np.concatenate([f.samples[:, 0] for f in frames])
        np.testing.assert_array_equal(uv, ecg_uv[: uv.size])  # 24-bit uV, bit exact
        stamps = np.array([f.timestamp_ns for f in frames])  # of each frame's last sample
        counts = np.array([f.samples.shape[0] for f in frames])
        np.testing.assert_allclose(np.diff(stamps), counts[1:] * 1e9 / 130.0, atol=2.0)
        assert not strap._streams[0].running  # stop() wrote the PMD stop command

        # A start the strap refuses (PPG on an ECG-only H10) is given up, with Polar's status name.
        recorder = Recorder(asyncio.get_running_loop())
        connection = DeviceConnection(
            DeviceTarget(name="h10", profile="polar_pmd"), on_packet=recorder.on_packet, on_state=recorder.on_state,
            backend=TransportBackend.bumble(await network.central()), scan_timeout_s=0.5,
            start_commands=[start_measurement_command(1, {"sample_rate": 55})],
        )
        await connection.start()
        await asyncio.wait_for(connection._task, 10.0)
        failed = [reason for state, reason in recorder.states["h10"] if state == "failed"]
        assert len(failed) == 1 and "ERROR_NOT_SUPPORTED" in failed[0]


async def test_a_standard_pulse_oximeter_streams_continuous_measurements():
    from biomoe_edge.firmware_bridge.profiles.pulse_oximeter import parse_continuous

    async with VirtualBleNetwork() as network:
        oximeter = await network.add_wearable("plx-1", profile="pulse_oximeter", speed=20, seed=4)
        recorder = Recorder(asyncio.get_running_loop())
        manager = await _manager(network, [DeviceTarget(name="plx-1", profile="pulse_oximeter")], recorder)
        async with manager:
            await recorder.until(lambda: len(recorder.packets["plx-1"]) >= 10)
        readings = [parse_continuous(p) for _, p in recorder.packets["plx-1"]]
        assert all(90.0 <= r.spo2 <= 100.0 and 45.0 <= r.pulse_rate <= 150.0 for r in readings)
        assert all(r.spo2 == round(r.spo2, 1) for r in readings)  # one decimal, exactly as encoded
        assert len(readings) == oximeter.counters.total("packets_sent")


def test_unsupported_profiles_are_refused_by_name():
    import pytest

    with pytest.raises(ValueError, match="garmin"):
        DeviceConnection(DeviceTarget(name="x", profile="garmin"), on_packet=lambda *a: None)


async def test_a_device_that_drops_the_link_during_set_up_is_retried_not_fatal(recording):
    from biomoe_edge.firmware_bridge.description import encode_description
    from biomoe_edge.firmware_bridge.emulation import EmulatedWearable

    description = EmulatedWearable("x", signals=recording, modalities=("bvp",)).description()
    reads = []

    async def read_description(connection):
        reads.append(connection)
        if len(reads) == 1:  # first time: hang up in the middle of the read (Bumble cancels the request)
            await connection.disconnect()
            await asyncio.sleep(30)
        return encode_description(description)

    async with VirtualBleNetwork() as network:
        await _hand_made_native_device(network, gatt.CharacteristicValue(read=read_description))
        recorder = Recorder(asyncio.get_running_loop())
        manager = await _manager(network, [DeviceTarget(name="wear-1")], recorder)
        async with manager:
            await recorder.until(lambda: manager.connections["wear-1"].state is ConnectionState.CONNECTED)
            stats = manager.connections["wear-1"].stats
            assert stats.failed_attempts == 1 and "disconnected during" in stats.last_error
            assert manager.connections["wear-1"].description == description
        assert len(reads) == 2


async def test_scheduled_peripheral_disconnects_each_lead_to_one_reconnection(recording):
    async with VirtualBleNetwork() as network:
        # Device times since power-on; at speed 20, 0.5 s and 1.5 s of wall time: the manager is connected by
        # then (a scheduled disconnect finding no connection drops nothing and is not counted).
        wearable = await network.add_wearable("wear-1", signals=recording, modalities=("bvp",), speed=20, disconnect_at=(10.0, 30.0))
        recorder = Recorder(asyncio.get_running_loop())
        manager = await _manager(network, [DeviceTarget(name="wear-1")], recorder)
        async with manager:
            await recorder.until(lambda: wearable.counters.disconnects_injected == 2 and manager.connections["wear-1"].stats.connects == 3)
            await recorder.until(lambda: len(recorder.packets["wear-1"]) >= 10)
        stats = manager.connections["wear-1"].stats
        assert (stats.connects, stats.disconnects) == (3, 2)
        # Every packet counted sent arrived; a packet or so notified as each link dropped may have been lost in
        # flight, and shows as a gap in the sequence numbers.
        sequences = _sequences(p for _, p in recorder.packets["wear-1"])
        assert len(sequences) == wearable.counters.total("packets_sent")
        lost_in_flight = wearable.counters.total("packets_lost_in_flight")
        assert 0 <= lost_in_flight <= 2 * 4  # a few on their way at each drop
        unsent = wearable.counters.total("packets_unsent")
        span = (sequences[-1] - sequences[0]) % 65536 + 1
        assert span - len(set(sequences)) <= unsent + lost_in_flight
