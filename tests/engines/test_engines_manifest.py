"""The engine loader's refusals: TensorRT version, GPU, checksum, checked on manifests written by build_engine's writer.

No TensorRT here: the engine bytes are an arbitrary file (the check hashes bytes, it never parses them)
and the manifest is written by ``write_engine_manifest``, the function ``build_engine`` calls.
"""

from __future__ import annotations

import hashlib
import json

import pytest

from biomoe_edge.export.tensorrt_builder import write_engine_manifest
from biomoe_edge.runtime.engines import (
    EngineCompatibilityError,
    check_engine_manifest,
    engine_manifest_problems,
    read_verified_engine,
)

JETPACK6 = {"tensorrt_version": "10.3.0", "gpu_name": "Orin", "compute_capability": "8.7"}


@pytest.fixture()
def engine_file(tmp_path):
    onnx = tmp_path / "model.onnx"
    onnx.write_bytes(b"an onnx graph stands here")
    (tmp_path / "model.json").write_text(json.dumps({"precision": "fp16", "checkpoint_sha256": "c" * 64}))
    engine = tmp_path / "model.engine"
    engine.write_bytes(bytes(range(256)) * 64)
    write_engine_manifest(engine, onnx_path=onnx, precision="fp16", min_batch=1, opt_batch=8, max_batch=8, **JETPACK6)
    return engine


def _manifest(engine):
    return json.loads(engine.with_suffix(".json").read_text())


def test_manifest_records_what_the_loader_checks(engine_file):
    manifest = _manifest(engine_file)
    assert manifest["tensorrt_version"] == "10.3.0"
    assert manifest["gpu_name"] == "Orin" and manifest["compute_capability"] == "8.7"
    assert manifest["sha256"] == hashlib.sha256(engine_file.read_bytes()).hexdigest()
    assert manifest["source_onnx_sha256"] == hashlib.sha256(b"an onnx graph stands here").hexdigest()
    assert (manifest["min_batch"], manifest["opt_batch"], manifest["max_batch"]) == (1, 8, 8)
    assert manifest["precision"] == "fp16"
    assert manifest["checkpoint_sha256"] == "c" * 64  # carried over from the export manifest


def test_matching_engine_is_accepted(engine_file):
    data, manifest = read_verified_engine(engine_file, **JETPACK6)
    assert data == engine_file.read_bytes()
    assert manifest["precision"] == "fp16"


def test_tensorrt_version_mismatch_is_refused(engine_file):
    with pytest.raises(EngineCompatibilityError, match=r"built with TensorRT 10\.3\.0, this machine runs TensorRT 10\.13\.0") as info:
        read_verified_engine(engine_file, **{**JETPACK6, "tensorrt_version": "10.13.0"})
    assert "biomoe-edge build-engine" in str(info.value) and "model.onnx" in str(info.value)


def test_gpu_mismatch_is_refused(engine_file):
    with pytest.raises(EngineCompatibilityError, match=r"built for Orin \(compute capability 8\.7\).*NVIDIA H100.*9\.0"):
        read_verified_engine(engine_file, tensorrt_version="10.3.0", gpu_name="NVIDIA H100 80GB HBM3", compute_capability=(9, 0))
    # Same name, other compute capability: refused as well.
    with pytest.raises(EngineCompatibilityError, match="compute capability 7.2"):
        read_verified_engine(engine_file, tensorrt_version="10.3.0", gpu_name="Orin", compute_capability="7.2")


def test_corrupted_bytes_fail_the_checksum(engine_file):
    data = bytearray(engine_file.read_bytes())
    data[1000] ^= 0xFF
    engine_file.write_bytes(bytes(data))
    with pytest.raises(EngineCompatibilityError, match="fail their checksum"):
        read_verified_engine(engine_file, **JETPACK6)


def test_every_mismatch_is_named_at_once(engine_file):
    manifest = _manifest(engine_file)
    problems = engine_manifest_problems(
        manifest, tensorrt_version="11.0.0", gpu_name="Thor", compute_capability="11.0", engine_sha256="0" * 64
    )
    assert len(problems) == 3
    assert engine_manifest_problems(manifest, engine_sha256=manifest["sha256"], **JETPACK6) == []


def test_manifest_without_the_checked_fields_is_refused(engine_file):
    manifest = _manifest(engine_file)
    del manifest["gpu_name"], manifest["tensorrt_version"]
    with pytest.raises(EngineCompatibilityError, match="lacks 'tensorrt_version', 'gpu_name'"):
        check_engine_manifest(manifest, engine_sha256=manifest["sha256"], **JETPACK6)


def test_missing_manifest_is_refused(engine_file):
    engine_file.with_suffix(".json").unlink()
    with pytest.raises(ValueError, match="no manifest beside"):
        read_verified_engine(engine_file, **JETPACK6)


def test_missing_engine_says_how_to_build_one(tmp_path):
    with pytest.raises(FileNotFoundError, match="biomoe-edge build-engine"):
        read_verified_engine(tmp_path / "model.engine", **JETPACK6)
