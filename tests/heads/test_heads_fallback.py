"""A bridge standing in for a head while its wearable is missing (``[[heads]] fallback``): one subject wears an ECG
strap (the head's input) and a PPG watch (the bridge's); the strap goes silent mid-run and comes back. The gateway
answers every window time once: by the head while ECG flows, by the bridge (``via_bridge``, ``fallback_for`` the
head) while it is missing, by the head again when it returns; transitions are counted. Configuration refuses a
fallback fitted for another head, or reading a modality no device feeds, naming both.

Hand-written graphs of the documented forms (heads_helpers) and a stand-in engine returning the bridge's tap; the
gateway's clock follows the packets' arrival times, so deadlines pass as they would live."""

import asyncio
import json

import numpy as np
import pytest

pytest.importorskip("onnxruntime", reason="heads and bridges are served with ONNX Runtime")

from heads_helpers import PooledEngine, device_packets, native_description, write_head  # noqa: E402
from test_heads_bridge import TAP, TAP_DIM, write_bridge  # noqa: E402

from biomoe_edge.manifest import sha256_file  # noqa: E402
from biomoe_edge.runtime.gateway import Gateway  # noqa: E402
from biomoe_edge.runtime.gateway_config import ConfigError, parse_config  # noqa: E402

RATE = 64.0
CLASSES = ["rest", "moderate", "high"]
START, SECONDS = 100.0, 40.0
GAP = (112.0, 122.0)  # the ECG strap is silent (battery, out of range): no packet arrives
DEADLINE = 2.0


@pytest.fixture
def folders(tmp_path):
    head, _, _ = write_head(tmp_path / "ecg-head", ["ecg:scalogram"], CLASSES, window_length_s=4.0)
    bridge = write_bridge(tmp_path / "ecg-on-bvp", inputs=("bvp:scalogram",), classes=CLASSES)
    manifest = json.loads((bridge / "bridge.json").read_text())
    manifest["old_inputs"] = ["ecg:scalogram"]
    manifest["head"] = {"path": str(head), "sha256": sha256_file(head / "head.onnx")}
    (bridge / "bridge.json").write_text(json.dumps(manifest))
    return head, bridge


def config_dict(head, fallback, tmp_path, devices=None):
    return {
        "windows": {"length_s": 4.0, "hop_s": 1.0, "representations": ["scalogram"]},
        "devices": devices or [{"name": "p1-ecg", "modalities": ["ecg"]}, {"name": "p1-ppg", "modalities": ["bvp"]}],
        "subjects": [{"name": "p1", "devices": ["p1-ecg", "p1-ppg"]}],
        "heads": [{"path": str(head), "fallback": fallback, "deadline_s": DEADLINE}],
        "engine": {"max_batch": 8, "deadline_ms": 20},
        "sinks": [{"kind": "jsonl", "directory": str(tmp_path / "out"), "prefix": "records"}],
    }


async def serve_with_a_gap(config):
    now = [START]
    gateway = Gateway(config, engine=PooledEngine(max_batch=8, taps={TAP: TAP_DIM}), transport=False,
                      warmup=False, clock=lambda: now[0])
    packets = sorted(device_packets("p1-ecg", {"ecg": RATE}, SECONDS, start_s=START, seed=1)
                     + device_packets("p1-ppg", {"bvp": RATE}, SECONDS, start_s=START, seed=2), key=lambda p: p[0])
    predictions = []
    async with gateway:
        gateway.add_device("p1-ecg", native_description({"ecg": RATE}))
        gateway.add_device("p1-ppg", native_description({"bvp": RATE}))
        gateway.on_prediction(predictions.append)
        paced = START
        for arrival, device, payload in packets:
            if device == "p1-ecg" and GAP[0] <= arrival < GAP[1]:
                continue
            now[0] = arrival
            gateway.feed(device, payload, arrival)
            if arrival - paced >= 0.25:  # let the worker keep up with the clock
                paced = arrival
                for _ in range(20):
                    await asyncio.sleep(0.002)
                    if not len(gateway.pipeline.scheduler):
                        break
        now[0] += DEADLINE + 1.0
        await asyncio.sleep(0.05)
    return gateway, predictions


