"""biomoe-edge inspect-signal on a real HeartPy recording."""

from __future__ import annotations

import numpy as np
import pytest
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


def test_annotated_maps_have_the_axes_and_values_scipy_gives():
    """The annotated spectrogram is scipy's spectrogram of the window (dB), at scipy's times and frequencies."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import scipy.signal

    from biomoe_edge.commands.inspect_signal import draw_annotated
    from biomoe_edge.runtime.transforms import preprocess
    from biomoe_edge.runtime.transforms.defaults import modality_defaults, representation_params

    x, fs = real_ppg("data.csv")
    window, model_fs = preprocess(x[200:1200], fs, "bvp")
    fig, (ax_psd, ax_cwt) = plt.subplots(1, 2)
    mesh = draw_annotated(ax_psd, "spectrogram_psd", window, model_fs, "bvp")
    params = representation_params(model_fs, window.size, "bvp")["spectrogram"]
    f, t, sxx = scipy.signal.spectrogram(np.asarray(window, np.float64), model_fs, detrend=False, scaling="density",
                                         mode="psd", **params)
    coords = mesh.get_coordinates()  # (rows + 1, cols + 1, 2) cell corners around each (t, f) centre
    centres_t = (coords[0, :-1, 0] + coords[0, 1:, 0]) / 2
    centres_f = (coords[:-1, 0, 1] + coords[1:, 0, 1]) / 2
    assert np.allclose(centres_t, t) and np.allclose(centres_f, f)
    drawn = np.asarray(mesh.get_array()).reshape(len(f), len(t))
    reference_db = 10 * np.log10(sxx)
    # Within the picture's 80 dB range (below it, colours clip and float32 keeps only rounding noise).
    shown = reference_db >= reference_db.max() - 80
    assert shown.mean() > 0.3 and np.abs(drawn - reference_db)[shown].max() < 0.01
    assert mesh.get_clim() == pytest.approx((reference_db.max() - 80, reference_db.max()), abs=0.01)
    assert ax_psd.get_xlabel() == "time (s)" and ax_psd.get_ylabel() == "frequency (Hz)"
    assert "dB" in mesh.colorbar.ax.get_ylabel()
    # Scalogram rows sit at the wavelet centre frequencies the modality asks for.
    cwt = draw_annotated(ax_cwt, "scalogram", window, model_fs, "bvp")
    d = modality_defaults("bvp").scalogram
    coords = cwt.get_coordinates()
    rows_f = (coords[:-1, 0, 1] + coords[1:, 0, 1]) / 2
    assert np.allclose(rows_f, np.geomspace(d.f_min_hz, min(d.f_max_hz, model_fs / 2), d.n_scales), rtol=1e-3)
    assert ax_cwt.get_ylabel() == "frequency (Hz)" and cwt.colorbar is not None
    plt.close(fig)


def test_inspect_signal_annotates_a_recording_that_ships_with_heartpy(tmp_path, capsys):
    out = tmp_path / "annotated.png"
    assert main(["inspect-signal", "heartpy:data.csv", "--modality", "ppg", "--start", "5", "--annotate",
                 "--out", str(out)]) == 0
    image = np.asarray(Image.open(out).convert("RGB"))
    plain = tmp_path / "plain.png"
    assert main(["inspect-signal", "heartpy:data.csv", "--modality", "ppg", "--start", "5", "--out", str(plain)]) == 0
    assert image.shape[0] > 1.8 * np.asarray(Image.open(plain)).shape[0]  # a second row of annotated maps
    assert main(["inspect-signal", "heartpy:nope.csv", "--modality", "ppg"]) == 1
    assert "unknown HeartPy recording 'nope.csv'" in capsys.readouterr().err
