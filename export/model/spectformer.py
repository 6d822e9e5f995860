"""SpectFormer-T-w, the first Tiny-BioMoE encoder (224x224 RGB -> 96-D), without its classification head.

Four stages of (64, 128, 320, 96) channels at strides (4, 8, 16, 32), one block each. Stages 1 and 2 mix
tokens with spectral gating, stages 3 and 4 with multi-head attention. A class-attention block refines
the mean of the stage-4 tokens, and ``norm4`` of that class token is the embedding.

LayerNorm eps: 1e-6 in the blocks, the stage norms and the class block; the stem's and the downsampling
layers' own LayerNorms keep PyTorch's default 1e-5 (the reference builds them without ``norm_layer``).
GELU is exact (erf).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .spectral import SpectralGatingNetwork

EMBED_DIMS = (64, 128, 320, 96)
NUM_HEADS = (2, 4, 10, 16)
MLP_RATIOS = (8, 8, 4, 4)
STEM_HIDDEN = 32
#: frequency-grid shape (H, W//2+1) of the spectral gates of stages 1 and 2 (56x56 and 28x28 tokens)
SPECTRAL_GRIDS = ((56, 29), (28, 15))
BLOCK_EPS = 1e-6


def _block_norm(dim: int) -> nn.LayerNorm:
    return nn.LayerNorm(dim, eps=BLOCK_EPS)


class DWConv(nn.Module):
    """3x3 depthwise convolution over the token grid."""

    def __init__(self, dim: int):
        super().__init__()
        self.dwconv = nn.Conv2d(dim, dim, 3, 1, 1, bias=True, groups=dim)

    def forward(self, x: torch.Tensor, H: int, W: int) -> torch.Tensor:
        B, N, C = x.shape
        x = self.dwconv(x.transpose(1, 2).reshape(B, C, H, W))
        return x.flatten(2).transpose(1, 2)


def gelu_erf(x: torch.Tensor) -> torch.Tensor:
    """Exact (erf) GELU written ``x * (1 + erf(x / sqrt 2)) * 0.5``, the operator order ONNX Runtime's
    GeluFusion recognises (the exporter's decomposition of ``nn.GELU`` multiplies by 0.5 before x, which it
    leaves as five element-wise kernels over the feed-forwards' widest tensors)."""
    return (x * (torch.erf(x / math.sqrt(2.0)) + 1.0)) * 0.5


class GeluErf(nn.Module):
    """:func:`gelu_erf` as a module: export puts it in place of every exact ``nn.GELU``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return gelu_erf(x)


class ConvFFN(nn.Module):
    """PVTv2 feed-forward: Linear -> depthwise conv -> GELU -> Linear.

    :meth:`use_pointwise_conv_form` (called by export) switches to the export form: the same map on the
    (B, C, H, W) grid, fc1 and fc2 as 1x1 convolutions with the Linear weights, so only the block's
    C-channel input and output are transposed, not the hidden tensor (8x wider in stages 1 and 2), and the
    three convolutions chain in ONNX Runtime's blocked NCHWc layout (and TensorRT's) without layout changes.
    """

    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.dwconv = DWConv(hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)
        # (out, in, 1, 1) copies of fc1 / fc2 weights for the export form; not persistent, so the state dict
        # stays the checkpoint's, and constants in the graph (an Unsqueeze of a parameter would not fold)
        self.register_buffer("pointwise_weight1", None, persistent=False)
        self.register_buffer("pointwise_weight2", None, persistent=False)

    def use_pointwise_conv_form(self) -> None:
        with torch.no_grad():
            self.pointwise_weight1 = self.fc1.weight[:, :, None, None].clone()
            self.pointwise_weight2 = self.fc2.weight[:, :, None, None].clone()

    def forward(self, x: torch.Tensor, H: int, W: int) -> torch.Tensor:
        if self.pointwise_weight1 is not None:
            return self._forward_pointwise_conv(x, H, W)
        return self.fc2(self.act(self.dwconv(self.fc1(x), H, W)))

    def _forward_pointwise_conv(self, x: torch.Tensor, H: int, W: int) -> torch.Tensor:
        B, N, C = x.shape
        x = x.transpose(1, 2).reshape(B, C, H, W)
        x = nn.functional.conv2d(x, self.pointwise_weight1, self.fc1.bias)
        x = self.act(self.dwconv.dwconv(x))
        x = nn.functional.conv2d(x, self.pointwise_weight2, self.fc2.bias)
        return x.flatten(2).transpose(1, 2)


class Attention(nn.Module):
    """Multi-head self-attention with separate q and kv projections."""

    def __init__(self, dim: int, num_heads: int):
        super().__init__()
        self.num_heads = num_heads
        self.scale = (dim // num_heads) ** -0.5
        self.q = nn.Linear(dim, dim)
        self.kv = nn.Linear(dim, dim * 2)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, H: int, W: int) -> torch.Tensor:
        B, N, C = x.shape
        head_dim = C // self.num_heads
        q = self.q(x).reshape(B, N, self.num_heads, head_dim).permute(0, 2, 1, 3)
        kv = self.kv(x).reshape(B, N, 2, self.num_heads, head_dim).permute(2, 0, 3, 1, 4)
        k, v = kv[0], kv[1]
        attn = ((q @ k.transpose(-2, -1)) * self.scale).softmax(dim=-1)
        x = (attn @ v).transpose(1, 2).reshape(B, N, C)
        return self.proj(x)


class Block(nn.Module):
    """Pre-norm block: token mixer (spectral gate or attention) then the conv FFN, both residual."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: int, spectral_grid: tuple[int, int] | None):
        super().__init__()
        self.norm1 = _block_norm(dim)
        self.norm2 = _block_norm(dim)
        if spectral_grid is not None:
            self.attn = SpectralGatingNetwork(dim, *spectral_grid)
        else:
            self.attn = Attention(dim, num_heads)
        self.mlp = ConvFFN(dim, dim * mlp_ratio)

    def forward(self, x: torch.Tensor, H: int, W: int) -> torch.Tensor:
        x = x + self.attn(self.norm1(x), H, W)
        return x + self.mlp(self.norm2(x), H, W)


