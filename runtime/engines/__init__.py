"""Images to embeddings behind one interface: TensorRT, ONNX Runtime, PyTorch."""
