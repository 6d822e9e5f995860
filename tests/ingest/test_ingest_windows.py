"""Windows: grid, lengths, resampling against analytic signals and scipy, cross-modality alignment."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.signal import resample_poly

from biomoe_edge.runtime.ingest import (
    Ingest,
    IngestConfig,
    StreamKey,
    model_rate_hz,
    rational_factor,
)


def _feed(ingest, key, x, t, packet_sizes):
    start = 0
    for size in packet_sizes:
        if start >= len(t):
            break
        ingest.push(key, x[start : start + size], t[start : start + size])
        start += size
    if start < len(t):
        ingest.push(key, x[start:], t[start:])


def test_windows_on_the_hop_grid_with_exact_lengths_and_resampled_sine():
    ingest = Ingest()
    key = ingest.add_stream(StreamKey("wrist", "bvp"), 100.0, config=IngestConfig(10.0, 1.0, model_rate_hz=64.0))
    t = 5.0 + np.arange(3000) / 100.0
    x = np.sin(2 * np.pi * 1.3 * t)
    _feed(ingest, key, x, t, np.random.default_rng(0).integers(1, 80, size=400))
    windows = ingest.pop_windows()
    assert [w.index for w in windows] == list(range(21))
    np.testing.assert_allclose([w.start_s for w in windows], 5.0 + np.arange(21))
    for w in windows:
        assert w.samples.shape == (1, 640) and w.fs == 64.0 and w.quality == () and not w.withheld
        assert w.end_s == pytest.approx(w.start_s + 10.0)
        expected = np.sin(2 * np.pi * 1.3 * (w.start_s + np.arange(640) / 64.0))
        np.testing.assert_allclose(w.samples[0, 16:-16], expected[16:-16], atol=2e-3)
        np.testing.assert_allclose(w.samples[0], expected, atol=1e-2)  # padtype="line": no edge droop
    # the same numbers as scipy's resample_poly on the window's own samples
    first = windows[7]
    segment = np.sin(2 * np.pi * 1.3 * (first.start_s + np.arange(1000) / 100.0))
    np.testing.assert_allclose(first.samples[0], resample_poly(segment, 16, 25, padtype="line")[:640], atol=1e-12)


def test_packetisation_does_not_change_the_windows():
    t = np.arange(1500) / 50.0
    x = np.random.default_rng(1).standard_normal((1500, 2))
    results = []
    for sizes in ([1500], [1] * 1500, list(np.random.default_rng(2).integers(1, 200, 100))):
        ingest = Ingest()
        key = ingest.add_stream(("d", "resp"), 50.0, channels=2, config=IngestConfig(4.0, 0.5))
        _feed(ingest, key, x, t, sizes)
        results.append(ingest.pop_windows())
    for other in results[1:]:
        assert len(other) == len(results[0]) == 53
        for a, b in zip(results[0], other):
            assert (a.start_s, a.index) == (b.start_s, b.index)
            np.testing.assert_array_equal(a.samples, b.samples)
    assert results[0][0].samples.shape == (2, round(4.0 * model_rate_hz("resp")))


def test_modalities_of_one_device_share_window_start_and_end():
    # One slow "physiological" sine seen by three sensors at different rates, starting at different times.
    ingest = Ingest()
    rates = {"ecg": 130.0, "bvp": 64.0, "eda": 4.0}
    starts = {"ecg": 100.03, "bvp": 100.71, "eda": 102.2}
    keys = {m: ingest.add_stream(("band", m), fs, config=IngestConfig(8.0, 2.0)) for m, fs in rates.items()}
    other = ingest.add_stream(("other-band", "bvp"), 64.0, config=IngestConfig(8.0, 2.0))
    ingest.push(other, np.zeros(10), 50.37 + np.arange(10) / 64.0)
    for m, fs in rates.items():
        t = starts[m] + np.arange(int(30 * fs)) / fs
        ingest.push(keys[m], np.sin(2 * np.pi * 0.05 * t), t)
    by_modality = {}
    for w in ingest.pop_windows():
        if w.device == "band":
            by_modality.setdefault(w.modality, {})[w.index] = w
    common = set.intersection(*(set(d) for d in by_modality.values()))
    assert len(common) >= 10
    for index in common:
        spans = {(by_modality[m][index].start_s, by_modality[m][index].end_s) for m in rates}
        assert len(spans) == 1
        start_s = spans.pop()[0]
        assert start_s == pytest.approx(100.03 + 2.0 * index)  # grid anchored at the device's first sample
        for m, fs in rates.items():  # content aligned to within half an input sample period of the start
            w = by_modality[m][index]
            expected = np.sin(2 * np.pi * 0.05 * (start_s + np.arange(w.samples.shape[1]) / w.fs))
            slope_bound = 2 * np.pi * 0.05 / (2 * fs)  # max change of the sine over half a sample period
            np.testing.assert_allclose(w.samples[0, 8:-8], expected[8:-8], atol=slope_bound + 2e-3)
    # the other device has its own grid
    assert ingest.account(other).samples_pending == 10


def test_model_rate_and_rational_factors():
    assert rational_factor(100.0, 64.0) == (16, 25)
    assert rational_factor(130.0, 250.0) == (25, 13)
    assert rational_factor(64.0, 64.0) == (1, 1)
    from biomoe_edge.runtime.transforms import MODALITY_DEFAULTS

    for modality in ("ecg", "bvp", "eda", "resp", "spo2"):  # the transforms' rates, which the images assume
        assert model_rate_hz(modality) == MODALITY_DEFAULTS[modality].model_fs
    with pytest.raises(ValueError, match="unknown modality"):
        model_rate_hz("emg")


def test_pluggable_resampler_receives_gap_free_windows():
    calls = []

    def resampler(x, fs_in, fs_out, n_out):
        calls.append((x.copy(), fs_in, fs_out, n_out))
        return np.full((x.shape[0], n_out), 7.0)

    ingest = Ingest(resampler=resampler)
    key = ingest.add_stream(("d", "eda"), 8.0, config=IngestConfig(2.0, 2.0, model_rate_hz=4.0))
    t = np.arange(16) / 8.0
    ingest.push(key, np.arange(16.0), t)
    (w,) = ingest.pop_windows()
    (x, fs_in, fs_out, n_out), = calls
    assert (fs_in, fs_out, n_out) == (8.0, 4.0, 8) and x.shape == (1, 16)
    np.testing.assert_array_equal(x[0], np.arange(16.0))
    np.testing.assert_array_equal(w.samples, np.full((1, 8), 7.0))


def test_ingest_and_scheduler_import_neither_torch_nor_export():
    import subprocess
    import sys

    code = (
        "import sys, numpy as np\n"
        "from biomoe_edge.runtime.ingest import Ingest\n"
        "from biomoe_edge.runtime.scheduler import BatchScheduler\n"
        "ingest = Ingest(); key = ingest.add_stream(('d', 'bvp'), 64.0)\n"
        "ingest.push(key, np.sin(np.arange(700.0)), np.arange(700) / 64.0)\n"
        "BatchScheduler(4, 0.1, 8).submit(ingest.pop_windows()[0], ('scalogram',), 0.0)\n"
        "print(sorted(m for m in sys.modules if m == 'torch' or m.startswith('biomoe_edge.export')))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
