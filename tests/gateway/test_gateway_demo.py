"""The demo end to end: emulated wearables over Bumble's virtual radio, the gateway, a real model; the report
is checked against the emulator's own counters."""

import json
import math

import pytest

pytestmark = pytest.mark.torch
pytest.importorskip("bumble", reason="the demo's wearables run on Bumble")
pytest.importorskip("torch", reason="the test's engine is the PyTorch engine (no ONNX export in the test budget)")

from biomoe_edge.commands.demo import STREAM_FIELDS, open_demo_engine, run_demo  # noqa: E402


@pytest.fixture(scope="module")
def demo_run():
    import asyncio

    engine = open_demo_engine("pytorch", None, max_batch=8)
    try:
        report, gateway, wearables = asyncio.run(run_demo(
            duration_s=9.0, devices=2, loss=0.1, engine=engine, modalities=("bvp", "eda"),
            representations=("spectrogram_psd",), window_s=4.0, hop_s=1.0, seed=3, quiet=True))
    finally:
        engine.close()
    return report, gateway, wearables


def test_report_has_exactly_the_documented_fields(demo_run):
    report, _, _ = demo_run
    json.dumps(report)  # serialisable as is
    assert tuple(report) == ("embedding_dim", "embeddings", "latency_ms", "streams", "duration_s", "settings", "model",
                             "engine", "drop_reasons", "not_embedded", "sinks", "warnings", "timeline")
    assert report["embedding_dim"] == 192
    assert set(report["latency_ms"]) == {"p50", "p95", "p99"}
    assert len(report["streams"]) == 4  # 2 devices x 2 modalities
    for entry in report["streams"]:
        assert tuple(entry) == (*STREAM_FIELDS, "embeddings")
    assert sum(entry["embeddings"] for entry in report["streams"]) == report["embeddings"]
    assert report["model"]["random_weights"] is True and report["model"]["seed"] == 0
    assert report["settings"]["loss"] == 0.1 and report["settings"]["window_s"] == 4.0
    assert report["duration_s"] == pytest.approx(9.0, abs=0.5)


def test_every_sample_is_accounted_for_and_matches_what_the_wearables_sent(demo_run):
    report, _, wearables = demo_run
    by_name = {w.name: w for w in wearables}
    for entry in report["streams"]:
        dropped = entry["samples_dropped"]
        assert entry["samples_received"] == entry["samples_windowed"] + entry["samples_pending"] + sum(dropped.values())
        wearable = by_name[entry["device"]]
        stream_id = next(s.stream_id for s in wearable.description().streams if s.modality == entry["modality"])
        sent = wearable.counters.streams[stream_id]
        assert entry["packets_received"] == sent.packets_sent
        assert entry["samples_received"] == sent.samples_sent
        # Drops between the first and the last packet the gateway saw are gaps it counts; a drop after the
        # last one (or before the first) leaves no gap to see.
        assert sent.packets_dropped - 2 <= entry["packets_lost"] <= sent.packets_dropped
    total_dropped = sum(w.counters.total("packets_dropped") for w in wearables)
    assert total_dropped > 0, "10 % loss over ~9 s of 4 streams must drop packets"
    assert sum(e["packets_lost"] for e in report["streams"]) >= total_dropped - 8


def test_embeddings_flow_with_latency_from_sample_arrival(demo_run):
    report, gateway, _ = demo_run
    # 4 s windows every 1 s over ~9 s of signal: at least 3 windows per stream, 4 streams.
    assert report["embeddings"] >= 12
    assert report["embeddings"] == gateway.stats()["embeddings"]
    lat = report["latency_ms"]
    assert 0 < lat["p50"] <= lat["p95"] <= lat["p99"] and math.isfinite(lat["p99"])
    assert gateway.stats()["garbage"] == {}


