"""The commands' bad-input paths: one clear line naming the file and what is wrong, exit status 1, nothing
written, and no engine opened before the inputs were checked."""

import numpy as np
import pytest

from biomoe_edge.cli import main as cli
from biomoe_edge.runtime.recording import RecordingWriter


def _recording(folder, settings):
    with RecordingWriter(folder, settings, register=False) as writer:
        writer.add_stream("wrist", "eda", {"sample_rate_hz": 4.0, "channels": 1})
        writer.write_block("wrist", "eda", np.ones(40), np.arange(40) / 4.0, arrival_time_s=10.0, lost_before=0)


def _error(capsys, argv) -> str:
    assert cli(argv) == 1
    return capsys.readouterr().err


def test_embed_refuses_an_existing_dataset_before_any_work(tmp_path, capsys):
    (tmp_path / "ds").mkdir()
    (tmp_path / "ds" / "precious.txt").write_text("not a dataset")
    err = _error(capsys, ["embed", str(tmp_path / "missing"), "--out", str(tmp_path / "ds")])
    assert "ds: already exists" in err and "--overwrite" in err
    err = _error(capsys, ["embed", str(tmp_path / "missing"), "--out", str(tmp_path / "ds"), "--overwrite"])
    assert "exists and is not a dataset" in err
    assert (tmp_path / "ds" / "precious.txt").exists()


def test_embed_names_a_recorded_model_that_is_not_here(tmp_path, capsys):
    _recording(tmp_path / "rec", {"engine": {"kind": "onnxruntime", "max_batch": 8},
                                  "model": {"source": str(tmp_path / "gone.onnx"), "sha256": "ab" * 32}})
    err = _error(capsys, ["embed", str(tmp_path / "rec"), "--out", str(tmp_path / "ds"), "--quiet"])
    assert "recorded with the onnxruntime engine on" in err and "gone.onnx, which is not on this machine" in err
    assert not (tmp_path / "ds").exists()


def test_embed_checks_inputs_and_labels_first(tmp_path, capsys):
    _recording(tmp_path / "rec", {})
    (tmp_path / "labels.csv").write_text("subject,start_s,end_s,label\nS1,5,1,pain\n")
    err = _error(capsys, ["embed", str(tmp_path / "rec"), "--out", str(tmp_path / "ds"),
                          "--labels", str(tmp_path / "labels.csv")])
    assert "labels.csv:2: end_s 1 is not after start_s 5" in err
    (tmp_path / "signal.csv").write_text("time_s,ECG\n0,1\n0.004,x\n")
    err = _error(capsys, ["embed", str(tmp_path / "signal.csv"), "--map", "ECG:ecg", "--out", str(tmp_path / "ds")])
    assert "signal.csv:3: column 'ECG' holds 'x', not a number" in err
    err = _error(capsys, ["embed", str(tmp_path / "signal.csv"), "--map", "ECG:heart", "--out", str(tmp_path / "ds")])
    assert "unknown modality 'heart'" in err
    assert not (tmp_path / "ds").exists()


def test_recording_commands_name_what_is_wrong(tmp_path, capsys):
    (tmp_path / "plain").mkdir()
    err = _error(capsys, ["recording", "export-edf", str(tmp_path / "plain"), str(tmp_path / "out.edf")])
    assert "not a biomoe-edge recording (no recording.json)" in err
    assert not (tmp_path / "out.edf").exists()
    with RecordingWriter(tmp_path / "empty", register=False):
        pass
    err = _error(capsys, ["recording", "export-edf", str(tmp_path / "empty"), str(tmp_path / "out.edf")])
    assert "no samples to export" in err


@pytest.mark.parametrize("argv, message", [
    (["demo", "--random-weights", "--lsl-markers", "Stim"],
     "--lsl-markers records markers into a recording: give --record DIR too"),
])
def test_demo_option_errors(argv, message, capsys):
    assert message in _error(capsys, argv)


def test_demo_refuses_to_record_over_a_recording(tmp_path, capsys):
    _recording(tmp_path / "rec", {})
    err = _error(capsys, ["demo", "--random-weights", "--record", str(tmp_path / "rec"), "--duration", "1"])
    assert "already holds a recording; record into a new folder" in err


def test_export_edf_keeps_an_existing_file_unless_told_to_overwrite(tmp_path, capsys):
    pytest.importorskip("pyedflib", reason="EDF export needs pyEDFlib (the recordings extra)")
    _recording(tmp_path / "rec", {})
    out = tmp_path / "annotated.edf"
    out.write_bytes(b"annotated by hand")
    err = _error(capsys, ["recording", "export-edf", str(tmp_path / "rec"), str(out)])
    assert f"{out} exists" in err and "--overwrite" in err
    assert out.read_bytes() == b"annotated by hand"
    assert cli(["recording", "export-edf", str(tmp_path / "rec"), str(out), "--overwrite"]) == 0
    assert out.read_bytes()[:8] == b"0       "  # an EDF header now
