"""The served bridge as one ONNX file: the new modality's pooled features at the bridge's input position (``tap``,
(B, d_new)) in, the old head's class probabilities (B, C) out; FP32 or FP16, TensorRT-parsable operators only,
checked against PyTorch with ONNX Runtime.

The graph holds the bridge and the old model from its entry point(s) on, not the frozen backbone up to the input
position: the gateway's engine returns those features from the run that embeds the window (an engine graph
exported with ``taps``, runtime/engines/taps.py), so serving a bridge never runs the backbone twice.

How: :class:`~.protolrfc.ServedBridge` goes through the SDK's own export path (``biomoe_edge.export.onnx_export``:
BatchNorm folded, SpectFormer's FFT gating in its exact DFT-free MatMul form, ``torch.onnx.export(dynamo=True)``
at the SDK's opset) to a graph whose output is the 192-D embedding; the head's ``head.onnx`` is appended after it
with ``onnx.compose`` (its input ``input_0`` wired to that embedding, its nodes prefixed ``head/``); FP16 is the
SDK's conversion (``biomoe_edge.export.fp16``: LayerNorms, Softmax and reductions stay FP32, I/O stays FP32).

The check runs the graphs on held-out new-modality images' features (the PyTorch walk's, export/model/taps.py)
with ONNX Runtime: the embedding graph against the PyTorch bridged model on the images (torch.fft form), and the
written graph's probabilities against the PyTorch embedding fed to the head as given (``head.onnx``, FP32).
"""

from __future__ import annotations

import logging
import pathlib
import tempfile
import warnings

import numpy as np
import torch

from biomoe_edge.export.model.taps import INPUT_TAPS, capture
from biomoe_edge.export.onnx_export import OPSET, check_onnx, graph_io, prepare_for_export
from biomoe_edge.manifest import write_manifest
from biomoe_edge.runtime.engines.taps import tap_output_name
from biomoe_edge.runtime.heads.bridge import GRAPH_NAME
from biomoe_edge.runtime.heads.head import OUTPUT_NAME, graph_input_name
from biomoe_edge.vocabulary import InputType

from .fit import BridgeFit
from .protolrfc import ServedBridge

log = logging.getLogger(__name__)

EMBEDDING_NAME = "embeddings"
PRECISIONS = ("fp32", "fp16")
HEAD_PREFIX = "head/"


def export_served_embedding_graph(served: ServedBridge, path, max_batch: int) -> None:
    """``served`` as an ONNX graph: input ``tap.<input position>`` (B, d_new) -> ``embeddings`` (B, 192)."""
    export_model = prepare_for_export(served)
    d_new = INPUT_TAPS[served.bridge.input_position].dim
    example = torch.zeros((2, d_new), dtype=torch.float32)
    batch = torch.export.Dim("batch", min=1, max=max(2, max_batch))
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(export_model, (example,), dynamo=True, opset_version=OPSET,
                                    input_names=[tap_output_name(served.bridge.input_position)],
                                    output_names=[EMBEDDING_NAME], dynamic_shapes={"features": {0: batch}},
                                    optimize=True, verbose=False, report=False)
    program.save(str(path))


def append_head(embedding_path: pathlib.Path, head_path: pathlib.Path, out_path: pathlib.Path) -> None:
    """embedding graph + head graph -> one graph (the embedding graph's input -> probabilities)."""
    import onnx
    from onnx import compose, version_converter

    body = onnx.load(str(embedding_path))
    head = onnx.load(str(head_path))
    head_opset = next(o.version for o in head.opset_import if o.domain in ("", "ai.onnx"))
    if head_opset != OPSET:
        head = version_converter.convert_version(head, OPSET)
    head = compose.add_prefix(head, HEAD_PREFIX)
    ir_version = max(body.ir_version, head.ir_version)
    body.ir_version = head.ir_version = ir_version
    # opsets: the union of both (the default domain agrees after the conversion above)
    domains = {(o.domain or ""): o.version for o in body.opset_import}
    for o in head.opset_import:
        domains.setdefault(o.domain or "", o.version)
    for model in (body, head):
        del model.opset_import[:]
        model.opset_import.extend(onnx.helper.make_opsetid(d, v) for d, v in domains.items())
    merged = compose.merge_models(body, head, io_map=[(EMBEDDING_NAME, HEAD_PREFIX + graph_input_name(0))],
                                  producer_name="biomoe-edge bridge")
    # the head's output keeps its documented name
    renamed = HEAD_PREFIX + OUTPUT_NAME
    for node in merged.graph.node:
        node.output[:] = [OUTPUT_NAME if o == renamed else o for o in node.output]
        node.input[:] = [OUTPUT_NAME if i == renamed else i for i in node.input]
    for output in merged.graph.output:
        if output.name == renamed:
            output.name = OUTPUT_NAME
    onnx.save(merged, str(out_path))


