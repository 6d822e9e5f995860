"""EfficientViT-w, the second Tiny-BioMoE encoder (224x224 RGB -> 96-D), without its classification head.

Embed dims (192, 288, 96) at 14x14, 7x7 and 4x4 tokens; one block per stage; heads (3, 3, 4); key_dim 16;
window 7; depthwise query kernels (7, 5, 3, 3). Token mixing is cascaded group attention: head i sees its
channel group plus head i-1's output, with a learned relative-position bias table ``attention_biases``
indexed by the buffer ``attention_bias_idxs``. Every convolution is followed by BatchNorm (``Conv2dBN``),
which export folds into the convolution.
"""

from __future__ import annotations

import itertools

import torch
from torch import nn

IMG_SIZE = 224
PATCH_SIZE = 16
EMBED_DIMS = (192, 288, 96)
KEY_DIM = 16
NUM_HEADS = (3, 3, 4)
WINDOW = 7
KERNELS = (7, 5, 3, 3)


class Conv2dBN(nn.Module):
    """Conv2d without bias followed by BatchNorm2d (state-dict keys ``c.*`` and ``bn.*``)."""

    def __init__(self, in_ch: int, out_ch: int, ks: int = 1, stride: int = 1, pad: int = 0, groups: int = 1):
        super().__init__()
        self.c = nn.Conv2d(in_ch, out_ch, ks, stride, pad, groups=groups, bias=False)
        self.bn = nn.BatchNorm2d(out_ch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.c(x))


class Residual(nn.Module):
    def __init__(self, m: nn.Module):
        super().__init__()
        self.m = m

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.m(x)


