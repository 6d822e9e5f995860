"""Provenance everywhere: random weights only when asked for, and said so in the manifest, the engine identity,
every record and ``inspect``; a model path that does not exist is an error naming it; every engine checks its
model file against its manifest's sha256."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import shutil
from types import SimpleNamespace

import pytest

from biomoe_edge.cli import main
from biomoe_edge.identity import model_identity
from biomoe_edge.runtime.engines import (
    ModelIntegrityError,
    open_configured_engine,
    open_engine,
    resolve_auto,
)

pytest.importorskip("onnxruntime", reason="the exported graphs run on ONNX Runtime")


@pytest.fixture(scope="module")
def random_export(tmp_path_factory):
    """``biomoe-edge export --random-weights`` as a user runs it: (model.onnx, stdout, stderr)."""
    import subprocess
    import sys

    pytest.importorskip("torch", reason="export needs PyTorch")
    out = tmp_path_factory.mktemp("random-export")
    proc = subprocess.run([sys.executable, "-m", "biomoe_edge", "export", "--random-weights", "--precision", "fp32",
                           "--out", str(out), "--max-batch", "4"], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out / "model.onnx", proc.stdout, proc.stderr


async def _records(engine) -> list:
    """Records of 12 s of one simulated BVP stream, through the gateway's data path (no Bluetooth)."""
    import numpy as np

    from biomoe_edge.firmware_bridge import DeviceDescription, SampleFormat, StreamDescription, encode_packet
    from biomoe_edge.runtime.gateway import Gateway
    from biomoe_edge.runtime.gateway_config import parse_config

    fs, per_packet = 64.0, 16
    description = DeviceDescription("test-1.0", (StreamDescription(
        stream_id=0, modality="bvp", sample_rate_hz=fs, channels=1, sample_format=SampleFormat.INT16, scale=0.01,
        offset=0.0, units="au"),))
    t = np.arange(int(12 * fs)) / fs
    raw = np.round(100 * np.sin(2 * np.pi * 1.2 * t)).astype(np.int16)
    config = parse_config({"windows": {"length_s": 10.0, "hop_s": 1.0, "representations": ["waveform"]},
                           "engine": {"max_batch": 4, "deadline_ms": 0}})
    records = []
    clock = [0.0]
    async with Gateway(config, engine=engine, transport=False, clock=lambda: clock[0], warmup=False) as gateway:
        gateway.on_embedding(records.append)
        gateway.add_device("wrist-1", description)
        for seq, start in enumerate(range(0, len(t) - per_packet + 1, per_packet)):
            clock[0] = (start + per_packet) / fs
            gateway.feed("wrist-1", encode_packet(stream_id=0, sequence=seq, timestamp_us=int(start / fs * 1e6),
                                                  samples=raw[start:start + per_packet, None],
                                                  sample_format=SampleFormat.INT16), clock[0])
            await asyncio.sleep(0)
    return records


def _manifest(onnx):
    return json.loads(onnx.with_suffix(".json").read_text())


@pytest.mark.torch
def test_a_random_weights_export_says_so_in_its_manifest_and_its_output(random_export):
    onnx, stdout, stderr = random_export
    manifest = _manifest(onnx)
    assert manifest["random_weights"] is True and manifest["seed"] == 0
    assert manifest["checkpoint"] is None and manifest["checkpoint_sha256"] is None
    assert "RANDOM WEIGHTS" in stdout
    # torch's exporter logs four "torchvision is not installed" lines through its own handler (stderr).
    assert "torchvision" not in stderr
    assert "random weights (seed 0)" in stderr and ".py:" not in stderr  # one log line, no Python source line


@pytest.mark.torch
def test_the_engine_identity_and_every_record_say_random_weights(random_export):
    onnx, _, _ = random_export
    with open_engine("auto", onnx) as engine:
        identity = engine.identity
        assert identity["kind"] == "onnxruntime" and identity["source"] == str(onnx)
        assert identity["random_weights"] is True and identity["seed"] == 0 and identity["checkpoint_sha256"] is None
        assert identity["model_sha256"] == hashlib.sha256(onnx.read_bytes()).hexdigest()
        records = asyncio.run(_records(engine))
    assert records
    for record in records:
        assert record.model["random_weights"] is True and record.model["seed"] == 0
        assert record.model["sha256"] == identity["model_sha256"]
        assert record.to_dict()["model"]["random_weights"] is True


@pytest.mark.torch
def test_inspect_reports_random_weights_and_a_verified_file(random_export, capsys):
    onnx, _, _ = random_export
    assert main(["inspect", str(onnx)]) == 0
    out = capsys.readouterr().out
    assert "random_weights: true" in out and "sha256 matches the manifest" in out