async def test_the_bridge_stands_in_while_the_ecg_strap_is_silent_and_the_head_returns(folders, tmp_path):
    head, bridge = folders
    config = parse_config(config_dict(head, str(bridge), tmp_path))
    assert config.heads[0].fallback == (bridge,)
    gateway, predictions = await serve_with_a_gap(config)

    by_time = sorted(predictions, key=lambda p: p.window_end_s)
    ends = [p.window_end_s for p in by_time]
    # One prediction per window time: never both paths for one window.
    assert len(ends) == len(set(np.round(ends, 3))) and all(b - a > 0.5 for a, b in zip(ends, ends[1:]))
    paths = ["bridge" if p.via_bridge else "head" for p in by_time]
    # Head, then the bridge through the gap, then the head again: exactly two changes of path.
    changes = [i for i in range(1, len(paths)) if paths[i] != paths[i - 1]]
    assert len(changes) == 2 and paths[0] == "head" and paths[-1] == "head", paths
    bridged = [p for p in by_time if p.via_bridge]
    direct = [p for p in by_time if not p.via_bridge]
    # The bridge answers window times whose ECG window would have held samples of the silent stretch.
    assert all(GAP[0] - 0.5 < p.window_end_s < GAP[1] + 4.5 for p in bridged)
    assert all(not (GAP[0] + 0.5 < p.window_end_s < GAP[1]) for p in direct)
    assert len(bridged) >= 8
    for p in bridged:
        assert p.inputs == ("bvp:scalogram",) and p.devices == ("p1-ppg",) and p.subject == "p1"
        assert p.head["kind"] == "bridge" and p.head["sha256"] == sha256_file(bridge / "bridge.onnx")
        assert p.head["fallback_for"]["sha256"] == sha256_file(head / "head.onnx")
        assert p.classes == tuple(CLASSES)
        # Emitted once the head's deadline for that window passed without it.
        assert p.emitted_time_s - p.window_end_s >= DEADLINE - 0.05
    assert all(p.inputs == ("ecg:scalogram",) and p.head["kind"] == "head" for p in direct)

    stats = {s.get("kind", "head"): s for s in gateway.stats()["heads"]}["fallback"]
    assert stats["transitions"] == 2 and stats["answering"] == {"p1": "head"}
    assert stats["predictions_via_bridge"] == len(bridged) and stats["predictions_by_head"] == len(direct)
    # Every held bridged prediction of a window time the head answered was dropped, and counted.
    assert stats["windows_dropped"]["head_served"] >= len(direct) - 2
    lines = [json.loads(line) for path in sorted((tmp_path / "out").glob("*.jsonl"))
             for line in path.read_text().splitlines()]
    written = [d for d in lines if d["record"] == "prediction"]
    assert len(written) == len(predictions)
    assert sum(d["via_bridge"] for d in written) == len(bridged)


def test_a_fallback_fitted_for_another_head_is_refused_naming_both(folders, tmp_path):
    head, bridge = folders
    other, _, _ = write_head(tmp_path / "other-head", ["ecg:scalogram"], CLASSES, seed=5, window_length_s=4.0)
    with pytest.raises(ConfigError) as error:
        parse_config(config_dict(other, [str(bridge)], tmp_path))
    assert error.value.key_path == "heads[0].fallback[0]"
    message = str(error.value)
    assert f"bridge {bridge} was fitted for the head {head}" in message and f"not for {other}" in message


def test_a_fallback_whose_modality_no_device_feeds_is_refused(folders, tmp_path):
    head, bridge = folders
    with pytest.raises(ConfigError) as error:
        parse_config(config_dict(head, str(bridge), tmp_path,
                                 devices=[{"name": "p1-ecg", "modalities": ["ecg"]},
                                          {"name": "p1-ppg", "modalities": ["eda"]}]))
    assert error.value.key_path == "heads[0].fallback"
    assert f"bridge {bridge} reads bvp, but no [[devices]] entry feeds bvp (they feed ecg, eda)" in str(error.value)


def test_a_fallback_must_be_a_bridge_of_another_modality(folders, tmp_path):
    head, bridge = folders
    with pytest.raises(ConfigError, match="is not a bridge folder"):
        parse_config(config_dict(head, str(head), tmp_path))
    manifest = json.loads((bridge / "bridge.json").read_text())
    manifest["inputs"] = ["ecg:scalogram"]
    (bridge / "bridge.json").write_text(json.dumps(manifest))
    with pytest.raises(ConfigError, match="a modality the head .* reads itself"):
        parse_config(config_dict(head, str(bridge), tmp_path))
