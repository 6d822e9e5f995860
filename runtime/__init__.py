"""The gateway: BLE samples -> windows -> images -> embeddings -> sinks. No PyTorch unless the PyTorch engine is chosen."""
