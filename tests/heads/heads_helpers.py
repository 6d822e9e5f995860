"""Helpers for the serving tests: head folders written by hand in the documented format (docs/heads.md), with a
graph whose numbers the tests recompute in NumPy, a cheap deterministic engine, and embedding records."""

from __future__ import annotations

import json
import pathlib

import numpy as np

from biomoe_edge.manifest import bind_meaning, sha256_file
from biomoe_edge.runtime.engines.base import Engine
from biomoe_edge.runtime.records import EmbeddingRecord

#: The backbone of PooledEngine's embeddings (random weights, no seed known, fp32): what its heads declare.
POOLED_BACKBONE = {"checkpoint_sha256": None, "random_weights": True, "seed": None, "precision": "fp32"}
POOLED_MODEL = {"sha256": "1" * 64, "checkpoint_sha256": None, "precision": "fp32", "source": None,
                "random_weights": True, "seed": None}


def write_head(folder, inputs, classes, *, seed: int = 0, backbone=None, window_length_s=10.0,
               weights=None, bias=None) -> tuple[pathlib.Path, np.ndarray, np.ndarray]:
    """A head folder: Concat(input_0..) -> Gemm(W, b) -> Softmax, and its head.json. Returns (folder, W, b), W of
    shape (192 k, C), so a test computes softmax(concat(x) @ W + b) itself. ``window_length_s``: one length for
    every input, or a dict per input."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    folder = pathlib.Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    k, c = len(inputs), len(classes)
    rng = np.random.default_rng(seed)
    w = (rng.standard_normal((192 * k, c)) * 0.05).astype(np.float32) if weights is None else np.asarray(weights, np.float32)
    b = (rng.standard_normal(c) * 0.1).astype(np.float32) if bias is None else np.asarray(bias, np.float32)
    names = [f"input_{i}" for i in range(k)]
    nodes = ([helper.make_node("Concat", names, ["fused"], axis=1)] if k > 1 else
             [helper.make_node("Identity", names, ["fused"])])
    nodes += [helper.make_node("Gemm", ["fused", "W", "b"], ["logits"]),
              helper.make_node("Softmax", ["logits"], ["probabilities"], axis=1)]
    graph = helper.make_graph(
        nodes, "head",
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, ["batch", 192]) for n in names],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["batch", c])],
        initializer=[numpy_helper.from_array(w, "W"), numpy_helper.from_array(b, "b")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 9
    onnx.save(model, str(folder / "head.onnx"))
    manifest = {
        "kind": "head", "head_format": 1, "file": "head.onnx",
        "inputs": list(inputs), "classes": list(classes), "fusion": "concat", "classifier": "logistic",
        "backbone": dict(POOLED_BACKBONE if backbone is None else backbone),
        "window_length_s": (dict(window_length_s) if isinstance(window_length_s, dict) else
                            {name: window_length_s for name in inputs} if window_length_s else {}),
    }
    bind_meaning(folder / "head.onnx", manifest)  # as write_manifest does at export
    manifest["sha256"] = sha256_file(folder / "head.onnx")
    (folder / "head.json").write_text(json.dumps(manifest, indent=2))
    return folder, w, b


def softmax_head(w, b, parts) -> np.ndarray:
    """The reference: softmax(concat(parts) @ W + b), in float64."""
    logits = np.concatenate([np.asarray(p, np.float64) for p in parts], axis=1) @ w.astype(np.float64) + b
    logits -= logits.max(axis=1, keepdims=True)
    e = np.exp(logits)
    return e / e.sum(axis=1, keepdims=True)


def record(device, modality, representation, end_s, *, seed=0, length_s=10.0, arrival=None, quality=(),
           model=None) -> EmbeddingRecord:
    rng = np.random.default_rng([seed, int(round(end_s * 1000)), hash((device, modality, representation)) % 1000])
    return EmbeddingRecord(device=device, modality=modality, representation=representation,
                           window_start_s=end_s - length_s, window_end_s=end_s,
                           embedding=rng.standard_normal(192).astype(np.float32), quality=tuple(quality),
                           model=dict(POOLED_MODEL if model is None else model),
                           arrival_time_s=end_s + 0.1 if arrival is None else arrival, emitted_time_s=end_s + 0.2)


class PooledEngine(Engine):
    """A real (if trivial) backbone: 16x16 mean-pooled images through a fixed random projection to 192 values.
    Deterministic and cheap; its embeddings differ with the picture, so heads can learn from them."""

    def __init__(self, max_batch: int = 16, taps: dict | None = None):
        super().__init__()
        self.max_batch = max_batch
        self.weights = np.random.default_rng(7).standard_normal((3 * 14 * 14, 192)).astype(np.float32) / 14.0
        # taps: name -> dim; each tap is another fixed projection of the same pooled image (what a bridge reads)
        self.tap_weights = {name: np.random.default_rng(8 + i).standard_normal((3 * 14 * 14, dim)).astype(np.float32)
                            / 14.0 for i, (name, dim) in enumerate((taps or {}).items())}
        self.taps = tuple(self.tap_weights)
        self._identity = {"kind": "pooled", "precision": "fp32", "model_sha256": "1" * 64, "source": None,
                          "device": "cpu", "max_batch": max_batch}

    @staticmethod
    def pooled(images):
        return images.reshape(len(images), 3, 14, 16, 14, 16).mean(axis=(3, 5)).reshape(len(images), -1)

    def _infer_batch(self, images):
        return self.pooled(images).astype(np.float32) @ self.weights

    def _infer_batch_tapped(self, images, taps):
        pooled = self.pooled(images).astype(np.float32)
        return pooled @ self.weights, {t: pooled @ self.tap_weights[t] for t in taps}


def write_pooled_engine_graph(path, *, taps: dict | None = None, max_batch: int = 16) -> pathlib.Path:
    """``PooledEngine(taps=taps)`` as an ONNX graph an ``OnnxRuntimeEngine`` opens, exported with those taps
    (``tap.<name>`` outputs beside ``embeddings``), and its manifest (random weights, no seed, fp32: the backbone
    ``POOLED_BACKBONE`` names). No torch: written node by node."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    engine = PooledEngine(max_batch=max_batch, taps=taps)
    nodes = [helper.make_node("AveragePool", ["images"], ["pooled4d"], kernel_shape=[16, 16], strides=[16, 16]),
             helper.make_node("Flatten", ["pooled4d"], ["pooled"], axis=1),
             helper.make_node("MatMul", ["pooled", "W"], ["embeddings"])]
    initializers = [numpy_helper.from_array(engine.weights, "W")]
    outputs = [helper.make_tensor_value_info("embeddings", TensorProto.FLOAT, ["batch", 192])]
    for i, (name, weights) in enumerate(engine.tap_weights.items()):
        nodes.append(helper.make_node("MatMul", ["pooled", f"T{i}"], [f"tap.{name}"]))
        initializers.append(numpy_helper.from_array(weights, f"T{i}"))
        outputs.append(helper.make_tensor_value_info(f"tap.{name}", TensorProto.FLOAT, ["batch", weights.shape[1]]))
    graph = helper.make_graph(
        nodes, "pooled", [helper.make_tensor_value_info("images", TensorProto.FLOAT, ["batch", 3, 224, 224])],
        outputs, initializer=initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 9
    onnx.save(model, str(path))
    manifest = {"sha256": sha256_file(path), "precision": "fp32", "random_weights": True, "seed": None,
                "checkpoint_sha256": None, "max_batch": max_batch, "taps": list(engine.taps)}
    path.with_suffix(".json").write_text(json.dumps(manifest, indent=2))
    return path


def native_description(rates: dict):
    """A native device describing one float32 stream per modality (``rates``: modality -> Hz)."""
    from biomoe_edge.firmware_bridge import DeviceDescription, SampleFormat, StreamDescription

    return DeviceDescription("test-1.0", tuple(
        StreamDescription(stream_id=i, modality=m, sample_rate_hz=fs, channels=1, sample_format=SampleFormat.FLOAT32)
        for i, (m, fs) in enumerate(rates.items())))


def device_packets(device: str, rates: dict, seconds: float, *, start_s: float, seed: int = 0, per_packet=None):
    """(arrival_time_s, device, payload) of a native device streaming ``rates`` from gateway time ``start_s``
    (its clock at 0 then): a sine per modality (frequency by modality) plus noise, packets of up to 8 samples
    (1 for rates below 4 Hz), arriving 5 ms after their last sample."""
    from biomoe_edge.firmware_bridge import SampleFormat, encode_packet

    rng = np.random.default_rng(seed)
    out = []
    for stream_id, (modality, fs) in enumerate(rates.items()):
        n = int(seconds * fs)
        t = np.arange(n) / fs
        frequency = {"eda": 0.05, "bvp": 1.2, "resp": 0.25, "spo2": 0.02, "ecg": 1.2}[modality]
        signal = (np.sin(2 * np.pi * frequency * t) + 0.2 * rng.standard_normal(n)).astype(np.float32)
        count = per_packet or max(1, min(8, int(fs // 4)))
        for sequence, first in enumerate(range(0, n - count + 1, count)):
            payload = encode_packet(stream_id=stream_id, sequence=sequence, timestamp_us=int(round(first / fs * 1e6)),
                                    samples=signal[first:first + count, None], sample_format=SampleFormat.FLOAT32)
            out.append((start_s + (first + count - 1) / fs + 0.005, device, payload))
    return sorted(out, key=lambda p: p[0])