class Stem(nn.Module):
    """Three conv-BN-ReLU layers (stride 2 first), then a stride-2 projection and LayerNorm: stride 4."""

    def __init__(self, in_channels: int, hidden: int, out_channels: int):
        super().__init__()
        self.conv = nn.Sequential(
            nn.Conv2d(in_channels, hidden, 7, 2, 3, bias=False), nn.BatchNorm2d(hidden), nn.ReLU(),
            nn.Conv2d(hidden, hidden, 3, 1, 1, bias=False), nn.BatchNorm2d(hidden), nn.ReLU(),
            nn.Conv2d(hidden, hidden, 3, 1, 1, bias=False), nn.BatchNorm2d(hidden), nn.ReLU(),
        )
        self.proj = nn.Conv2d(hidden, out_channels, 3, 2, 1)
        self.norm = nn.LayerNorm(out_channels)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, int, int]:
        x = self.proj(self.conv(x))
        H, W = x.shape[2], x.shape[3]
        return self.norm(x.flatten(2).transpose(1, 2)), H, W


class DownSamples(nn.Module):
    """Stride-2 3x3 conv and LayerNorm between stages."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.proj = nn.Conv2d(in_channels, out_channels, 3, 2, 1)
        self.norm = nn.LayerNorm(out_channels)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, int, int]:
        x = self.proj(x)
        H, W = x.shape[2], x.shape[3]
        return self.norm(x.flatten(2).transpose(1, 2)), H, W


class ClassAttention(nn.Module):
    """Attention of the class token (token 0) over all tokens."""

    def __init__(self, dim: int, num_heads: int):
        super().__init__()
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.scale = self.head_dim ** -0.5
        self.kv = nn.Linear(dim, dim * 2)
        self.q = nn.Linear(dim, dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, N, C = x.shape
        kv = self.kv(x).reshape(B, N, 2, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        k, v = kv[0], kv[1]
        q = self.q(x[:, :1, :]).reshape(B, self.num_heads, 1, self.head_dim)
        attn = ((q * self.scale) @ k.transpose(-2, -1)).softmax(dim=-1)
        cls = (attn @ v).transpose(1, 2).reshape(B, 1, C)
        return self.proj(cls)


class ClassFFN(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class ClassBlock(nn.Module):
    """Class-attention block: only the class token is updated; returns the refined class token (B, 1, C)."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: int):
        super().__init__()
        self.norm1 = _block_norm(dim)
        self.norm2 = _block_norm(dim)
        self.attn = ClassAttention(dim, num_heads)
        self.mlp = ClassFFN(dim, dim * mlp_ratio)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        cls = x[:, :1] + self.attn(self.norm1(x))
        return cls + self.mlp(self.norm2(cls))


class SpectFormerTW(nn.Module):
    """SpectFormer-T-w encoder: (B, 3, 224, 224) -> (B, 96)."""

    def __init__(self):
        super().__init__()
        for i, dim in enumerate(EMBED_DIMS):
            if i == 0:
                patch_embed = Stem(3, STEM_HIDDEN, dim)
            else:
                patch_embed = DownSamples(EMBED_DIMS[i - 1], dim)
            grid = SPECTRAL_GRIDS[i] if i < len(SPECTRAL_GRIDS) else None
            setattr(self, f"patch_embed{i + 1}", patch_embed)
            setattr(self, f"block{i + 1}", nn.ModuleList([Block(dim, NUM_HEADS[i], MLP_RATIOS[i], grid)]))
            setattr(self, f"norm{i + 1}", _block_norm(dim))
        self.post_network = nn.ModuleList([ClassBlock(EMBED_DIMS[-1], NUM_HEADS[-1], MLP_RATIOS[-1])])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B = x.shape[0]
        last = len(EMBED_DIMS) - 1
        for i in range(len(EMBED_DIMS)):
            x, H, W = getattr(self, f"patch_embed{i + 1}")(x)
            for blk in getattr(self, f"block{i + 1}"):
                x = blk(x, H, W)
            if i != last:  # back to an image for the next downsampling
                x = getattr(self, f"norm{i + 1}")(x)
                x = x.reshape(B, H, W, -1).permute(0, 3, 1, 2).contiguous()
        # class token = mean of the stage-4 tokens, refined by class attention over [cls, tokens]
        x = torch.cat((x.mean(dim=1, keepdim=True), x), dim=1)
        cls = x
        for blk in self.post_network:
            cls = torch.cat((blk(cls), cls[:, 1:]), dim=1)
        return self.norm4(cls[:, 0])
