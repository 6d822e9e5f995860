"""Tiny-BioMoE: two expert encoders over a normalised image, gated and joined into a 192-D embedding.

    x  = LayerNorm((3, 224, 224))(image)                    # ``ln_img``: one norm over all 150,528 values
    zi = encoder_i(x)                                         # SpectFormer-T-w, EfficientViT-w: 96-D each
    zi = LayerNorm(96)(zi) * Hardtanh(0, 1)(Linear(ELU(zi)))  # ``ln_e`` and ``fcn`` are shared by both
    out = LayerNorm(192)(concat(z1, z2))                      # ``ln_out``

The LayerNorms here use PyTorch's default eps (1e-5).
"""

from __future__ import annotations

import torch
from torch import nn

from biomoe_edge.vocabulary import EMBEDDING_DIM, IMAGE_SHAPE

from .efficientvit import EfficientViTW
from .spectformer import SpectFormerTW

EXPERT_DIM = 96


class TinyBioMoE(nn.Module):
    """forward(float32 (B, 3, 224, 224) in [0, 1]) -> (B, 192)."""

    def __init__(self):
        super().__init__()
        self.enc1 = SpectFormerTW()
        self.enc2 = EfficientViTW()
        self.ln_img = nn.LayerNorm(IMAGE_SHAPE)
        self.ln_e = nn.LayerNorm(EXPERT_DIM)
        self.ln_out = nn.LayerNorm(EMBEDDING_DIM)
        self.fcn = nn.Sequential(nn.ELU(), nn.Linear(EXPERT_DIM, EXPERT_DIM), nn.Hardtanh(0.0, 1.0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.ln_img(x)
        z1 = self.enc1(x)
        z2 = self.enc2(x)
        z1 = self.ln_e(z1) * self.fcn(z1)
        z2 = self.ln_e(z2) * self.fcn(z2)
        return self.ln_out(torch.cat((z1, z2), dim=1))
