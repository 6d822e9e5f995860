"""Tiny-BioMoE in PyTorch, written from the reference architecture: SpectFormer-T-w and EfficientViT-w encoders."""

from .efficientvit import EfficientViTW
from .spectformer import SpectFormerTW
from .spectral import SpectralGatingNetwork
from .tiny_biomoe import EMBEDDING_DIM, IMAGE_SHAPE, TinyBioMoE

__all__ = ["EMBEDDING_DIM", "IMAGE_SHAPE", "EfficientViTW", "SpectFormerTW", "SpectralGatingNetwork", "TinyBioMoE"]
