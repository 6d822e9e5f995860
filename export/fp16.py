"""FP32 ONNX -> mixed FP16 ONNX that a strongly typed TensorRT build runs as written.

Tool: onnxconverter-common's ``convert_float_to_float16`` with an explicit ``op_block_list``. Why not
ModelOpt's AutoCast: AutoCast decides per node from magnitudes it measures on sample data (and runs a
reference session to do so), so the precision map would depend on the data it saw; here the policy is a
fixed, reviewable list of operator types, and converting takes about a second.

Kept in FP32 (``BLOCKED_OP_TYPES``): every LayerNormalization (among them ``ln_img`` over all 150,528
values of an image: its mean and variance lose precision in FP16), Softmax, and the reductions
(ReduceMean: global average pool, squeeze-excite, the class-token mean). The converter puts Cast nodes
around them, so the graph's types say exactly where FP16 starts and stops; TensorRT's strongly typed mode
follows them and needs no precision flags. Graph inputs and outputs stay float32 (``keep_io_types``): the
engine takes float32 images and returns float32 embeddings.
"""

from __future__ import annotations

import logging
import pathlib
import warnings

log = logging.getLogger(__name__)

BLOCKED_OP_TYPES = ("LayerNormalization", "Softmax", "ReduceMean", "ReduceSum", "ReduceMax", "ReduceL2")


def convert_fp16(fp32_path, fp16_path) -> pathlib.Path:
    import onnx
    from onnxconverter_common import float16

    model = onnx.load(str(fp32_path))
    with warnings.catch_warnings():
        # "the float32 number 1e-9 will be truncated to 1e-07": tiny weights, harmless at fp16 resolution
        warnings.filterwarnings("ignore", message="the float32 number", category=UserWarning)
        converted = float16.convert_float_to_float16(
            model, keep_io_types=True, op_block_list=list(BLOCKED_OP_TYPES) + list(float16.DEFAULT_OP_BLOCK_LIST),
            disable_shape_infer=False)
    _restore_float32_outputs(converted)
    onnx.save(converted, str(fp16_path))
    log.info("wrote fp16 graph %s (kept in fp32: %s)", fp16_path, ", ".join(BLOCKED_OP_TYPES))
    return pathlib.Path(fp16_path)


def _restore_float32_outputs(model) -> None:
    """Undo the converter's trailing Cast-to-fp16 on graph outputs that come from a kept-FP32 node.

    With ``keep_io_types`` onnxconverter-common still ends a graph whose last node is blocked (here the final
    LayerNorm) with a Cast to fp16 and types the output float16. The embedding is computed in FP32; it is
    returned in FP32.
    """
    from onnx import TensorProto

    producers = {out: node for node in model.graph.node for out in node.output}
    for output in model.graph.output:
        if output.type.tensor_type.elem_type != TensorProto.FLOAT16:
            continue
        cast = producers.get(output.name)
        source = producers.get(cast.input[0]) if cast is not None and cast.op_type == "Cast" else None
        if source is None or source.op_type not in BLOCKED_OP_TYPES:
            raise RuntimeError(f"fp16 conversion left graph output {output.name!r} in float16")
        source.output[list(source.output).index(cast.input[0])] = output.name
        model.graph.node.remove(cast)
        output.type.tensor_type.elem_type = TensorProto.FLOAT
