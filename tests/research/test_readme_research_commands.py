"""The README's research commands, in its order, as a new user runs them, on emulated wearables (Bumble) worn by
two distinct subjects: demo --record (with `mark` from another process while it runs) -> recording export-edf ->
embed --labels -> load_dataset -> train-head -> evaluate-head -> demo --head -> bridge fit -> bridge evaluate.

RANDOM weights (--random-weights in place of --checkpoint Tiny-BioMoE.pth) and simulated signals: the figures
say the path works end to end, nothing about Tiny-BioMoE. Small settings keep it to minutes on two cores: 40 s
of recording, 5 s windows every 2 s, few epochs, 5 s held-out blocks for the bridge."""

import json
import os
import pathlib
import subprocess
import sys
import time

import pytest

pytestmark = pytest.mark.torch

pytest.importorskip("bumble", reason="the demo's wearables run on Bumble")
pytest.importorskip("torch", reason="train-head and bridge fit need PyTorch (the export extra)")
pytest.importorskip("pyedflib", reason="export-edf needs pyEDFlib (the recordings extra)")
pytest.importorskip("sklearn")
pytest.importorskip("neurokit2", reason="demo --head plays simulated sessions")

from biomoe_edge.cli import main  # noqa: E402
from biomoe_edge.dataset import load_dataset  # noqa: E402

WEIGHTS = ["--random-weights"]
WINDOWS = ["--window", "5", "--hop", "2"]


def _run(capsys, argv) -> str:
    code = main(argv)
    out = capsys.readouterr()
    assert code == 0, f"biomoe-edge {' '.join(argv)} failed: {out.err[-2000:]}"
    with open("transcript.txt", "a") as transcript:  # what the user saw, kept in the test's folder
        transcript.write(f"$ biomoe-edge {' '.join(argv)}\n{out.out}\n")
    return out.out


def _labels(tmp_path, recording) -> pathlib.Path:
    """labels.csv in gateway times, as a researcher writes it from `recording info`: baseline and pain alternating every
    10 s of each subject's session."""
    info = json.loads(_run_info(recording))
    subjects = info["settings"]["subjects"]
    first = {}
    for stream, described in info["streams"].items():
        subject = subjects[stream.split("/")[0]]
        first[subject] = min(first.get(subject, float("inf")), described["first_time_s"])
    rows = ["subject,start_s,end_s,label"]
    for subject, start in sorted(first.items()):
        for k in range(4):
            rows.append(f"{subject},{start + 10 * k:.3f},{start + 10 * (k + 1) + (1 if k == 3 else 0):.3f},"
                        f"{'baseline' if k % 2 == 0 else 'pain'}")
    path = tmp_path / "labels.csv"
    path.write_text("\n".join(rows) + "\n")
    return path


def _run_info(recording) -> str:
    return subprocess.run([sys.executable, "-m", "biomoe_edge", "recording", "info", str(recording)], check=True,
                          capture_output=True, text=True).stdout


def test_the_readme_research_commands_in_order(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    # biomoe-edge demo ... --record session-01 --embeddings live.jsonl; `biomoe-edge mark pain` in another terminal.
    demo = subprocess.Popen([sys.executable, "-m", "biomoe_edge", "demo", *WEIGHTS, "--duration", "40", "--record",
                             "session-01", "--embeddings", "live.jsonl", "--modalities", "ecg,bvp", *WINDOWS,
                             "--quiet"], cwd=tmp_path, env=os.environ.copy(), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 240
        while not (tmp_path / "session-01" / "recording.json").exists() and demo.poll() is None:
            assert time.monotonic() < deadline, "the demo never started recording"
            time.sleep(0.5)
        time.sleep(5)
        assert "marked 'pain' at gateway time" in _run(capsys, ["mark", "pain"])
        demo_out, _ = demo.communicate(timeout=300)
    finally:
        if demo.poll() is None:
            demo.kill()
    assert demo.returncode == 0, demo_out[-3000:]
    (tmp_path / "transcript.txt").open("a").write(f"$ biomoe-edge demo ...\n{demo_out}\n")
    assert "recorded into session-01" in demo_out and (tmp_path / "live.jsonl").stat().st_size > 0

    edf = _run(capsys, ["recording", "export-edf", "session-01", "session-01.edf"])
    assert "4 signals (ECG 1, BVP 1, ECG 2, BVP 2)" in edf

    labels = _labels(tmp_path, tmp_path / "session-01")
    embed = _run(capsys, ["embed", "session-01", "--out", "dataset", "--labels", str(labels), "--quiet"])
    assert "windows labelled: baseline" in embed and "pain" in embed

    frame = load_dataset("dataset")
    assert set(frame["subject"]) == {"subject-1", "subject-2"}  # the demo's wearables: two people
    assert set(frame["label"].dropna()) == {"baseline", "pain"}

    trained = _run(capsys, ["train-head", "dataset", "--inputs", "ecg:spectrogram_psd", "--out", "heads/ecg",
                            "--classifier", "logistic", "--epochs", "200"])
    assert "of 2 subjects" in trained and "leave-one-subject-out" in trained
    _run(capsys, ["evaluate-head", "heads/ecg", "dataset", "--json", "eval.json"])
    evaluation = json.loads((tmp_path / "eval.json").read_text())
    assert evaluation["dataset"]["subjects"] == ["subject-1", "subject-2"] and evaluation["random_weights"] is True

    served = _run(capsys, ["demo", *WEIGHTS, "--head", "heads/ecg", "--duration", "12", "--quiet"])
    assert "predictions" in served  # the settings are the head's: its one wearable, modality and window length
    assert "settings: wearables 1, loss 0, modalities ecg, spectrogram_psd, windows 5 s" in served
    assert "are not among the head's ['baseline', 'pain']" in served  # simulated classes: said, not blamed on changes

    fitted = _run(capsys, ["bridge", "fit", "--paired", "session-01/", "--new", "bvp:spectrogram_psd", "--head",
                           "heads/ecg", *WEIGHTS, "--out", "bridges/ecg-on-bvp", "--held-out-block", "5",
                           "--batch-size", "8", "--epochs", "3", "--prototypes", "8", "--precision", "fp32",
                           "--no-progress"])
    assert "wrote bridges/ecg-on-bvp/bridge.onnx" in fitted
    _run(capsys, ["bridge", "evaluate", "bridges/ecg-on-bvp", "session-01/", "--labels", str(labels), "--json",
                  "metrics.json"])
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["windows"] > 0 and 0.0 <= metrics["accuracy"] <= 1.0
