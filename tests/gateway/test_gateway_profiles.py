"""Standard-profile wearables through the gateway: Polar PMD (ECG, PPG), PLX pulse oximeters and Heart Rate
straps, from notification bytes to windows, embeddings and a stream report that balances exactly.

Window contents are checked against scipy's resample_poly applied to the values the devices encoded; the
end-to-end runs use emulated wearables on Bumble's virtual radio (a real Bluetooth host stack) reached
through the gateway's bleak transport, as the demo does."""

from __future__ import annotations

import asyncio
import collections
import logging
import struct

import numpy as np
import pytest
from gateway_helpers import ProjectionEngine
from scipy.signal import resample_poly

pytest.importorskip("bumble", reason="the emulated wearables and their encoders run on Bumble")
pytest.importorskip("bleak_retry_connector", reason="the gateway's transport needs bleak-retry-connector")

from biomoe_edge.firmware_bridge.emulation import VirtualBleNetwork  # noqa: E402
from biomoe_edge.firmware_bridge.profiles import heart_rate, polar_pmd, pulse_oximeter  # noqa: E402
from biomoe_edge.runtime.gateway import Gateway  # noqa: E402
from biomoe_edge.runtime.pipeline import NOT_A_MODEL_MODALITY, Pipeline  # noqa: E402
from biomoe_edge.runtime.gateway_config import parse_config  # noqa: E402
from biomoe_edge.runtime.transport.backend import TransportBackend  # noqa: E402

REPORT_FIELDS = ("device", "modality", "packets_received", "packets_lost", "samples_received", "samples_windowed",
                 "samples_pending", "samples_dropped")


def _config(devices=(), *, length_s=4.0, hop_s=1.0, representations=("waveform",), **extra):
    return parse_config({
        "windows": {"length_s": length_s, "hop_s": hop_s, "representations": list(representations)},
        "devices": list(devices),
        "engine": {"max_batch": 8, "deadline_ms": 50},
        "transport": {"backoff_min_s": 0.1, "backoff_max_s": 0.5, "connect_timeout_s": 10.0},
        **extra,
    })


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def _pipeline(device: str, profile: str, modalities=(), **config):
    clock = Clock()
    pipeline = Pipeline(_config(**config), ProjectionEngine(), clock=clock)
    pipeline.add_profile_device(device, profile, modalities)
    return pipeline, clock


def _windows(pipeline) -> list:
    """Every window the pipeline queued for inference (one representation: one job per window), in order."""
    jobs = []
    while batch := pipeline.next_batch(flush=True):
        jobs += batch
    return [job.window for job in jobs]


def _assert_balanced(entry) -> None:
    assert tuple(entry)[:len(REPORT_FIELDS)] == REPORT_FIELDS
    assert entry["samples_received"] == (entry["samples_windowed"] + entry["samples_pending"]
                                         + sum(entry["samples_dropped"].values())), entry


def heart_rate_measurement(bpm: int, rr_intervals_s) -> bytes:
    """A strap's Heart Rate Measurement (contact detected), by the profile's encoder."""
    return bytes(heart_rate.HeartRateMeasurement(bpm, True, None, tuple(rr_intervals_s)))


def plx_continuous_measurement(spo2: float, pulse_rate: float) -> bytes:
    """A PLX Continuous Measurement without optional fields, by the profile's encoder."""
    return bytes(pulse_oximeter.PlxContinuousMeasurement(spo2, pulse_rate, *(None,) * 7))


def pmd_ecg_frame(timestamp_ns: int, microvolts) -> bytes:
    """A raw PMD ECG frame, by the profile's encoder."""
    return polar_pmd.encode_data_frame(polar_pmd.MeasurementType.ECG, timestamp_ns, np.asarray(microvolts)[:, None])


def _pmd_ppg_frame(timestamp_ns: int, values: np.ndarray) -> bytes:
    """A raw PMD PPG frame (measurement type 1, frame type 0): 4 channels of signed 24-bit little-endian."""
    body = b"".join(int(v).to_bytes(3, "little", signed=True) for v in np.asarray(values, np.int64).ravel())
    return struct.pack("<BQB", 1, timestamp_ns, 0) + body


