"""The TensorRT 10 ONNX parser's operator table (``../shared/reference/tensorrt10_onnx_operators.json``, read in
place) as a check on exported graphs: what the export tests and the bridge export tests assert."""

from __future__ import annotations

import json

import onnx
from onnx import TensorProto

from biomoe_edge.export.graph_info import tensor_types

#: TensorRT's names for ONNX element types in the operator table
TRT_TYPE = {TensorProto.FLOAT: "FP32", TensorProto.FLOAT16: "FP16", TensorProto.BFLOAT16: "BF16",
            TensorProto.INT32: "INT32", TensorProto.INT64: "INT64", TensorProto.INT8: "INT8",
            TensorProto.UINT8: "UINT8", TensorProto.BOOL: "BOOL"}
#: operators whose restriction "`axes` must be an initializer" applies to input 1 (Slice: input 3)
AXES_INPUT = {"ReduceMean": 1, "ReduceSum": 1, "Slice": 3, "Squeeze": 1, "Unsqueeze": 1}


def tensorrt_problems(path, reference_dir) -> list[str]:
    """Every node whose operator, first-input element type or constant-input restriction TensorRT 10 refuses."""
    table = json.loads((reference_dir / "tensorrt10_onnx_operators.json").read_text())["operators"]
    model = onnx.load(str(path))
    types = tensor_types(model)
    constants = {i.name for i in model.graph.initializer} | {
        o for n in model.graph.node if n.op_type == "Constant" for o in n.output}
    problems = []
    for node in model.graph.node:
        entry = table.get(node.op_type)
        if entry is None or not entry["supported"]:
            problems.append(f"{node.name}: {node.op_type} not supported")
            continue
        dtype = TRT_TYPE.get(types.get(node.input[0])) if node.input else None
        if dtype is not None and dtype not in entry["types"]:
            problems.append(f"{node.name}: {node.op_type} on {dtype} (supported: {entry['types']})")
        axes = AXES_INPUT.get(node.op_type)
        if axes is not None and len(node.input) > axes and node.input[axes] and node.input[axes] not in constants:
            problems.append(f"{node.name}: {node.op_type} axes not an initializer")
    return problems
