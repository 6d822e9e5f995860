"""``demo --head`` takes a bridge folder: emulated wearables (Bumble) play a SIMULATED subject's PPG (the bridge's
new modality), and every prediction comes from the bridge (``via_bridge``), one per window of its input.

The bridge is written by hand in the documented form (tests/heads/test_heads_bridge.py) and the engine is the
tests' pooled projection returning the bridge's tap, whose backbone the bridge names: serving does not depend on
what is inside."""

import asyncio

import pytest

pytest.importorskip("bumble", reason="the demo's wearables run on Bumble")
pytest.importorskip("onnxruntime", reason="bridges are served with ONNX Runtime")
pytest.importorskip("neurokit2", reason="simulated sessions")

from heads_helpers import PooledEngine  # noqa: E402
from test_heads_bridge import TAP, TAP_DIM, write_bridge  # noqa: E402

from biomoe_edge.commands.demo import run_demo  # noqa: E402
from biomoe_edge.simulated_sessions import CLASSES  # noqa: E402


def test_demo_serves_a_bridge_folder(tmp_path):
    bridge = write_bridge(tmp_path / "bridge", inputs=("bvp:scalogram",), classes=list(CLASSES), window_s=4.0)
    report, gateway, wearables = asyncio.run(run_demo(
        duration_s=10.0, devices=1, loss=0.0, engine=PooledEngine(max_batch=8, taps={TAP: TAP_DIM}), window_s=4.0,
        hop_s=1.0, quiet=True,
        head=bridge, head_subjects=1, seed=3))
    # One simulated subject wearing the device that streams the bridge's input (a wristband's PPG), no other.
    assert [w.name for w in wearables] == ["sim-01-wrist"]
    assert gateway.config.heads[0].kind == "bridge"
    assert [m for d in gateway.config.devices for m in d.modalities] == ["bvp"]
    stats = report["predictions"]
    (served,) = stats["heads"]
    assert served["kind"] == "bridge" and served["inputs"] == ["bvp:scalogram"]
    # Each bvp window rendered as a scalogram became one prediction of the bridge.
    assert stats["count"] == served["predictions"] == report["embeddings"] >= 3
    assert set(stats["per_class"]) <= set(CLASSES) and sum(stats["per_class"].values()) == stats["count"]
    assert served["windows_dropped"] == {} and served["errors"] == {}
