"""Feature taps on Tiny-BioMoE: what they capture is what forward computes, and running on from every entry point
gives forward's embedding."""

from __future__ import annotations

import numpy as np
import pytest

pytestmark = pytest.mark.torch
torch = pytest.importorskip("torch", reason="the bridge trains and exports with PyTorch (the export extra)")

from biomoe_edge.export.model.taps import ENTRY_POINTS, INPUT_TAPS, capture, run_from  # noqa: E402


@pytest.fixture(scope="module")
def images(reference_dir):
    return torch.from_numpy(np.load(reference_dir / "tiny_biomoe_seed11_io.npz")["images"][:2])


@pytest.fixture(scope="module")
def captured(stand_in_model, images):
    with torch.no_grad():
        return capture(stand_in_model, images, inputs=list(INPUT_TAPS), entries=list(ENTRY_POINTS))


def test_capture_reproduces_forward_and_the_reference_embeddings(stand_in_model, images, captured, reference_dir):
    pooled, entered = captured
    expected = np.load(reference_dir / "tiny_biomoe_seed11_io.npz")["embeddings"][:2]
    with torch.no_grad():
        forward = stand_in_model(images)
    assert torch.equal(pooled["embedding"], forward)
    assert np.abs(pooled["embedding"].numpy() - expected).max() < 1e-5
    for name, tap in INPUT_TAPS.items():
        assert pooled[name].shape == (2, tap.dim), name
    for name, tap in ENTRY_POINTS.items():
        assert entered[name].shape == (2, tap.dim, tap.tokens), name


def test_input_taps_are_the_encoders_own_outputs(stand_in_model, images, captured):
    pooled, entered = captured
    model = stand_in_model
    with torch.no_grad():
        x = model.ln_img(images)
        z1, z2 = model.enc1(x), model.enc2(x)
        stage1 = model.enc1.norm1(model.enc1.block1[0](*model.enc1.patch_embed1(x)))
    torch.testing.assert_close(pooled["enc1.embedding"], z1, rtol=0, atol=1e-6)
    torch.testing.assert_close(pooled["enc2.embedding"], z2, rtol=0, atol=1e-6)
    torch.testing.assert_close(pooled["enc1.stage1"], stage1.mean(dim=1), rtol=0, atol=1e-6)
    # the pooled stage-4 grid of EfficientViT is its embedding
    torch.testing.assert_close(entered["enc2.pool"].mean(dim=2), z2, rtol=0, atol=1e-6)
    torch.testing.assert_close(entered["experts"], torch.stack((z1, z2), dim=2), rtol=0, atol=1e-6)


@pytest.mark.parametrize("entry", list(ENTRY_POINTS))
def test_running_on_from_an_entry_point_gives_forward(stand_in_model, images, captured, entry):
    _, entered = captured
    with torch.no_grad():
        forward = stand_in_model(images)
        out = run_from(stand_in_model, {entry: entered[entry]}, images=images)
    torch.testing.assert_close(out, forward, rtol=0, atol=2e-6)


def test_one_entry_point_per_encoder_runs_without_images(stand_in_model, images, captured):
    _, entered = captured
    with torch.no_grad():
        forward = stand_in_model(images)
        out = run_from(stand_in_model, {"enc1.block3": entered["enc1.block3"], "enc2.blocks3": entered["enc2.blocks3"]})
    torch.testing.assert_close(out, forward, rtol=0, atol=2e-6)
    with pytest.raises(ValueError, match="leave \\['enc2'\\] without input"):
        run_from(stand_in_model, {"enc1.block3": entered["enc1.block3"]})
    with pytest.raises(ValueError, match="one entry point per encoder"):
        run_from(stand_in_model, {"enc1.block3": entered["enc1.block3"], "enc1.block4": entered["enc1.block4"]})
    with pytest.raises(ValueError, match="give it alone"):
        run_from(stand_in_model, {"fused": entered["fused"], "enc1.block4": entered["enc1.block4"]})
    with pytest.raises(ValueError, match="unknown Tiny-BioMoE tap"):
        capture(stand_in_model, images, inputs=["enc3.stage1"])
