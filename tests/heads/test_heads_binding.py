"""What changes a prediction's meaning is bound to the graph: a head.json or bridge.json whose classes, their
order, inputs, backbone or window settings were edited after export is refused, naming the field; so is a graph
that carries no binding. Before, the sha256 covered the graph only (swapped classes inverted every prediction)."""

import json

import pytest

pytest.importorskip("onnxruntime", reason="heads are served with ONNX Runtime")

from heads_helpers import POOLED_BACKBONE, write_head  # noqa: E402
from test_heads_bridge import write_bridge  # noqa: E402

from biomoe_edge.manifest import MEANING_KEY  # noqa: E402
from biomoe_edge.runtime.heads import BridgeError, HeadError, load_bridge, load_head  # noqa: E402

OTHER_BACKBONE = {**POOLED_BACKBONE, "checkpoint_sha256": "c" * 64, "random_weights": False}


@pytest.mark.parametrize("edit, field", [
    ({"classes": ["pain", "rest"]}, "classes"),  # swapped: every prediction inverted
    ({"inputs": ["bvp:scalogram", "eda:spectrogram_psd"]}, "inputs"),
    ({"backbone": OTHER_BACKBONE}, "backbone"),
    ({"window_length_s": {"eda:scalogram": 5.0, "bvp:spectrogram_psd": 5.0}}, "window_length_s"),
])
def test_an_edited_head_manifest_is_refused_naming_the_field(tmp_path, edit, field):
    folder, _, _ = write_head(tmp_path / "head", ["eda:scalogram", "bvp:spectrogram_psd"], ["rest", "pain"])
    load_head(folder)
    manifest = json.loads((folder / "head.json").read_text())
    manifest.update(edit)
    (folder / "head.json").write_text(json.dumps(manifest))
    with pytest.raises(HeadError) as error:
        load_head(folder)
    assert f"{field} is " in str(error.value) and "head.json does not describe" in str(error.value)


def test_a_head_graph_without_a_binding_is_refused(tmp_path):
    import onnx

    from biomoe_edge.manifest import sha256_file

    folder, _, _ = write_head(tmp_path / "head", ["eda:scalogram"], ["rest", "pain"])
    model = onnx.load(str(folder / "head.onnx"))
    del model.metadata_props[:]
    onnx.save(model, str(folder / "head.onnx"))
    manifest = json.loads((folder / "head.json").read_text())
    manifest["sha256"] = sha256_file(folder / "head.onnx")
    (folder / "head.json").write_text(json.dumps(manifest))
    with pytest.raises(HeadError, match=f"carries no {MEANING_KEY}"):
        load_head(folder)


@pytest.mark.parametrize("edit, field", [
    ({"inputs": ["spo2:scalogram"]}, "inputs"),
    ({"classes": ["high", "moderate", "rest"]}, "classes"),  # reversed
    ({"data": {"window_s": 8.0}}, "window_s"),
])
def test_an_edited_bridge_manifest_is_refused_naming_the_field(tmp_path, edit, field):
    folder = write_bridge(tmp_path / "bridge")
    load_bridge(folder)
    manifest = json.loads((folder / "bridge.json").read_text())
    manifest.update(edit)
    (folder / "bridge.json").write_text(json.dumps(manifest))
    with pytest.raises(BridgeError) as error:
        load_bridge(folder)
    assert f"{field} is " in str(error.value)
