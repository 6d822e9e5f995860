"""Tiny-BioMoE re-implementation against the reference fixtures, checkpoint formats and refusals."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest

pytestmark = pytest.mark.torch
torch = pytest.importorskip("torch", reason="the export extra builds the PyTorch model")

from biomoe_edge.export import CheckpointError, RandomWeightsWarning, load_tiny_biomoe  # noqa: E402
from biomoe_edge.export.checkpoint import read_state_dict  # noqa: E402
from biomoe_edge.export.model import SpectralGatingNetwork  # noqa: E402


@pytest.mark.parametrize("seed", [11, 29])
def test_reproduces_reference_embeddings(reference_pairs, seed):
    checkpoint, images, embeddings = reference_pairs[seed]
    model = load_tiny_biomoe(checkpoint)
    assert not model.training
    with torch.no_grad():
        out = model(torch.from_numpy(images)).numpy()
    assert out.shape == (len(images), 192) and out.dtype == np.float32
    assert np.abs(out - embeddings).max() < 1e-5


def test_state_dict_matches_manifest_exactly(reference_dir, model11):
    manifest = json.loads((reference_dir / "tiny_biomoe_state_dict_manifest.json").read_text())
    expected = [(e["key"], tuple(e["shape"]), e["dtype"]) for e in manifest["entries"]]
    got = [(k, tuple(v.shape), str(v.dtype).removeprefix("torch.")) for k, v in model11.state_dict().items()]
    assert got == expected
    assert sum(p.numel() for p in model11.parameters()) == manifest["parameter_count"]


def test_accepts_bare_and_module_prefixed_state_dicts(reference_pairs, tmp_path):
    checkpoint, images, embeddings = reference_pairs[29]
    sd = torch.load(checkpoint, weights_only=True)["model_state_dict"]
    torch.save({f"module.{k}": v for k, v in sd.items()}, tmp_path / "ddp.pth")
    for source in (sd, tmp_path / "ddp.pth"):
        model = load_tiny_biomoe(source)
        with torch.no_grad():
            out = model(torch.from_numpy(images[:1])).numpy()
        assert np.abs(out - embeddings[:1]).max() < 1e-5
    assert load_tiny_biomoe(tmp_path / "ddp.pth").source_checkpoint["sha256"] is not None


def _refusal(source) -> str:
    with pytest.raises(CheckpointError) as info:
        load_tiny_biomoe(source)
    return str(info.value)


def test_refuses_missing_unexpected_and_misshaped_keys(reference_pairs):
    sd = read_state_dict(reference_pairs[11][0])
    missing = {k: v for k, v in sd.items() if k != "enc2.blocks3.3.ffn1.m.pw2.bn.bias"}
    assert "missing keys 'enc2.blocks3.3.ffn1.m.pw2.bn.bias'" in _refusal(missing)
    extra = {**sd, "head.weight": torch.zeros(5, 96)}
    with pytest.raises(CheckpointError, match="unexpected keys 'head.weight'"):
        load_tiny_biomoe(extra, strict=True)  # without --strict it is ignored (test_export_checkpoint.py)
    misshaped = {**sd, "enc1.block1.0.attn.complex_weight": torch.zeros(28, 15, 64, 2)}
    message = _refusal(misshaped)
    assert "mis-shaped keys" in message and "enc1.block1.0.attn.complex_weight (28, 15, 64, 2)" in message


def test_refuses_truncated_and_foreign_files(reference_pairs, tmp_path):
    data = reference_pairs[11][0].read_bytes()
    (tmp_path / "truncated.pth").write_bytes(data[: len(data) // 3])
    assert "not a readable PyTorch checkpoint" in _refusal(tmp_path / "truncated.pth")
    (tmp_path / "notes.txt").write_text("hello")
    assert "not a readable PyTorch checkpoint" in _refusal(tmp_path / "notes.txt")
    torch.save({"weight": torch.zeros(3)}, tmp_path / "other.pth")
    assert "missing keys 'enc1.patch_embed1.conv.0.weight'" in _refusal(tmp_path / "other.pth")
    assert "not found" in _refusal(tmp_path / "absent.pth")


def test_random_weights_are_deterministic_and_warn():
    with pytest.warns(RandomWeightsWarning, match="meaningless"):
        a = load_tiny_biomoe(seed=3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RandomWeightsWarning)
        b = load_tiny_biomoe(seed=3)
        c = load_tiny_biomoe(seed=4)
    sa, sb, sc = a.state_dict(), b.state_dict(), c.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not torch.equal(sa["enc1.block1.0.attn.complex_weight"], sc["enc1.block1.0.attn.complex_weight"])
    assert not torch.equal(sa["enc2.blocks1.0.mixer.m.attn.attention_biases"],
                           sc["enc2.blocks1.0.mixer.m.attn.attention_biases"])
    assert not a.training and a.source_checkpoint == {"path": None, "sha256": None, "random_weights": True, "seed": 3,
                                                      "ignored": [], "cast": {}}


@pytest.mark.parametrize("grid", [(56, 29), (28, 15)])
def test_dft_matmul_gate_equals_fft_gate(grid):
    """The export form (real DFT matrices + MatMul) against torch.fft, with a random complex weight."""
    h, w = grid
    gen = torch.Generator().manual_seed(h)
    gate = SpectralGatingNetwork(16, h, w)
    with torch.no_grad():
        gate.complex_weight.copy_(torch.randn(gate.complex_weight.shape, generator=gen))
    x = torch.randn(3, h * 2 * (w - 1), 16, generator=gen)
    W = 2 * (w - 1)
    with torch.no_grad():
        fft_out = gate(x, h, W)
        gate.use_dft_matmul = True
        matmul_out = gate(x, h, W)
        # independent float64 reference with numpy's FFT
        xn = x.double().numpy().reshape(3, h, W, 16)
        weight = gate.complex_weight.double().numpy()
        ref = np.fft.irfft2(np.fft.rfft2(xn, axes=(1, 2), norm="ortho") * (weight[..., 0] + 1j * weight[..., 1]),
                            s=(h, W), axes=(1, 2), norm="ortho").reshape(3, -1, 16)
    scale = np.abs(ref).max()
    assert np.abs(matmul_out.numpy() - ref).max() < 2e-6 * scale
    assert np.abs(fft_out.numpy() - ref).max() < 2e-6 * scale


def test_pointwise_conv_feed_forward_equals_linear_form():
    """The export form of SpectFormer's ConvFFN (1x1 convs on the channels-first grid, GELU reordered) is the
    same map as the Linear / transpose / nn.GELU form, for a random FFN and input."""
    from biomoe_edge.export.model.spectformer import ConvFFN

    gen = torch.Generator().manual_seed(3)
    ffn = ConvFFN(16, 128).eval()
    with torch.no_grad():
        for p in ffn.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.3)
        x = torch.randn(2, 12 * 10, 16, generator=gen)
        linear_out = ffn(x, 12, 10)
        keys = set(ffn.state_dict())
        ffn.use_pointwise_conv_form()
        conv_out = ffn(x, 12, 10)
    assert set(ffn.state_dict()) == keys  # the export form adds nothing to the checkpoint layout
    assert torch.abs(conv_out - linear_out).max() < 1e-5 * torch.abs(linear_out).max()


def test_gelu_erf_is_torch_exact_gelu():
    from biomoe_edge.export.model.spectformer import GeluErf, gelu_erf

    x = torch.linspace(-12, 12, 100_001)
    assert torch.equal(GeluErf()(x), gelu_erf(x))
    # float32 rounding of a different evaluation order only: relative to |x|, a few ulp
    assert (torch.abs(gelu_erf(x) - torch.nn.functional.gelu(x)) / x.abs().clamp(min=1e-3)).max() < 1e-6


def test_real_signal_calibration_images_are_deterministic_renderings():
    from biomoe_edge.export.calibration import REPRESENTATIONS, real_signal_images

    try:
        a = real_signal_images(10, seed=5)
    except RuntimeError as exc:
        pytest.skip(f"SDK transforms unavailable: {exc}")
    b = real_signal_images(10, seed=5)
    assert a.shape == (10, 3, 224, 224) and a.dtype == np.float32
    assert np.array_equal(a, b)
    assert a.min() >= 0.0 and a.max() <= 1.0
    # one window's representations are different pictures, not copies
    per_window = a[: len(REPRESENTATIONS)].reshape(len(REPRESENTATIONS), -1)
    assert len({row.tobytes() for row in per_window}) == len(REPRESENTATIONS)
    with pytest.raises(ValueError):
        real_signal_images(0)
