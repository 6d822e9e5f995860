"""Fitting on a small SIMULATED paired session with the stand-in backbone: cached features, positions, the fit,
held-out figures, baselines; and the refusals of a head or data that do not fit."""

from __future__ import annotations

import json
import shutil
import warnings

import numpy as np
import pytest

pytestmark = pytest.mark.torch
torch = pytest.importorskip("torch", reason="the bridge trains and exports with PyTorch (the export extra)")

from biomoe_edge.export.model.taps import ENTRY_POINTS, INPUT_TAPS, capture  # noqa: E402
from biomoe_edge.training.bridge import (  # noqa: E402
    BridgeConfigError, HeadError, PairingError, PositionSelectionError, compare_baselines, extract_features,
    fit_bridge, read_head, render_images)
from biomoe_edge.training.bridge.head import check_head_backbone  # noqa: E402



def test_features_are_the_models_taps_and_come_from_the_cache_the_second_time(small_paired, small_features,
                                                                             stand_in_model, cache_dir):
    rows = [0, 40]
    new_images = torch.from_numpy(render_images(small_paired.new[rows], 64.0, "bvp", "spectrogram_psd"))
    old_images = torch.from_numpy(render_images(small_paired.old[rows], 100.0, "ecg", "spectrogram_psd"))
    with torch.no_grad():
        new_pooled, _ = capture(stand_in_model, new_images, inputs=["enc2.stage2", "embedding"])
        old_embedding = stand_in_model(old_images).numpy()
        _, entered = capture(stand_in_model, old_images, entries=["enc1.block4"])
    np.testing.assert_allclose(small_features.new_pooled["enc2.stage2"][rows], new_pooled["enc2.stage2"], atol=1e-5)
    np.testing.assert_allclose(small_features.new_embedding[rows], new_pooled["embedding"], atol=1e-5)
    np.testing.assert_allclose(small_features.old_embedding[rows], old_embedding, atol=1e-5)
    np.testing.assert_allclose(small_features.old_summary["enc1.block4"][rows],
                               entered["enc1.block4"].mean(dim=2), atol=1e-5)
    # sampled real tokens are tokens of that window
    token = small_features.old_tokens["enc1.block4"][40][0]
    assert np.abs(entered["enc1.block4"][1].numpy().T - token).max(axis=1).min() < 1e-5
    assert not small_features.cache_hit and small_features.path.is_file()
    again = extract_features(small_paired, stand_in_model, old_representation="spectrogram_psd",
                             new_representation="spectrogram_psd", cache_dir=cache_dir, progress=False)
    assert again.cache_hit and again.key == small_features.key
    assert np.array_equal(again.new_pooled["gated"], small_features.new_pooled["gated"])
    # another representation is another key
    from biomoe_edge.training.bridge.features import cache_key, model_fingerprint

    other = cache_key(small_paired, model_fingerprint(stand_in_model), "spectrogram_psd", "scalogram",
                      tuple(INPUT_TAPS), tuple(ENTRY_POINTS))
    assert other != small_features.key


def test_fit_selects_positions_trains_and_reports_held_out_figures(small_fit, small_features):
    positions = small_fit.positions
    scores = {c["name"]: c["probe_macro_f1"] for c in positions["input_candidates"]}
    assert set(scores) == set(INPUT_TAPS)
    assert positions["input"]["name"] == max(scores, key=scores.get)
    candidates = positions["output_candidates"]
    assert {"fused", "experts"} <= {c["name"] for c in candidates}
    assert positions["output"]["name"] == candidates[0]["name"]  # all fit the default budget here
    assert candidates == sorted(candidates, key=lambda c: -c["cka"])
    assert len(small_fit.curve) == 40 and all(np.isfinite(c["train_loss"]) for c in small_fit.curve)
    held = small_fit.held_out
    assert held["windows"] == len(small_fit.split.held_out) > 0
    assert 0.0 <= held["agreement_with_old_head"] <= 1.0 and -1.0 <= held["cosine_to_targets_mean"] <= 1.0
    # the figures are those of the bridged embeddings, recomputed here
    bridged = small_fit.bridged_embeddings(small_fit.split.held_out)
    agreement = (small_fit.head.predict_proba(bridged).argmax(1) == small_fit.pseudo_labels[small_fit.split.held_out])
    assert held["agreement_with_old_head"] == pytest.approx(agreement.mean())
    bridge = small_fit.bridge
    d_new = INPUT_TAPS[bridge.input_position].dim
    expected = sum(8 * d_new + 8 * 32 * ENTRY_POINTS[e].tokens + ENTRY_POINTS[e].dim * 32 for e in bridge.entry_points)
    assert small_fit.trainable_parameters == expected


