"""Exported graphs: validity, TensorRT operator support, numerics against PyTorch, FP16 / INT8 properties."""

from __future__ import annotations

import collections
import hashlib

import numpy as np
import onnx
import pytest
from onnx import TensorProto

pytestmark = pytest.mark.torch
torch = pytest.importorskip("torch", reason="the export extra builds the PyTorch model")

from biomoe_edge.export import export_onnx  # noqa: E402
from biomoe_edge.export.graph_info import tensor_types  # noqa: E402
from biomoe_edge.export.onnx_export import check_onnx, cosine_rows, run_onnxruntime  # noqa: E402
from biomoe_edge.manifest import read_manifest  # noqa: E402
from onnx_tensorrt import tensorrt_problems  # noqa: E402

def unfolded_constant_nodes(path) -> list[str]:
    """Nodes (other than Constant and the Q/DQ of weights) whose inputs are all constants: foldable, not folded."""
    model = onnx.load(str(path))
    constants = {i.name for i in model.graph.initializer}
    unfolded = []
    for node in model.graph.node:
        if node.op_type == "Constant":
            constants.update(node.output)
        elif node.input and all(i in constants or not i for i in node.input):
            if node.op_type not in ("QuantizeLinear", "DequantizeLinear"):
                unfolded.append(f"{node.op_type} {node.name}")
    return unfolded


# ---------------------------------------------------------------------------------------------- fp32


def test_fp32_graph_is_valid_dynamic_and_folded(fp32_onnx):
    check_onnx(fp32_onnx)
    model = onnx.load(str(fp32_onnx))
    assert next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx")) >= 17
    ops = {n.op_type for n in model.graph.node}
    assert not ops & {"BatchNormalization", "DFT", "STFT", "Shape"}
    (image,), (embedding,) = model.graph.input, model.graph.output
    assert (image.name, embedding.name) == ("images", "embeddings")
    assert image.type.tensor_type.shape.dim[0].dim_param == embedding.type.tensor_type.shape.dim[0].dim_param != ""
    assert unfolded_constant_nodes(fp32_onnx) == []


def test_fp32_uses_only_tensorrt_operators(fp32_onnx, reference_dir):
    assert tensorrt_problems(fp32_onnx, reference_dir) == []


def test_fp32_graph_keeps_layout_changes_small_and_gelu_fusable(fp32_onnx, tmp_path):
    """The CPU-speed properties of the export form: no Transpose moves more than a stage-1 token tensor
    (56 x 56 x 64 values per image; the feed-forwards' 8x wider hidden tensors stay channels-first), and
    ONNX Runtime fuses every exact GELU into one Gelu kernel (no Erf left after its graph optimisation)."""
    import onnxruntime as ort

    inferred = onnx.shape_inference.infer_shapes(onnx.load(str(fp32_onnx)))
    shapes = {v.name: [d.dim_value for d in v.type.tensor_type.shape.dim[1:]] for v in inferred.graph.value_info}
    transposed = [int(np.prod(shapes[n.input[0]])) for n in inferred.graph.node if n.op_type == "Transpose"]
    assert transposed and max(transposed) <= 56 * 56 * 64
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    options.optimized_model_filepath = str(tmp_path / "optimized.onnx")
    ort.InferenceSession(str(fp32_onnx), options, providers=["CPUExecutionProvider"])
    optimized = collections.Counter(n.op_type for n in onnx.load(options.optimized_model_filepath).graph.node)
    exported_erfs = collections.Counter(n.op_type for n in inferred.graph.node)["Erf"]
    # a GELU right after a bias Add fuses one step further, into BiasGelu
    assert optimized["Erf"] == 0 and optimized["Gelu"] + optimized["BiasGelu"] == exported_erfs == 5


def test_fp32_onnxruntime_matches_pytorch(fp32_onnx, model11, reference_pairs, reference_images):
    _, images11, embeddings11 = reference_pairs[11]
    assert np.abs(run_onnxruntime(fp32_onnx, images11, batch=1) - embeddings11).max() < 1e-4
    with torch.no_grad():
        torch_out = model11(torch.from_numpy(reference_images)).numpy()
    assert np.abs(run_onnxruntime(fp32_onnx, reference_images, batch=7) - torch_out).max() < 1e-4