def test_vanishing_device_garbage_and_a_burst_after_reconnect_are_counted_never_fatal():
    """One wearable that sends garbage notifications, drops its link at 3 s, comes back, and sends the
    packets it made meanwhile as a burst: the gateway counts every garbage notification, takes the burst,
    keeps every sample accounted for, and keeps producing embeddings after the reconnection."""
    import asyncio

    engine = open_demo_engine("pytorch", None, max_batch=8)
    try:
        report, gateway, wearables = asyncio.run(run_demo(
            duration_s=9.0, devices=1, loss=0.0, engine=engine, modalities=("bvp",),
            representations=("waveform",), window_s=3.0, hop_s=1.0, seed=5, quiet=True,
            wearable_options={"garbage": 0.05, "disconnect_at": (3.0,), "buffer_packets": 64,
                              "reconnect_delay_s": 0.3}))
    finally:
        engine.close()
    wearable = wearables[0]
    stats = gateway.stats()
    assert wearable.counters.disconnects_injected == 1 and wearable.counters.connections == 2
    assert stats["connections"].get("biomoe-demo-1/connected") == 2
    # Every garbage notification the wearable sent was seen and counted by reason, none taken as data.
    assert wearable.counters.garbage_sent > 0
    assert sum(stats["garbage"]["biomoe-demo-1"].values()) == wearable.counters.garbage_sent
    (entry,) = report["streams"]
    sent = wearable.counters.streams[0]
    assert entry["packets_received"] == sent.packets_sent
    assert entry["samples_received"] == entry["samples_windowed"] + entry["samples_pending"] + sum(entry["samples_dropped"].values())
    assert entry["packets_lost"] == sent.packets_unsent  # what the outage cost beyond the buffered burst
    # Windows kept coming after the outage: 3 s windows of ~9 s of signal.
    assert report["embeddings"] >= 4


def test_a_run_shorter_than_a_window_reports_strict_json_with_null_latency(tmp_path):
    import subprocess
    import sys

    report_path = tmp_path / "report.json"
    proc = subprocess.run(
        [sys.executable, "-m", "biomoe_edge", "demo", "--duration", "3", "--devices", "1", "--engine", "pytorch",
         "--random-weights", "--quiet", "--report", str(report_path)],
        capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(report_path.read_text(), parse_constant=lambda name: pytest.fail(f"non-JSON constant {name}"))
    assert report["embeddings"] == 0
    assert report["latency_ms"] == {"p50": None, "p95": None, "p99": None}
    # The timeline (one point per console tick) and its picture beside the JSON.
    ticks = [point["t_s"] for point in report["timeline"]]
    assert len(ticks) >= 2 and ticks == sorted(ticks) and ticks[-1] <= 3.5
    assert all(point["embeddings"] == 0 and point["latency_p50_ms"] is None for point in report["timeline"])
    assert report_path.with_suffix(".png").read_bytes()[:4] == b"\x89PNG"
    for s in report["streams"]:
        assert s["samples_received"] == s["samples_windowed"] + s["samples_pending"] + sum(s["samples_dropped"].values())


def test_demo_runs_standard_profile_wearables_beside_native_ones():
    import asyncio

    from biomoe_edge.commands.demo import parse_profiles

    profiles = parse_profiles("polar_pmd, pulse_oximeter,heart_rate")
    assert profiles == [("polar_pmd", ("ecg",)), ("pulse_oximeter", ("spo2",)), ("heart_rate", ())]
    engine = open_demo_engine("pytorch", None, max_batch=8)
    try:
        report, _, _ = asyncio.run(run_demo(
            duration_s=7.0, devices=1, loss=0.0, engine=engine, modalities=("bvp",), representations=("waveform",),
            window_s=4.0, hop_s=1.0, seed=5, quiet=True, profiles=profiles))
    finally:
        engine.close()
    streams = {(e["device"], e["modality"]): e for e in report["streams"]}
    assert set(streams) == {("biomoe-demo-1", "bvp"), ("demo-h10-1", "ecg"), ("demo-oximeter-2", "spo2"),
                            ("demo-hr-strap-3", "hr")}
    for entry in streams.values():
        assert entry["samples_received"] > 0
        assert entry["samples_received"] == (entry["samples_windowed"] + entry["samples_pending"]
                                             + sum(entry["samples_dropped"].values()))
    assert streams[("demo-h10-1", "ecg")]["samples_windowed"] > 0
    hr = streams[("demo-hr-strap-3", "hr")]
    assert hr["samples_windowed"] == 0 and hr["samples_dropped"] == {"not_a_model_modality": hr["samples_received"]}


@pytest.mark.parametrize("text", ["polar", "native", "heart_rate:ecg:x"])
def test_demo_profiles_option_names_what_is_wrong(text):
    from biomoe_edge.commands.demo import parse_profiles

    with pytest.raises(ValueError, match="--profiles"):
        parse_profiles(text)
