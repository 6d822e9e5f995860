"""ONNX Runtime engine against the PyTorch engine and the reference embeddings; batching, identity, bad input."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys

import numpy as np
import pytest

from biomoe_edge.runtime.engines import EngineError, EngineInputError, open_engine
from biomoe_edge.runtime.engines.base import IDENTITY_KEYS

pytestmark = pytest.mark.torch  # the graphs come from exporting the PyTorch model


def test_fp32_onnxruntime_matches_pytorch_and_the_reference(ort_fp32, pytorch_embeddings, reference_pairs, all_images):
    reference11 = reference_pairs[11][2]
    ort = ort_fp32.infer(all_images)
    torch_out = pytorch_embeddings
    assert ort.shape == (7, 192) and ort.dtype == np.float32
    assert np.abs(ort - torch_out).max() < 1e-4
    # Both against the independent reference run of the upstream architecture.
    assert np.abs(ort[:4] - reference11).max() < 1e-4
    assert np.abs(torch_out[:4] - reference11).max() < 1e-4


def test_fp16_graph_stays_close_to_fp32(fp16_onnx, pytorch_embeddings, all_images, cosine_rows):
    with open_engine("onnxruntime", fp16_onnx) as engine:
        assert engine.identity["precision"] == "fp16"
        fp16 = engine.infer(all_images)
        half_input = engine.infer(all_images.astype(np.float16))  # float16 images are accepted and cast
    fp32 = pytorch_embeddings
    assert cosine_rows(fp16, fp32).min() >= 0.999
    assert cosine_rows(half_input, fp32).min() >= 0.999
    assert fp16.dtype == np.float32


def test_batches_above_max_batch_are_split(fp32_onnx, ort_fp32, all_images, reference_pairs):
    whole = ort_fp32.infer(all_images)  # max_batch 16 from the export manifest: one run
    with open_engine("onnxruntime", fp32_onnx, max_batch=3) as engine:
        assert engine.max_batch == 3
        split = engine.infer(all_images)
        assert engine.runs == 3  # 3 + 3 + 1 images
    assert split.shape == (7, 192)
    assert np.abs(split - whole).max() < 1e-5
    assert np.abs(split[:4] - reference_pairs[11][2]).max() < 1e-4


def test_identity_names_what_produced_the_embeddings(ort_fp32, fp32_onnx, reference_pairs):
    identity = ort_fp32.identity
    assert set(IDENTITY_KEYS) <= set(identity)
    assert identity["kind"] == "onnxruntime"
    assert identity["precision"] == "fp32"
    assert identity["model_sha256"] == hashlib.sha256(fp32_onnx.read_bytes()).hexdigest()
    assert identity["checkpoint_sha256"] == hashlib.sha256(reference_pairs[11][0].read_bytes()).hexdigest()
    assert identity["source"] == str(fp32_onnx)
    assert identity["device"] == "cpu"
    assert identity["max_batch"] == json.loads(fp32_onnx.with_suffix(".json").read_text())["max_batch"] == 16
    identity["kind"] = "changed"  # a copy: the engine's own stays
    assert ort_fp32.identity["kind"] == "onnxruntime"


def test_pytorch_identity(pytorch_engine, reference_pairs):
    identity = pytorch_engine.identity
    assert set(IDENTITY_KEYS) <= set(identity)
    digest = hashlib.sha256(reference_pairs[11][0].read_bytes()).hexdigest()
    assert (identity["kind"], identity["precision"], identity["device"]) == ("pytorch", "fp32", "cpu")
    assert identity["model_sha256"] == identity["checkpoint_sha256"] == digest
    assert identity["source"] == str(reference_pairs[11][0])


GOOD = np.zeros((2, 3, 224, 224), np.float32)


def _with_nan():
    images = GOOD.copy()
    images[1, 2, 100, 7] = np.nan
    return images


@pytest.mark.parametrize(
    ("images", "message"),
    [
        (np.zeros((2, 3, 224, 223), np.float32), r"shape \(B, 3, 224, 224\), got \(2, 3, 224, 223\)"),
        (np.zeros((3, 224, 224), np.float32), r"got \(3, 224, 224\)"),
        (np.zeros((2, 1, 224, 224), np.float32), r"got \(2, 1, 224, 224\)"),
        (GOOD.astype(np.float64), "float32 or float16, got dtype float64"),
        (GOOD.astype(np.uint8), "got dtype uint8"),
        (GOOD.tolist(), "NumPy array or a CUDA array"),
        (_with_nan(), r"NaN or infinite values \(batch indices \[1\]\)"),
        (np.full((1, 3, 224, 224), np.inf, np.float32), r"batch indices \[0\]"),
    ],
    ids=["width", "3-d", "channels", "float64", "uint8", "list", "nan", "inf"],
)
def test_bad_input_raises_a_typed_error_naming_the_fault(ort_fp32, images, message):
    runs = ort_fp32.runs
    with pytest.raises(EngineInputError, match=message):
        ort_fp32.infer(images)
    assert ort_fp32.runs == runs  # refused before the backend ran
    assert ort_fp32.infer(GOOD[:1]).shape == (1, 192)  # and the engine keeps working


def test_pytorch_engine_refuses_bad_input_the_same_way(pytorch_engine):
    with pytest.raises(EngineInputError, match=r"batch indices \[1\]"):
        pytorch_engine.infer(_with_nan())
    with pytest.raises(EngineInputError, match="got dtype float64"):
        pytorch_engine.infer(GOOD.astype(np.float64))
    assert issubclass(EngineInputError, ValueError)


def test_warmup_runs_each_batch_size_once(ort_fp32):
    runs = ort_fp32.runs
    ort_fp32.warmup((1, 2))
    assert ort_fp32.runs == runs + 2
    with pytest.raises(ValueError, match=r"outside 1\.\.16"):
        ort_fp32.warmup((17,))


def test_empty_batch_gives_no_embeddings(ort_fp32):
    runs = ort_fp32.runs
    out = ort_fp32.infer(np.zeros((0, 3, 224, 224), np.float32))
    assert out.shape == (0, 192) and out.dtype == np.float32
    assert ort_fp32.runs == runs


def test_closed_engine_refuses_to_run(fp32_onnx):
    with open_engine("onnxruntime", fp32_onnx.parent) as engine:  # a folder holding model.onnx
        assert engine.infer(GOOD).shape == (2, 192)
    with pytest.raises(EngineError, match="closed"):
        engine.infer(GOOD)
    engine.close()  # twice is fine


def test_runtime_with_onnxruntime_never_imports_torch(fp32_onnx, reference_pairs):
    code = f"""
import sys, json, numpy as np
from biomoe_edge.runtime.engines import open_engine
images = np.load({str(reference_pairs[11][0].with_name("tiny_biomoe_seed11_io.npz"))!r})["images"]
with open_engine("auto", {str(fp32_onnx)!r}) as engine:
    out = engine.infer(images)
heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "tensorrt", "cupy") or m.startswith("biomoe_edge.export"))
print(json.dumps({{"kind": engine.identity["kind"], "shape": list(out.shape), "heavy": heavy}}))
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report == {"kind": "onnxruntime", "shape": [4, 192], "heavy": []}