def _feed_h10_ecg(pipeline, clock, uv, *, arrival_0_s: float, clock_step_ns=lambda t_s: 0, per_frame: int = 26):
    """Send ``uv`` (130 Hz) as H10 ECG frames of ``per_frame`` samples, each arriving 10 ms after its last
    sample; ``clock_step_ns(t)`` is added to the strap's timestamp of a frame whose last sample is at t s."""
    t = np.arange(uv.size) / 130.0
    for start in range(0, uv.size, per_frame):
        last = start + per_frame - 1
        clock.now = arrival_0_s + t[last] + 0.01
        device_ns = 820_454_400 * 10**9 + round(t[last] * 1e9) + clock_step_ns(t[last])
        pipeline.handle_notification("h10", pmd_ecg_frame(device_ns, uv[start:last + 1]), clock.now)


# -- the data path, fed with the bytes the devices send ----------------------------------------------------------

def test_polar_ecg_windows_are_the_straps_microvolts_resampled_to_the_model_rate():
    fs, per_frame, seconds = 130.0, 26, 6
    rng = np.random.default_rng(0)
    t = np.arange(int(fs * seconds)) / fs
    uv = np.round(800 * np.sin(2 * np.pi * 1.2 * t) ** 15 + rng.normal(0, 20, t.size)).astype(np.int64)
    pipeline, clock = _pipeline("h10", "polar_pmd")
    _feed_h10_ecg(pipeline, clock, uv, arrival_0_s=100.0, per_frame=per_frame)
    windows = _windows(pipeline)
    assert [w.index for w in windows] == [0, 1, 2]  # 4 s windows, 1 s hop, over 6 s
    for w in windows:
        assert w.modality == "ecg" and w.fs == 100.0 and w.samples.shape == (1, 400) and not w.quality
        first = int(w.index * fs)
        expected = resample_poly(uv[first:first + 520].astype(float), 10, 13, padtype="line")
        np.testing.assert_allclose(w.samples[0], expected, rtol=1e-9, atol=1e-6)
    (entry,) = pipeline.stream_report()
    _assert_balanced(entry)
    assert (entry["device"], entry["modality"], entry["packets_received"], entry["packets_lost"]) == ("h10", "ecg", 30, 0)
    assert entry["samples_received"] == t.size


def test_polar_ppg_becomes_bvp_and_frames_of_measurements_never_started_are_counted(caplog):
    """Verity Sense PPG frames built independently (struct), with three photodiodes that differ and an
    ambient channel: the BVP window is the photodiodes' mean, resampled 55 -> 64 Hz."""
    fs, per_frame = 55.0, 11
    n = int(fs * 5)
    t = np.arange(n) / fs
    rng = np.random.default_rng(1)
    photodiodes = (2e5 + 3e4 * np.sin(2 * np.pi * 1.1 * t)[:, None] + rng.normal(0, 500, (n, 3))).round()
    ambient = rng.normal(-1e4, 50, (n, 1)).round()
    ppg = np.hstack([photodiodes, ambient]).astype(np.int64)
    pipeline, clock = _pipeline("sense", "polar_pmd", ("bvp",))
    with caplog.at_level(logging.WARNING, logger="biomoe_edge.runtime.pipeline"):
        for k, start in enumerate(range(0, n, per_frame)):
            last = start + per_frame - 1
            clock.now = 10.0 + t[last] + 0.02
            pipeline.handle_notification("sense", _pmd_ppg_frame(10**18 + round(t[last] * 1e9), ppg[start:last + 1]), clock.now)
            if k % 5 == 0:  # an ACC frame (never started) and a PPG frame cut short
                pipeline.handle_notification("sense", struct.pack("<BQB", 2, 10**18, 1) + bytes(12), clock.now)
                pipeline.handle_notification("sense", struct.pack("<BQB", 1, 10**18, 0) + bytes(5), clock.now)
    windows = _windows(pipeline)
    assert [w.index for w in windows] == [0, 1]
    for w in windows:
        assert w.modality == "bvp" and w.fs == 64.0 and w.samples.shape == (1, 256)
        first = int(w.index * fs)
        mean = photodiodes[first:first + 220].mean(axis=1)  # the three photodiodes, not the ambient channel
        np.testing.assert_allclose(w.samples[0], resample_poly(mean, 64, 55, padtype="line"), rtol=1e-9)
    injections = len(range(0, n, per_frame)[::5])
    assert pipeline.garbage_report() == {"sense": {"pmd_measurement_not_started": injections}}
    (entry,) = pipeline.stream_report()
    _assert_balanced(entry)
    assert entry["packets_rejected"] == injections and entry["samples_dropped"].get("rejected_packet", 0) == 0
    assert entry["rejected_reasons"] == {"LengthMismatchError": injections}
    messages = [r.getMessage() for r in caplog.records]
    assert sum("did not start" in m for m in messages) == 1 and sum("rejected notification" in m for m in messages) == 1


