"""The method's parts on plain arrays: protoLRFC, CKA, the input-position probe, the output candidates, pairing and
the held-out split, and their refusals of input that does not fit."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

pytestmark = pytest.mark.torch
torch = pytest.importorskip("torch", reason="the bridge trains and exports with PyTorch (the export extra)")

from biomoe_edge.training.bridge import (Bridge, BridgeConfigError, PairedWindows, PairingError,  # noqa: E402
                                         PositionSelectionError, ProtoLRFC, held_out_split, linear_cka,
                                         output_candidates, pair_streams, score_input_positions,
                                         select_input_position)


# -- protoLRFC ---------------------------------------------------------------------------------------------------
def test_zero_initialised_bridge_outputs_zeros_until_trained():
    torch.manual_seed(0)
    bridge = ProtoLRFC(d_new=96, d_old=320, tokens=196, rank=8, prototypes=16)
    x = torch.randn(5, 96) * 10
    out = bridge(x)
    assert out.shape == (5, 320, 196)
    assert torch.count_nonzero(out) == 0
    assert torch.count_nonzero(bridge.B) == 0 and torch.count_nonzero(bridge.A) == bridge.A.numel()
    optimiser = torch.optim.Adam(bridge.parameters(), lr=1e-2)
    (bridge(x) - 1.0).pow(2).mean().backward()
    optimiser.step()
    assert torch.count_nonzero(bridge(x)) > 0


def test_protolrfc_computes_prototypes_times_low_rank_mixing():
    torch.manual_seed(1)
    bridge = ProtoLRFC(d_new=6, d_old=5, tokens=3, rank=2, prototypes=4)
    with torch.no_grad():
        bridge.B.normal_()
    x = torch.randn(2, 6)
    A, B, protos = (t.detach().numpy().astype(np.float64) for t in (bridge.A, bridge.B, bridge.prototypes))
    for b in range(2):
        mixing = (B @ (A @ x[b].numpy())).reshape(4, 3)  # (P, T), prototype-major as reshaped
        np.testing.assert_allclose(bridge(x)[b].detach().numpy(), protos @ mixing, rtol=1e-5, atol=1e-6)
    # r*d_new + r*P*T + d_old*P
    assert bridge.parameter_count() == 2 * 6 + 2 * 4 * 3 + 5 * 4


def test_kaiming_uniform_bound_of_A():
    torch.manual_seed(2)
    bridge = ProtoLRFC(d_new=192, d_old=192, tokens=1, rank=64, prototypes=32)
    bound = 1 / np.sqrt(192)  # kaiming_uniform_(a=sqrt(5)) on fan_in 192
    assert bridge.A.abs().max() <= bound and bridge.A.abs().max() > 0.9 * bound


def test_prototype_initialisations():
    real = {"fused": np.random.default_rng(0).normal(size=(50, 192)).astype(np.float32)}
    bridge = Bridge("embedding", ["fused"], rank=4, prototypes=8)
    bridge.init_prototypes("real", real, seed=0)
    columns = bridge.maps[0].prototypes.detach().numpy().T
    assert all(any(np.array_equal(c, r) for r in real["fused"]) for c in columns)
    assert len({c.tobytes() for c in columns}) == 8
    bridge.init_prototypes("random", seed=0)
    values = bridge.maps[0].prototypes.detach().numpy()
    assert abs(values.std() - 1.0) < 0.1 and not any(np.array_equal(c, r) for c in values.T for r in real["fused"])


@pytest.mark.parametrize("kwargs, message", [
    (dict(rank=97, prototypes=64), "rank 97 does not fit .*96 input features.* at most 96"),  # d_new
    (dict(rank=33), "rank 33 does not fit .*16x2 mixing weights.* at most 32"),  # P*T
    (dict(rank=0), "rank must be a positive integer"),
    (dict(prototypes=97), "97 prototypes do not fit 'experts'.* at most 96"),
    (dict(prototypes=0), "prototype count must be a positive integer"),
])
def test_rank_and_prototypes_that_do_not_fit_are_refused(kwargs, message):
    settings = dict(rank=8, prototypes=16) | kwargs
    with pytest.raises(BridgeConfigError, match=message):
        Bridge("enc1.embedding", ["experts"], **settings)


def test_rank_limited_by_prototype_mixing_and_real_tokens():
    with pytest.raises(BridgeConfigError, match="rank 12 does not fit the bridge into 'fused'.* at most 8"):
        Bridge("embedding", ["fused"], rank=12, prototypes=8)  # P*T = 8 mixing weights
    bridge = Bridge("embedding", ["fused"], rank=4, prototypes=16)
    few = {"fused": np.ones((40, 192), np.float32)}  # 40 tokens, but one distinct
    with pytest.raises(BridgeConfigError, match="only 1 distinct real tokens"):
        bridge.init_prototypes("real", few)


# -- CKA -----------------------------------------------------------------------------------------------------------
def cka_from_gram_matrices(x: np.ndarray, y: np.ndarray) -> float:
    """Independent reference: HSIC of centred linear kernels (Gretton et al. 2005; Kornblith et al. 2019, eq. 2)."""
    n = len(x)
    h = np.eye(n) - np.ones((n, n)) / n
    k, l = x @ x.T, y @ y.T

    def hsic(a, b):
        return np.trace(a @ h @ b @ h) / (n - 1) ** 2

    return hsic(k, l) / np.sqrt(hsic(k, k) * hsic(l, l))


def test_linear_cka_equals_the_kernel_formulation(rng):
    x = rng.normal(size=(40, 7))
    y = x @ rng.normal(size=(7, 12)) + 0.5 * rng.normal(size=(40, 12)) + 3.0
    assert linear_cka(x, y) == pytest.approx(cka_from_gram_matrices(x, y), rel=1e-10)
    z = rng.normal(size=(40, 30))
    assert linear_cka(x, z) == pytest.approx(cka_from_gram_matrices(x, z), rel=1e-10)
    assert linear_cka(x, z) < linear_cka(x, y)


def test_linear_cka_invariances(rng):
    x = rng.normal(size=(60, 10))
    q, _ = np.linalg.qr(rng.normal(size=(10, 10)))
    assert linear_cka(x, x) == pytest.approx(1.0)
    assert linear_cka(x, 4.2 * x @ q + 7) == pytest.approx(1.0)
    assert linear_cka(x, np.zeros((60, 3))) == 0.0
    with pytest.raises(ValueError, match="same N"):
        linear_cka(x, x[:-1])


# -- position selection --------------------------------------------------------------------------------------------
def planted_features(rng, n=120, planted="enc2.stage2"):
    labels = rng.integers(0, 3, n)
    groups = np.repeat(np.arange(12), n // 12)
    features = {name: rng.normal(size=(n, dim)) for name, dim in
                (("enc1.stage1", 64), ("enc1.stage3", 320), ("enc2.stage2", 288), ("embedding", 192))}
    directions = rng.normal(size=(3, features[planted].shape[1]))
    features[planted] = features[planted] + 1.5 * directions[labels]
    return features, labels, groups


@pytest.mark.parametrize("planted", ["enc2.stage2", "enc1.stage1"])
def test_planted_decodable_layer_is_the_selected_input_position(rng, planted):
    features, labels, groups = planted_features(rng, planted=planted)
    scores = score_input_positions(features, labels, groups)
    assert select_input_position(scores) == planted
    assert scores[planted] > 0.9
    assert max(s for name, s in scores.items() if name != planted) < 0.6


def test_too_little_paired_data_to_select_positions(rng):
    features, labels, groups = planted_features(rng, n=24)
    with pytest.raises(PositionSelectionError, match="too little paired data.*at least 5 windows in each of two"):
        score_input_positions(features, np.zeros(24, int), groups)
    labels = np.array([0] * 20 + [1] * 4)
    with pytest.raises(PositionSelectionError, match=r"\{0: 20, 1: 4\}"):
        score_input_positions(features, labels, groups)
    labels = np.array([0] * 10 + [1] * 10 + [2] * 4)
    with pytest.warns(UserWarning, match=r"class\(es\) \[2\] have fewer than 5"):
        score_input_positions({"embedding": features["embedding"]}, labels, np.arange(24))
    with pytest.warns(UserWarning, match="spans 2 time blocks"):
        score_input_positions({"embedding": features["embedding"][:20]}, labels[:20], np.repeat([0, 1], 10))


def test_output_candidates_pair_the_best_entry_point_of_each_encoder():
    cka = {"enc1.block3": 0.5, "enc1.block4": 0.7, "enc2.blocks3": 0.6, "enc2.pool": 0.4, "experts": 0.65,
           "fused": 0.55}
    candidates = output_candidates(cka)
    assert [c["name"] for c in candidates] == ["experts", "enc1.block4+enc2.blocks3", "fused"]
    pair = candidates[1]
    assert pair["entry_points"] == ["enc1.block4", "enc2.blocks3"] and pair["cka"] == 0.6


# -- pairing and the split -----------------------------------------------------------------------------------------
def streams(t0_old, t0_new, duration=60.0):
    old_t = t0_old + np.arange(int(duration * 130)) / 130
    new_t = t0_new + np.arange(int(duration * 55)) / 55
    return old_t, np.sin(old_t), new_t, np.cos(new_t)[:, None] * np.ones((1, 4))


def test_streams_that_do_not_overlap_in_time_are_refused():
    old_t, old_x, new_t, new_x = streams(0.0, 1000.0)
    with pytest.raises(PairingError, match=r"ecg covers 0.0..60.0 s and bvp covers 1000.0..1060.0 s .* overlap for "
                                           r"0.0 s, less than one 10 s window"):
        pair_streams(old_t, old_x, 130, new_t, new_x, 55, old_modality="ecg", new_modality="bvp", subject="s1")


@pytest.mark.filterwarnings("ignore:.*lie outside the time both modalities cover")
def test_pairing_cuts_the_overlap_at_model_rates_and_counts_gaps():
    old_t, old_x, new_t, new_x = streams(0.0, 30.0)
    with pytest.warns(UserWarning, match="outside the time both modalities cover"):
        paired = pair_streams(old_t, old_x, 130, new_t, new_x, 55, old_modality="ecg", new_modality="bvp",
                              window_s=10, hop_s=5)
    assert paired.old_fs == 100.0 and paired.new_fs == 64.0
    assert paired.old.shape == (5, 1000) and paired.new.shape == (5, 640)
    assert paired.start_s[0] == 30.0 and paired.end_s[-1] <= 60.0 + 1 / 130
    # the resampled windows follow the signal they were cut from
    t = paired.start_s[1] + np.arange(1000) / 100
    assert np.abs(paired.old[1][50:-50] - np.sin(t)[50:-50]).max() < 1e-2
    keep = (old_t < 40) | (old_t > 44)  # a 4 s gap in the ECG
    with pytest.warns(UserWarning, match="2 of 5 paired windows left out for gaps"):
        gapped = pair_streams(old_t[keep], old_x[keep], 130, new_t, new_x, 55, old_modality="ecg",
                              new_modality="bvp", window_s=10, hop_s=5)
    assert len(gapped) == 3


def test_paired_windows_of_different_durations_are_refused():
    with pytest.raises(PairingError, match="ecg windows last 10 s but bvp windows 5 s"):
        PairedWindows("ecg", "bvp", 100, 64, np.zeros((2, 1000)), np.zeros((2, 320)), [0, 1], [10, 11], "s")
    with pytest.raises(PairingError, match="NaN"):
        PairedWindows("ecg", "bvp", 100, 64, np.full((2, 1000), np.nan), np.zeros((2, 640)), [0, 1], [10, 11], "s")


def test_held_out_split_never_shares_samples_with_training():
    starts = np.concatenate([np.arange(0, 600, 2.0), np.arange(0, 300, 2.0)])
    subjects = ["a"] * 300 + ["b"] * 150
    paired = PairedWindows("ecg", "bvp", 100, 64, np.zeros((450, 1000)), np.zeros((450, 640)), starts, starts + 10,
                           subjects)
    split = held_out_split(paired, fraction=0.2, block_s=60)
    assert len(np.intersect1d(split.train, split.held_out)) == 0
    assert 0.15 < len(split.held_out) / len(paired) < 0.25
    for i in split.train:
        same = split.held_out[paired.subject[split.held_out] == paired.subject[i]]
        assert not np.any((paired.start_s[same] < paired.end_s[i]) & (paired.end_s[same] > paired.start_s[i]))
    assert set(paired.subject[split.held_out]) == {"a", "b"}
