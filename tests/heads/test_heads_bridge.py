"""A bridge folder served by the Gateway like a head (``[[heads]]``), on a PPG-only wearable: one PredictionRecord
per rendered window of the bridge's input, ``via_bridge``, head kind "bridge"; its probabilities equal ONNX Runtime
run offline on the same windows' images (the gateway's recording, replayed); a bridge of other weights is refused at
start; configuration and folder errors name what is wrong.

The bridge graphs here are written by hand in the documented form (``tap.<tap>`` (B, dim) -> ``probabilities``
(B, C)), fed by a stand-in engine that returns the tap beside its embeddings: serving does not depend on what is
inside. tests/training/bridge exports real ones (PyTorch)."""

import asyncio
import json

import numpy as np
import pytest

pytest.importorskip("onnxruntime", reason="bridges are served with ONNX Runtime")

from heads_helpers import POOLED_BACKBONE, PooledEngine, device_packets, native_description  # noqa: E402

from biomoe_edge.manifest import bind_meaning, sha256_file  # noqa: E402
from biomoe_edge.runtime.gateway import Gateway  # noqa: E402
from biomoe_edge.runtime.gateway_config import ConfigError, parse_config  # noqa: E402
from biomoe_edge.runtime.heads import BridgeError, HeadError, load_bridge, load_head  # noqa: E402
from biomoe_edge.runtime.records import PredictionRecord, record_from_dict  # noqa: E402

PPG = {"bvp": 64.0}
CLASSES = ["rest", "moderate", "high"]


TAP = "enc1.stage2"
TAP_DIM = 128


