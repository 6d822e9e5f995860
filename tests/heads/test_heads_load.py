"""Loading a head folder for serving: the documented format runs; anything that is not a head, or not this
head, is a HeadError naming the file and the fault; a head of another backbone is refused naming both."""

import json

import numpy as np
import pytest

pytest.importorskip("onnxruntime", reason="heads are served with ONNX Runtime")

from heads_helpers import POOLED_MODEL, softmax_head, write_head  # noqa: E402

from biomoe_edge.runtime.heads import HeadError, load_head  # noqa: E402


def test_a_documented_head_folder_predicts_what_its_graph_computes(tmp_path):
    folder, w, b = write_head(tmp_path / "head", ["eda:scalogram", "bvp:spectrogram_psd"], ["rest", "pain"])
    head = load_head(folder)
    assert head.inputs == ("eda:scalogram", "bvp:spectrogram_psd")
    assert head.classes == ("rest", "pain")
    assert head.modalities == ("eda", "bvp")
    assert head.identity == {"path": str(folder.resolve()), "sha256": head.manifest["sha256"], "kind": "head"}
    rng = np.random.default_rng(3)
    parts = [rng.standard_normal((5, 192)).astype(np.float32) for _ in range(2)]
    probabilities = head.predict(parts)
    np.testing.assert_allclose(probabilities, softmax_head(w, b, parts), atol=1e-5)
    np.testing.assert_allclose(head.predict(np.stack(parts, axis=1)), probabilities, atol=0)  # (B, k, 192) too
    # Given as its head.json or its head.onnx, the folder is the same head.
    assert load_head(folder / "head.json").sha256 == load_head(folder / "head.onnx").sha256 == head.sha256


@pytest.mark.parametrize("fault, message", [
    ("missing", "no such head folder"),
    ("a_file", "is not a head"),
    ("empty_folder", "no head.json"),
    ("bridge", "is a bridge folder"),
    ("not_json", "is not valid JSON"),
    ("binary", "is not"),
    ("not_an_object", "expected a JSON object"),
    ("kind", "kind is 'bridge', expected \"head\""),
    ("format", "head_format 7"),
    ("no_inputs", "inputs must be a non-empty list"),
    ("bad_input", "inputs[1]: input 'eeg:scalogram': unknown modality"),
    ("bad_representation", "unknown representation 'sepctrogram'"),
    ("one_class", "classes must be a list of at least two distinct names"),
    ("no_backbone", "backbone must name"),
    ("tampered", "does not match the sha256"),
    ("graph_missing", "no head.onnx"),
    ("too_many_classes", "names 3 classes"),
    ("fewer_inputs", "do not match the 1 inputs"),
])
def test_what_is_not_this_head_is_a_clear_error(tmp_path, fault, message):
    folder, _, _ = write_head(tmp_path / "head", ["eda:scalogram", "bvp:scalogram"], ["rest", "pain"])
    manifest = json.loads((folder / "head.json").read_text())
    target = folder
    if fault == "missing":
        target = tmp_path / "nowhere"
    elif fault == "a_file":
        target = tmp_path / "weights.bin"
        target.write_bytes(b"\x00\x01")
    elif fault == "empty_folder":
        target = tmp_path / "empty"
        target.mkdir()
    elif fault == "bridge":
        target = tmp_path / "bridge"
        target.mkdir()
        (target / "bridge.json").write_text("{}")
    elif fault == "not_json":
        (folder / "head.json").write_text("{kind: head")
    elif fault == "binary":
        (folder / "head.json").write_bytes(b"\xff\xfe\x00garbage")
    elif fault == "not_an_object":
        (folder / "head.json").write_text("[1, 2]")
    elif fault == "graph_missing":
        (folder / "head.onnx").unlink()
    elif fault == "tampered":
        (folder / "head.onnx").write_bytes((folder / "head.onnx").read_bytes() + b"\x00")
    else:
        edits = {"kind": {"kind": "bridge"}, "format": {"head_format": 7}, "no_inputs": {"inputs": []},
                 "bad_input": {"inputs": ["eda:scalogram", "eeg:scalogram"]},
                 "bad_representation": {"inputs": ["eda:sepctrogram", "bvp:scalogram"]},
                 "one_class": {"classes": ["rest"]}, "no_backbone": {"backbone": {"precision": "fp32"}},
                 "too_many_classes": {"classes": ["rest", "mild", "pain"]},
                 "fewer_inputs": {"inputs": ["eda:scalogram"]}}[fault]
        manifest.update(edits)
        (folder / "head.json").write_text(json.dumps(manifest))
    with pytest.raises(HeadError) as error:
        load_head(target)
    assert message in str(error.value)


def test_backbone_mismatch_names_both_backbones(tmp_path):
    trained_on = {"checkpoint_sha256": "ab" * 32, "random_weights": False, "seed": None, "precision": "fp16"}
    folder, _, _ = write_head(tmp_path / "head", ["eda:scalogram"], ["rest", "pain"], backbone=trained_on)
    head = load_head(folder)
    head.check_backbone({**POOLED_MODEL, "checkpoint_sha256": "ab" * 32, "random_weights": False,
                         "precision": "fp16"})  # the same weights: accepted
    with pytest.raises(HeadError) as error:
        head.check_backbone(POOLED_MODEL)  # random weights fp32
    text = str(error.value)
    assert "checkpoint abababababababab" in text and "fp16" in text
    assert "random weights (seed None) fp32" in text
    with pytest.raises(HeadError, match="fp32"):
        head.check_backbone({**POOLED_MODEL, "checkpoint_sha256": "ab" * 32, "random_weights": False})


def test_wrong_input_shapes_are_named(tmp_path):
    folder, _, _ = write_head(tmp_path / "head", ["eda:scalogram", "bvp:scalogram"], ["rest", "pain"])
    head = load_head(folder)
    with pytest.raises(HeadError, match="takes 2 inputs"):
        head.predict([np.zeros((1, 192), np.float32)])
    with pytest.raises(HeadError, match=r"input_1 \(bvp:scalogram\) must be \(B, 192\)"):
        head.predict([np.zeros((1, 192), np.float32), np.zeros((1, 96), np.float32)])