def _ort(path, features: np.ndarray, input_name: str, output: str, *, batch: int = 8) -> np.ndarray:
    from biomoe_edge.runtime.engines.onnxruntime_engine import cpu_session

    session = cpu_session(path)
    return np.concatenate([session.run([output], {input_name: np.ascontiguousarray(features[i:i + batch])})[0]
                           for i in range(0, len(features), batch)]).astype(np.float32)


def tap_features(backbone: torch.nn.Module, images: np.ndarray, tap: str) -> np.ndarray:
    """Pooled features (N, dim) of ``images`` at ``tap``, by the PyTorch walk (what a tapped engine returns)."""
    with torch.no_grad():
        return capture(backbone, torch.from_numpy(np.ascontiguousarray(images, np.float32)), inputs=(tap,))[0][tap] \
            .numpy()


def export_bridge(fit: BridgeFit, directory, *, precision: str = "fp32", max_batch: int = 32) -> pathlib.Path:
    """Write ``directory``/bridge.onnx (``precision`` fp32 | fp16) and bridge.json; returns the ONNX path."""
    if precision not in PRECISIONS:
        raise ValueError(f"bridge precision must be one of {PRECISIONS}, got {precision!r}")
    directory = pathlib.Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / GRAPH_NAME
    tap = fit.bridge.input_position
    input_name = tap_output_name(tap)
    images = np.ascontiguousarray(fit.check_images, dtype=np.float32)
    with torch.no_grad():
        reference_embeddings = fit.bridged_model()(torch.from_numpy(images)).numpy()
    reference = fit.head.predict_proba(reference_embeddings)
    features = tap_features(fit.backbone_model, images, tap)
    with tempfile.TemporaryDirectory(prefix="biomoe-bridge-") as tmp:
        embedding_path = pathlib.Path(tmp) / "embedding.onnx"
        fp32_path = path if precision == "fp32" else pathlib.Path(tmp) / "bridge_fp32.onnx"
        export_served_embedding_graph(ServedBridge(fit.backbone_model, fit.bridge).eval(), embedding_path,
                                      max_batch)
        embedding_check = float(np.abs(_ort(embedding_path, features, input_name, EMBEDDING_NAME)
                                       - reference_embeddings).max())
        append_head(embedding_path, fit.head.onnx_path, fp32_path)
        check_onnx(fp32_path)
        if precision == "fp16":
            from biomoe_edge.export.fp16 import convert_fp16

            convert_fp16(fp32_path, path)
            check_onnx(path)
        got = _ort(path, features, input_name, OUTPUT_NAME)
    inputs, outputs, opset = graph_io(path)
    onnx_check = {"reference": "PyTorch bridged model on the images (torch.fft spectral gates) -> head.onnx on "
                               "ONNX Runtime",
                  "runtime": "onnxruntime CPU, fed the PyTorch walk's features at the tap",
                  "images": f"{len(images)} held-out {fit.new_modality} windows",
                  "probabilities_max_abs": float(np.abs(got - reference).max()),
                  "argmax_agreement": float((got.argmax(1) == reference.argmax(1)).mean()),
                  "embeddings_max_abs_fp32": embedding_check}
    log.info("bridge %s ONNX vs PyTorch: probabilities max abs %.3g", precision, onnx_check["probabilities_max_abs"])
    write_manifest(path, {
        "kind": "bridge",
        "inputs": [str(InputType(fit.new_modality, fit.new_representation))],
        # The engine returns these features beside the embedding (`biomoe-edge export --taps TAP`).
        "tap": tap,
        "classes": list(fit.head.classes),
        "old_inputs": fit.head.inputs,
        "precision": precision,
        "opset": opset,
        "graph_inputs": inputs,
        "graph_outputs": outputs,
        "max_batch": max_batch,
        "positions": fit.positions,
        "rank": fit.rank,
        "prototypes": fit.prototypes,
        "initialisation": fit.initialisation,
        "trainable_parameters": fit.trainable_parameters,
        "trainable_parameters_by_entry_point": {e: m.parameter_count()
                                                for e, m in zip(fit.bridge.entry_points, fit.bridge.maps)},
        "training": fit.training,
        "fit_curve": fit.curve,
        "held_out": fit.held_out,
        "data": fit.data,
        "timings": fit.timings,
        # The weights and precision whose features the bridge (and its old head) was fitted on, as a head's
        # manifest names them: the gateway serves the bridge where it would serve that head (the graph's own
        # precision is ``precision`` above).
        "backbone": dict(fit.backbone),
        "head": {"path": str(fit.head.directory), "sha256": fit.head.sha256, "backbone": fit.head.backbone},
        "onnx_check": onnx_check,
        "serving": "a graph on the engine's features: the gateway renders the new modality's windows as `inputs` "
                   "names them, its engine (exported with the tap) returns their features at `tap` from the run "
                   "that embeds them, and this graph (the bridge and the old model from the output position on, "
                   "then the head) turns them into PredictionRecords with via_bridge=true",
    })
    return path