def test_pmd_clock_restart_is_counted_and_windows_resume():
    fs = 130.0
    t = np.arange(int(fs * 12)) / fs
    uv = np.round(500 * np.sin(2 * np.pi * 1.0 * t)).astype(np.int64)
    pipeline, clock = _pipeline("h10", "polar_pmd")
    # At 6 s the strap's clock is re-synced two days back (a reboot): the timeline restarts there.
    _feed_h10_ecg(pipeline, clock, uv, arrival_0_s=50.0, clock_step_ns=lambda t_s: -2 * 86400 * 10**9 if t_s >= 6.0 else 0)
    (entry,) = pipeline.stream_report()
    _assert_balanced(entry)
    assert entry["restarts"] == 1 and entry["packets_lost"] == 0 and entry["samples_received"] == t.size
    assert max(w.start_s for w in _windows(pipeline)) >= 50.0 + 7.0, "windows resume after the restart"


def test_a_pmd_clock_leap_of_minutes_is_a_clock_jump_not_an_outage():
    """The strap's clock leaps 2 minutes ahead at 5 s while frames keep arriving on time: nothing was lost, so
    nothing is counted lost and the windows go on without a break (no re-anchor, no dropped samples)."""
    fs = 130.0
    t = np.arange(int(fs * 10)) / fs
    uv = np.round(500 * np.sin(2 * np.pi * 1.0 * t)).astype(np.int64)
    pipeline, clock = _pipeline("h10", "polar_pmd")
    _feed_h10_ecg(pipeline, clock, uv, arrival_0_s=50.0, clock_step_ns=lambda t_s: 120 * 10**9 if t_s >= 5.0 else 0)
    (entry,) = pipeline.stream_report()
    _assert_balanced(entry)
    assert (entry["clock_jumps"], entry["samples_lost"], entry["packets_lost"], entry["restarts"]) == (1, 0, 0, 0)
    assert entry["samples_dropped"] == {}
    windows = _windows(pipeline)
    assert [w.index for w in windows] == list(range(7))
    for w in windows:  # every window, across the leap, holds exactly the samples sent
        first = int(w.index * fs)
        np.testing.assert_allclose(w.samples[0], resample_poly(uv[first:first + 520].astype(float), 10, 13, padtype="line"),
                                   rtol=1e-9, atol=1e-6)