def test_the_bridge_learns_the_old_embeddings(small_paired, fixture_head, stand_in_model, stand_in_backbone,
                                              small_features):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = fit_bridge(small_paired, fixture_head, stand_in_model, new_representation="spectrogram_psd",
                         backbone=stand_in_backbone, features=small_features, epochs=40, input_position="embedding",
                         output_position="fused", progress=False)
    first, last = fit.curve[0]["train_loss"], fit.curve[-1]["train_loss"]
    assert first > 0.95 and last < 0.5 * first  # from the zero bridge (a constant embedding) to the targets
    centre = small_features.old_embedding[fit.split.train].mean(0)
    bridged = fit.bridged_embeddings(fit.split.train) - centre
    target = small_features.old_embedding[fit.split.train] - centre
    cosine = (bridged * target).sum(1) / np.linalg.norm(bridged, axis=1) / np.linalg.norm(target, axis=1)
    assert 1 - cosine.mean() == pytest.approx(last, abs=0.05)  # the curve is the loss of these embeddings


def test_baselines_on_the_same_split(small_fit, small_paired):
    rows = {r["method"]: r for r in compare_baselines(small_fit, small_paired.label)}
    assert set(rows) == {"old_head_on_old", "old_head_on_new", "linear_map", "distilled_head", "oracle_head", "bridge"}
    assert rows["old_head_on_old"]["agreement_with_old_head"] == 1.0
    assert rows["bridge"]["agreement_with_old_head"] == small_fit.held_out["agreement_with_old_head"]
    assert rows["old_head_on_new"]["agreement_with_old_head"] == \
        small_fit.held_out["old_head_on_new_embeddings_agreement"]
    assert rows["linear_map"]["trainable_parameters"] == 192 * 192 + 192
    assert rows["oracle_head"]["trainable_parameters"] == 3 * 192 + 3
    assert rows["bridge"]["trainable_parameters"] == small_fit.trainable_parameters


def test_given_positions_and_random_prototypes(small_paired, fixture_head, stand_in_model, stand_in_backbone,
                                               small_features):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = fit_bridge(small_paired, fixture_head, stand_in_model, new_representation="spectrogram_psd",
                         backbone=stand_in_backbone, features=small_features, epochs=2, init="random",
                         input_position="enc1.embedding", output_position="experts", rank=4, prototypes=16,
                         progress=False)
    assert fit.positions["input"]["name"] == "enc1.embedding" and fit.positions["input"]["chosen_by"] == "given"
    assert fit.bridge.entry_points == ("experts",) and fit.trainable_parameters == 4 * 96 + 4 * 16 * 2 + 96 * 16
    with pytest.raises(BridgeConfigError, match="does not feed the whole old model"):
        fit_bridge(small_paired, fixture_head, stand_in_model, new_representation="spectrogram_psd",
                   backbone=stand_in_backbone, features=small_features, output_position="enc1.block4",
                   progress=False)


