"""CUDA paths: the TensorRT engine (build, load, CUDA graphs, CuPy input) and the PyTorch CUDA engine.

Each test skips with the reason where TensorRT, CuPy or a CUDA device is missing; nothing is faked.
"""

from __future__ import annotations

import importlib.util
import json

import numpy as np
import pytest

from biomoe_edge.runtime.engines import EngineCompatibilityError, open_engine

pytestmark = pytest.mark.torch  # every engine here starts from the ONNX export or the PyTorch model


def _cupy_with_device():
    try:
        import cupy

        if cupy.cuda.runtime.getDeviceCount() > 0:
            return cupy
    except Exception as exc:  # ImportError, or CUDARuntimeError without a driver
        pytest.skip(f"CuPy with a CUDA device is needed ({type(exc).__name__}: {exc})")
    pytest.skip("CuPy sees no CUDA device")


@pytest.fixture(scope="session")
def cupy():
    return _cupy_with_device()


@pytest.fixture(scope="session")
def tensorrt_present():
    if importlib.util.find_spec("tensorrt") is None:
        pytest.skip("tensorrt is not installed: it ships with JetPack (python3-libnvinfer), not pip")


@pytest.fixture(scope="session")
def trt_engine_path(cupy, tensorrt_present, fp32_onnx, tmp_path_factory):
    """fp32_onnx built into an engine (batch 1..8, TF32 off) in a folder of its own."""
    from biomoe_edge.export.tensorrt_builder import build_engine

    return build_engine(fp32_onnx, tmp_path_factory.mktemp("trt") / "model.engine", max_batch=8, tf32=False)


@pytest.fixture(scope="session")
def torch_cuda():
    torch = pytest.importorskip("torch", reason="torch is not installed")
    if not torch.cuda.is_available():
        pytest.skip(f"torch {torch.__version__} sees no CUDA device")
    return torch


def test_engine_manifest_describes_the_build(trt_engine_path, fp32_onnx):
    import tensorrt

    manifest = json.loads(trt_engine_path.with_suffix(".json").read_text())
    assert manifest["tensorrt_version"] == tensorrt.__version__
    assert (manifest["min_batch"], manifest["max_batch"]) == (1, 8)
    assert manifest["precision"] == "fp32"
    assert manifest["source_onnx"] == str(fp32_onnx)
    assert (trt_engine_path.parent / "tensorrt.timing.cache").stat().st_size > 0


def test_tensorrt_matches_onnxruntime(trt_engine_path, ort_fp32, all_images, cosine_rows):
    expected = ort_fp32.infer(all_images)
    with open_engine("tensorrt", trt_engine_path) as engine:
        out = engine.infer(all_images)
        assert engine.identity["kind"] == "tensorrt" and engine.identity["precision"] == "fp32"
    assert out.shape == (7, 192) and out.dtype == np.float32
    assert np.abs(out - expected).max() < 1e-3  # TF32 off; kernels differ from ONNX Runtime's CPU ones
    assert cosine_rows(out, expected).min() > 0.99999


def test_cuda_graph_replay_equals_plain_execution(trt_engine_path, all_images):
    with open_engine("tensorrt", trt_engine_path, cuda_graphs=False) as plain, \
            open_engine("tensorrt", trt_engine_path, cuda_graphs=True) as graphed:
        for batch in (1, 3, 7, 3, 8, 1):  # new sizes capture, repeated sizes replay
            images = np.resize(all_images, (batch, *all_images.shape[1:]))
            np.testing.assert_allclose(graphed.infer(images), plain.infer(images), atol=1e-6)
        assert graphed.identity["cuda_graphs"] is True


