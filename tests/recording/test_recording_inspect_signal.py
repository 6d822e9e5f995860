"""inspect-signal reads what the SDK writes: a recording folder (any device and modality, gaps and markers drawn)
and its EDF+ export (it failed with a UTF-8 decode error, and "no such file" on a folder)."""

import numpy as np
import pytest

pytest.importorskip("matplotlib", reason="inspect-signal draws with matplotlib")

from biomoe_edge.cli import main  # noqa: E402
from biomoe_edge.commands.inspect_signal import load_recorded  # noqa: E402
from biomoe_edge.runtime.recording import RecordingWriter, open_recording  # noqa: E402

FS = 64.0
T0 = 900.0


def _recording(folder):
    """Two wearables with bvp (30 s at 64 Hz); the second loses 64 samples (1 s) after 12 s; a marker at 5 s."""
    t = np.arange(int(30 * FS)) / FS
    with RecordingWriter(folder, {"subjects": {"wrist-1": "S1", "wrist-2": "S2"}}, register=False) as writer:
        for device in ("wrist-1", "wrist-2"):
            writer.add_stream(device, "bvp", {"sample_rate_hz": FS, "channels": 1, "units": "au"})
        for start in range(0, t.size, 32):
            for k, device in enumerate(("wrist-1", "wrist-2")):
                if device == "wrist-2" and 12 * FS <= start < 13 * FS:
                    continue
                index = np.arange(start, start + 32)
                writer.write_block(device, "bvp", np.sin(2 * np.pi * (1.0 + k) * t[index]), T0 + t[index],
                                   arrival_time_s=T0 + t[index[-1]],
                                   lost_before=64 if device == "wrist-2" and start == 13 * FS else 0)
        writer.write_marker("pain", T0 + 5.0)
    return folder


def test_a_recording_stream_is_read_with_its_gaps_and_markers(tmp_path):
    folder = _recording(tmp_path / "rec")
    signal = load_recorded(str(folder), "ppg", device="wrist-2")
    times, samples = open_recording(folder).stream("wrist-2", "bvp")
    np.testing.assert_array_equal(signal.values, samples[:, 0])
    assert signal.t0 == T0 and signal.fs == FS
    assert len(signal.gaps) == 1 and signal.gaps[0][0] == pytest.approx(12 - 1 / FS) and signal.gaps[0][1] == 13.0
    assert signal.markers == [(5.0, "pain")]


def test_inspect_signal_draws_a_recording_and_its_edf_export(tmp_path, capsys):
    pytest.importorskip("pyedflib", reason="EDF export needs pyEDFlib (the recordings extra)")
    folder = _recording(tmp_path / "rec")
    assert main(["inspect-signal", str(folder), "--modality", "ppg", "--device", "wrist-1", "--start", "2",
                 "--out", str(tmp_path / "rec.png")]) == 0
    assert (tmp_path / "rec.png").read_bytes()[:4] == b"\x89PNG"
    assert main(["recording", "export-edf", str(folder), str(tmp_path / "rec.edf")]) == 0
    assert main(["inspect-signal", str(tmp_path / "rec.edf"), "--modality", "bvp", "--channel", "BVP 2",
                 "--annotate", "--out", str(tmp_path / "edf.png")]) == 0
    assert (tmp_path / "edf.png").read_bytes()[:4] == b"\x89PNG"
    capsys.readouterr()
    assert main(["inspect-signal", str(tmp_path / "rec.edf"), "--modality", "bvp", "--out", str(tmp_path / "x.png")]) == 1
    assert "choose the channel to draw with --channel; its channels: BVP 1, BVP 2" in capsys.readouterr().err


@pytest.mark.parametrize("argv, message", [
    (["--modality", "bvp"], "several devices stream bvp: choose one with --device (its streams: wrist-1/bvp, "
                            "wrist-2/bvp)"),
    (["--modality", "ecg"], "no device streams ecg"),
    (["--modality", "bvp", "--device", "wrist-2", "--start", "8"],
     "samples are missing from 11.984 to 13.000 s, inside the window 8-18 s: choose another --start"),
])
def test_what_cannot_be_drawn_is_one_clear_line(tmp_path, capsys, argv, message):
    folder = _recording(tmp_path / "rec")
    assert main(["inspect-signal", str(folder), *argv, "--out", str(tmp_path / "x.png")]) == 1
    assert message in capsys.readouterr().err and not (tmp_path / "x.png").exists()