def test_fp32_manifest(fp32_onnx, reference_pairs):
    manifest = read_manifest(fp32_onnx)
    assert manifest["precision"] == "fp32" and manifest["opset"] >= 17 and manifest["max_batch"] == 16
    assert manifest["sha256"] == hashlib.sha256(fp32_onnx.read_bytes()).hexdigest()
    assert manifest["checkpoint_sha256"] == hashlib.sha256(reference_pairs[11][0].read_bytes()).hexdigest()
    assert manifest["inputs"] == [{"name": "images", "shape": ["batch", 3, 224, 224], "dtype": "float32"}]
    assert manifest["outputs"] == [{"name": "embeddings", "shape": ["batch", 192], "dtype": "float32"}]
    fidelity = manifest["fidelity"]
    # measured on 8 real-signal renderings (structured images move fp32 rounding further than the noise
    # reference images: ~1e-4 there vs ~4e-6); the 1e-4 contract on the reference images is tested above
    assert fidelity["n_images"] == 8 and fidelity["max_abs"] < 5e-4 and fidelity["cosine_min"] > 0.999999
    assert manifest["sdk_version"]


# ---------------------------------------------------------------------------------------------- fp16


def test_fp16_keeps_sensitive_ops_in_fp32(fp16_onnx, reference_dir):
    check_onnx(fp16_onnx)
    model = onnx.load(str(fp16_onnx))
    types = tensor_types(model)
    by_op: dict[str, set] = {}
    for node in model.graph.node:
        by_op.setdefault(node.op_type, set()).add(types[node.input[0]])
    for op in ("LayerNormalization", "Softmax", "ReduceMean"):
        assert by_op[op] == {TensorProto.FLOAT}, op
    for op in ("Conv", "MatMul", "Gemm"):
        assert by_op[op] == {TensorProto.FLOAT16}, op
    ln_img = next(n for n in model.graph.node if n.op_type == "LayerNormalization" and n.input[0] == "images")
    assert [types[i] for i in ln_img.input] == [TensorProto.FLOAT] * 3
    assert model.graph.input[0].type.tensor_type.elem_type == TensorProto.FLOAT
    assert model.graph.output[0].type.tensor_type.elem_type == TensorProto.FLOAT
    assert tensorrt_problems(fp16_onnx, reference_dir) == []


def test_fp16_cosine_to_fp32_on_reference_images(fp16_onnx, fp32_reference_embeddings, reference_images):
    cos = cosine_rows(fp32_reference_embeddings, run_onnxruntime(fp16_onnx, reference_images))
    assert cos.min() >= 0.999, cos
    assert read_manifest(fp16_onnx)["fidelity"]["cosine_min"] >= 0.999


def test_fp16_cosine_to_fp32_on_real_signal_images(fp16_onnx, fp32_signal_embeddings, signal_images):
    cos = cosine_rows(fp32_signal_embeddings, run_onnxruntime(fp16_onnx, signal_images))
    assert cos.min() >= 0.999, cos


# ---------------------------------------------------------------------------------------------- int8


def _initializers(model) -> dict[str, np.ndarray]:
    return {i.name: onnx.numpy_helper.to_array(i) for i in model.graph.initializer}


