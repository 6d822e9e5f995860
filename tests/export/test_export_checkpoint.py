"""The published checkpoint must load the first time: files built from the reference fixtures the way a release
file may differ from them (float64 or float16 tensors, a pretraining head, optimizer state, a wrapper's prefix)
load with a note or a warning; missing or mis-shaped keys are still refused; ``--strict`` refuses extras;
``biomoe-edge inspect FILE.pth`` shows why."""

from __future__ import annotations

import logging

import numpy as np
import pytest

pytestmark = pytest.mark.torch
torch = pytest.importorskip("torch", reason="the export extra loads checkpoints with PyTorch")

from biomoe_edge.cli import main  # noqa: E402
from biomoe_edge.export import CheckpointError, load_tiny_biomoe  # noqa: E402
from biomoe_edge.export.checkpoint import inspect_checkpoint  # noqa: E402

HEAD = {"head.weight": torch.randn(7, 192), "head.bias": torch.zeros(7)}


def _fixture_state_dict(reference_pairs, seed=29):
    return torch.load(reference_pairs[seed][0], weights_only=True)["model_state_dict"]


@pytest.fixture
def release_like(reference_pairs, tmp_path):
    """A file shaped like a training run's save: float64 tensors, a pretraining head inside the state dict,
    optimizer state and an epoch beside it."""
    sd = {k: (v.double() if v.is_floating_point() else v) for k, v in _fixture_state_dict(reference_pairs).items()}
    path = tmp_path / "release-like.pth"
    torch.save({"model_state_dict": {**sd, **HEAD},
                "optimizer_state_dict": {"state": {}, "param_groups": [{"lr": 1e-3, "params": [0, 1]}]},
                "epoch": 12}, path)
    return path


def _embed(model, images):
    with torch.no_grad():
        return model(torch.from_numpy(images)).numpy()


def test_float64_weights_extras_and_optimizer_state_load_with_a_note_and_a_warning(release_like, reference_pairs,
                                                                                  caplog):
    _, images, embeddings = reference_pairs[29]
    with caplog.at_level(logging.INFO, logger="biomoe_edge.export.checkpoint"):
        model = load_tiny_biomoe(release_like)
    # float32 -> float64 -> float32 is exact: the reference embeddings come back to the fixture's tolerance.
    assert np.abs(_embed(model, images) - embeddings).max() < 1e-5
    assert all(v.dtype != torch.float64 for v in model.state_dict().values())
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    for name in ("head.weight", "head.bias", "optimizer_state_dict", "epoch"):
        assert repr(name) in warnings[0]
    notes = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO]
    float_tensors = sum(1 for v in _fixture_state_dict(reference_pairs).values() if v.is_floating_point())
    assert any(f"cast {float_tensors} tensors float64 -> float32" in m for m in notes)
    provenance = model.source_checkpoint
    assert provenance["random_weights"] is False and provenance["sha256"] is not None
    assert provenance["cast"] == {"float64 -> float32": float_tensors}
    assert sorted(provenance["ignored"]) == ["epoch", "head.bias", "head.weight", "optimizer_state_dict"]


def test_strict_refuses_what_would_be_ignored(release_like):
    with pytest.raises(CheckpointError) as info:
        load_tiny_biomoe(release_like, strict=True)
    message = str(info.value)
    assert "unexpected keys" in message and "'head.weight'" in message and "--strict" in message
    assert "biomoe-edge inspect" in message


def test_float16_weights_are_cast_and_stay_close(reference_pairs, tmp_path):
    _, images, embeddings = reference_pairs[29]
    sd = {k: (v.half() if v.is_floating_point() else v) for k, v in _fixture_state_dict(reference_pairs).items()}
    torch.save({"model_state_dict": sd}, tmp_path / "half.pth")
    out = _embed(load_tiny_biomoe(tmp_path / "half.pth"), images)
    cosine = (out * embeddings).sum(1) / (np.linalg.norm(out, axis=1) * np.linalg.norm(embeddings, axis=1))
    assert cosine.min() > 0.99  # float16 weights round; the model is the same


def test_a_wrapper_prefix_is_recognised(reference_pairs, tmp_path):
    _, images, embeddings = reference_pairs[29]
    sd = _fixture_state_dict(reference_pairs)
    torch.save({"state_dict": {f"backbone.{k}": v for k, v in sd.items()} | {"classifier.weight": torch.zeros(2, 192)}},
               tmp_path / "lightning.pth")
    report = inspect_checkpoint(tmp_path / "lightning.pth")
    assert report.prefix == "backbone." and report.ignored == ["classifier.weight"] and report.loads()
    assert np.abs(_embed(load_tiny_biomoe(tmp_path / "lightning.pth"), images[:1]) - embeddings[:1]).max() < 1e-5


def test_missing_and_misshaped_keys_are_still_refused_without_strict(reference_pairs, tmp_path):
    sd = _fixture_state_dict(reference_pairs)
    missing = {k: v for k, v in sd.items() if k != "ln_out.weight"} | HEAD
    with pytest.raises(CheckpointError, match="missing keys 'ln_out.weight'"):
        load_tiny_biomoe(missing)
    misshaped = sd | {"fcn.1.weight": torch.zeros(96, 95, dtype=torch.float64)}
    with pytest.raises(CheckpointError, match=r"mis-shaped keys 'fcn.1.weight \(96, 95\) != \(96, 96\)'"):
        load_tiny_biomoe(misshaped)
    wrong_type = sd | {"fcn.1.bias": torch.zeros(96, dtype=torch.int64)}
    with pytest.raises(CheckpointError, match="fcn.1.bias is int64, expected float32"):
        load_tiny_biomoe(wrong_type)


def test_inspect_prints_keys_shapes_dtypes_and_what_is_ignored(release_like, capsys):
    assert main(["inspect", str(release_like)]) == 0
    out = capsys.readouterr().out
    assert "layout: {'model_state_dict': state dict, ...}" in out
    assert "top-level entry 'optimizer_state_dict' (dict of 2): ignored" in out
    assert "top-level entry 'epoch' (int): ignored" in out
    lines = {line.split()[0]: line for line in out.splitlines() if line.startswith(("enc1.", "head.", "ln_out."))}
    assert lines["enc1.patch_embed1.conv.0.weight"].split()[1:4] == ["32x3x7x7", "float64", "cast"]
    assert "IGNORED: not part of Tiny-BioMoE" in lines["head.weight"] and "7x192" in lines["head.weight"]
    assert "summary: 510 of 510 Tiny-BioMoE tensors present (7,337,278 parameters)" in out
    assert "verdict: loads" in out
    assert main(["inspect", "--strict", str(release_like)]) == 1
    assert "verdict: REFUSED: unexpected keys" in capsys.readouterr().out


def test_inspect_names_what_a_foreign_file_lacks(tmp_path, capsys):
    torch.save({"weight": torch.zeros(3)}, tmp_path / "other.pth")
    assert main(["inspect", str(tmp_path / "other.pth")]) == 1
    out = capsys.readouterr().out
    assert "weight" in out and "IGNORED" in out and "MISSING (Tiny-BioMoE needs it)" in out
    assert "verdict: REFUSED: missing keys 'enc1.patch_embed1.conv.0.weight'" in out
