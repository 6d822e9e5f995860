"""Fitting a bridge: select positions, initialise protoLRFC, train it alone on cached features, measure it on the
held-out part of the paired data.

Only the bridge trains (Adam). The loss is the cosine embedding loss between the old model's output when fed by
the bridge and when fed by the real old-modality window: Tiny-BioMoE's last block is its 192-D embedding (what
the old head reads), so the target is the cached old embedding, and each step runs the old model only from the
entry point on. For the output positions after the encoders (``fused``, ``experts``) that is a LayerNorm and the
gating: a step costs about a millisecond. An entry point inside the encoders re-runs their later stages forward
and backward at every step (seconds per batch on a 2-core CPU): a candidate whose estimated fit time exceeds
``time_budget_s`` is skipped with a warning naming the estimate.

The loss as the method describes it (``loss="cosine"``) fails on Tiny-BioMoE: one modality's embeddings are
nearly collinear (measured on the simulated ECG windows with the stand-in weights: mean pairwise cosine 0.986),
so a bridge whose output is constant already scores a cosine of 0.99 and training never learns the per-window
differences the head reads (held-out agreement with the old head 0.03). ``loss="centred_cosine"`` (the default)
applies the same cosine embedding loss to the embeddings minus the mean old embedding of the training windows:
the common direction drops out and the loss measures what tells windows apart. Inference is unchanged; the
centre only shapes training. docs/bridge.md has the measurements.

The learning rate anneals to zero over the fit (cosine): without it, held-out agreement of refits that differ
only in their seed spread from 0.54 to 0.97 (the last large steps decide where the bridge ends); with it,
0.97 / 0.97 / 0.97 (simulated session, stand-in weights, lr 3e-3; docs/bridge.md).
"""

from __future__ import annotations

import copy
import logging
import math
import time
import warnings
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from biomoe_edge.export.model.taps import ENTRY_POINTS, INPUT_TAPS, run_from
from biomoe_edge.vocabulary import InputType, Modality, check_representations

from .data import PairedWindows, Split, held_out_split
from .exc import BridgeConfigError, HeadError, PositionSelectionError
from .features import FeatureSet, extract_features, progress_bar, render_images
from .head import OldHead, check_head_backbone, read_head
from .protolrfc import INITIALISATIONS, Bridge, BridgedModel, check_bridge_shape
from .selection import output_candidates, score_entry_points, score_input_positions, select_input_position

log = logging.getLogger(__name__)

#: images of held-out windows kept for the export's ONNX Runtime check
CHECK_IMAGES = 8


def torch_backbone(model: nn.Module, *, seed: int | None = None, precision: str = "fp32") -> dict:
    """``backbone_identity`` of a PyTorch Tiny-BioMoE from ``load_tiny_biomoe``: its checkpoint's sha256 or, for
    random weights (no checkpoint), the seed they were drawn from."""
    from biomoe_edge.identity import backbone_identity

    source = getattr(model, "source_checkpoint", None) or {}
    checkpoint = source.get("sha256")
    return backbone_identity({"checkpoint_sha256": checkpoint, "random_weights": checkpoint is None,
                              "seed": seed, "precision": precision})


@dataclass
class BridgeFit:
    """A fitted bridge and everything ``export_bridge`` writes into bridge.json."""

    bridge: Bridge
    backbone_model: nn.Module
    head: OldHead
    old_modality: str
    old_representation: str
    new_modality: str
    new_representation: str
    backbone: dict
    positions: dict
    rank: int
    prototypes: int
    initialisation: str
    training: dict
    curve: list
    held_out: dict
    data: dict
    features: FeatureSet
    split: Split
    pseudo_labels: np.ndarray
    check_images: np.ndarray
    timings: dict = field(default_factory=dict)

    @property
    def trainable_parameters(self) -> int:
        return self.bridge.parameter_count()

    def bridged_model(self) -> BridgedModel:
        return BridgedModel(self.backbone_model, self.bridge).eval()

    def bridged_embeddings(self, index) -> np.ndarray:
        """The bridged old-model embeddings of windows ``index`` of the fitted paired data (from cached features)."""
        x = torch.from_numpy(self.features.new_pooled[self.bridge.input_position][index])
        with torch.no_grad():
            return run_from(self.backbone_model, self.bridge(x)).numpy()