@pytest.mark.torch
def test_a_changed_file_is_refused_by_every_engine_kind_and_inspect_naming_both_hashes(random_export, tmp_path,
                                                                                      capsys):
    onnx, _, _ = random_export
    copy = tmp_path / "model.onnx"
    shutil.copy(onnx, copy)
    manifest = _manifest(onnx)
    actual = manifest["sha256"]
    manifest["sha256"] = "0" * 64
    copy.with_suffix(".json").write_text(json.dumps(manifest))
    for kind in ("onnxruntime", "auto"):
        with pytest.raises(ModelIntegrityError) as info:
            open_engine(kind, copy)
        assert actual in str(info.value) and "0" * 64 in str(info.value)
    assert main(["inspect", str(copy)]) == 1
    out = capsys.readouterr().out
    assert actual in out and "0" * 64 in out and "MISMATCH" in out


@pytest.mark.torch
def test_a_graph_without_a_manifest_counts_as_random_weights(random_export, tmp_path, caplog):
    onnx, _, _ = random_export
    bare = tmp_path / "bare.onnx"
    shutil.copy(onnx, bare)
    with caplog.at_level(logging.WARNING), open_engine("onnxruntime", bare) as engine:
        assert engine.identity["random_weights"] is True and engine.identity["manifest_verified"] is False
    assert any("no manifest beside" in r.getMessage() for r in caplog.records)


@pytest.mark.torch
def test_the_tensorrt_engine_manifest_carries_the_graphs_provenance(random_export, tmp_path):
    from biomoe_edge.export.tensorrt_builder import write_engine_manifest

    onnx, _, _ = random_export
    engine = tmp_path / "model.engine"
    engine.write_bytes(b"engine bytes")
    write_engine_manifest(engine, onnx_path=onnx, tensorrt_version="10.3.0", gpu_name="Orin", compute_capability="8.7",
                          precision="fp32", min_batch=1, opt_batch=4, max_batch=4)
    manifest = json.loads(engine.with_suffix(".json").read_text())
    assert manifest["random_weights"] is True and manifest["seed"] == 0


@pytest.mark.torch
def test_a_checkpoint_gives_real_weights_in_the_identity(reference_dir):
    pytest.importorskip("torch", reason="the pytorch engine needs PyTorch")
    checkpoint = reference_dir / "tiny_biomoe_seed11.pth"
    with open_engine("pytorch", checkpoint, max_batch=1) as engine:
        identity = engine.identity
    digest = hashlib.sha256(checkpoint.read_bytes()).hexdigest()
    assert identity["checkpoint_sha256"] == identity["model_sha256"] == digest
    assert identity["random_weights"] is False and identity["seed"] is None
    assert model_identity(identity)["random_weights"] is False


def _engine_config(**fields):
    defaults = dict(kind="auto", path=None, precision="fp32", max_batch=2, device="cpu", random_weights=False)
    return SimpleNamespace(**{**defaults, **fields})


def test_a_configured_model_path_that_does_not_exist_is_an_error_naming_it(tmp_path):
    missing = tmp_path / "models" / "tiny_biomoe_fp32.onnx"
    for kind in ("auto", "onnxruntime", "pytorch"):
        with pytest.raises(FileNotFoundError) as info:
            open_configured_engine(_engine_config(kind=kind, path=missing))
        assert "engine.path" in str(info.value) and str(missing) in str(info.value)
    with pytest.raises(ValueError, match="engine.path is not set.*engine.random_weights = true"):
        open_configured_engine(_engine_config())


def test_auto_never_falls_back_to_random_weights(tmp_path):
    with pytest.raises(ValueError, match="needs a model path"):
        resolve_auto(None)
    with pytest.raises(FileNotFoundError, match="no model at"):
        resolve_auto(tmp_path / "missing.onnx")
    with pytest.raises(FileNotFoundError, match="holds no model.onnx"):
        resolve_auto(tmp_path)
    with pytest.raises(ValueError, match="exclude each other"):
        resolve_auto(tmp_path / "model.onnx", random_weights=True)
    assert resolve_auto(None, random_weights=True) == ("pytorch", None)
    checkpoint = tmp_path / "Tiny-BioMoE.pth"
    checkpoint.write_bytes(b"x")
    assert resolve_auto(checkpoint) == ("pytorch", checkpoint)


@pytest.mark.torch
def test_random_weights_on_request_are_announced(caplog, random_export):
    pytest.importorskip("torch", reason="random weights run on the pytorch engine")
    with caplog.at_level(logging.INFO, logger="biomoe_edge.runtime.engines"):
        with open_configured_engine(_engine_config(random_weights=True, max_batch=1)) as engine:
            assert engine.identity["random_weights"] is True and engine.identity["seed"] == 0
    messages = [(r.levelno, r.getMessage()) for r in caplog.records]
    assert any(level == logging.WARNING and "RANDOM WEIGHTS" in m for level, m in messages)
    assert any("random_weights: true" in m for _, m in messages)
    # auto on a file: what it chose and from which file, at info level (`biomoe-edge run` shows it).
    onnx, _, _ = random_export
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="biomoe_edge.runtime.engines"):
        open_configured_engine(_engine_config(path=onnx)).close()
    assert any(f'"auto" chose onnxruntime for {onnx}' in r.getMessage() for r in caplog.records)