def test_a_head_of_another_backbone_is_refused(fixture_head, tmp_path, small_paired, stand_in_model,
                                               stand_in_backbone, small_features):
    other = tmp_path / "other"
    shutil.copytree(fixture_head, other)
    manifest = json.loads((other / "head.json").read_text())
    manifest["backbone"] = {**manifest["backbone"], "checkpoint_sha256": "f" * 64}
    (other / "head.json").write_text(json.dumps(manifest))
    # The backbone is bound to head.onnx (written into its metadata at export): an edited head.json is refused on load.
    with pytest.raises(HeadError, match=r"backbone is \{'checkpoint_sha256': 'f{64}'.* in the manifest, but the graph "
                                        r"was exported with"):
        fit_bridge(small_paired, other, stand_in_model, new_representation="spectrogram_psd",
                   backbone=stand_in_backbone, features=small_features, progress=False)
    head = read_head(fixture_head)
    with pytest.warns(UserWarning, match="head trained on fp32 embeddings, the bridge's old path runs in fp16"):
        check_head_backbone(head, {**stand_in_backbone, "precision": "fp16"})


@pytest.mark.parametrize("change, message", [
    (lambda d: (d / "head.onnx").unlink(), "no head.onnx beside head.json"),
    (lambda d: (d / "head.json").write_text("{"), "is not valid JSON"),
    (lambda d: _edit(d, inputs=["ecg:spectrogram_psd", "eda:scalogram"]), "a bridge carries a head of ONE"),
    (lambda d: _edit(d, kind="bridge"), "kind is 'bridge', expected \"head\""),
    (lambda d: _edit(d, inputs=["ecg:gaf"]), "unknown representation 'gaf'"),
    (lambda d: _edit(d, classes=["a", "b"]), r"gives \(3,\) probabilities per window, but head.json names 2"),
    (lambda d: _edit(d, sha256="0" * 64), "does not match the sha256 in"),
])
def test_malformed_head_folders_are_refused(fixture_head, tmp_path, change, message):
    folder = tmp_path / "head"
    shutil.copytree(fixture_head, folder)
    change(folder)
    with pytest.raises(HeadError, match=message):
        read_head(folder)


def _edit(folder, **fields):
    manifest = json.loads((folder / "head.json").read_text())
    manifest.update(fields)
    (folder / "head.json").write_text(json.dumps(manifest))


def test_head_of_another_modality_rank_that_does_not_fit_and_too_little_data(
        fixture_head, small_paired, small_features, stand_in_model, stand_in_backbone, tmp_path):
    eda_head = tmp_path / "eda"
    shutil.copytree(fixture_head, eda_head)
    _edit(eda_head, inputs=["eda:spectrogram_psd"])
    with pytest.raises(HeadError, match=r"inputs is \['eda:spectrogram_psd'\] in the manifest, but the graph was "
                                        r"exported with \['ecg:spectrogram_psd'\]"):
        fit_bridge(small_paired, eda_head, stand_in_model, new_representation="spectrogram_psd",
                   backbone=stand_in_backbone, features=small_features, progress=False)
    short = small_paired.subset(np.arange(20))
    with pytest.raises(PositionSelectionError, match="too little paired data: 20 windows give"):
        fit_bridge(short, fixture_head, stand_in_model, new_representation="spectrogram_psd",
                   backbone=stand_in_backbone, progress=False)
    with pytest.raises(BridgeConfigError, match="rank 40 does not fit the bridge into 'fused'"):
        fit_bridge(small_paired, fixture_head, stand_in_model, new_representation="spectrogram_psd",
                   backbone=stand_in_backbone, features=small_features, rank=40, output_position="fused",
                   prototypes=32, progress=False)
    with pytest.raises(BridgeConfigError, match="97 prototypes do not fit 'experts'"):
        fit_bridge(small_paired, fixture_head, stand_in_model, new_representation="spectrogram_psd",
                   backbone=stand_in_backbone, features=small_features, output_position="experts",
                   prototypes=97, progress=False)


def test_paired_windows_must_cover_the_same_time(small_paired):
    with pytest.raises(PairingError, match="ecg windows last 10 s but bvp windows 5 s"):
        type(small_paired)("ecg", "bvp", 100, 64, small_paired.old, small_paired.new[:, :320], small_paired.start_s,
                           small_paired.end_s, small_paired.subject)
