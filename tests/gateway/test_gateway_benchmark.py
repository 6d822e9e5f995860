"""benchmarks/latency.py runs and writes the documented JSON (structure only: no timing is asserted)."""

import json
import math
import os
import pathlib
import subprocess
import sys

import pytest

pytestmark = pytest.mark.torch  # the reference pipeline and the export run the PyTorch model
SCRIPT = pathlib.Path(__file__).resolve().parents[2] / "benchmarks" / "latency.py"


def test_quick_benchmark_writes_the_documented_json(tmp_path):
    pytest.importorskip("torch", reason="the reference pipeline runs the PyTorch model")
    out = tmp_path / "latency.json"
    # The PyTorch backend here: the ONNX export is not needed for a structure check.
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick", "--backend", "pytorch", "--representations", "spectrogram_psd",
         "--json", str(out)],
        capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(out.read_text())
    assert result["backend"] == "pytorch"
    for stage in ("decode", "window", "transform", "inference", "sink", "end_to_end"):
        s = result["stages"][stage]
        assert set(s) >= {"p50_ms", "p95_ms", "p99_ms"}
        assert 0 <= s["p50_ms"] <= s["p95_ms"] <= s["p99_ms"]
    assert result["throughput_windows_per_s"] > 0
    assert result["speedup_vs_reference"] > 0 and math.isfinite(result["speedup_vs_reference"])
    assert result["accounting_balanced"] is True
    assert result["memory"]["rss_peak_mb"] >= result["memory"]["rss_start_mb"] > 0
    assert "end_to_end" in result["reference"]["stages"]
    assert "speed-up" in proc.stdout


def test_onnxruntime_benchmark_exports_its_model_once_and_writes_strict_json(tmp_path):
    pytest.importorskip("torch", reason="the benchmark exports the model to ONNX with PyTorch")
    out = tmp_path / "latency.json"
    env = {**os.environ, "BIOMOE_EDGE_CACHE_DIR": str(tmp_path / "cache")}
    # batch 17 takes the benchmark's own export path (not the demo's cached model)
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick", "--backend", "onnxruntime", "--batch-size", "17",
         "--representations", "spectrogram_psd", "--json", str(out)],
        capture_output=True, text=True, timeout=400, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert list((tmp_path / "cache").glob("*_fp32_b17_f*.onnx"))
    result = json.loads(out.read_text(), parse_constant=lambda name: pytest.fail(f"non-JSON constant {name}"))
    assert result["backend"] == "onnxruntime" and result["batch_size"] == 17
    assert result["accounting_balanced"] is True
