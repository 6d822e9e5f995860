"""The served bridge graph: one ONNX file from the new modality's features at the bridge's tap to the old head's
probabilities (no frozen backbone before the tap in it), FP32 and FP16, with TensorRT-parsable operators only;
fed the tap's features it equals the PyTorch bridged model run on the images; its manifest; evaluation through it."""

from __future__ import annotations

import shutil
import warnings

import numpy as np
import onnx
import onnxruntime as ort
import pytest

pytestmark = pytest.mark.torch
torch = pytest.importorskip("torch", reason="the bridge trains and exports with PyTorch (the export extra)")
from onnx import TensorProto  # noqa: E402

from biomoe_edge.export.graph_info import tensor_types  # noqa: E402
from biomoe_edge.export.model.taps import INPUT_TAPS  # noqa: E402
from biomoe_edge.runtime.heads.bridge import load_bridge, read_bridge_manifest  # noqa: E402
from biomoe_edge.training.bridge import (  # noqa: E402
    Bridge, BridgedModel, BridgeError, evaluate_bridge, export_bridge, render_images)
from onnx_tensorrt import tensorrt_problems  # noqa: E402


@pytest.fixture(scope="module")
def exported(small_fit, tmp_path_factory):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fp32 = export_bridge(small_fit, tmp_path_factory.mktemp("bridge32"), precision="fp32", max_batch=8)
        fp16 = export_bridge(small_fit, tmp_path_factory.mktemp("bridge16"), precision="fp16", max_batch=8)
    return fp32, fp16


@pytest.fixture(scope="module")
def new_images(small_paired):
    """Images of new-modality windows the export's own check did not use (it takes held-out windows)."""
    rows = np.arange(0, 12, 2)
    return render_images(small_paired.new[rows], small_paired.new_fs, "bvp", "spectrogram_psd")


@pytest.fixture(scope="module")
def tap_engine(stand_in_model):
    from biomoe_edge.runtime.engines.pytorch_engine import PyTorchEngine

    return PyTorchEngine(model=stand_in_model, max_batch=8)


def run(path, images, engine, tap):
    """The served graph fed the engine's features of ``images`` at ``tap``."""
    _, features = engine.infer_tapped(images, (tap,))
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(["probabilities"], {"tap." + tap: features[tap]})[0]


def test_fp32_graph_equals_pytorch(exported, small_fit, new_images, tap_engine):
    with torch.no_grad():
        embeddings = small_fit.bridged_model()(torch.from_numpy(new_images)).numpy()
    reference = small_fit.head.predict_proba(embeddings)
    got = run(exported[0], new_images, tap_engine, small_fit.bridge.input_position)
    assert got.shape == (len(new_images), 3)
    assert np.abs(got - reference).max() < 1e-4
    assert np.array_equal(got.argmax(1), reference.argmax(1))
    np.testing.assert_allclose(got.sum(1), 1.0, atol=1e-5)


def test_graph_io_operators_and_manifest(exported, small_fit, stand_in_backbone, reference_dir):
    path = exported[0]
    onnx.checker.check_model(str(path), full_check=True)
    model = onnx.load(str(path))
    tap = small_fit.bridge.input_position
    assert [i.name for i in model.graph.input] == [f"tap.{tap}"]
    assert [o.name for o in model.graph.output] == ["probabilities"]
    dims = [d.dim_param or d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim]
    assert dims[1:] == [INPUT_TAPS[tap].dim] and isinstance(dims[0], str)
    ops = {n.op_type for n in model.graph.node}
    assert not ops & {"DFT", "STFT", "BatchNormalization"}
    # Nothing of the backbone before the tap: no image LayerNorm weights (3, 224, 224), no conv reading RGB.
    assert not any(list(i.dims) == [3, 224, 224] for i in model.graph.initializer)
    assert not any(n.op_type == "Conv" and _weight_dims(model, n)[1] == 3 for n in model.graph.node)
    assert tensorrt_problems(path, reference_dir) == []
    manifest = read_bridge_manifest(path.parent)
    assert manifest["kind"] == "bridge" and manifest["tap"] == tap
    assert manifest["inputs"] == ["bvp:spectrogram_psd"] and manifest["old_inputs"] == ["ecg:spectrogram_psd"]
    assert manifest["classes"] == ["rest", "moderate", "high"]
    assert manifest["trainable_parameters"] == small_fit.trainable_parameters
    assert manifest["rank"] == 8 and manifest["prototypes"] == 32 and manifest["initialisation"] == "real"
    assert manifest["positions"]["input"]["name"] == small_fit.bridge.input_position
    assert manifest["positions"]["output"]["entry_points"] == list(small_fit.bridge.entry_points)
    assert len(manifest["fit_curve"]) == 40 and "agreement_with_old_head" in manifest["held_out"]
    assert manifest["backbone"] == stand_in_backbone and manifest["precision"] == "fp32"
    assert manifest["onnx_check"]["probabilities_max_abs"] < 1e-4
    assert manifest["head"]["sha256"] == small_fit.head.sha256


