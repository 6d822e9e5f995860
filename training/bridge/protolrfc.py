"""The bridge network (protoLRFC) and the bridged model it sits in.

protoLRFC, for an input x (B, d_new) (the new model's pooled features at the input position)::

    attn = (x A^T B^T).reshape(B, P, T)      A: (r, d_new) Kaiming-uniform, B: (P*T, r) zeros
    out  = prototypes @ attn                  prototypes: (d_old, P)  ->  out (B, d_old, T)

a low-rank map from the new features to mixing weights of P prototype vectors at each of the T token positions
of the old layer. No softmax, bias or activation. Trainable parameters r*d_new + r*P*T + d_old*P; B at zero makes
the bridge output exactly zero before training.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from biomoe_edge.export.model.taps import ENTRY_POINTS, INPUT_TAPS, capture, run_from

from .exc import BridgeConfigError

INITIALISATIONS = ("real", "random")


class ProtoLRFC(nn.Module):
    """(B, d_new) -> (B, d_old, tokens); see the module docstring."""

    def __init__(self, d_new: int, d_old: int, tokens: int, rank: int, prototypes: int):
        super().__init__()
        self.d_new, self.d_old, self.tokens = d_new, d_old, tokens
        self.rank, self.n_prototypes = rank, prototypes
        self.A = nn.Parameter(torch.empty(rank, d_new))
        nn.init.kaiming_uniform_(self.A, a=math.sqrt(5))  # nn.Linear's default for a (rank, d_new) weight
        self.B = nn.Parameter(torch.zeros(prototypes * tokens, rank))
        self.prototypes = nn.Parameter(torch.empty(d_old, prototypes))
        nn.init.normal_(self.prototypes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        attn = torch.matmul(torch.matmul(x, self.A.t()), self.B.t()).reshape(-1, self.n_prototypes, self.tokens)
        return torch.matmul(self.prototypes, attn)

    def parameter_count(self) -> int:
        return sum(p.numel() for p in self.parameters())


def check_bridge_shape(d_new: int, entry: str, rank: int, prototypes: int, *, available_tokens: int | None = None):
    """BridgeConfigError when ``rank`` or ``prototypes`` do not fit a bridge from d_new features into ``entry``."""
    tap = ENTRY_POINTS[entry]
    if not (isinstance(rank, int) and rank >= 1):
        raise BridgeConfigError(f"rank must be a positive integer, got {rank!r}")
    if not (isinstance(prototypes, int) and prototypes >= 1):
        raise BridgeConfigError(f"prototype count must be a positive integer, got {prototypes!r}")
    full = min(d_new, prototypes * tap.tokens)
    if rank > full:
        raise BridgeConfigError(
            f"rank {rank} does not fit the bridge into {entry!r}: x A^T B^T maps {d_new} input features to "
            f"{prototypes}x{tap.tokens} mixing weights, whose rank is at most {full}; use a rank <= {full}")
    if prototypes > tap.dim:
        raise BridgeConfigError(
            f"{prototypes} prototypes do not fit {entry!r}: its tokens are {tap.dim}-D, so more than {tap.dim} "
            f"prototypes only add parameters, never directions; use at most {tap.dim}")
    if available_tokens is not None and prototypes > available_tokens:
        raise BridgeConfigError(
            f"{prototypes} prototypes cannot be initialised from real {entry!r} features: only {available_tokens} "
            "distinct real tokens were sampled from the training windows; use fewer prototypes or init 'random'")


class Bridge(nn.Module):
    """One protoLRFC per entry point of the output position, all fed by the same pooled input features."""

    def __init__(self, input_position: str, entry_points, *, rank: int, prototypes: int):
        super().__init__()
        if input_position not in INPUT_TAPS:
            raise BridgeConfigError(f"unknown input position {input_position!r}; expected one of {list(INPUT_TAPS)}")
        self.input_position = input_position
        self.entry_points = tuple(entry_points)
        d_new = INPUT_TAPS[input_position].dim
        for entry in self.entry_points:
            if entry not in ENTRY_POINTS:
                raise BridgeConfigError(f"unknown output entry point {entry!r}; expected some of {list(ENTRY_POINTS)}")
            check_bridge_shape(d_new, entry, rank, prototypes)
        self.maps = nn.ModuleList(ProtoLRFC(d_new, ENTRY_POINTS[e].dim, ENTRY_POINTS[e].tokens, rank, prototypes)
                                  for e in self.entry_points)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return {entry: m(x) for entry, m in zip(self.entry_points, self.maps)}

    def parameter_count(self) -> int:
        return sum(m.parameter_count() for m in self.maps)

    def init_prototypes(self, how: str, real_tokens: dict[str, np.ndarray] | None = None, *, seed: int = 0) -> None:
        """``"real"``: each map's prototypes are distinct real old-model tokens at its entry point (``real_tokens``
        name -> (n, dim), drawn from the training windows), as in the paper; ``"random"``: standard normal, as in
        the authors' released scripts."""
        if how not in INITIALISATIONS:
            raise BridgeConfigError(f"prototype initialisation must be one of {INITIALISATIONS}, got {how!r}")
        generator = torch.Generator().manual_seed(seed)
        rng = np.random.default_rng(seed)
        for entry, m in zip(self.entry_points, self.maps):
            with torch.no_grad():
                if how == "random":
                    m.prototypes.copy_(torch.randn(m.prototypes.shape, generator=generator))
                    continue
                tokens = np.unique(np.asarray(real_tokens[entry], dtype=np.float32), axis=0)
                check_bridge_shape(m.d_new, entry, m.rank, m.n_prototypes, available_tokens=len(tokens))
                chosen = rng.choice(len(tokens), m.n_prototypes, replace=False)
                m.prototypes.copy_(torch.from_numpy(tokens[chosen].T.copy()))


class BridgedModel(nn.Module):
    """New-modality images (B, 3, 224, 224) -> the old model's 192-D embedding through the bridge:
    new model up to the input position -> pool -> bridge -> old model from the entry point(s).
    ``backbone`` (Tiny-BioMoE) serves as both: its weights are shared, and frozen."""

    def __init__(self, backbone: nn.Module, bridge: Bridge):
        super().__init__()
        self.backbone = backbone
        self.bridge = bridge

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        pooled, _ = capture(self.backbone, images, inputs=(self.bridge.input_position,))
        return run_from(self.backbone, self.bridge(pooled[self.bridge.input_position]))


class ServedBridge(nn.Module):
    """What the served graph computes: the new modality's pooled features at the input position (B, d_new), as
    the engine's run returns them (``export_onnx(..., taps=...)``) -> the bridge -> the old model from the entry
    point(s) -> the 192-D embedding. The frozen backbone up to the input position is the engine's, not here."""

    def __init__(self, backbone: nn.Module, bridge: Bridge):
        super().__init__()
        self.backbone = backbone
        self.bridge = bridge

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return run_from(self.backbone, self.bridge(features))
