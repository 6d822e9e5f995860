"""Tiny-BioMoE in PyTorch, written from the reference architecture: SpectFormer-T-w and EfficientViT-w encoders."""
