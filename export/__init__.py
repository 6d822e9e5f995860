"""Build time: Tiny-BioMoE checkpoint -> PyTorch model -> ONNX (fp32 | fp16 | int8) -> TensorRT engine.

Needs PyTorch; the gateway (``biomoe_edge.runtime``) never imports this package.

    model = load_tiny_biomoe("Tiny-BioMoE.pth")
    export_onnx(model, "out/model.onnx", precision="fp16")     # + out/model.json (manifest)
    build_engine("out/model.onnx", "out/model.engine")          # on the Jetson, needs TensorRT
"""

from __future__ import annotations

from .checkpoint import CheckpointError, RandomWeightsWarning, load_tiny_biomoe
from .onnx_export import INPUT_NAME, OPSET, OUTPUT_NAME, PRECISIONS, export_onnx


def build_engine(onnx_path, engine_path=None, **options):
    """Build a TensorRT engine from an exported ONNX file; see :mod:`biomoe_edge.export.tensorrt_builder`.

    Imported on call so that this package imports without TensorRT (and before that module exists).
    """
    from .tensorrt_builder import build_engine as _build_engine

    return _build_engine(onnx_path, engine_path, **options)


__all__ = ["CheckpointError", "INPUT_NAME", "OPSET", "OUTPUT_NAME", "PRECISIONS", "RandomWeightsWarning",
           "build_engine", "export_onnx", "load_tiny_biomoe"]