class FFN(nn.Module):
    """Pointwise conv -> ReLU -> pointwise conv."""

    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.pw1 = Conv2dBN(dim, hidden)
        self.act = nn.ReLU()
        self.pw2 = Conv2dBN(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pw2(self.act(self.pw1(x)))


class SqueezeExcite(nn.Module):
    """Squeeze-and-excitation: global mean -> 1x1 conv -> ReLU -> 1x1 conv -> sigmoid gate."""

    def __init__(self, channels: int, reduced: int):
        super().__init__()
        self.fc1 = nn.Conv2d(channels, reduced, 1)
        self.act = nn.ReLU()
        self.fc2 = nn.Conv2d(reduced, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = self.fc2(self.act(self.fc1(x.mean((2, 3), keepdim=True))))
        return x * torch.sigmoid(s)


class PatchMerging(nn.Module):
    """Stride-2 downsampling between stages: 1x1 expand x4, 3x3 depthwise stride 2, SE, 1x1 project."""

    def __init__(self, dim: int, out_dim: int):
        super().__init__()
        hidden = dim * 4
        self.conv1 = Conv2dBN(dim, hidden)
        self.act = nn.ReLU()
        self.conv2 = Conv2dBN(hidden, hidden, 3, 2, 1, groups=hidden)
        self.se = SqueezeExcite(hidden, hidden // 4)
        self.conv3 = Conv2dBN(hidden, out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv3(self.se(self.act(self.conv2(self.act(self.conv1(x))))))


def relative_position_index(resolution: int) -> tuple[torch.Tensor, int]:
    """(N, N) index into the bias table of each pair of window positions by |dy|, |dx|; and the table size."""
    points = list(itertools.product(range(resolution), range(resolution)))
    offsets: dict[tuple[int, int], int] = {}
    idxs = []
    for p1 in points:
        for p2 in points:
            offset = (abs(p1[0] - p2[0]), abs(p1[1] - p2[1]))
            idxs.append(offsets.setdefault(offset, len(offsets)))
    n = len(points)
    return torch.tensor(idxs, dtype=torch.int64).view(n, n), len(offsets)


class CascadedGroupAttention(nn.Module):
    """Cascaded group attention over one window of ``resolution`` x ``resolution`` tokens."""

    def __init__(self, dim: int, key_dim: int, num_heads: int, attn_ratio: float, resolution: int,
                 kernels: tuple[int, ...]):
        super().__init__()
        self.num_heads = num_heads
        self.scale = key_dim ** -0.5
        self.key_dim = key_dim
        self.d = int(attn_ratio * key_dim)
        self.qkvs = nn.ModuleList(Conv2dBN(dim // num_heads, key_dim * 2 + self.d) for _ in range(num_heads))
        self.dws = nn.ModuleList(Conv2dBN(key_dim, key_dim, kernels[i], 1, kernels[i] // 2, groups=key_dim)
                                 for i in range(num_heads))
        self.proj = nn.Sequential(nn.ReLU(), Conv2dBN(self.d * num_heads, dim))
        idxs, n_offsets = relative_position_index(resolution)
        self.attention_biases = nn.Parameter(torch.zeros(num_heads, n_offsets))
        self.register_buffer("attention_bias_idxs", idxs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, C, H, W = x.shape
        # gathered from the current table on every call (export folds this constant)
        biases = self.attention_biases[:, self.attention_bias_idxs]
        feats_in = x.chunk(self.num_heads, dim=1)
        feats_out = []
        feat = feats_in[0]
        for i, qkv in enumerate(self.qkvs):
            if i > 0:
                feat = feat + feats_in[i]
            feat = qkv(feat)
            q, k, v = feat.view(B, -1, H, W).split([self.key_dim, self.key_dim, self.d], dim=1)
            q = self.dws[i](q)
            q, k, v = q.flatten(2), k.flatten(2), v.flatten(2)
            attn = (q.transpose(-2, -1) @ k) * self.scale + biases[i]
            attn = attn.softmax(dim=-1)
            feat = (v @ attn.transpose(-2, -1)).view(B, self.d, H, W)
            feats_out.append(feat)
        return self.proj(torch.cat(feats_out, 1))


class LocalWindowAttention(nn.Module):
    """Cascaded group attention inside non-overlapping windows (padding the grid to whole windows)."""

    def __init__(self, dim: int, key_dim: int, num_heads: int, attn_ratio: float, resolution: int,
                 window_resolution: int, kernels: tuple[int, ...]):
        super().__init__()
        self.resolution = resolution
        self.window_resolution = window_resolution
        self.attn = CascadedGroupAttention(dim, key_dim, num_heads, attn_ratio,
                                           min(window_resolution, resolution), kernels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        H = W = self.resolution
        ws = self.window_resolution
        if H <= ws and W <= ws:
            return self.attn(x)
        B, C = x.shape[0], x.shape[1]
        x = x.permute(0, 2, 3, 1)
        pad_b = (ws - H % ws) % ws
        pad_r = (ws - W % ws) % ws
        if pad_b or pad_r:
            x = nn.functional.pad(x, (0, 0, 0, pad_r, 0, pad_b))
        pH, pW = H + pad_b, W + pad_r
        nH, nW = pH // ws, pW // ws
        x = x.view(B, nH, ws, nW, ws, C).transpose(2, 3).reshape(B * nH * nW, ws, ws, C).permute(0, 3, 1, 2)
        x = self.attn(x)
        x = x.permute(0, 2, 3, 1).view(B, nH, nW, ws, ws, C).transpose(2, 3).reshape(B, pH, pW, C)
        if pad_b or pad_r:
            x = x[:, :H, :W].contiguous()
        return x.permute(0, 3, 1, 2)


class EfficientViTBlock(nn.Module):
    """dw conv -> FFN -> windowed attention -> dw conv -> FFN, each residual."""

    def __init__(self, dim: int, key_dim: int, num_heads: int, attn_ratio: float, resolution: int):
        super().__init__()
        self.dw0 = Residual(Conv2dBN(dim, dim, 3, 1, 1, groups=dim))
        self.ffn0 = Residual(FFN(dim, dim * 2))
        self.mixer = Residual(LocalWindowAttention(dim, key_dim, num_heads, attn_ratio, resolution, WINDOW,
                                                   KERNELS))
        self.dw1 = Residual(Conv2dBN(dim, dim, 3, 1, 1, groups=dim))
        self.ffn1 = Residual(FFN(dim, dim * 2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.ffn1(self.dw1(self.mixer(self.ffn0(self.dw0(x)))))


def _dw_ffn(dim: int) -> nn.Sequential:
    return nn.Sequential(Residual(Conv2dBN(dim, dim, 3, 1, 1, groups=dim)), Residual(FFN(dim, dim * 2)))


class EfficientViTW(nn.Module):
    """EfficientViT-w encoder: (B, 3, 224, 224) -> (B, 96) (global average of the last stage)."""

    def __init__(self):
        super().__init__()
        e0 = EMBED_DIMS[0]
        self.patch_embed = nn.Sequential(
            Conv2dBN(3, e0 // 8, 3, 2, 1), nn.ReLU(),
            Conv2dBN(e0 // 8, e0 // 4, 3, 2, 1), nn.ReLU(),
            Conv2dBN(e0 // 4, e0 // 2, 3, 2, 1), nn.ReLU(),
            Conv2dBN(e0 // 2, e0, 3, 2, 1),
        )
        resolution = IMG_SIZE // PATCH_SIZE
        stages: list[list[nn.Module]] = [[] for _ in EMBED_DIMS]
        for i, (dim, heads) in enumerate(zip(EMBED_DIMS, NUM_HEADS)):
            attn_ratio = dim / (KEY_DIM * heads)
            stages[i].append(EfficientViTBlock(dim, KEY_DIM, heads, attn_ratio, resolution))
            if i + 1 < len(EMBED_DIMS):  # subsample by 2 into the next stage
                nxt = EMBED_DIMS[i + 1]
                stages[i + 1] += [_dw_ffn(dim), PatchMerging(dim, nxt), _dw_ffn(nxt)]
                resolution = (resolution - 1) // 2 + 1
        self.blocks1 = nn.Sequential(*stages[0])
        self.blocks2 = nn.Sequential(*stages[1])
        self.blocks3 = nn.Sequential(*stages[2])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.blocks3(self.blocks2(self.blocks1(self.patch_embed(x))))
        return x.mean((2, 3))