#: ``cosine``: the method's loss as described, on the embeddings themselves; ``centred_cosine``: the same loss on
#: the embeddings minus the mean old embedding of the training windows (see the module docstring for why)
LOSSES = ("centred_cosine", "cosine")


def _cosine_loss(embedding: torch.Tensor, target: torch.Tensor, centre: torch.Tensor | None = None) -> torch.Tensor:
    if centre is not None:
        embedding, target = embedding - centre, target - centre
    return nn.functional.cosine_embedding_loss(embedding, target, torch.ones(len(target)))


def _frozen(model: nn.Module):
    """Context: ``model``'s parameters do not require gradients inside (restored after)."""
    class _Frozen:
        def __enter__(self):
            self.flags = [(p, p.requires_grad) for p in model.parameters()]
            for p, _ in self.flags:
                p.requires_grad_(False)

        def __exit__(self, *exc):
            for p, flag in self.flags:
                p.requires_grad_(flag)
    return _Frozen()


#: windows the step timing runs on (scaled to the batch size: the old model's cost is linear in the batch)
TIMING_WINDOWS = 4


def _step_seconds(backbone: nn.Module, bridge: Bridge, x: torch.Tensor, y: torch.Tensor, centre,
                  batch_size: int) -> float:
    """Estimated seconds of one training step of ``batch_size`` windows (forward and backward through the old model
    from the entry points), timed on a copy of the bridge on ``x`` and scaled by batch_size / len(x): after a
    warm-up step (allocations, thread pools), the fastest of up to 5 steps within about a second, so that another
    process taking the CPU for a moment does not inflate the estimate."""
    trial = copy.deepcopy(bridge)
    optimiser = torch.optim.Adam(trial.parameters(), lr=1e-6)
    times = []
    while len(times) < 6 and sum(times[1:]) < 1.0:
        started = time.perf_counter()
        loss = _cosine_loss(run_from(backbone, trial(x)), y, centre)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        times.append(time.perf_counter() - started)
    return min(times[1:]) * batch_size / len(x)


def _output_entry_points(name: str) -> list[str]:
    """The entry points of a given output position: ``fused``, ``experts`` or ``ENC1_POINT+ENC2_POINT``."""
    entries = name.split("+")
    unknown = [e for e in entries if e not in ENTRY_POINTS]
    if unknown:
        raise BridgeConfigError(f"unknown output position {name!r}: entry points are {list(ENTRY_POINTS)}; give "
                                "'auto', 'fused', 'experts' or ENC1_POINT+ENC2_POINT (e.g. enc1.block4+enc2.pool)")
    encoders = sorted(ENTRY_POINTS[e].encoder or "fusion" for e in entries)
    if encoders not in (["fusion"], ["enc1", "enc2"]):
        raise BridgeConfigError(f"output position {name!r} does not feed the whole old model: give 'fused', 'experts' "
                                "or one entry point inside each encoder (ENC1_POINT+ENC2_POINT)")
    return entries