def test_pulse_oximeter_windows_carry_spo2_only_and_every_measurement_is_accounted_for():
    rng = np.random.default_rng(2)
    spo2 = np.round(96 + np.cumsum(rng.normal(0, 0.3, 14)), 1)
    pulse = np.round(70 + rng.normal(0, 3, 14), 1)
    pipeline, clock = _pipeline("ox", "pulse_oximeter")
    for k in range(14):
        clock.now = 20.0 + k + rng.uniform(-0.05, 0.05)  # one a second, BLE jitter
        if k == 11:
            continue  # lost on the link: nothing arrives this second
        pipeline.handle_notification("ox", plx_continuous_measurement(spo2[k], pulse[k]), clock.now)
        if k == 3:
            pipeline.handle_notification("ox", b"\x00\x01", clock.now)  # truncated
            pipeline.handle_notification("ox", bytes([0]) + (0xF000 | 1200).to_bytes(2, "little") * 2, clock.now)  # 120 %
    windows = _windows(pipeline)
    # 4 s windows every second; the lost second is filled, and the 3 windows holding it (1 of 4 slots a gap,
    # above the 20 % quality limit) are withheld, not run.
    assert [w.index for w in windows] == list(range(8))
    assert pipeline.windows_withheld == {("ox", "spo2"): 3}
    for w in windows:
        assert w.modality == "spo2" and w.fs == 4.0 and w.samples.shape == (1, 16)
        expected = resample_poly(spo2[w.index:w.index + 4], 4, 1, padtype="line")
        np.testing.assert_allclose(w.samples[0], expected, rtol=1e-9)
    (entry,) = pipeline.stream_report()
    _assert_balanced(entry)
    assert (entry["packets_received"], entry["packets_lost"], entry["samples_received"]) == (15, 1, 14)
    assert entry["samples_dropped"] == {"rejected_packet": 1}  # the 120 % reading; the truncated one had no sample
    assert entry["rejected_reasons"] == {"TruncatedPacketError": 1, "implausible value": 1}
    assert (entry["samples_windowed"], entry["samples_pending"]) == (13, 0)


def test_pulse_oximeter_readings_flagged_unavailable_or_invalid_are_counted_invalid_and_withhold_their_windows():
    def reading(spo2, pulse, status=None, sensor_status=None):  # PLX Continuous, SFLOATs with one decimal
        flags = (0x04 if status is not None else 0) | (0x08 if sensor_status is not None else 0)
        value = bytes([flags]) + b"".join(((0xF << 12) | round(v * 10)).to_bytes(2, "little") for v in (spo2, pulse))
        value += status.to_bytes(2, "little") if status is not None else b""
        return value + (sensor_status.to_bytes(3, "little") if sensor_status is not None else b"")

    pipeline, clock = _pipeline("ox", "pulse_oximeter", length_s=4.0, hop_s=4.0)
    readings = [reading(97.0 + k / 10, 70.0) for k in range(12)]
    readings[1] = reading(97.1, 70.0, status=0x2000)  # Measurement Unavailable
    readings[6] = reading(97.6, 70.0, sensor_status=0x000800)  # Sensor Unconnected to User
    readings[9] = reading(97.9, 70.0, status=0x4000, sensor_status=0x000010)  # questionable, poor signal: kept
    for k, value in enumerate(readings):
        clock.now = 3.0 + k
        pipeline.handle_notification("ox", value, clock.now)
    windows = _windows(pipeline)
    assert [w.index for w in windows] == [2]  # windows 0 (readings 0-3) and 1 (4-7) hold an invalid reading
    np.testing.assert_allclose(windows[0].samples[0], resample_poly(97.0 + np.arange(8, 12) / 10, 4, 1, padtype="line"))
    assert pipeline.windows_withheld == {("ox", "spo2"): 2}
    (entry,) = pipeline.stream_report()
    _assert_balanced(entry)
    assert entry["samples_dropped"] == {"invalid": 2} and entry["samples_windowed"] == 10


def test_heart_rate_samples_are_received_and_dropped_as_not_a_model_modality():
    pipeline, clock = _pipeline("strap", "heart_rate")
    for k, bpm in enumerate((61, 63, 64, 300)):
        clock.now = 5.0 + k
        pipeline.handle_notification("strap", heart_rate_measurement(bpm, [60 / bpm]), clock.now)
    pipeline.handle_notification("strap", b"\x10\x40\x01", clock.now)  # an RR field of one odd byte
    assert _windows(pipeline) == [] and pipeline.ingest.keys == ()
    (entry,) = pipeline.stream_report()
    _assert_balanced(entry)
    assert entry["modality"] == "hr" and entry["samples_windowed"] == 0
    assert entry["samples_dropped"] == {NOT_A_MODEL_MODALITY: 4}
    assert entry["packets_received"] == 5 and entry["rejected_reasons"] == {"LengthMismatchError": 1}
    stream = pipeline.devices["strap"].streams[0].stream
    np.testing.assert_allclose(list(stream.rr_intervals_s), [round(60 / b * 1024) / 1024 for b in (61, 63, 64, 300)])


