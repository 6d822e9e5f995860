"""Build time, after the embedding: task heads on Tiny-BioMoE embeddings (intra- and multimodal fusion) and
BioX-Bridge bridges that carry a head to a wearable of another modality. Needs PyTorch (the ``export`` extra),
like ``biomoe_edge.export``; what it writes (``head.onnx``/``head.json``, ``bridge.onnx``/``bridge.json``) is
served by ``biomoe_edge.runtime`` with ONNX Runtime or TensorRT alone.
"""
