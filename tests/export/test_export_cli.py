"""``biomoe-edge export`` and ``biomoe-edge inspect``."""

from __future__ import annotations

import json

import pytest

from biomoe_edge.cli import main
from biomoe_edge.manifest import write_manifest


@pytest.mark.torch
def test_export_command_wrote_graph_and_manifest(fp32_onnx):
    manifest = json.loads(fp32_onnx.with_suffix(".json").read_text())
    assert fp32_onnx.name == "model.onnx" and manifest["file"] == "model.onnx"
    assert manifest["precision"] == "fp32" and manifest["max_batch"] == 16


@pytest.mark.torch
def test_inspect_onnx_prints_manifest_and_operator_summary(fp32_onnx, capsys):
    assert main(["inspect", str(fp32_onnx)]) == 0
    out = capsys.readouterr().out
    assert '"precision": "fp32"' in out and '"checkpoint_sha256"' in out
    assert "input  images: FLOAT [batch, 3, 224, 224]" in out
    assert "LayerNormalization" in out and "Conv" in out and "BatchNormalization" not in out
    # the manifest path works too
    assert main(["inspect", str(fp32_onnx.with_suffix(".json"))]) == 0
    assert "operators" in capsys.readouterr().out


def test_inspect_engine_prints_its_manifest_only(tmp_path, capsys):
    engine = tmp_path / "model.engine"
    engine.write_bytes(b"serialized engine bytes")
    write_manifest(engine, {"kind": "tensorrt-engine", "precision": "fp16", "tensorrt_version": "10.3.0"})
    assert main(["inspect", str(engine)]) == 0
    out = capsys.readouterr().out
    assert '"tensorrt_version": "10.3.0"' in out and "operators" not in out


def test_inspect_refuses_engine_without_manifest(tmp_path, capsys):
    engine = tmp_path / "orphan.engine"
    engine.write_bytes(b"x")
    assert main(["inspect", str(engine)]) == 1
    assert "no manifest beside" in capsys.readouterr().err


@pytest.mark.torch
def test_export_command_refuses_bad_checkpoint(tmp_path, capsys):
    (tmp_path / "bad.pth").write_bytes(b"not a checkpoint")
    assert main(["export", "--checkpoint", str(tmp_path / "bad.pth"), "--out", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err
    assert "biomoe-edge export: error:" in err and "not a readable PyTorch checkpoint" in err
    assert not (tmp_path / "out" / "model.onnx").exists()
    assert main(["export", "--checkpoint", str(tmp_path / "bad.pth"), "--out", str(tmp_path / "out"),
                 "--precision", "fp32", "--calibration", str(tmp_path / "c.npy")]) == 1
    assert "--calibration only applies to --precision int8" in capsys.readouterr().err