def fit_bridge(paired: PairedWindows, head, model: nn.Module, *, new_representation: str, backbone: dict,
               rank: int = 8, prototypes: int = 32, init: str = "real", epochs: int = 50, lr: float = 3e-3,
               batch_size: int = 16, loss: str = "centred_cosine", input_position: str = "auto",
               output_position: str = "auto", held_out_fraction: float = 0.2, block_s: float = 60.0,
               time_budget_s: float = 1800.0, cache_dir=None, seed: int = 0, progress: bool = True,
               features: FeatureSet | None = None) -> BridgeFit:
    """Fit a BioX-Bridge from paired windows (``paired``: old modality = the head's) so that ``head`` (a head folder
    or :class:`OldHead`, trained on ``model``'s embeddings of the old modality) runs on the new modality.

    ``model``: Tiny-BioMoE in eval mode (``load_tiny_biomoe``), both the old and the new model; ``backbone``: its
    ``backbone_identity`` (:func:`torch_backbone`), checked against the head's. ``new_representation``: how the new
    modality's windows are drawn. ``input_position``/``output_position``: ``"auto"`` (probe / CKA) or a name of
    :data:`INPUT_TAPS` / ``fused``, ``experts``, ``ENC1+ENC2``. Raises the errors of ``.exc`` naming what does
    not fit."""
    head = head if isinstance(head, OldHead) else read_head(head)
    new_representation = check_representations(new_representation)[0]
    if head.modality != paired.old_modality:
        raise HeadError(f"{head.directory}: the head reads {head.inputs[0]!r}, but the paired data's old modality is "
                        f"{paired.old_modality!r}")
    if Modality.parse(paired.new_modality).value == head.modality:
        warnings.warn(f"the new modality is the head's own ({head.modality}): a bridge is not needed", stacklevel=2)
    if init not in INITIALISATIONS:
        raise BridgeConfigError(f"prototype initialisation must be one of {INITIALISATIONS}, got {init!r}")
    if loss not in LOSSES:
        raise BridgeConfigError(f"loss must be one of {LOSSES}, got {loss!r}")
    if input_position != "auto" and input_position not in INPUT_TAPS:
        raise BridgeConfigError(f"unknown input position {input_position!r}; expected 'auto' or one of "
                                f"{list(INPUT_TAPS)}")
    given_entries = _output_entry_points(output_position) if output_position != "auto" else None
    # what can be checked before any feature is computed
    for entry in given_entries or ():
        check_bridge_shape(INPUT_TAPS[input_position].dim if input_position != "auto" else 10**9, entry, rank,
                           prototypes)
    for name, value in (("epochs", epochs), ("batch_size", batch_size)):
        if not (isinstance(value, int) and value >= 1):
            raise BridgeConfigError(f"{name} must be a positive integer, got {value!r}")
    if not (lr > 0 and math.isfinite(lr)):
        raise BridgeConfigError(f"learning rate must be positive, got {lr!r}")
    check_head_backbone(head, backbone)
    model = model.eval()
    timings = {}

    split = held_out_split(paired, fraction=held_out_fraction, block_s=block_s)
    if len(split.train) < 2 * batch_size or len(split.held_out) == 0:
        raise PositionSelectionError(
            f"too little paired data: {len(paired)} windows give {len(split.train)} to train on and "
            f"{len(split.held_out)} held out (every {round(1 / held_out_fraction)}th {block_s:g} s block of the "
            f"{split.block_count} blocks of all sessions is held out, and training windows overlapping it are "
            f"dropped); record at least "
            f"{math.ceil(2 * block_s / held_out_fraction / 60)} minutes of paired data")

    started = time.perf_counter()
    if features is None:
        features = extract_features(paired, model, old_representation=head.representation,
                                    new_representation=new_representation, cache_dir=cache_dir, progress=progress)
    elif len(features.old_embedding) != len(paired):
        raise ValueError(f"features of {len(features.old_embedding)} windows given for {len(paired)} paired windows")
    timings["features_s"] = time.perf_counter() - started
    timings["features_cache"] = "hit" if features.cache_hit else "miss"
    pseudo = head.predict_proba(features.old_embedding).argmax(axis=1)
    train, held = split.train, split.held_out

    started = time.perf_counter()
    pseudo_names = np.asarray(head.classes, dtype=object)[pseudo]  # so that messages name the classes
    input_spread: dict[str, float] = {}
    with progress_bar(f"selecting positions (probe F1 of {len(features.new_pooled)} input taps, CKA of "
                      f"{len(features.old_summary)} entry points)", 2, progress) as advance:
        input_scores = score_input_positions({name: features.new_pooled[name][train] for name in features.new_pooled},
                                             pseudo_names[train], split.blocks[train], seed=seed, spread=input_spread)
        advance()
        chosen_input = select_input_position(input_scores) if input_position == "auto" else input_position
        if chosen_input not in features.new_pooled:
            raise BridgeConfigError(f"input position {chosen_input!r} was not captured")
        cka = score_entry_points(features.new_pooled[chosen_input][train],
                                 {name: summary[train] for name, summary in features.old_summary.items()})
        advance()
    candidates = output_candidates(cka)
    timings["selection_s"] = time.perf_counter() - started

    x_all = torch.from_numpy(features.new_pooled[chosen_input])
    y_all = torch.from_numpy(features.old_embedding)
    centre = y_all[train].mean(dim=0) if loss == "centred_cosine" else None
    steps_per_epoch = math.ceil(len(train) / batch_size)
    with _frozen(model):
        if given_entries is None:
            timing_x, timing_y = x_all[train[:TIMING_WINDOWS]], y_all[train[:TIMING_WINDOWS]]
            with progress_bar(f"timing {len(candidates)} output positions", len(candidates), progress) as advance:
                for candidate in candidates:
                    trial = Bridge(chosen_input, candidate["entry_points"], rank=rank, prototypes=prototypes)
                    candidate["trainable_parameters"] = trial.parameter_count()
                    step = _step_seconds(model, trial, timing_x, timing_y, centre, batch_size)
                    candidate["fit_seconds_estimate"] = round(step * steps_per_epoch * epochs, 1)
                    advance()
            affordable = [c for c in candidates if c["fit_seconds_estimate"] <= time_budget_s]
            for c in candidates:
                if c not in affordable:
                    c["skipped"] = (f"estimated fit time {c['fit_seconds_estimate']:.0f} s exceeds the time budget "
                                    f"{time_budget_s:.0f} s")
                    warnings.warn(f"output position {c['name']} (CKA {c['cka']:.3f}) skipped: {c['skipped']}",
                                  stacklevel=2)
            if not affordable:
                raise BridgeConfigError("no output position fits the time budget of "
                                        f"{time_budget_s:.0f} s: " + "; ".join(
                                            f"{c['name']} {c['fit_seconds_estimate']:.0f} s" for c in candidates))
            chosen = affordable[0]
        else:
            chosen = next((c for c in candidates if c["entry_points"] == given_entries),
                          {"name": output_position, "entry_points": given_entries,
                           "cka": min(cka[e] for e in given_entries)})

        with torch.random.fork_rng():  # A's Kaiming-uniform draw from ``seed``, the caller's generator untouched
            torch.manual_seed(seed)
            bridge = Bridge(chosen_input, chosen["entry_points"], rank=rank, prototypes=prototypes)
        real_tokens = {e: features.old_tokens[e][train].reshape(-1, ENTRY_POINTS[e].dim) for e in bridge.entry_points}
        bridge.init_prototypes(init, real_tokens, seed=seed)
        started = time.perf_counter()
        curve = _train(model, bridge, x_all, y_all, train, held, centre, epochs=epochs, lr=lr,
                       batch_size=batch_size, seed=seed, progress=progress)
        timings["training_s"] = time.perf_counter() - started

    fit = BridgeFit(
        bridge=bridge.eval(), backbone_model=model, head=head, old_modality=paired.old_modality,
        old_representation=head.representation, new_modality=paired.new_modality,
        new_representation=new_representation, backbone=dict(backbone),
        positions={
            "input": {"name": chosen_input, "dim": INPUT_TAPS[chosen_input].dim,
                      "probe_macro_f1": input_scores[chosen_input], "chosen_by": "probe" if input_position == "auto"
                      else "given"},
            "output": {"name": chosen["name"], "entry_points": list(chosen["entry_points"]), "cka": chosen["cka"],
                       "chosen_by": "cka" if output_position == "auto" else "given",
                       "tokens": {e: {"dim": ENTRY_POINTS[e].dim, "tokens": ENTRY_POINTS[e].tokens}
                                  for e in chosen["entry_points"]}},
            "input_candidates": [{"name": n, "dim": INPUT_TAPS[n].dim, "probe_macro_f1": s,
                                  "probe_macro_f1_fold_std": input_spread[n]} for n, s in input_scores.items()],
            "entry_point_cka": [{"name": n, "dim": ENTRY_POINTS[n].dim, "tokens": ENTRY_POINTS[n].tokens, "cka": s}
                                for n, s in cka.items()],
            "output_candidates": candidates,
            "probe": {"model": "StandardScaler + LogisticRegression", "folds": 5, "grouped_by": f"{block_s:g} s "
                      "time blocks", "target": "old head's pseudo-labels on the paired old-modality windows",
                      "metric": "macro F1, mean over the folds"},
            "cka": {"kind": "linear", "old_features": "entry-point tokens mean-pooled (experts: both side by side)"},
        },
        rank=rank, prototypes=prototypes, initialisation=init,
        training={"optimizer": "Adam", "lr": lr, "lr_schedule": "cosine annealing to 0 over all steps",
                  "epochs": epochs, "batch_size": batch_size,
                  "loss": loss, "loss_description": (
                      "cosine embedding loss between the old model's 192-D embedding fed by the bridge and fed by "
                      "the real old-modality window" + (", both minus the mean old embedding of the training "
                                                        "windows" if loss == "centred_cosine" else "")),
                  "seed": seed,
                  "train_windows": int(len(train)), "held_out_windows": int(len(held)),
                  "split": f"every {round(1 / held_out_fraction)}th {block_s:g} s block of the paired set held out "
                           f"(blocks counted across sessions: {len(split.held_out_blocks)} of {split.block_count}); "
                           "training windows overlapping it dropped",
                  "held_out_blocks": list(split.held_out_blocks)},
        curve=curve, held_out={}, data={}, features=features, split=split, pseudo_labels=pseudo,
        check_images=render_images(paired.new[held[:CHECK_IMAGES]], paired.new_fs, paired.new_modality,
                                   new_representation),
        timings=timings)
    fit.held_out = held_out_figures(fit)
    fit.data = {"paired_sha256": paired.sha256(), "windows": int(len(paired)), "window_s": paired.window_s,
                "subjects": sorted(map(str, set(paired.subject))), "features_cache_key": features.key,
                "old": str(InputType(paired.old_modality, head.representation)),
                "new": str(InputType(paired.new_modality, new_representation))}
    return fit