def test_profile_devices_refuse_modalities_they_cannot_deliver():
    pipeline = Pipeline(_config(), ProjectionEngine())
    with pytest.raises(ValueError, match="cannot deliver"):
        pipeline.add_profile_device("ox", "pulse_oximeter", ("ecg",))
    with pytest.raises(ValueError, match="add_device"):
        pipeline.add_profile_device("w", "native")


# -- end to end: emulated wearables over Bumble, the gateway's transport ------------------------------------------

async def _run_fleet(config, wearables: dict, engine, seconds: float, *, until=None, deadline_s: float = 90.0):
    """Start ``wearables`` (name -> EmulatedWearable options) and a Gateway on them; stop the wearables after
    ``seconds`` and, with ``until`` (a predicate of the gateway and the records so far), once it holds (a deadline
    by progress: on a loaded machine connections take longer; after ``deadline_s`` the test goes on to fail on what
    did not happen), then the gateway. Returns (gateway, records, wearables by name)."""
    records = []
    async with VirtualBleNetwork() as network:
        started = {name: await network.add_wearable(name, **options) for name, options in wearables.items()}
        gateway = Gateway(config, engine=engine, backend=TransportBackend.bumble(await network.central()))
        async with gateway:
            gateway.on_embedding(records.append)
            await asyncio.sleep(seconds)
            loop = asyncio.get_running_loop()
            give_up = loop.time() + deadline_s
            while until is not None and not until(gateway, records) and loop.time() < give_up:
                await asyncio.sleep(0.1)
            for wearable in started.values():  # first: the gateway takes every notification sent before it stops
                await wearable.stop()
    return gateway, records, started


@pytest.fixture(scope="module")
def model_engine():
    pytest.importorskip("torch", reason="the end-to-end test runs Tiny-BioMoE on the PyTorch engine (no ONNX export "
                        "in the test budget)")
    from biomoe_edge.runtime.engines import open_engine

    engine = open_engine("pytorch", None, max_batch=8)
    yield engine
    engine.close()


@pytest.mark.torch
def test_polar_h10_and_verity_a_pulse_oximeter_and_a_heart_rate_strap_end_to_end(model_engine, quiet_bumble_controller):
    config = _config([{"name": "h10", "profile": "polar_pmd"}, {"name": "sense", "profile": "polar_pmd", "modalities": ["bvp"]},
                      {"name": "oximeter", "profile": "pulse_oximeter"}, {"name": "strap", "profile": "heart_rate"}])
    gateway, records, wearables = asyncio.run(_run_fleet(config, {
        "h10": {"profile": "polar_pmd", "modalities": ("ecg",), "seed": 1},
        "sense": {"profile": "polar_pmd", "modalities": ("bvp",), "seed": 8},
        "oximeter": {"profile": "pulse_oximeter", "seed": 2},
        "strap": {"profile": "heart_rate", "seed": 3}}, model_engine, 8.0))
    stats = gateway.stats()
    streams = {(e["device"], e["modality"]): e for e in stats["streams"]}
    assert set(streams) == {("h10", "ecg"), ("sense", "bvp"), ("oximeter", "spo2"), ("strap", "hr")}
    for (device, _), entry in streams.items():
        _assert_balanced(entry)
        sent = wearables[device].counters.streams[0]
        assert entry["packets_received"] == sent.packets_sent > 0
        assert entry["samples_received"] == sent.samples_sent
        assert entry["packets_lost"] == 0 and not entry["packets_rejected"]
    assert streams[("strap", "hr")]["samples_dropped"] == {NOT_A_MODEL_MODALITY: wearables["strap"].counters.streams[0].samples_sent}
    by_stream = collections.Counter((r.device, r.modality) for r in records)
    # ~8 s: 4 s windows every second from about 1 s (oximeter: its first measurement) -> several each.
    assert by_stream[("h10", "ecg")] >= 3 and by_stream[("sense", "bvp")] >= 3 and by_stream[("oximeter", "spo2")] >= 2
    assert ("strap", "hr") not in by_stream
    assert stats["embeddings"] == len(records) and not stats["jobs_failed"] and stats["garbage"] == {}
    for record in records:
        assert record.embedding.shape == (192,) and np.isfinite(record.embedding).all()
        assert record.window_end_s - record.window_start_s == pytest.approx(4.0)
    ecg, bvp, spo2 = (next(r for r in records if r.modality == m) for m in ("ecg", "bvp", "spo2"))
    assert not np.allclose(ecg.embedding, spo2.embedding) and not np.allclose(ecg.embedding, bvp.embedding)


