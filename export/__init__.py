"""Build time: Tiny-BioMoE checkpoint -> PyTorch model -> ONNX (fp32 | fp16 | int8) -> TensorRT engine.

Needs PyTorch; the gateway (``biomoe_edge.runtime``) never imports this package.
"""