def _train(backbone, bridge, x_all, y_all, train, held, centre, *, epochs, lr, batch_size, seed, progress,
           anneal=True) -> list[dict]:
    optimiser = torch.optim.Adam(bridge.parameters(), lr=lr)
    steps = epochs * math.ceil(len(train) / batch_size)
    # cosine annealing to zero: the last epochs settle instead of ending wherever the last large step left them
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, T_max=steps) if anneal else None
    generator = torch.Generator().manual_seed(seed)
    train_t, held_t = torch.from_numpy(train), torch.from_numpy(held)
    curve = []
    with progress_bar(f"fitting the bridge ({len(train)} windows, {epochs} epochs)", epochs, progress) as advance:
        for epoch in range(epochs):
            bridge.train()
            order = train_t[torch.randperm(len(train_t), generator=generator)]
            total = 0.0
            for lo in range(0, len(order), batch_size):
                idx = order[lo:lo + batch_size]
                loss = _cosine_loss(run_from(backbone, bridge(x_all[idx])), y_all[idx], centre)
                optimiser.zero_grad()
                loss.backward()
                optimiser.step()
                if schedule is not None:
                    schedule.step()
                total += float(loss.detach()) * len(idx)
            bridge.eval()
            with torch.no_grad():
                held_loss = float(_cosine_loss(run_from(backbone, bridge(x_all[held_t])), y_all[held_t], centre))
            curve.append({"epoch": epoch + 1, "train_loss": total / len(order), "held_out_loss": held_loss})
            advance()
    return curve


