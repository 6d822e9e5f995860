"""jetson/engine_check.py against fixture engines and manifests written with the SDK's own manifest writer.

The machine's TensorRT version and GPU are given on the command line (--tensorrt-version, --gpu-name,
--compute-capability): nothing here imports or imitates tensorrt or cupy.
"""

from __future__ import annotations

import hashlib
import importlib.util
import pathlib

import pytest

from biomoe_edge.cli import build_parser
from biomoe_edge.manifest import write_manifest

JETSON = pathlib.Path(__file__).resolve().parents[2] / "jetson"
ORIN = ["--tensorrt-version", "10.3.0.30", "--gpu-name", "Orin", "--compute-capability", "8.7"]


@pytest.fixture(scope="module")
def engine_check():
    spec = importlib.util.spec_from_file_location("engine_check", JETSON / "engine_check.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture()
def built(tmp_path):
    """An ONNX file and an engine built from it on an Orin with TensorRT 10.3.0.30, with its manifest."""
    onnx = tmp_path / "models/tiny_biomoe.onnx"
    onnx.parent.mkdir()
    onnx.write_bytes(b"onnx graph bytes")
    engine = tmp_path / "engines/tiny_biomoe.engine"
    engine.parent.mkdir()
    engine.write_bytes(b"serialized engine bytes")
    write_manifest(engine, {
        "kind": "tensorrt_engine",
        "tensorrt_version": "10.3.0.30",
        "gpu_name": "Orin",
        "compute_capability": "8.7",
        "source_onnx": str(onnx),
        "source_onnx_sha256": hashlib.sha256(onnx.read_bytes()).hexdigest(),
    })
    return engine, onnx


def _check(engine_check, capsys, engine, onnx, *extra):
    status = engine_check.main(["--engine", str(engine), "--onnx", str(onnx), *extra])
    captured = capsys.readouterr()
    return status, captured.out + captured.err


def test_matching_engine_is_left_alone(engine_check, capsys, built):
    status, out = _check(engine_check, capsys, *built, *ORIN)
    assert status == engine_check.EXIT_OK and "up to date" in out


def test_tensorrt_upgrade_needs_a_rebuild(engine_check, capsys, built):
    flags = ["--tensorrt-version", "10.3.0.31", "--gpu-name", "Orin", "--compute-capability", "8.7"]
    status, out = _check(engine_check, capsys, *built, *flags)
    assert status == engine_check.EXIT_REBUILD_NEEDED
    assert "built with TensorRT 10.3.0.30, this machine runs TensorRT 10.3.0.31" in out


def test_other_gpu_needs_a_rebuild(engine_check, capsys, built):
    flags = ["--tensorrt-version", "10.3.0.30", "--gpu-name", "NVIDIA Thor", "--compute-capability", "11.0"]
    status, out = _check(engine_check, capsys, *built, *flags)
    assert status == engine_check.EXIT_REBUILD_NEEDED and "compute capability 11.0" in out


def test_missing_engine_or_manifest_needs_a_build(engine_check, capsys, built):
    engine, onnx = built
    engine.with_suffix(".json").unlink()
    status, out = _check(engine_check, capsys, engine, onnx, *ORIN)
    assert status == engine_check.EXIT_REBUILD_NEEDED and "no manifest beside" in out
    engine.unlink()
    status, out = _check(engine_check, capsys, engine, onnx, *ORIN)
    assert status == engine_check.EXIT_REBUILD_NEEDED and f"no engine at {engine}" in out


def test_corrupt_engine_and_changed_model_need_a_rebuild(engine_check, capsys, built):
    engine, onnx = built
    onnx.write_bytes(b"a retrained model")
    status, out = _check(engine_check, capsys, engine, onnx, *ORIN)
    assert status == engine_check.EXIT_REBUILD_NEEDED and "changed since the engine was built" in out
    engine.write_bytes(b"truncated")
    status, out = _check(engine_check, capsys, engine, onnx, *ORIN)
    assert "checksum" in out


def test_build_without_a_model_is_a_clear_error(engine_check, capsys, built):
    engine, onnx = built
    engine.unlink()
    onnx.unlink()
    status, out = _check(engine_check, capsys, engine, onnx, *ORIN, "--build")
    assert status == engine_check.EXIT_ERROR and "cannot build: no ONNX model at" in out


def test_machine_without_tensorrt_is_a_clear_error(engine_check, capsys, built):
    # This path needs tensorrt to be absent; where it is installed the test skips.
    try:
        import tensorrt  # noqa: F401
    except ImportError:
        status, out = _check(engine_check, capsys, *built)
        assert status == engine_check.EXIT_ERROR and "cannot tell this machine's TensorRT" in out
    else:
        pytest.skip("tensorrt is installed here: the missing-TensorRT path cannot be exercised")


def test_rebuild_command_is_accepted_by_the_real_cli(engine_check, built):
    engine, onnx = built
    arguments = engine_check.build_arguments(engine, onnx, ["--max-batch", "16"])
    args = build_parser(only="build-engine").parse_args(arguments)
    assert (args.command, args.onnx, args.engine, args.max_batch) == ("build-engine", onnx, engine, 16)


def test_paths_come_from_engine_env(engine_check, capsys, built, monkeypatch):
    engine, onnx = built
    monkeypatch.setenv("BIOMOE_ENGINE", str(engine))
    monkeypatch.setenv("BIOMOE_ONNX", str(onnx))
    assert engine_check.main(ORIN) == engine_check.EXIT_OK
    monkeypatch.delenv("BIOMOE_ENGINE")
    assert engine_check.main(ORIN) == engine_check.EXIT_ERROR
    assert "no engine path" in capsys.readouterr().err
