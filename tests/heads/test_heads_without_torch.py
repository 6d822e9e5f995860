"""``evaluate-head`` and ``bridge evaluate`` run where the gateway runs, without torch, and score through the loader
the gateway serves with (``runtime.heads``): run as commands in a subprocess whose ``import torch`` fails (a
``sitecustomize`` on PYTHONPATH that refuses to import it). Not marked torch: CI's gateway-path runs (no torch)
run it. Heads, bridges and the engine graph exported with the bridge's tap (``bridge evaluate --engine``) are
written by hand in the documented form (tests/heads/heads_helpers.py)."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("onnxruntime", reason="heads and bridges are served with ONNX Runtime")
pytest.importorskip("sklearn", reason="the metrics are scikit-learn's")
pd = pytest.importorskip("pandas")

from heads_helpers import (POOLED_BACKBONE, PooledEngine, softmax_head, write_head,  # noqa: E402
                           write_pooled_engine_graph)
from test_heads_bridge import TAP, TAP_DIM, write_bridge  # noqa: E402

from biomoe_edge.dataset import write_dataset  # noqa: E402
from biomoe_edge.manifest import sha256_file  # noqa: E402
from biomoe_edge.runtime.heads.bridge import load_bridge  # noqa: E402
from biomoe_edge.runtime.transforms.render import render_windows  # noqa: E402

CLASSES = ["rest", "moderate", "high"]
#: As if torch were not installed: its import raises ImportError. (``sys.modules["torch"] = None`` would do that
#: too, but SciPy's array-API helpers read sys.modules["torch"] and break on None, which no real machine has.)
NO_TORCH = """
import importlib.abc, sys
class NoTorch(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name == "torch" or name.startswith("torch."):
            raise ImportError("torch is not installed here")
sys.meta_path.insert(0, NoTorch())
"""


def run_without_torch(tmp_path, *argv, python_code=None) -> subprocess.CompletedProcess:
    """``python -m biomoe_edge ARGV`` (or ``python -c python_code``) in a process where ``import torch`` fails."""
    shim = tmp_path / "no_torch"
    shim.mkdir(exist_ok=True)
    (shim / "sitecustomize.py").write_text(NO_TORCH)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(shim), os.environ.get("PYTHONPATH", "")])}
    command = ["-c", python_code] if python_code is not None else ["-m", "biomoe_edge", *argv]
    return subprocess.run([sys.executable, *command], capture_output=True, text=True, env=env, timeout=300)


def test_the_shim_blocks_torch(tmp_path):
    result = run_without_torch(tmp_path, python_code="import torch")
    assert result.returncode != 0 and "torch is not installed here" in result.stderr


def test_evaluate_head_runs_without_torch_and_scores_what_the_head_computes(tmp_path):
    folder, w, b = write_head(tmp_path / "head", ["eda:scalogram"], CLASSES, seed=3)
    rng = np.random.default_rng(5)
    n = 45
    embeddings = rng.standard_normal((n, 192)).astype(np.float32)
    labels = [CLASSES[i % 3] for i in range(n)]
    ends = 10.0 + np.arange(n, dtype=np.float64)
    frame = pd.DataFrame({
        "subject": ["s1"] * n, "device": ["s1-eda"] * n, "modality": ["eda"] * n,
        "representation": ["scalogram"] * n, "window_start_s": ends - 10.0, "window_end_s": ends,
        "quality": [[] for _ in range(n)], "label": labels, "embedding": list(embeddings),
        "model_sha256": ["1" * 64] * n, "checkpoint_sha256": [POOLED_BACKBONE["checkpoint_sha256"]] * n,
        "precision": [POOLED_BACKBONE["precision"]] * n, "random_weights": [True] * n, "seed": [None] * n,
        "engine": ["test"] * n})
    dataset = write_dataset(frame, tmp_path / "dataset")
    result = run_without_torch(tmp_path, "evaluate-head", str(folder), str(dataset), "--json",
                               str(tmp_path / "e.json"))
    assert result.returncode == 0, result.stderr
    metrics = json.loads((tmp_path / "e.json").read_text())
    # The reference: the head's own maths in NumPy (softmax(x W + b)), not ONNX Runtime.
    predicted = np.asarray(CLASSES, dtype=object)[softmax_head(w, b, [embeddings]).argmax(1)]
    assert metrics["windows"] == n
    assert metrics["accuracy"] == pytest.approx(float(np.mean(predicted == np.asarray(labels, dtype=object))))
    assert metrics["head"]["sha256"] == sha256_file(folder / "head.onnx")


def _ppg_csv(path, seconds: float = 40.0, fs: float = 64.0):
    t = np.arange(int(seconds * fs)) / fs
    signal = np.sin(2 * np.pi * 1.2 * t) + 0.3 * np.sin(2 * np.pi * 0.25 * t)
    path.write_text("time_s,PPG\n" + "".join(f"{a:.6f},{v:.6f}\n" for a, v in zip(t, signal)))
    return path


def test_bridge_evaluate_runs_without_torch_through_the_gateways_loader(tmp_path):
    bridge = write_bridge(tmp_path / "bridge", inputs=("bvp:scalogram",), window_s=4.0)
    csv = _ppg_csv(tmp_path / "ppg.csv")
    labels = tmp_path / "labels.csv"
    labels.write_text("subject,start_s,end_s,label\ns1,0,20,rest\ns1,20,40,high\n")
    # The backbone as the gateway runs it: an ONNX graph exported with the bridge's tap.
    engine = write_pooled_engine_graph(tmp_path / "engine" / "model.onnx", taps={TAP: TAP_DIM})
    argv = ["bridge", "evaluate", str(bridge), str(csv), "--map", "PPG:bvp", "--labels", str(labels),
            "--subject", "s1", "--json", str(tmp_path / "b.json"), "--engine", str(engine)]
    result = run_without_torch(tmp_path, *argv)
    assert result.returncode == 0, result.stderr
    metrics = json.loads((tmp_path / "b.json").read_text())
    # 4 s windows (the bridge's), a new one every second, each inside one label: 17 per label.
    assert metrics["windows"] == 34
    assert metrics["head"] == {"path": str(bridge.resolve()), "sha256": sha256_file(bridge / "bridge.onnx"),
                               "kind": "bridge"}
    assert sum(map(sum, metrics["confusion_matrix"])) == 34

    # Through the gateway's loader: a graph changed after its manifest is refused with the loader's own words.
    with open(bridge / "bridge.onnx", "ab") as f:
        f.write(b"\0")
    result = run_without_torch(tmp_path, *argv)
    assert result.returncode != 0
    assert "does not match the sha256" in result.stderr


def test_bridge_probabilities_are_the_served_bridges_on_gateway_images(tmp_path):
    """What the evaluation scores is what the gateway's Bridge computes on the engine's taps of the images the
    gateway draws."""
    import onnxruntime as ort

    from biomoe_edge.training.bridge.evaluate import predict_bridge

    bridge = write_bridge(tmp_path / "bridge", inputs=("bvp:scalogram",), window_s=4.0)
    t = np.arange(256) / 64.0
    windows = np.stack([np.sin(2 * np.pi * f * t) for f in (0.8, 1.3, 2.1)]).astype(np.float32)
    engine = PooledEngine(max_batch=8, taps={TAP: TAP_DIM})
    got, loaded = predict_bridge(bridge, windows, 64.0, engine)
    assert loaded.sha256 == load_bridge(bridge).sha256
    session = ort.InferenceSession(str(bridge / "bridge.onnx"), providers=["CPUExecutionProvider"])
    _, taps = engine.infer_tapped(render_windows(windows, 64.0, "bvp", "scalogram"), (TAP,))
    expected = session.run(["probabilities"], {f"tap.{TAP}": taps[TAP]})[0]
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-6)
