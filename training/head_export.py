"""A trained head -> ``head.onnx``: k inputs ``input_0..input_{k-1}`` of (B, 192) float32, one output
``probabilities`` (B, C) float32, dynamic batch, opset 18, checked against PyTorch with ONNX Runtime.

The graph holds only operators TensorRT 10's ONNX parser supports (``HEAD_OPERATORS``, a subset of
onnx-tensorrt's operator table): the export refuses anything else, so a head built here can be composed into a
TensorRT engine (or a BioX-Bridge graph, ``onnx.compose``) without surprises.
"""

from __future__ import annotations

import contextlib
import logging
import pathlib
import warnings

import numpy as np
import torch

from biomoe_edge.durable import move_into_place

from .classifiers import HeadModel, ProbabilitiesGraph, predict_probabilities

OPSET = 18
OUTPUT_NAME = "probabilities"
#: Every operator a head graph may contain; all are in TensorRT 10's ONNX operator table (FP32).
HEAD_OPERATORS = frozenset({"Sub", "Mul", "Add", "Concat", "Gemm", "MatMul", "Elu", "Relu", "Softmax", "Reshape",
                            "Identity", "Constant"})
#: Largest batch the exported graph is declared for (the dynamic batch axis' upper bound).
MAX_BATCH = 4096


def input_names(n_inputs: int) -> list[str]:
    return [f"input_{i}" for i in range(n_inputs)]


@contextlib.contextmanager
def _quiet_exporter():
    """The exporter logs a warning per optional torchvision operator it cannot register: noise for a head."""
    logger = logging.getLogger("torch.onnx")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.setLevel(level)


def export_head_onnx(model: HeadModel, path) -> dict:
    """Write ``model`` as ``path`` (see the module docstring); return ``{"opset", "operators", "input_names",
    "output_name"}``. RuntimeError when the graph holds an operator outside ``HEAD_OPERATORS``."""
    import onnx

    path = pathlib.Path(path)
    graph = ProbabilitiesGraph(model).eval()
    k = model.n_inputs
    names = input_names(k)
    example = tuple(torch.zeros(2, model.center.shape[1]) for _ in range(k))
    batch = torch.export.Dim("batch", min=1, max=MAX_BATCH)
    with _quiet_exporter(), torch.no_grad():
        program = torch.onnx.export(graph, example, dynamo=True, opset_version=OPSET, input_names=names,
                                    output_names=[OUTPUT_NAME], dynamic_shapes=(tuple({0: batch} for _ in range(k)),),
                                    optimize=True, verbose=False, report=False)
    tmp = path.with_name(path.name + ".partial")
    try:
        program.save(str(tmp))
        proto = onnx.load(str(tmp))
        onnx.checker.check_model(proto, full_check=True)
        operators = sorted({node.op_type for node in proto.graph.node})
        foreign = [op for op in operators if op not in HEAD_OPERATORS]
        graph_inputs = [i.name for i in proto.graph.input]
        outputs = [o.name for o in proto.graph.output]
        if foreign or graph_inputs != names or outputs != [OUTPUT_NAME]:
            raise RuntimeError(f"the exported head graph is not of the head form: operators outside the "
                               f"TensorRT-parsable set {foreign}, inputs {graph_inputs} (expected {names}), "
                               f"outputs {outputs}")
        move_into_place(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)  # a graph that failed a check is never left to be mistaken for the head
    return {"opset": OPSET, "operators": operators, "input_names": names, "output_name": OUTPUT_NAME}


def check_head_onnx(path, model: HeadModel, embeddings: np.ndarray, *, rows: int = 512, seed: int = 0) -> dict:
    """Run ``path`` on ONNX Runtime (CPU) and ``model`` in PyTorch on up to ``rows`` training windows plus as many
    scaled random ones (inputs far outside the training range); return the largest absolute difference of
    the probabilities and what was compared."""
    from biomoe_edge.runtime.engines.onnxruntime_engine import cpu_session, import_onnxruntime

    rng = np.random.default_rng(seed)
    real = np.asarray(embeddings[:rows], np.float32)
    scale = float(np.abs(real).max()) if real.size else 1.0
    width = model.center.shape[1]
    synthetic = (rng.standard_normal((max(8, len(real)), model.n_inputs, width)) * 3.0 * scale).astype(np.float32)
    batch = np.concatenate([real, synthetic]) if real.size else synthetic
    session = cpu_session(path)
    feeds = {name: np.ascontiguousarray(batch[:, i]) for i, name in enumerate(input_names(model.n_inputs))}
    onnx_probabilities = session.run([OUTPUT_NAME], feeds)[0]
    torch_probabilities = predict_probabilities(model, batch)
    return {
        "max_abs_diff": float(np.max(np.abs(onnx_probabilities - torch_probabilities))),
        "rows": int(len(batch)),
        "rows_from_dataset": int(len(real)),
        "onnxruntime_version": import_onnxruntime().__version__,
        "torch_version": torch.__version__.split("+")[0],
    }
