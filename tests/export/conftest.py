"""Shared fixtures for the export tests: the reference model and its exported graphs, built once per session."""

from __future__ import annotations

import numpy as np
import pytest

SEEDS = (11, 29)


@pytest.fixture(scope="session")
def reference_pairs(reference_dir):
    """{seed: (checkpoint path, images (N,3,224,224), embeddings (N,192))} for both reference pairs."""
    pairs = {}
    for seed in SEEDS:
        io = np.load(reference_dir / f"tiny_biomoe_seed{seed}_io.npz")
        pairs[seed] = (reference_dir / f"tiny_biomoe_seed{seed}.pth", io["images"], io["embeddings"])
    return pairs


@pytest.fixture(scope="session")
def reference_images(reference_pairs):
    """All 7 reference images."""
    return np.concatenate([images for _, images, _ in reference_pairs.values()])


@pytest.fixture(scope="session")
def model11(reference_pairs):
    from biomoe_edge.export import load_tiny_biomoe

    return load_tiny_biomoe(reference_pairs[11][0])


@pytest.fixture(scope="session")
def signal_images():
    """16 images the SDK renders from real PPG and simulated ECG/EDA/RESP windows (skips without transforms)."""
    from biomoe_edge.export.calibration import real_signal_images

    try:
        return real_signal_images(16, seed=1)
    except RuntimeError as exc:
        pytest.skip(f"real-signal images unavailable: {exc}")


@pytest.fixture(scope="session")
def export_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("export")


@pytest.fixture(scope="session")
def fp32_onnx(seed11_fp32_onnx):
    """The session's one full export, through the command line (tests/conftest.py): fp16 and int8 start from it."""
    return seed11_fp32_onnx


@pytest.fixture(scope="session")
def fp16_onnx(model11, reference_images, export_dir, fp32_onnx):
    from biomoe_edge.export import export_onnx

    return export_onnx(model11, export_dir / "fp16" / "model.onnx", precision="fp16",
                       fidelity_images=reference_images, max_batch=16, from_fp32=fp32_onnx)


@pytest.fixture(scope="session")
def int8_calibration():
    """Calibration images as the design wants them: real PPG and simulated windows through the SDK's own transforms.
    Without the signal packages the int8 tests skip and say why; any other failure to make them fails."""
    pytest.importorskip("heartpy", reason="INT8 calibration renders HeartPy's real PPG (the signals extra)")
    pytest.importorskip("neurokit2", reason="INT8 calibration renders NeuroKit2-simulated windows (the signals extra)")
    from biomoe_edge.export.calibration import real_signal_images

    return real_signal_images(8, seed=0)


@pytest.fixture(scope="session")
def int8_onnx(model11, reference_images, export_dir, fp32_onnx, int8_calibration):
    from biomoe_edge.export import export_onnx

    return export_onnx(model11, export_dir / "int8" / "model.onnx", precision="int8", calibration=int8_calibration,
                       fidelity_images=reference_images, max_batch=16, from_fp32=fp32_onnx,
                       cache_dir=export_dir / "cache")


@pytest.fixture(scope="session")
def fp32_reference_embeddings(fp32_onnx, reference_images):
    """ONNX Runtime fp32 embeddings of the 7 reference images."""
    from biomoe_edge.export.onnx_export import run_onnxruntime

    return run_onnxruntime(fp32_onnx, reference_images)


@pytest.fixture(scope="session")
def fp32_signal_embeddings(fp32_onnx, signal_images):
    """ONNX Runtime fp32 embeddings of the real-signal images."""
    from biomoe_edge.export.onnx_export import run_onnxruntime

    return run_onnxruntime(fp32_onnx, signal_images)