def write_bridge(folder, *, inputs=("bvp:scalogram",), classes=CLASSES, backbone=None, window_s=4.0,
                 input_name="tap." + TAP, seed=0, tap=TAP):
    """A bridge folder: the tap's features (B, 128) -> Gemm(W, b) -> Softmax, and its bridge.json."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    w = rng.standard_normal((TAP_DIM, len(classes)))
    w = ((w - w.mean(axis=0)) * 0.5).astype(np.float32)  # zero-sum columns: flat features give even odds
    b = (rng.standard_normal(len(classes)) * 0.1).astype(np.float32)
    nodes = [helper.make_node("Gemm", [input_name, "W", "b"], ["logits"]),
             helper.make_node("Softmax", ["logits"], ["probabilities"], axis=1)]
    graph = helper.make_graph(
        nodes, "bridge", [helper.make_tensor_value_info(input_name, TensorProto.FLOAT, ["batch", TAP_DIM])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["batch", len(classes)])],
        initializer=[numpy_helper.from_array(w, "W"), numpy_helper.from_array(b, "b")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 9
    onnx.save(model, str(folder / "bridge.onnx"))
    manifest = {"kind": "bridge", "inputs": list(inputs), "classes": list(classes), "old_inputs": ["ecg:scalogram"],
                "tap": tap, "positions": {"input": TAP, "output": "fused"}, "trainable_parameters": 1234,
                "backbone": dict(POOLED_BACKBONE if backbone is None else backbone),
                "data": {"window_s": window_s}}
    bind_meaning(folder / "bridge.onnx", manifest)  # as write_manifest does at export
    manifest["sha256"] = sha256_file(folder / "bridge.onnx")
    (folder / "bridge.json").write_text(json.dumps(manifest, indent=2))
    return folder


def config_dict(bridge_folder, tmp_path, **bridge_options):
    return {
        "windows": {"length_s": 4.0, "hop_s": 1.0, "representations": ["scalogram"]},
        "devices": [{"name": "p1-ppg", "modalities": ["bvp"]}],
        "subjects": [{"name": "p1", "devices": ["p1-ppg"]}],
        "heads": [{"path": str(bridge_folder), **bridge_options}],
        "engine": {"max_batch": 8, "deadline_ms": 20},
        "sinks": [{"kind": "jsonl", "directory": str(tmp_path / "out"), "prefix": "records"},
                  {"kind": "recording", "directory": str(tmp_path / "rec")}],
    }


def tapped_engine():
    return PooledEngine(max_batch=8, taps={TAP: TAP_DIM})


async def serve(config, packets):
    gateway = Gateway(config, engine=tapped_engine(), transport=False, warmup=False)
    embeddings, predictions = [], []
    async with gateway:
        gateway.add_device("p1-ppg", native_description(PPG))
        gateway.on_embedding(embeddings.append)
        gateway.on_prediction(predictions.append)
        for i, (arrival, device, payload) in enumerate(packets):
            gateway.feed(device, payload, arrival)
            if i % 20 == 0:
                await asyncio.sleep(0)
    return gateway, embeddings, predictions


@pytest.fixture
def bridge_folder(tmp_path):
    return write_bridge(tmp_path / "bridge")


async def test_a_bridge_serves_a_ppg_wearable_equal_to_onnx_runtime_on_the_recorded_windows(bridge_folder, tmp_path):
    import onnxruntime as ort

    from biomoe_edge.runtime.recording import Replay, open_recording
    from biomoe_edge.runtime.transforms.preprocess import preprocess
    from biomoe_edge.runtime.transforms.render import render

    config = parse_config(config_dict(bridge_folder, tmp_path))
    assert config.heads[0].kind == "bridge"
    gateway, embeddings, predictions = await serve(config, device_packets("p1-ppg", PPG, 14.0, start_s=100.0))

    # One prediction per embedded window of the bridge's input, and nothing else.
    assert len(predictions) >= 8
    assert sorted(p.window_end_s for p in predictions) == sorted(r.window_end_s for r in embeddings)
    for p in predictions:
        assert isinstance(p, PredictionRecord) and p.via_bridge
        assert p.inputs == ("bvp:scalogram",) and p.modalities == ("bvp",) and p.devices == ("p1-ppg",)
        assert p.subject == "p1" and p.classes == tuple(CLASSES) and p.predicted == CLASSES[int(p.probabilities.argmax())]
        assert p.head["kind"] == "bridge" and p.head["sha256"] == sha256_file(bridge_folder / "bridge.onnx")
        assert p.model == gateway.pipeline.model_identity
        assert p.latency_s >= 0
    # The probabilities differ between windows (the graph reads the picture).
    assert np.ptp(np.stack([p.probabilities for p in predictions]), axis=0).max() > 1e-3

    # Offline: the recorded input replayed into windows, drawn as the gateway draws them, through ONNX Runtime.
    (recording_folder,) = (tmp_path / "rec").iterdir()
    replay = Replay(open_recording(recording_folder), None)
    windows = {float(w.end_s): w for w in replay.windows() if w.modality == "bvp"}
    session = ort.InferenceSession(str(bridge_folder / "bridge.onnx"), providers=["CPUExecutionProvider"])
    engine = tapped_engine()
    for p in predictions:
        window = windows[p.window_end_s]
        x, model_fs = preprocess(window.samples[:1], window.fs, "bvp")
        image = np.empty((1, 3, 224, 224), np.float32)
        render(x, model_fs, ("scalogram",), modality="bvp", out=image)
        features = PooledEngine.pooled(image) @ engine.tap_weights[TAP]  # the tap, computed apart from the engine
        expected = session.run(["probabilities"], {"tap." + TAP: features.astype(np.float32)})[0][0]
        np.testing.assert_allclose(p.probabilities, expected, atol=1e-6)

    # The JSONL sink holds the predictions, readable back as bridged ones; the stats name the bridge.
    lines = [json.loads(line) for path in sorted((tmp_path / "out").glob("*.jsonl"))
             for line in path.read_text().splitlines()]
    written = [record_from_dict(d) for d in lines if d["record"] == "prediction"]
    assert len(written) == len(predictions) and all(r.via_bridge and r.head["kind"] == "bridge" for r in written)
    (stats,) = gateway.stats()["heads"]
    assert stats["kind"] == "bridge" and stats["predictions"] == len(predictions)
    assert stats["old_inputs"] == ["ecg:scalogram"] and stats["windows_dropped"] == {}


async def test_a_bridge_and_a_head_are_served_side_by_side(bridge_folder, tmp_path):
    from heads_helpers import write_head

    head, _, _ = write_head(tmp_path / "head", ["bvp:scalogram"], ["calm", "stressed"], window_length_s=4.0)
    data = config_dict(bridge_folder, tmp_path)
    data["heads"].append({"path": str(head)})
    gateway, embeddings, predictions = await serve(parse_config(data),
                                                   device_packets("p1-ppg", PPG, 10.0, start_s=50.0))
    bridged = [p for p in predictions if p.via_bridge]
    direct = [p for p in predictions if not p.via_bridge]
    assert len(bridged) == len(embeddings) >= 4
    assert sorted(p.window_end_s for p in direct) == sorted(p.window_end_s for p in bridged)
    assert {p.head["kind"] for p in direct} == {"head"} and {p.classes for p in direct} == {("calm", "stressed")}
    assert [s.get("kind", "head") for s in gateway.stats()["heads"]] == ["head", "bridge"]


async def test_a_bridge_of_other_weights_is_refused_when_the_gateway_starts(tmp_path):
    folder = write_bridge(tmp_path / "bridge", backbone={"checkpoint_sha256": "cd" * 32, "random_weights": False,
                                                         "seed": None, "precision": "fp16"})
    gateway = Gateway(parse_config(config_dict(folder, tmp_path)), engine=tapped_engine(),
                      transport=False, warmup=False)
    with pytest.raises(BridgeError) as error:
        async with gateway:
            pass
    message = str(error.value)
    assert f"bridge {folder.resolve()} refused" in message
    assert "checkpoint cdcdcdcdcdcdcdcd... fp16" in message and "random weights (seed None) fp32" in message


@pytest.mark.parametrize("taps", [{}, {"enc2.stage1": 192}])
async def test_an_engine_without_the_bridges_tap_is_refused_naming_both(bridge_folder, tmp_path, taps):
    gateway = Gateway(parse_config(config_dict(bridge_folder, tmp_path)),
                      engine=PooledEngine(max_batch=8, taps=taps), transport=False, warmup=False)
    with pytest.raises(BridgeError) as error:
        async with gateway:
            pass
    message = str(error.value)
    assert f"bridge {bridge_folder.resolve()} reads Tiny-BioMoE's features at the tap {TAP!r}" in message
    assert f"the engine PooledEngine returns {'the taps enc2.stage1' if taps else 'no taps'}" in message
    assert f"biomoe-edge export --taps {TAP}" in message


@pytest.mark.parametrize("edit, key, message", [
    (lambda c: c["windows"].update(representations=["spectrogram_psd"]), "windows.representations",
     "needs bvp:scalogram"),
    (lambda c: c["windows"].update(length_s=10.0), "windows.length_s", "bridge"),
    (lambda c: c["heads"][0].update(subjects=["p7"]), "heads[0].subjects[0]", "\"p7\" is not a [[subjects]] name"),
])
def test_configuration_errors_name_the_key(bridge_folder, tmp_path, edit, key, message):
    data = config_dict(bridge_folder, tmp_path)
    edit(data)
    with pytest.raises(ConfigError) as error:
        parse_config(data)
    assert error.value.key_path == key
    assert message in str(error.value)


@pytest.mark.parametrize("fault, message", [
    ("two_inputs", "inputs must list exactly one"),
    ("no_backbone", "backbone must name checkpoint_sha256"),
    ("kind", "kind is 'head', expected \"bridge\""),
    ("sha256", "does not match the sha256 in"),
    ("input_name", "graph inputs ['input_0'], expected ['tap.enc1.stage2'] (the features at the tap"),
    ("no_tap", "no tap (the Tiny-BioMoE input position whose features the graph reads): a bridge exported by an "
               "earlier SDK"),
    ("classes", "gives (3,) probabilities per window, but bridge.json names 2 classes"),
])
def test_malformed_bridge_folders_are_refused_naming_the_fault(tmp_path, fault, message):
    folder = write_bridge(tmp_path / "bridge", input_name="input_0" if fault == "input_name" else "tap." + TAP)
    manifest = json.loads((folder / "bridge.json").read_text())
    if fault == "two_inputs":
        manifest["inputs"] = ["bvp:scalogram", "eda:scalogram"]
    elif fault == "no_backbone":
        del manifest["backbone"]
    elif fault == "kind":
        manifest["kind"] = "head"
    elif fault == "sha256":
        manifest["sha256"] = "0" * 64
    elif fault == "classes":
        manifest["classes"] = ["a", "b"]
    elif fault == "no_tap":
        del manifest["tap"]
    (folder / "bridge.json").write_text(json.dumps(manifest))
    with pytest.raises(BridgeError) as error:
        load_bridge(folder)
    assert message in str(error.value)
    assert isinstance(error.value, HeadError)


def test_a_bridge_folder_is_not_a_head_and_a_head_folder_is_not_a_bridge(bridge_folder, tmp_path):
    from heads_helpers import write_head

    with pytest.raises(HeadError, match="is a bridge folder"):
        load_head(bridge_folder)
    head, _, _ = write_head(tmp_path / "head", ["bvp:scalogram"], ["a", "b"])
    with pytest.raises(BridgeError, match="is not a bridge folder: no bridge.json"):
        load_bridge(head)
