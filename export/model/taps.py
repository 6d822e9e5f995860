"""Feature taps on Tiny-BioMoE: its intermediate features at named positions, and the model run onwards from a
named position to the 192-D embedding. BioX-Bridge (``biomoe_edge.training.bridge``) reads a new modality's
features at an *input tap* and feeds the old modality's model at an *entry point*.

Nothing here changes the model: the walks below call the model's own submodules in the order of
``TinyBioMoE.forward`` (and ``SpectFormerTW.forward``, ``EfficientViTW.forward``), so that running from an entry
point on the features captured there gives ``forward``'s result exactly (tests/export/test_export_taps.py), and
the exported graphs of ``biomoe_edge.export`` never see this module.

Input taps (features of the whole window, mean-pooled over the token grid; ``dim`` each)::

    enc1.stage1..3   SpectFormer stage outputs after the stage norm (64, 128, 320)     56x56, 28x28, 14x14 tokens
    enc1.stage4      SpectFormer stage-4 tokens, before the class block (96)             7x7
    enc1.embedding   SpectFormer's 96-D embedding (norm4 of the refined class token)
    enc2.stage1..2   EfficientViT blocks1 / blocks2 outputs (192, 288)                  14x14, 7x7
    enc2.embedding   EfficientViT's 96-D embedding (mean of blocks3's 4x4 output)
    gated            both embeddings gated by ln_e * fcn and concatenated (192): the input of ln_out
    embedding        the model's output (192)

Entry points (an old-model layer's input, in the bridge's layout (B, dim, tokens))::

    enc1.block2..4   tokens entering SpectFormer block 2 / 3 / 4 (after its patch embedding)  784, 196, 49 tokens
    enc2.blocks2..3  the grid entering EfficientViT blocks2 / blocks3                        196, 49 tokens
    enc2.pool        blocks3's output grid, before the global mean                          16 tokens
    experts          the two encoders' raw 96-D embeddings as 2 tokens (the input of the gating)
    fused            the gated 192-D concatenation (the input of ln_out) as 1 token

An entry point inside one encoder feeds only that encoder: a bridged model needs one per encoder
(:func:`run_from` takes one tensor per entry point it is given), while ``experts`` and ``fused`` are complete.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .spectformer import EMBED_DIMS as SPECTFORMER_DIMS

#: SpectFormer token grid side per stage (stride 4, 8, 16, 32 on 224 px)
SPECTFORMER_GRIDS = (56, 28, 14, 7)


@dataclass(frozen=True)
class Tap:
    """A named point in Tiny-BioMoE: ``dim`` channels over ``tokens`` positions; ``encoder`` is ``"enc1"``,
    ``"enc2"`` or None (the fusion after both encoders)."""

    name: str
    dim: int
    tokens: int
    encoder: str | None


INPUT_TAPS: dict[str, Tap] = {t.name: t for t in (
    Tap("enc1.stage1", 64, 56 * 56, "enc1"),
    Tap("enc1.stage2", 128, 28 * 28, "enc1"),
    Tap("enc1.stage3", 320, 14 * 14, "enc1"),
    Tap("enc1.stage4", 96, 7 * 7, "enc1"),
    Tap("enc1.embedding", 96, 1, "enc1"),
    Tap("enc2.stage1", 192, 14 * 14, "enc2"),
    Tap("enc2.stage2", 288, 7 * 7, "enc2"),
    Tap("enc2.embedding", 96, 1, "enc2"),
    Tap("gated", 192, 1, None),
    Tap("embedding", 192, 1, None),
)}

ENTRY_POINTS: dict[str, Tap] = {t.name: t for t in (
    Tap("enc1.block2", 128, 28 * 28, "enc1"),
    Tap("enc1.block3", 320, 14 * 14, "enc1"),
    Tap("enc1.block4", 96, 7 * 7, "enc1"),
    Tap("enc2.blocks2", 192, 14 * 14, "enc2"),
    Tap("enc2.blocks3", 288, 7 * 7, "enc2"),
    Tap("enc2.pool", 96, 4 * 4, "enc2"),
    Tap("experts", 96, 2, None),
    Tap("fused", 192, 1, None),
)}

#: entry points after which the whole rest of the model runs (no encoder needs another input)
COMPLETE_ENTRY_POINTS = ("experts", "fused")


class _Recorder:
    """Collects what a walk is asked for; ``done`` once every wanted name is in. Values are passed as callables
    so that nothing unwanted is computed."""

    def __init__(self, inputs=(), entries=()):
        self.inputs, self.entries = set(inputs), set(entries)
        self.pooled: dict[str, torch.Tensor] = {}
        self.entered: dict[str, torch.Tensor] = {}

    def input(self, name: str, pooled) -> None:
        if name in self.inputs:
            self.pooled[name] = pooled()

    def entry(self, name: str, layout) -> None:
        if name in self.entries:
            self.entered[name] = layout()

    def wants(self, encoder: str) -> bool:
        return any(INPUT_TAPS[n].encoder == encoder for n in self.inputs) or \
            any(ENTRY_POINTS[n].encoder == encoder for n in self.entries)

    def done_with(self, encoder: str) -> bool:
        """Everything wanted from ``encoder`` is in (so the walk may stop there)."""
        return all(n in self.pooled for n in self.inputs if INPUT_TAPS[n].encoder == encoder) and \
            all(n in self.entered for n in self.entries if ENTRY_POINTS[n].encoder == encoder)


def _spectformer(enc, x, rec: _Recorder | None, *, start: int = 0, stop_early: bool = False):
    """``SpectFormerTW.forward`` from stage index ``start`` (x: the image for 0, else the tokens (B, N, C)
    entering that stage's block), recording taps into ``rec``. Returns the 96-D embedding, or None when
    ``stop_early`` and ``rec`` had all it wanted from this encoder before the end."""
    B = x.shape[0]
    last = len(SPECTFORMER_DIMS) - 1
    for i in range(start, len(SPECTFORMER_DIMS)):
        if i == start and start > 0:
            H = W = SPECTFORMER_GRIDS[i]
        else:
            x, H, W = getattr(enc, f"patch_embed{i + 1}")(x)
        if rec is not None:
            rec.entry(f"enc1.block{i + 1}", lambda: x.transpose(1, 2))
        for blk in getattr(enc, f"block{i + 1}"):
            x = blk(x, H, W)
        if i != last:
            x = getattr(enc, f"norm{i + 1}")(x)
        if rec is not None:
            rec.input(f"enc1.stage{i + 1}", lambda: x.mean(dim=1))
            if stop_early and rec.done_with("enc1"):
                return None
        if i != last:  # back to an image for the next downsampling
            x = x.reshape(B, H, W, -1).permute(0, 3, 1, 2).contiguous()
    # class token = mean of the stage-4 tokens, refined by class attention over [cls, tokens]
    x = torch.cat((x.mean(dim=1, keepdim=True), x), dim=1)
    cls = x
    for blk in enc.post_network:
        cls = torch.cat((blk(cls), cls[:, 1:]), dim=1)
    z = enc.norm4(cls[:, 0])
    if rec is not None:
        rec.input("enc1.embedding", lambda: z)
    return z


#: EfficientViT's modules in forward order, with the input tap (pooled) and the entry point (what enters the
#: next module) their output is
_ENC2_STEPS = (("patch_embed", None, None), ("blocks1", "enc2.stage1", "enc2.blocks2"),
               ("blocks2", "enc2.stage2", "enc2.blocks3"), ("blocks3", None, "enc2.pool"))
#: entry point -> (index of the first step that runs after it, grid side)
_ENC2_ENTRY = {"enc2.blocks2": (2, 14), "enc2.blocks3": (3, 7), "enc2.pool": (4, 4)}


def _efficientvit(enc, x, rec: _Recorder | None, *, start: int = 0, stop_early: bool = False):
    """``EfficientViTW.forward`` from step ``start`` of :data:`_ENC2_STEPS` (x: the image for 0, else the grid
    (B, C, H, W) entering that step), recording taps; returns the 96-D embedding or None (see _spectformer)."""
    for module, tap, entry in _ENC2_STEPS[start:]:
        x = getattr(enc, module)(x)
        if rec is not None:
            if tap is not None:
                rec.input(tap, lambda: x.mean((2, 3)))
            if entry is not None:
                rec.entry(entry, lambda: x.flatten(2))
            if stop_early and rec.done_with("enc2"):
                return None
    z = x.mean((2, 3))
    if rec is not None:
        rec.input("enc2.embedding", lambda: z)
    return z


def _gate(model, z: torch.Tensor) -> torch.Tensor:
    return model.ln_e(z) * model.fcn(z)


def _fuse(model, z1: torch.Tensor, z2: torch.Tensor, rec: _Recorder | None = None) -> torch.Tensor:
    gated = torch.cat((_gate(model, z1), _gate(model, z2)), dim=1)
    out = model.ln_out(gated)
    if rec is not None:
        rec.entry("experts", lambda: torch.stack((z1, z2), dim=2))
        rec.input("gated", lambda: gated)
        rec.entry("fused", lambda: gated[:, :, None])
        rec.input("embedding", lambda: out)
    return out


def check_tap_names(inputs=(), entries=()) -> None:
    unknown = [n for n in inputs if n not in INPUT_TAPS] + [n for n in entries if n not in ENTRY_POINTS]
    if unknown:
        raise ValueError(f"unknown Tiny-BioMoE tap(s) {unknown}; input taps: {list(INPUT_TAPS)}; entry points: "
                         f"{list(ENTRY_POINTS)}")


def capture(model, images: torch.Tensor, *, inputs=(), entries=()) -> tuple[dict, dict]:
    """Run ``model`` (TinyBioMoE) on ``images`` (B, 3, 224, 224) just far enough to collect ``inputs`` (names of
    :data:`INPUT_TAPS`, mean-pooled: (B, dim)) and ``entries`` (names of :data:`ENTRY_POINTS`, in the bridge's
    layout (B, dim, tokens)); returns (pooled, entered), each keyed by name. An encoder nothing is wanted from is
    not run, and an encoder stops at its last wanted tap unless the fusion needs its embedding."""
    check_tap_names(inputs, entries)
    rec = _Recorder(inputs, entries)
    fusion = any(INPUT_TAPS[n].encoder is None for n in inputs) or any(ENTRY_POINTS[n].encoder is None for n in entries)
    x = model.ln_img(images)
    z1 = _spectformer(model.enc1, x, rec, stop_early=not fusion) if fusion or rec.wants("enc1") else None
    z2 = _efficientvit(model.enc2, x, rec, stop_early=not fusion) if fusion or rec.wants("enc2") else None
    if fusion:
        _fuse(model, z1, z2, rec)
    return {n: rec.pooled[n] for n in inputs}, {n: rec.entered[n] for n in entries}


def run_from(model, entered: dict[str, torch.Tensor], images: torch.Tensor | None = None) -> torch.Tensor:
    """The 192-D embedding: ``model`` run onwards from the entry points in ``entered`` (name -> (B, dim, tokens)).

    ``experts`` or ``fused`` alone are complete. Entry points inside the encoders take one per encoder, unless
    ``images`` is given: an encoder without an entry point then runs on the images as usual."""
    names = set(entered)
    check_tap_names(entries=names)
    complete = names & set(COMPLETE_ENTRY_POINTS)
    if complete:
        if len(names) > 1:
            raise ValueError(f"entry point {sorted(complete)[0]!r} feeds the whole fusion: give it alone, not with "
                             f"{sorted(names - complete)}")
        if "fused" in names:
            return model.ln_out(entered["fused"][:, :, 0])
        t = entered["experts"]
        return _fuse(model, t[:, :, 0], t[:, :, 1])
    by_encoder = {ENTRY_POINTS[n].encoder: n for n in names}
    if len(by_encoder) != len(names):
        raise ValueError(f"one entry point per encoder, got {sorted(names)}")
    missing = {"enc1", "enc2"} - by_encoder.keys()
    if missing and images is None:
        raise ValueError(f"entry points {sorted(names)} leave {sorted(missing)} without input: give one entry "
                         "point per encoder, or the images")
    x = model.ln_img(images) if missing else None
    if "enc1" in by_encoder:
        name = by_encoder["enc1"]
        z1 = _spectformer(model.enc1, entered[name].transpose(1, 2), None, start=int(name[-1]) - 1)
    else:
        z1 = model.enc1(x)
    if "enc2" in by_encoder:
        name = by_encoder["enc2"]
        start, side = _ENC2_ENTRY[name]
        t = entered[name]
        z2 = _efficientvit(model.enc2, t.reshape(t.shape[0], t.shape[1], side, side), None, start=start)
    else:
        z2 = model.enc2(x)
    return _fuse(model, z1, z2)
