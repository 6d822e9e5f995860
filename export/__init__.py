"""Build time: Tiny-BioMoE checkpoint -> PyTorch model -> ONNX (fp32 | fp16 | int8) -> TensorRT engine.

Needs PyTorch, except ``build_engine`` (TensorRT only), which a Jetson runs without torch: so the names
below are imported lazily (PEP 562), and ``import biomoe_edge.export.tensorrt_builder`` never loads torch.
The gateway (``biomoe_edge.runtime``) imports this package in one place only: its PyTorch engine, when chosen,
builds the model with ``load_tiny_biomoe``.

    model = load_tiny_biomoe("Tiny-BioMoE.pth")
    export_onnx(model, "out/model.onnx", precision="fp16")     # + out/model.json (manifest)
    build_engine("out/model.onnx")                              # on the Jetson: out/model.trt.engine
"""

from __future__ import annotations

import importlib

# public name -> submodule that defines it
_LAZY = {
    "CheckpointError": "checkpoint",
    "RandomWeightsWarning": "checkpoint",
    "load_tiny_biomoe": "checkpoint",
    "INPUT_NAME": "onnx_export",
    "OPSET": "onnx_export",
    "OUTPUT_NAME": "onnx_export",
    "PRECISIONS": "onnx_export",
    "export_onnx": "onnx_export",
    "build_engine": "tensorrt_builder",
    "EXPORT_FORMAT": "graph_info",
}


def __getattr__(name):
    if name in _LAZY:
        module = importlib.import_module(f"{__name__}.{_LAZY[name]}")
        return getattr(module, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_LAZY))


__all__ = sorted(_LAZY)
