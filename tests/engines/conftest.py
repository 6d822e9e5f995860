"""Session fixtures of the engine tests: the session's fp32 ONNX export (and its fp16 conversion)."""

from __future__ import annotations

import numpy as np
import pytest


@pytest.fixture(scope="session")
def reference_pairs(reference_dir):
    """{seed: (checkpoint path, images (N,3,224,224) float32, reference embeddings (N,192))}."""
    pairs = {}
    for seed in (11, 29):
        io = np.load(reference_dir / f"tiny_biomoe_seed{seed}_io.npz")
        pairs[seed] = (reference_dir / f"tiny_biomoe_seed{seed}.pth", io["images"], io["embeddings"])
    return pairs


@pytest.fixture(scope="session")
def all_images(reference_pairs):
    """The 7 reference images of both pairs, one batch."""
    return np.concatenate([reference_pairs[11][1], reference_pairs[29][1]])


@pytest.fixture(scope="session")
def export_api():
    pytest.importorskip("torch", reason="torch is needed to export the model (the export extra)")
    from biomoe_edge.export import export_onnx, load_tiny_biomoe  # a broken export API fails here; it never skips

    return load_tiny_biomoe, export_onnx


@pytest.fixture(scope="session")
def fp32_onnx(seed11_fp32_onnx):
    """The seed-11 model exported to fp32 ONNX (max_batch 16), manifest beside it: the session's one export
    (tests/conftest.py), shared with the export tests."""
    return seed11_fp32_onnx


@pytest.fixture(scope="session")
def fp16_onnx(fp32_onnx, tmp_path_factory):
    """The fp32 graph converted to EXPORT's fp16 graph (no second export), with the fp32 manifest's precision fixed."""
    from biomoe_edge.export.fp16 import convert_fp16

    path = tmp_path_factory.mktemp("export_fp16") / "model.onnx"
    return convert_fp16(fp32_onnx, path)


@pytest.fixture(scope="session")
def pytorch_engine(export_api, reference_pairs):
    """The PyTorch engine loading the seed-11 checkpoint itself (through load_tiny_biomoe)."""
    from biomoe_edge.runtime.engines import open_engine

    with open_engine("pytorch", reference_pairs[11][0], max_batch=8) as engine:
        yield engine


@pytest.fixture(scope="session")
def pytorch_embeddings(pytorch_engine, all_images):
    """The PyTorch engine's embeddings of the 7 reference images (computed once: eager CPU is the slow one)."""
    return pytorch_engine.infer(all_images)


@pytest.fixture(scope="session")
def ort_fp32(fp32_onnx):
    from biomoe_edge.runtime.engines import open_engine

    with open_engine("onnxruntime", fp32_onnx) as engine:
        yield engine


@pytest.fixture(scope="session")
def cosine_rows():
    """Row-wise cosine similarity of two (N, D) arrays, in float64."""

    def cosine(a, b) -> np.ndarray:
        a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
        return (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))

    return cosine
