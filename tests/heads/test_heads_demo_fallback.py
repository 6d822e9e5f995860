"""``demo --head ECG_HEAD --fallback BRIDGE --switch-off ecg@S`` end to end on Bumble's emulated wearables: a
SIMULATED subject wears an ECG chest strap (the head's input) and a PPG wristband (the bridge's); the strap is
switched off mid-run and stays off; the gateway goes on answering the head's window times through the bridge.

Hand-written head and bridge graphs of the documented forms (random weights; their numbers mean nothing), naming
the random backbone the demo's PyTorch engine runs; the engine returns the bridge's tap from each run."""

import asyncio
import json
import warnings

import pytest

pytest.importorskip("bumble", reason="the demo's wearables run on Bumble")
pytest.importorskip("onnxruntime", reason="heads and bridges are served with ONNX Runtime")
pytestmark = pytest.mark.torch
pytest.importorskip("torch", reason="the demo's engine here is the PyTorch engine")
pytest.importorskip("neurokit2", reason="simulated sessions")

from heads_helpers import write_head  # noqa: E402
from test_heads_bridge import write_bridge  # noqa: E402

from biomoe_edge.commands.demo import open_demo_engine, predictions_line, run_demo  # noqa: E402
from biomoe_edge.manifest import sha256_file  # noqa: E402

RANDOM_SEED0 = {"checkpoint_sha256": None, "random_weights": True, "seed": 0, "precision": "fp32"}
CLASSES = ["rest", "moderate", "high"]
SWITCH_OFF_S = 6.0


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("fallback-demo")
    head, _, _ = write_head(folder / "ecg-head", ["ecg:spectrogram_psd"], CLASSES, backbone=RANDOM_SEED0,
                            window_length_s=4.0)
    bridge = write_bridge(folder / "ecg-on-ppg", inputs=("bvp:spectrogram_psd",), classes=CLASSES,
                          backbone=RANDOM_SEED0)
    manifest = json.loads((bridge / "bridge.json").read_text())
    manifest["old_inputs"] = ["ecg:spectrogram_psd"]
    manifest["head"] = {"path": str(head), "sha256": sha256_file(head / "head.onnx")}
    (bridge / "bridge.json").write_text(json.dumps(manifest))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # random weights: said in every output below
        engine = open_demo_engine("pytorch", None, max_batch=8)
    try:
        report, gateway, wearables = asyncio.run(run_demo(
            duration_s=22.0, devices=1, loss=0.0, engine=engine, window_s=4.0, hop_s=1.0, quiet=True, head=head,
            head_subjects=1, seed=2, fallback=(bridge,), switch_off=("ecg", SWITCH_OFF_S)))
    finally:
        engine.close()
    return report, gateway, wearables, head, bridge


def test_the_bridge_answers_for_the_head_after_the_ecg_strap_is_switched_off(demo_run):
    report, gateway, wearables, head, bridge = demo_run
    assert sorted(w.name for w in wearables) == ["sim-01-chest", "sim-01-wrist"]
    assert gateway.config.heads[0].fallback == (bridge,)
    predictions = report["predictions"]
    entries = {entry.get("kind", "head"): entry for entry in predictions["heads"]}
    fallback = entries["fallback"]
    # The head answered while the strap was on; then the bridge, once, for good (the strap stays off).
    assert entries["head"]["predictions"] >= 1
    assert fallback["predictions_via_bridge"] >= 3 and fallback["transitions"] == 1
    assert fallback["answering"] == {"sim-01": str(bridge)}
    assert predictions["via_bridge"] == fallback["predictions_via_bridge"]
    assert predictions["count"] == entries["head"]["predictions"] + fallback["predictions_via_bridge"] \
        - fallback["windows_dropped"].get("head_late_after_bridge", 0)
    assert "through a fallback bridge" in predictions_line(report)
