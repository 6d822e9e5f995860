"""open_engine: which backend each kind and path opens."""

from __future__ import annotations

import importlib.util

import pytest

from biomoe_edge.runtime.engines import TensorRTUnavailableError, open_engine, resolve_auto

HAVE_TENSORRT = importlib.util.find_spec("tensorrt") is not None


def test_unknown_kind_is_refused():
    with pytest.raises(ValueError, match="unknown engine kind 'tflite'.*tensorrt, onnxruntime, pytorch, auto"):
        open_engine("tflite", "model.onnx")


def test_auto_prefers_onnx_when_no_engine_file_or_no_tensorrt(tmp_path):
    onnx = tmp_path / "model.onnx"
    onnx.write_bytes(b"graph")
    assert resolve_auto(tmp_path) == ("onnxruntime", onnx)
    assert resolve_auto(onnx) == ("onnxruntime", onnx)
    for name in ("model.engine", "model.trt.engine"):  # a hand-named engine, then build_engine's default name
        engine = tmp_path / name
        engine.write_bytes(b"engine")
        expected = ("tensorrt", engine) if HAVE_TENSORRT else ("onnxruntime", onnx)
        assert resolve_auto(tmp_path) == expected
        assert resolve_auto(onnx) == expected
        assert resolve_auto(engine) == expected  # an engine path finds its graph beside it


def test_auto_opens_a_checkpoint_on_pytorch_but_never_falls_back_to_random_weights(tmp_path):
    checkpoint = tmp_path / "Tiny-BioMoE.pth"
    checkpoint.write_bytes(b"weights")
    assert resolve_auto(checkpoint) == ("pytorch", checkpoint)
    assert resolve_auto(None, random_weights=True) == ("pytorch", None)
    with pytest.raises(ValueError, match="needs a model path"):
        resolve_auto(None)
    with pytest.raises(FileNotFoundError, match="missing.onnx"):
        resolve_auto(tmp_path / "missing.onnx")


@pytest.mark.skipif(HAVE_TENSORRT, reason="tensorrt is installed: the missing-TensorRT path cannot run")
def test_tensorrt_kind_without_tensorrt_says_how_to_get_it(tmp_path):
    (tmp_path / "model.engine").write_bytes(b"engine")
    with pytest.raises(TensorRTUnavailableError, match="python3-libnvinfer"):
        open_engine("tensorrt", tmp_path / "model.engine")


def test_path_is_required_for_file_backends():
    with pytest.raises(ValueError, match="needs a path"):
        open_engine("onnxruntime")
    with pytest.raises(ValueError, match="needs a path"):
        open_engine("tensorrt")


def test_missing_onnx_file_is_named(tmp_path):
    pytest.importorskip("onnxruntime", reason="onnxruntime is not installed")
    with pytest.raises(FileNotFoundError, match=f"no model at {tmp_path / 'model.onnx'}"):
        open_engine("onnxruntime", tmp_path / "model.onnx")
