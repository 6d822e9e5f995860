"""The commands: ``train-head`` then ``evaluate-head`` on held-out subjects, and their errors as one clear line;
``evaluate-head`` and serving need no torch."""

import json
import subprocess
import sys
import textwrap

import pytest

pytestmark = pytest.mark.torch
pytest.importorskip("torch", reason="train-head needs PyTorch (the export extra)")
pytest.importorskip("sklearn")

from training_helpers import class_frame  # noqa: E402

from biomoe_edge.cli import main  # noqa: E402
from biomoe_edge.training.datasets import save_dataset  # noqa: E402

INPUTS = ("eda:scalogram", "bvp:spectrogram_psd")


@pytest.fixture(scope="module")
def datasets(tmp_path_factory):
    folder = tmp_path_factory.mktemp("data")
    frame = class_frame(subjects=6, windows=15, inputs=INPUTS, separation=4.0, seed=11)
    train = save_dataset(frame[frame.subject.isin(["s00", "s01", "s02", "s03"])], folder / "train.parquet")
    held_out = save_dataset(frame[frame.subject.isin(["s04", "s05"])], folder / "held_out.parquet")
    return train, held_out


@pytest.fixture(scope="module")
def head(datasets, tmp_path_factory):
    out = tmp_path_factory.mktemp("heads") / "eda_bvp"
    assert main(["train-head", str(datasets[0]), "--inputs", ",".join(INPUTS), "--out", str(out), "--epochs", "20",
                 "--classifier", "logistic", "--cv", "2"]) == 0
    return out


def test_train_then_evaluate_on_held_out_subjects(datasets, head, tmp_path, capsys):
    assert sorted(p.name for p in head.iterdir()) == ["confusion_matrix.png", "head.json", "head.onnx", "head.pt"]
    report = tmp_path / "eval.json"
    assert main(["evaluate-head", str(head), str(datasets[1]), "--json", str(report)]) == 0
    result = json.loads(report.read_text())
    for key in ("balanced_accuracy", "macro_f1", "per_class_recall", "confusion_matrix"):
        assert key in result
    assert result["dataset"]["subjects"] == ["s04", "s05"] and result["overlaps_training_subjects"] == []
    assert result["windows"] == 30 and sum(map(sum, result["confusion_matrix"])) == 30
    assert result["balanced_accuracy"] > 0.8  # well separated classes (chance: 1/3)
    assert result["random_weights"] is True
    assert report.with_suffix(".png").read_bytes()[:4] == b"\x89PNG"
    out = capsys.readouterr().out
    assert "RANDOM weights" in out and "balanced accuracy" in out


@pytest.mark.parametrize("argv, message", [
    (["evaluate-head", "{data}", "{train}", "--json", "{tmp}/e.json"], "is not a head"),
    (["train-head", "{train}", "--inputs", "eda:scalogram,resp:scalogram", "--out", "{tmp}/h"],
     "no windows of input(s) ['resp:scalogram']"),
    (["train-head", "{train}", "--inputs", "eda:specgram", "--out", "{tmp}/h"], "unknown representation 'specgram'"),
    (["train-head", "{tmp}/missing.parquet", "--inputs", "eda:scalogram", "--out", "{tmp}/h"], "no such dataset"),
    (["train-head", "{train}", "--inputs", "eda:scalogram", "--out", "{tmp}/h", "--cv", "ten"],
     "cv must be loso, none or a number"),
])
def test_errors_are_one_clear_line(datasets, tmp_path, capsys, argv, message):
    values = {"train": datasets[0], "data": datasets[0].parent, "tmp": tmp_path}
    assert main([a.format(**values) for a in argv]) == 1
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_a_dataset_of_other_weights_is_refused_by_evaluate_head(head, tmp_path, capsys):
    frame = class_frame(subjects=2, windows=6, inputs=INPUTS)
    frame["checkpoint_sha256"] = "ef" * 32
    frame["random_weights"] = False
    path = save_dataset(frame, tmp_path / "other.parquet")
    assert main(["evaluate-head", str(head), str(path), "--json", str(tmp_path / "e.json")]) == 1
    err = capsys.readouterr().err
    assert "checkpoint efefefefefefefef" in err and "random weights (seed 0) fp32" in err


def test_evaluating_and_serving_a_head_never_import_torch(datasets, head, tmp_path):
    code = textwrap.dedent(f"""
        import importlib.abc, sys
        class BlockTorch(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path, target=None):
                if name == "torch" or name.startswith("torch."):
                    raise ImportError("torch is not installed on this gateway")
        sys.meta_path.insert(0, BlockTorch())
        from biomoe_edge.cli import main
        from biomoe_edge.runtime.heads import load_head, FusionStage
        FusionStage([load_head({str(head)!r})])
        sys.exit(main(["evaluate-head", {str(head)!r}, {str(datasets[1])!r}, "--json", {str(tmp_path / "e.json")!r}]))
    """)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert json.loads((tmp_path / "e.json").read_text())["windows"] == 30


def test_a_dataset_of_other_window_lengths_is_refused_by_evaluate_head(head, tmp_path, capsys):
    frame = class_frame(subjects=2, windows=6, inputs=INPUTS)
    frame["window_start_s"] = frame["window_end_s"] - 20.0  # embedded with --window 20; the head knows 10 s
    path = save_dataset(frame, tmp_path / "twenty.parquet")
    assert main(["evaluate-head", str(head), str(path), "--json", str(tmp_path / "e.json")]) == 1
    err = capsys.readouterr().err
    assert "its eda:scalogram windows are 20 s long, but head" in err and "trained on 10 s ones" in err
    assert not (tmp_path / "e.json").exists()


def test_a_head_whose_manifest_names_other_inputs_is_refused_by_evaluate_head(head, tmp_path, capsys):
    import shutil

    edited = tmp_path / "edited"
    shutil.copytree(head, edited)
    manifest = json.loads((edited / "head.json").read_text())
    manifest["inputs"] = ["eda:scalogram", "resp:scalogram"]  # was bvp:spectrogram_psd
    (edited / "head.json").write_text(json.dumps(manifest))
    path = save_dataset(class_frame(subjects=2, windows=6, inputs=("eda:scalogram", "resp:scalogram")),
                        tmp_path / "resp.parquet")
    assert main(["evaluate-head", str(edited), str(path), "--json", str(tmp_path / "e.json")]) == 1
    err = capsys.readouterr().err
    # The inputs are bound to head.onnx (its metadata, covered by its sha256): the edit is refused on load.
    assert "inputs is ['eda:scalogram', 'resp:scalogram'] in the manifest, but the graph was exported with" in err