def test_cupy_input_on_the_callers_stream(trt_engine_path, all_images, cupy):
    stream = cupy.cuda.Stream(non_blocking=True)
    with open_engine("tensorrt", trt_engine_path, stream=stream) as engine:
        host = engine.infer(all_images)
        assert engine.stream is stream
        with stream:  # images made on the engine's stream: ordered without a sync
            device_images = cupy.asarray(all_images)
            np.testing.assert_allclose(engine.infer(device_images), host, atol=1e-6)
        # Made on another stream: the engine orders its copy after that stream's work.
        other = cupy.cuda.Stream(non_blocking=True)
        with other:
            half = cupy.asarray(all_images).astype(cupy.float16)
            np.testing.assert_allclose(engine.infer(half), host, atol=5e-2)


def test_batches_above_the_profile_are_split(trt_engine_path, all_images, ort_fp32):
    images = np.concatenate([all_images, all_images])  # 14 > max_batch 8
    with open_engine("tensorrt", trt_engine_path) as engine:
        out = engine.infer(images)
        assert engine.runs == 2
    assert np.abs(out - ort_fp32.infer(images)).max() < 1e-3


def test_a_smaller_max_batch_caps_each_run(trt_engine_path, all_images, ort_fp32):
    with open_engine("tensorrt", trt_engine_path, max_batch=4) as engine:
        assert engine.max_batch == 4 and engine.input_dtype == np.float32
        engine.warmup()  # captures graphs for batch 1 and 4
        out = engine.infer(all_images)
        assert engine.runs == 2 + 2  # warm-up, then 4 + 3
    assert np.abs(out - ort_fp32.infer(all_images)).max() < 1e-3


def test_real_engine_with_a_foreign_manifest_is_refused(trt_engine_path, tmp_path):
    engine = tmp_path / "model.engine"
    engine.write_bytes(trt_engine_path.read_bytes())
    manifest = json.loads(trt_engine_path.with_suffix(".json").read_text())
    manifest["tensorrt_version"] = "9.9.9"
    engine.with_suffix(".json").write_text(json.dumps(manifest))
    with pytest.raises(EngineCompatibilityError, match="built with TensorRT 9.9.9"):
        open_engine("tensorrt", engine)


def test_onnxruntime_takes_cupy_images(cupy, ort_fp32, all_images):
    np.testing.assert_array_equal(ort_fp32.infer(cupy.asarray(all_images)), ort_fp32.infer(all_images))


def test_pytorch_cuda_matches_cpu(torch_cuda, pytorch_embeddings, reference_pairs, all_images, cosine_rows):
    with open_engine("pytorch", reference_pairs[11][0], device="cuda") as engine:
        out = engine.infer(all_images)
        assert engine.identity["device"] == "cuda"
    assert np.abs(out - pytorch_embeddings).max() < 5e-3  # cuDNN may use TF32 convolutions
    assert cosine_rows(out, pytorch_embeddings).min() > 0.9999


def test_pytorch_cuda_graphs_and_fp16(torch_cuda, pytorch_embeddings, reference_pairs, all_images, cosine_rows):
    with open_engine("pytorch", reference_pairs[11][0], device="cuda") as eager, \
            open_engine("pytorch", reference_pairs[11][0], device="cuda", cuda_graphs=True) as graphed:
        for batch in (2, 7, 2):
            np.testing.assert_allclose(graphed.infer(all_images[:batch]), eager.infer(all_images[:batch]), atol=1e-5)
    with open_engine("pytorch", reference_pairs[11][0], device="cuda", precision="fp16") as half:
        assert cosine_rows(half.infer(all_images), pytorch_embeddings).min() >= 0.999


def test_pytorch_cuda_takes_device_tensors(torch_cuda, cupy, reference_pairs, all_images):
    with open_engine("pytorch", reference_pairs[11][0], device="cuda") as engine:
        from_torch = engine.infer(torch_cuda.as_tensor(all_images, device="cuda"))  # via __cuda_array_interface__
        from_cupy = engine.infer(cupy.asarray(all_images))
        np.testing.assert_allclose(from_torch, engine.infer(all_images), atol=1e-6)
        np.testing.assert_allclose(from_cupy, from_torch, atol=1e-6)