def _faults_seen_and_windows_cut(gateway, records) -> bool:
    """Progress the garbage/loss/disconnect test waits for: every faulted wearable reconnected after its
    disconnection, the board without PPG was given up, ECG embeddings came, and SpO2 windows were cut."""
    stats = gateway.stats()
    windowed = {e["device"]: e["samples_windowed"] for e in stats["streams"]}
    return (all(stats["connections"].get(f"{name}/connected", 0) >= 2 for name in ("h10", "oximeter", "strap"))
            and stats["connections"].get("h10-ppg/failed") == 1
            and any(r.device == "h10" for r in records) and windowed.get("oximeter", 0) > 0)


def test_garbage_loss_disconnects_and_a_refused_start_are_counted_never_fatal(quiet_bumble_controller, caplog):
    faults = {"garbage": 0.3, "loss": 0.1, "disconnect_at": (2.5,), "reconnect_delay_s": 0.2}
    config = _config([{"name": "h10", "profile": "polar_pmd"}, {"name": "oximeter", "profile": "pulse_oximeter"},
                      {"name": "strap", "profile": "heart_rate"},
                      {"name": "h10-ppg", "profile": "polar_pmd", "modalities": ["bvp"]}])  # an H10 has no PPG
    with caplog.at_level(logging.WARNING, logger="biomoe_edge.runtime.pipeline"):
        gateway, records, wearables = asyncio.run(_run_fleet(config, {
            "h10": {"profile": "polar_pmd", "modalities": ("ecg",), "seed": 4, **faults},
            "oximeter": {"profile": "pulse_oximeter", "seed": 5, **faults},
            "strap": {"profile": "heart_rate", "seed": 6, **faults},
            "h10-ppg": {"profile": "polar_pmd", "modalities": ("ecg",), "seed": 7}}, ProjectionEngine(), 3.0,
            until=_faults_seen_and_windows_cut))
    stats = gateway.stats()
    streams = {e["device"]: e for e in stats["streams"]}
    for name in ("h10", "oximeter", "strap"):
        wearable, entry = wearables[name], streams[name]
        _assert_balanced(entry)
        assert wearable.counters.disconnects_injected == 1 and stats["connections"][f"{name}/connected"] == 2
        sent = wearable.counters.streams[0]
        garbage = wearable.counters.garbage_sent
        assert garbage > 0
        if name == "h10":  # PMD: routed by measurement type; random bytes (0xEE first) are no started measurement
            assert entry["packets_received"] == sent.packets_sent
            assert stats["garbage"]["h10"] == {"pmd_measurement_not_started": garbage}
        else:  # one characteristic, no checksum: every notification is parsed; most garbage is rejected
            assert entry["packets_received"] == sent.packets_sent + garbage
            assert 0 < entry["packets_rejected"] <= garbage
        # Losses are estimated (PMD: from device time; PLX/HR: silences); one after the last arrival is unseen.
        assert sent.packets_dropped + sent.packets_unsent - 2 <= entry["packets_lost"] <= sent.packets_dropped + sent.packets_unsent
    assert sum(w.counters.total("packets_dropped") + w.counters.total("packets_unsent") for w in wearables.values()) > 0
    assert streams["h10-ppg"]["packets_received"] == 0
    assert stats["connections"].get("h10-ppg/failed") == 1
    # Windows kept coming: ECG embeddings; SpO2 windows (4 measurements, so one lost second withholds them for
    # gaps) were cut at least.
    assert any(r.device == "h10" for r in records) and streams["oximeter"]["samples_windowed"] > 0
    messages = [r.getMessage() for r in caplog.records]
    assert sum("rejected notification" in m and m.startswith("oximeter/") for m in messages) == 1
