"""SpectFormer's spectral gating, in its FFT form and in an exact DFT-matrix form for export.

The gating filters each channel of an H x W token grid in the 2-D frequency domain:

    y = irfft2(rfft2(x, norm="ortho") * w, s=(H, W), norm="ortho")          (over the two spatial axes)

TensorRT's ONNX parser has no DFT operator, so for export the same map is written with real DFT matrices
applied by MatMul: an rfft along W is two real (W -> W//2+1) products (cosine and minus sine), the full FFT
along H is a complex (H x H) product expanded into real and imaginary parts, and the inverse runs the same
steps backwards. The c2r step weights bin k by 1 for k = 0 and k = W/2 (the grids here are even) and by 2 otherwise, and
ignores the imaginary part of those two bins, exactly as ``torch.fft.irfft`` (pocketfft c2r) does.
"""

from __future__ import annotations

import math

import torch
from torch import nn


def _dft_matrices(n: int, n_out: int) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and sin of 2 pi k j / n for k < n_out, j < n, scaled by 1/sqrt(n) (norm="ortho"), in float64."""
    k = torch.arange(n_out, dtype=torch.float64)[:, None]
    j = torch.arange(n, dtype=torch.float64)[None, :]
    angle = 2.0 * math.pi * ((k * j) % n) / n  # reduce k*j mod n first: exact angles for large products
    scale = 1.0 / math.sqrt(n)
    cos, sin = torch.cos(angle), torch.sin(angle)
    # exact zeros where the true value is 0 (cos(pi/2) evaluates to 6e-17)
    cos[cos.abs() < 1e-12] = 0.0
    sin[sin.abs() < 1e-12] = 0.0
    return cos * scale, sin * scale


class SpectralGatingNetwork(nn.Module):
    """Global filter over an (H, W) token grid; ``complex_weight`` is (H, W//2+1, C, 2) (real, imag)."""

    def __init__(self, dim: int, h: int, w: int):
        super().__init__()
        self.h, self.w = h, w  # token grid h x W with w = W//2 + 1 frequency bins (W even: W = 2 (w - 1))
        self.complex_weight = nn.Parameter(torch.randn(h, w, dim, 2) * 0.02)
        #: False: torch.fft (the reference). True: the DFT-free MatMul form that export uses.
        self.use_dft_matmul = False
        # set by freeze_gate() for export
        self.register_buffer("frozen_gate_re", None, persistent=False)
        self.register_buffer("frozen_gate_im", None, persistent=False)
        W = 2 * (w - 1)
        cos_w, sin_w = _dft_matrices(W, w)  # (w, W)
        cos_h, sin_h = _dft_matrices(h, h)  # (h, h), symmetric
        # c2r weights: DC and Nyquist count once, every other bin twice (for its conjugate twin)
        bin_weight = torch.full((w, 1), 2.0, dtype=torch.float64)
        bin_weight[0] = bin_weight[-1] = 1.0
        # constants of the MatMul form; not persistent, so the state dict stays the checkpoint's
        for name, value in (("dft_cos_w", cos_w.t()), ("dft_sin_w", sin_w.t()), ("dft_cos_h", cos_h),
                            ("dft_sin_h", sin_h), ("idft_cos_w", cos_w * bin_weight),
                            ("idft_sin_w", sin_w * bin_weight)):
            self.register_buffer(name, value.to(torch.float32).contiguous(), persistent=False)

    def forward(self, x: torch.Tensor, H: int, W: int) -> torch.Tensor:
        B, N, C = x.shape
        if self.use_dft_matmul:
            return self._forward_matmul(x, H, W)
        x = x.view(B, H, W, C).to(torch.float32)
        x = torch.fft.rfft2(x, dim=(1, 2), norm="ortho")
        x = x * torch.view_as_complex(self.complex_weight)
        x = torch.fft.irfft2(x, s=(H, W), dim=(1, 2), norm="ortho")
        return x.reshape(B, N, C)

    def gate_planes(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Real and imaginary parts of the weight as (C, h, w//2+1); frozen copies once export prepared them."""
        if self.frozen_gate_re is not None:
            return self.frozen_gate_re, self.frozen_gate_im
        return self.complex_weight[..., 0].permute(2, 0, 1), self.complex_weight[..., 1].permute(2, 0, 1)

    def freeze_gate(self) -> None:
        """Store the gate planes as constants (C, h, w//2+1), so the exported graph holds them ready."""
        with torch.no_grad():
            re, im = self.gate_planes()
        self.frozen_gate_re, self.frozen_gate_im = re.contiguous(), im.contiguous()

    def _forward_matmul(self, x: torch.Tensor, H: int, W: int) -> torch.Tensor:
        B, N, C = x.shape
        h, w = self.h, 2 * (self.w - 1)  # fixed by the weight's shape, so the DFT matrices are constants
        x = x.transpose(1, 2).reshape(B, C, h, w)
        # rfft along W: X_k = sum_j x_j (cos - i sin)
        re = torch.matmul(x, self.dft_cos_w)  # (B, C, h, w//2+1)
        im = -torch.matmul(x, self.dft_sin_w)
        # fft along H: (cos_h - i sin_h) @ (re + i im)
        cos_h, sin_h = self.dft_cos_h, self.dft_sin_h
        re, im = (torch.matmul(cos_h, re) + torch.matmul(sin_h, im),
                  torch.matmul(cos_h, im) - torch.matmul(sin_h, re))
        # gate: complex product with the learned weight, laid out as (C, h, w//2+1)
        w_re, w_im = self.gate_planes()
        re, im = re * w_re - im * w_im, re * w_im + im * w_re
        # inverse fft along H: (cos_h + i sin_h) @ (re + i im)
        re, im = (torch.matmul(cos_h, re) - torch.matmul(sin_h, im),
                  torch.matmul(cos_h, im) + torch.matmul(sin_h, re))
        # c2r along W: sum_k a_k (re_k cos - im_k sin); imaginary parts of DC and Nyquist drop out (sin = 0)
        y = torch.matmul(re, self.idft_cos_w) - torch.matmul(im, self.idft_sin_w)  # (B, C, h, w)
        return y.reshape(B, C, h * w).transpose(1, 2)
