"""``biomoe-edge bridge fit | evaluate``: arguments, and clear one-line errors for what does not fit."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytestmark = pytest.mark.torch
pytest.importorskip("torch", reason="the bridge trains and exports with PyTorch (the export extra)")
from bridge_helpers import CLASSES, make_head  # noqa: E402

from biomoe_edge.cli import main  # noqa: E402


@pytest.fixture(scope="module")
def head_dir(tmp_path_factory, reference_dir):
    """FIXTURE head on random embeddings, bound to the reference checkpoint's backbone."""
    from biomoe_edge.manifest import sha256_file

    rng = np.random.default_rng(0)
    backbone = {"checkpoint_sha256": sha256_file(reference_dir / "tiny_biomoe_seed11.pth"), "random_weights": False,
                "seed": None, "precision": "fp32"}
    return make_head(tmp_path_factory.mktemp("head"), rng.normal(size=(30, 192)).astype(np.float32),
                     rng.choice(CLASSES, 30), backbone)


def fit_args(head_dir, tmp_path, *extra):
    return ["bridge", "fit", "--paired", str(tmp_path / "session"), "--new", "bvp:spectrogram_psd", "--head",
            str(head_dir), "--out", str(tmp_path / "out"), *extra]


def test_fit_and_evaluate_a_simulated_paired_recording(fixture_head, small_recording, small_features, cache_dir,
                                                       reference_dir, tmp_path, capsys, caplog):
    """The whole command path on a SIMULATED recording; the features come from the session's cache (the same
    windows as ``small_paired``, so the same key)."""
    folder, labels, _ = small_recording
    out = tmp_path / "bridge"
    assert main(["bridge", "fit", "--paired", str(folder), "--new", "bvp:spectrogram_psd", "--head", str(fixture_head),
                 "--out", str(out), "--checkpoint", str(reference_dir / "tiny_biomoe_seed11.pth"), "--epochs", "10",
                 "--precision", "fp32", "--cache-dir", str(cache_dir), "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "probe macro F1" in printed and "linear CKA" in printed and "output position" in printed
    for name in ("enc1.stage1", "embedding", "enc1.block4", "fused", "experts"):
        assert name in printed
    manifest = json.loads((out / "bridge.json").read_text())
    assert manifest["timings"]["features_cache"] == "hit" and manifest["data"]["windows"] == 52
    assert manifest["inputs"] == ["bvp:spectrogram_psd"] and len(manifest["fit_curve"]) == 10
    assert (out / "bridge_fit.png").read_bytes()[:4] == b"\x89PNG"
    # --no-progress: every long step still says when it started and how long it took.
    steps = [r.getMessage() for r in caplog.records if r.name.startswith("biomoe_edge.training.bridge")]
    assert any(m.startswith("bridge features: cache hit") for m in steps)  # cached: no wait to announce
    for step in ("selecting positions", "timing", "fitting the bridge", "exporting the bridged graph"):
        assert any(m.startswith(step) and "done in" in m for m in steps), (step, steps)
    metrics_path = tmp_path / "metrics.json"
    evaluate = ["bridge", "evaluate", str(out), str(folder), "--labels", str(labels), "--json", str(metrics_path)]
    # The bridge reads the backbone's features at its tap: evaluating needs the backbone it was fitted on.
    capsys.readouterr()
    assert main(evaluate) == 1
    assert f"give the engine (--engine MODEL, exported with --taps {manifest['tap']}) or --checkpoint" in \
        capsys.readouterr().err
    assert main([*evaluate, "--checkpoint", str(reference_dir / "tiny_biomoe_seed11.pth")]) == 0
    metrics = json.loads(metrics_path.read_text())
    assert metrics["windows"] + sum(metrics["unlabelled_windows"].values()) == 52
    assert 0.0 <= metrics["accuracy"] <= 1.0 and len(metrics["confusion_matrix"]) == 3
    assert metrics_path.with_suffix(".png").read_bytes()[:4] == b"\x89PNG"


def test_fit_names_a_missing_recording(head_dir, tmp_path, reference_dir, capsys):
    assert main(fit_args(head_dir, tmp_path, "--checkpoint", str(reference_dir / "tiny_biomoe_seed11.pth"))) == 1
    err = capsys.readouterr().err
    assert "biomoe-edge bridge: error:" in err and "session: no such file or recording folder" in err


@pytest.mark.parametrize("extra, message", [
    (["--random-weights", "3"], "trained on the embeddings of checkpoint"),
    ([], "give that checkpoint with --checkpoint"),
])
def test_fit_refuses_a_head_of_another_backbone(head_dir, tmp_path, capsys, extra, message):
    assert main(fit_args(head_dir, tmp_path, *extra)) == 1
    assert message in capsys.readouterr().err


@pytest.mark.parametrize("new, message", [
    ("bvp:gaf", "--new: input 'bvp:gaf': unknown representation 'gaf'"),
    ("bvp", "--new: input 'bvp' is not MODALITY:REPRESENTATION"),
    ("ecg:spectrogram_psd", "the head already reads ecg:spectrogram_psd"),
])
def test_fit_refuses_a_bad_new_modality(head_dir, tmp_path, capsys, new, message):
    args = fit_args(head_dir, tmp_path)
    args[args.index("--new") + 1] = new
    assert main(args) == 1
    assert message in capsys.readouterr().err


def test_fit_refuses_a_folder_that_is_not_a_head(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert main(fit_args(tmp_path / "empty", tmp_path)) == 1
    assert "is not a head folder: no head.json in it" in capsys.readouterr().err


def test_evaluate_refuses_a_folder_that_is_not_a_bridge(head_dir, tmp_path, capsys):
    assert main(["bridge", "evaluate", str(head_dir), str(tmp_path / "rec"), "--labels", str(tmp_path / "l.csv"),
                 "--json", str(tmp_path / "m.json")]) == 1
    assert "is not a bridge folder: no bridge.json in it" in capsys.readouterr().err


def test_fit_requires_its_arguments(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["bridge", "fit", "--new", "bvp:scalogram"])
    assert exit_info.value.code == 2
    assert "--paired" in capsys.readouterr().err