def _row_cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a, b = a.astype(np.float64), b.astype(np.float64)
    return (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def held_out_figures(fit: BridgeFit) -> dict:
    """On the held-out windows: agreement of the bridged head with the old head's pseudo-labels, cosine of the
    bridged embeddings to the real old-modality ones (as they are, and centred on the training windows' mean), and
    the same agreement for the old head applied to the new modality's embeddings directly (no bridge)."""
    held = fit.split.held_out
    bridged = fit.bridged_embeddings(held)
    target = fit.features.old_embedding[held]
    centre = fit.features.old_embedding[fit.split.train].mean(axis=0)
    cosine = _row_cosine(bridged, target)
    centred = _row_cosine(bridged - centre, target - centre)
    pseudo = fit.pseudo_labels[held]
    agreement = float((fit.head.predict_proba(bridged).argmax(1) == pseudo).mean())
    direct = float((fit.head.predict_proba(fit.features.new_embedding[held]).argmax(1) == pseudo).mean())
    return {"windows": int(len(held)), "agreement_with_old_head": agreement,
            "cosine_to_targets_mean": float(cosine.mean()), "cosine_to_targets_min": float(cosine.min()),
            "centred_cosine_to_targets_mean": float(centred.mean()),
            "old_head_on_new_embeddings_agreement": direct}