def _weight_dims(model, node):
    weights = {i.name: list(i.dims) for i in model.graph.initializer}
    return weights.get(node.input[1], [0, 0])


def test_fp16_graph_keeps_sensitive_ops_in_fp32_and_stays_close(exported, new_images, reference_dir, tap_engine,
                                                                 small_fit):
    fp32, fp16 = exported
    model = onnx.load(str(fp16))
    types = tensor_types(model)
    by_op: dict[str, set] = {}
    for node in model.graph.node:
        by_op.setdefault(node.op_type, set()).add(types[node.input[0]])
    for op in ("LayerNormalization", "Softmax"):
        assert by_op[op] == {TensorProto.FLOAT}, op
    assert TensorProto.FLOAT16 in by_op["MatMul"] | by_op.get("Conv", set())
    assert model.graph.input[0].type.tensor_type.elem_type == TensorProto.FLOAT
    assert model.graph.output[0].type.tensor_type.elem_type == TensorProto.FLOAT
    assert tensorrt_problems(fp16, reference_dir) == []
    tap = small_fit.bridge.input_position
    assert np.abs(run(fp16, new_images, tap_engine, tap) - run(fp32, new_images, tap_engine, tap)).max() < 2e-2
    manifest = read_bridge_manifest(fp16.parent)
    # The graph runs in fp16; the backbone named is the one the bridge was fitted on (fp32 features), as for heads.
    assert manifest["precision"] == "fp16" and manifest["backbone"]["precision"] == "fp32"


def test_zero_initialised_bridge_feeds_the_old_model_zeros(stand_in_model, new_images):
    bridged = BridgedModel(stand_in_model, Bridge("enc2.embedding", ["fused"], rank=4, prototypes=8)).eval()
    with torch.no_grad():
        out = bridged(torch.from_numpy(new_images[:3]))
        expected = stand_in_model.ln_out(torch.zeros(1, 192))
    torch.testing.assert_close(out, expected.expand(3, -1), rtol=0, atol=0)


def test_evaluate_through_the_bridge_folder(exported, small_paired, small_fit, tap_engine):
    rows = np.arange(1, 52, 5)
    windows, labels = small_paired.new[rows], small_paired.label[rows]
    metrics = evaluate_bridge(exported[0].parent, windows, small_paired.new_fs, labels, tap_engine)
    with torch.no_grad():  # the PyTorch bridged model on the images: no tap, no served graph
        embeddings = small_fit.bridged_model()(
            torch.from_numpy(render_images(windows, 64.0, "bvp", "spectrogram_psd"))).numpy()
    predicted = np.asarray(metrics["classes"], dtype=object)[small_fit.head.predict_proba(embeddings).argmax(1)]
    assert metrics["windows"] == len(rows)
    assert metrics["accuracy"] == pytest.approx(np.mean(predicted == labels))
    assert np.sum(metrics["confusion_matrix"]) == len(rows)
    with pytest.raises(ValueError, match=r"labels \['sleep'\] are not among"):
        evaluate_bridge(exported[0].parent, windows[:2], 64.0, ["rest", "sleep"], tap_engine)


def test_evaluate_refuses_an_engine_of_other_weights(exported, small_paired):
    from biomoe_edge.runtime.engines.pytorch_engine import PyTorchEngine
    from biomoe_edge.runtime.heads import BridgeError

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        other = PyTorchEngine(None, seed=3, max_batch=8)
    with pytest.raises(BridgeError, match="refused"):
        evaluate_bridge(exported[0].parent, small_paired.new[:2], 64.0, ["rest", "rest"], other)


def test_a_changed_bridge_folder_is_refused(exported, tmp_path, tap_engine):
    folder = tmp_path / "bridge"
    shutil.copytree(exported[0].parent, folder)
    with open(folder / "bridge.onnx", "ab") as f:
        f.write(b"\0")
    # The gateway's own loader refuses it, and so does the evaluation, which loads through it.
    with pytest.raises(BridgeError, match="does not match the sha256"):
        load_bridge(folder)
    with pytest.raises(BridgeError, match="does not match the sha256"):
        evaluate_bridge(folder, np.zeros((1, 640), np.float32), 64.0, ["rest"], tap_engine)
    (folder / "bridge.json").unlink()
    with pytest.raises(BridgeError, match="no bridge.json in it"):
        evaluate_bridge(folder, np.zeros((1, 640), np.float32), 64.0, ["rest"], tap_engine)
