"""biomoe-edge inspect-signal on a real HeartPy recording."""

from __future__ import annotations

import numpy as np
from PIL import Image

from biomoe_edge.cli import main
from biomoe_edge.runtime.transforms.signals import real_ppg


def test_inspect_signal_draws_six_pictures(tmp_path, capsys):
    x, fs = real_ppg("data.csv")
    source = tmp_path / "ppg.npy"
    np.save(source, x)
    out = tmp_path / "window.png"
    assert main(["inspect-signal", str(source), "--modality", "bvp", "--fs", str(fs), "--start", "2", "--out", str(out)]) == 0
    image = np.asarray(Image.open(out).convert("RGB"))
    assert image.shape[1] > 5 * image.shape[0]  # six panels side by side
    assert image.std() > 20  # not blank


def test_inspect_signal_errors_are_one_clean_line(tmp_path, capsys):
    source = tmp_path / "short.csv"
    source.write_text("value\n" + "\n".join(str(v) for v in range(100)))
    assert main(["inspect-signal", str(source), "--modality", "bvp", "--fs", "100", "--out", str(tmp_path / "x.png")]) == 1
    assert "does not fit" in capsys.readouterr().err
    assert main(["inspect-signal", str(tmp_path / "missing.npy"), "--modality", "bvp"]) == 1
    assert "no such file" in capsys.readouterr().err
