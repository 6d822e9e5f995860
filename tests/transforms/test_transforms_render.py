"""The fast renderer against the matplotlib + PIL reference renderer (PSNR), and render's contract."""

from __future__ import annotations

import numpy as np
import pytest

from biomoe_edge.runtime.transforms import SignalQualityError, preprocess, reference_render, render
from biomoe_edge.runtime.transforms.colormaps import BINARY, VIRIDIS
from biomoe_edge.runtime.transforms.resize import resize
from biomoe_edge.runtime.transforms.signals import simulated_signal
from biomoe_edge.vocabulary import REPRESENTATIONS

MAPS = [r for r in REPRESENTATIONS if r != "waveform"]


def psnr(a, b) -> float:
    mse = float(np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(1.0 / mse)


@pytest.fixture(scope="module")
def real_images(real_bvp_windows):
    windows, fs = real_bvp_windows
    return windows[:3], fs, render(windows[:3], fs, REPRESENTATIONS, modality="bvp")


@pytest.mark.parametrize("representation", REPRESENTATIONS)
def test_fast_renderer_matches_reference_on_real_ppg(real_images, representation):
    windows, fs, images = real_images
    r = REPRESENTATIONS.index(representation)
    for b, window in enumerate(windows):
        reference = reference_render(window, fs, representation, modality="bvp")
        fast = images[b * len(REPRESENTATIONS) + r]
        # Map-based pictures: same colour indices and PIL's own resize weights, so only float rounding
        # (a colour index off by one at a boundary) separates them. The waveform's anti-aliasing is a
        # distance-based coverage, not Agg's exact area coverage: edge pixels differ by up to half a
        # grey level, which costs ~36-38 dB on real PPG and ECG (see docs/transforms.md), so 33 dB is its floor.
        floor = 33.0 if representation == "waveform" else 35.0
        assert psnr(fast, reference) >= floor, (representation, b, psnr(fast, reference))


@pytest.mark.parametrize("modality", ["ecg", "resp", "eda", "spo2"])
def test_fast_renderer_matches_reference_on_simulated_modalities(modality):
    raw, fs = simulated_signal(modality, 10.0, {"ecg": 250.0, "resp": 50.0, "eda": 16.0, "spo2": 1.0}[modality], seed=3)
    window, model_fs = preprocess(raw, fs, modality)
    images = render(window, model_fs, REPRESENTATIONS, modality=modality)
    for r, representation in enumerate(REPRESENTATIONS):
        reference = reference_render(window, model_fs, representation, modality=modality)
        floor = 33.0 if representation == "waveform" else 35.0
        assert psnr(images[r], reference) >= floor, (modality, representation, psnr(images[r], reference))


def test_render_order_shape_and_range(real_bvp_windows):
    windows, fs = real_bvp_windows
    chosen = ("waveform", "spectrogram_psd")
    images = render(windows[:3], fs, chosen, modality="bvp")
    assert images.shape == (6, 3, 224, 224) and images.dtype == np.float32
    assert np.isfinite(images).all() and images.min() >= 0.0 and images.max() <= 1.0
    # Window-major: image 2*b + r is window b in representation r.
    for b in range(3):
        for r, name in enumerate(chosen):
            alone = render(windows[b], fs, (name,), modality="bvp")
            np.testing.assert_array_equal(images[2 * b + r], alone[0])
    # A waveform is grey (R = G = B) and mostly white paper.
    assert np.array_equal(images[0, 0], images[0, 2]) and np.median(images[0]) == 1.0


@pytest.mark.parametrize("dtype", [np.float32, np.float16])
def test_render_fills_the_callers_buffer(real_bvp_windows, dtype):
    windows, fs = real_bvp_windows
    out = np.full((2 * 6, 3, 224, 224), np.nan, dtype=dtype)
    result = render(windows[:2], fs, REPRESENTATIONS, modality="bvp", out=out)
    assert result is out and np.isfinite(out).all()
    expected = render(windows[:2], fs, REPRESENTATIONS, modality="bvp")
    np.testing.assert_allclose(out.astype(np.float32), expected, atol=1e-3 if dtype == np.float16 else 0)
    with pytest.raises(ValueError, match="shape"):
        render(windows[:2], fs, REPRESENTATIONS, out=np.empty((11, 3, 224, 224), np.float32))
    with pytest.raises(ValueError, match="float32 or float16"):
        render(windows[:2], fs, REPRESENTATIONS, out=np.empty((12, 3, 224, 224), np.float64))


def test_render_refuses_nonfinite_windows_and_draws_flat_ones(real_bvp_windows):
    windows, fs = real_bvp_windows
    bad = windows[:2].copy()
    bad[1, 100] = np.nan
    with pytest.raises(SignalQualityError, match="non-finite") as info:
        render(bad, fs, REPRESENTATIONS, modality="bvp")
    assert info.value.problem == "nonfinite"
    bad[1, 100] = np.inf
    with pytest.raises(SignalQualityError):
        render(bad, fs, ("waveform",))
    flat = np.zeros((1, 640), dtype=np.float32)
    images = render(flat, fs, REPRESENTATIONS, modality="bvp")
    assert np.isfinite(images).all() and images.min() >= 0 and images.max() <= 1
    with pytest.raises(ValueError, match="unknown representation"):
        render(windows, fs, ("spectrogram",))


def test_colour_tables_are_matplotlibs():
    from matplotlib import colormaps

    for name, table in (("viridis", VIRIDIS), ("binary", BINARY)):
        expected = colormaps[name](np.linspace(0, 1, 256), bytes=True)[:, :3]
        np.testing.assert_array_equal(table, expected)


def test_resize_equals_pil_bilinear():
    from PIL import Image

    rng = np.random.default_rng(1)
    for height, width in ((65, 129), (640, 640), (24, 1000), (224, 224), (7, 300)):
        image = rng.random((height, width)).astype(np.float32)
        expected = np.asarray(Image.fromarray(image, mode="F").resize((224, 224), Image.BILINEAR))
        np.testing.assert_allclose(resize(image, 224, 224), expected, atol=1e-6)


def test_gateway_import_needs_no_matplotlib_torch_or_cupy():
    import subprocess
    import sys

    code = (
        "import sys, numpy as np\n"
        "import biomoe_edge.runtime.transforms as t\n"
        "t.render(np.random.default_rng(0).standard_normal((2, 640)), 64.0, ('spectrogram_psd', 'waveform'), modality='bvp')\n"
        "print(sorted(m for m in ('matplotlib', 'torch', 'cupy', 'pyts', 'PIL') if m in sys.modules))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_render_without_modality_and_with_leading_axes(noise_windows):
    images = render(noise_windows, 50.0, ("scalogram", "recurrence"))
    assert images.shape == (2 * 3 * 2, 3, 224, 224)
    flat = render(noise_windows.reshape(6, 500), 50.0, ("scalogram", "recurrence"))
    np.testing.assert_array_equal(images, flat)
    with pytest.raises(ValueError, match="too short"):
        render(np.zeros((1, 8)), 50.0, ("waveform",))
