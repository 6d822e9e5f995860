"""build_engine and `biomoe-edge build-engine` where TensorRT is missing: a typed error with the Jetson hint."""

from __future__ import annotations

import importlib.util

import pytest

from biomoe_edge import cli
from biomoe_edge.export.tensorrt_builder import TensorRTUnavailableError, build_engine, default_engine_path

HAVE_TENSORRT = importlib.util.find_spec("tensorrt") is not None
needs_no_tensorrt = pytest.mark.skipif(HAVE_TENSORRT, reason="tensorrt is installed: the missing-TensorRT path cannot run")


@needs_no_tensorrt
def test_build_engine_without_tensorrt_raises_the_typed_error_with_the_jetson_hint(tmp_path):
    onnx = tmp_path / "model.onnx"
    onnx.write_bytes(b"graph")
    with pytest.raises(TensorRTUnavailableError) as info:
        build_engine(onnx)
    message = str(info.value)
    assert "python3-libnvinfer" in message and "JetPack" in message and "--system-site-packages" in message
    assert isinstance(info.value, RuntimeError)  # the CLI prints RuntimeErrors as one line
    assert not (tmp_path / "model.trt.engine").exists()


def test_engine_manifest_never_overwrites_the_export_manifest(tmp_path):
    onnx = tmp_path / "model.onnx"
    onnx.write_bytes(b"graph")
    assert default_engine_path(onnx) == tmp_path / "model.trt.engine"  # manifest model.trt.json
    with pytest.raises(ValueError, match="would share the manifest"):
        build_engine(onnx, tmp_path / "model.engine")  # model.json is the graph's manifest
    with pytest.raises(ValueError, match="would overwrite"):
        build_engine(onnx, onnx)


def test_build_engine_refuses_a_missing_onnx_before_anything_else(tmp_path):
    with pytest.raises(FileNotFoundError, match="no ONNX model at"):
        build_engine(tmp_path / "absent.onnx")


@needs_no_tensorrt
def test_cli_build_engine_prints_one_error_line_without_tensorrt(tmp_path, capsys):
    onnx = tmp_path / "model.onnx"
    onnx.write_bytes(b"graph")
    status = cli.main(["build-engine", str(onnx), "--max-batch", "8", "--workspace-mb", "512"])
    err = capsys.readouterr().err
    assert status == 1
    assert err.startswith("biomoe-edge build-engine: error: tensorrt is not installed")
    assert "Traceback" not in err


def test_cli_build_engine_rejects_a_non_positive_batch(tmp_path, capsys):
    with pytest.raises(SystemExit) as info:
        cli.main(["build-engine", str(tmp_path / "model.onnx"), "--max-batch", "0"])
    assert info.value.code == 2
    assert "--max-batch: must be at least 1" in capsys.readouterr().err