def test_int8_qdq_is_symmetric_with_per_channel_weights(int8_onnx, reference_dir):
    check_onnx(int8_onnx)
    model = onnx.load(str(int8_onnx))
    inits = _initializers(model)
    producers = {o: n for n in model.graph.node for o in n.output}
    qdq = [n for n in model.graph.node if n.op_type in ("QuantizeLinear", "DequantizeLinear")]
    assert len(qdq) > 100
    for node in qdq:
        assert len(node.input) == 3 and node.input[2] in inits, f"{node.name}: no explicit zero point"
        zero_point = inits[node.input[2]]
        assert zero_point.dtype == np.int8 and not zero_point.any(), node.name
    weight_dq = []
    for node in model.graph.node:
        if node.op_type not in ("Conv", "Gemm"):
            continue
        dq = producers.get(node.input[1])
        assert dq is not None and dq.op_type == "DequantizeLinear", f"{node.name}: weight not quantised"
        assert inits[dq.input[0]].dtype == np.int8, f"{node.name}: weight not stored as INT8"
        weight_dq.append((node, dq))
    for node, dq in weight_dq:
        scale = inits[dq.input[1]]
        attrs = {a.name: a.i for a in node.attribute}
        # the output-channel axis of the stored weight: Conv (O, I, kh, kw); Gemm (N, K) if transB else (K, N)
        out_axis = 0 if node.op_type == "Conv" or attrs.get("transB", 0) else 1
        dq_axis = next((a.i for a in dq.attribute if a.name == "axis"), 1)
        assert scale.ndim == 1 and dq_axis == out_axis, f"{node.name}: not per output channel"
        assert scale.size == inits[dq.input[0]].shape[out_axis] > 1
    # MatMuls with a constant, quantised operand: it must be the right-hand (K, N) weight with one scale per
    # output column; a left-hand constant (the spectral gate's H-axis DFT) would be scaled along the reduction.
    for node in model.graph.node:
        if node.op_type != "MatMul":
            continue
        for side, operand in enumerate(node.input):
            dq = producers.get(operand)
            if dq is None or dq.op_type != "DequantizeLinear" or dq.input[0] not in inits:
                continue
            assert ".dft_" not in dq.input[0], f"{node.name}: the spectral gate's DFT matrix {dq.input[0]} is quantised"
            weight, scale = inits[dq.input[0]], inits[dq.input[1]]
            dq_axis = next((a.i for a in dq.attribute if a.name == "axis"), 1) % weight.ndim
            assert side == 1 and dq_axis == weight.ndim - 1, f"{node.name}: constant not per output column"
            assert scale.size in (1, weight.shape[-1])
    assert tensorrt_problems(int8_onnx, reference_dir) == []
    assert not {n.op_type for n in model.graph.node} & {"QLinearConv", "QLinearMatMul", "MatMulInteger",
                                                       "DynamicQuantizeLinear", "ConvInteger"}


def test_int8_cosine_to_fp32_on_reference_images(int8_onnx, fp32_reference_embeddings, reference_images):
    cos = cosine_rows(fp32_reference_embeddings, run_onnxruntime(int8_onnx, reference_images))
    assert cos.mean() >= 0.98 and cos.min() >= 0.95, cos


def test_int8_cosine_to_fp32_on_real_signal_images(int8_onnx, fp32_signal_embeddings, signal_images):
    cos = cosine_rows(fp32_signal_embeddings, run_onnxruntime(int8_onnx, signal_images))
    assert cos.mean() >= 0.98 and cos.min() >= 0.95, cos


def test_int8_calibration_is_cached(int8_onnx, model11, reference_images, export_dir, fp32_onnx, int8_calibration):
    first = read_manifest(int8_onnx)["int8"]
    assert first["cache"] == "miss" and first["calibration_images"] == len(int8_calibration)
    assert (export_dir / "cache" / "int8" / f"{first['cache_key']}.onnx").is_file()
    again = export_onnx(model11, export_dir / "int8_again" / "model.onnx", precision="int8",
                        calibration=int8_calibration, fidelity_images=reference_images[:1], max_batch=16,
                        from_fp32=fp32_onnx, cache_dir=export_dir / "cache")
    second = read_manifest(again)["int8"]
    assert second["cache"] == "hit" and second["cache_key"] == first["cache_key"]
    assert again.read_bytes() == int8_onnx.read_bytes()


# ---------------------------------------------------------------------------------------------- errors


def test_export_refuses_bad_arguments(model11, tmp_path):
    with pytest.raises(ValueError, match="precision"):
        export_onnx(model11, tmp_path / "m.onnx", precision="int4")
    with pytest.raises(ValueError, match="max_batch"):
        export_onnx(model11, tmp_path / "m.onnx", max_batch=0)
    with pytest.raises(ValueError, match=r"\(N, 3, 224, 224\)"):
        export_onnx(model11, tmp_path / "m.onnx", precision="int8", calibration=np.zeros((4, 3, 64, 64)))
    assert not (tmp_path / "m.onnx").exists()
