"""What is in an ONNX graph: operator counts by type and element type, I/O, opset, weight size (for ``inspect``)."""

from __future__ import annotations

import collections
import pathlib

#: Version of the graph form ``export_onnx`` writes, recorded in every manifest as ``export_format``. Bumped
#: whenever the same checkpoint would export to a different graph (2: SpectFormer feed-forwards as 1x1
#: convolutions, GELU in ONNX Runtime's fusable order), so caches of exported files can key on it and never
#: reuse an older form. Here, not in ``onnx_export``, because reading it must not import torch.
EXPORT_FORMAT = 2


def tensor_types(model) -> dict[str, int]:
    """ONNX element type of every named tensor (inputs, outputs, initializers, inferred intermediates)."""
    import onnx

    inferred = onnx.shape_inference.infer_shapes(model)
    types = {}
    for value in [*inferred.graph.input, *inferred.graph.output, *inferred.graph.value_info]:
        types[value.name] = value.type.tensor_type.elem_type
    for init in inferred.graph.initializer:
        types[init.name] = init.data_type
    for node in inferred.graph.node:
        if node.op_type == "Constant":
            for attr in node.attribute:
                if attr.name == "value":
                    types[node.output[0]] = attr.t.data_type
    return types


def operator_summary(path) -> dict:
    """{"opset", "inputs", "outputs", "nodes", "operators": {op: {dtype: count}}, "parameters", "weight_bytes"}."""
    import onnx

    model = onnx.load(str(path))
    types = tensor_types(model)
    operators: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    for node in model.graph.node:
        first = next((i for i in node.input if i), None)
        dtype = onnx.TensorProto.DataType.Name(types.get(first, 0)) if first else "-"
        operators[node.op_type][dtype] += 1
    initializers = model.graph.initializer
    return {
        "file": pathlib.Path(path).name,
        "opset": {o.domain or "ai.onnx": o.version for o in model.opset_import},
        "inputs": [_describe(v) for v in model.graph.input],
        "outputs": [_describe(v) for v in model.graph.output],
        "nodes": len(model.graph.node),
        "operators": {op: dict(c) for op, c in sorted(operators.items())},
        "parameters": int(sum(_numel(i) for i in initializers)),
        "weight_bytes": int(sum(len(i.raw_data) for i in initializers)),
    }


def _numel(init) -> int:
    n = 1
    for d in init.dims:
        n *= d
    return n


def _describe(value) -> str:
    import onnx

    t = value.type.tensor_type
    dims = [d.dim_param or str(d.dim_value) for d in t.shape.dim]
    return f"{value.name}: {onnx.TensorProto.DataType.Name(t.elem_type)} [{', '.join(dims)}]"


def format_summary(summary: dict) -> str:
    lines = [f"ONNX graph {summary['file']}: opset {summary['opset']}, {summary['nodes']} nodes, "
             f"{summary['parameters']:,} constant values ({summary['weight_bytes'] / 1e6:.1f} MB)"]
    lines += [f"  input  {v}" for v in summary["inputs"]] + [f"  output {v}" for v in summary["outputs"]]
    lines.append("  operators (count by element type of the first input):")
    for op, by_type in summary["operators"].items():
        detail = ", ".join(f"{t} {n}" for t, n in sorted(by_type.items()))
        lines.append(f"    {op:<22} {sum(by_type.values()):>4}  ({detail})")
    return "\n".join(lines)
