"""``biomoe-edge bridge fit | evaluate``: BioX-Bridge, a head trained on one modality served on a wearable that
measures another (docs/bridge.md).

    biomoe-edge bridge fit --paired REC... [--map ...] --new bvp:spectrogram_psd --head HEAD_DIR --out DIR
    biomoe-edge bridge evaluate DIR REC... [--map ...] --labels CSV --json FILE [--engine MODEL | --checkpoint PTH]

Recordings are read by ``biomoe_edge.training.bridge.load_paired_windows`` (paired) and ``load_labelled_windows``
(evaluation), the only two places that touch stored recordings; both replay them through the gateway's pipeline.
"""

from __future__ import annotations

import argparse
import json
import logging
import pathlib

HELP = "BioX-Bridge: fit a bridge that runs an old-modality head on a new-modality wearable, or evaluate one"

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="bridge_action", metavar="ACTION", required=True)
    fit = actions.add_parser("fit", help="fit a bridge on paired recordings and write DIR/bridge.onnx + bridge.json",
                             description="Select the input and output positions (probe F1, CKA), fit protoLRFC on "
                                         "cached features, export the bridged graph. Needs at least 10 minutes of "
                                         "paired recording with the default held-out blocks (--held-out-block).")
    fit.add_argument("--paired", nargs="+", required=True, type=pathlib.Path, metavar="RECORDING",
                     help="paired sessions: both the head's modality and the new one, worn at the same time")
    fit.add_argument("--map", metavar="CH:MOD,...", help="channel map for EDF/CSV recordings, as `embed` takes it")
    fit.add_argument("--new", required=True, metavar="MOD:REPRESENTATION",
                     help="the new wearable's modality and how its windows are drawn, e.g. bvp:spectrogram_psd")
    fit.add_argument("--head", required=True, type=pathlib.Path, metavar="HEAD_DIR",
                     help="the old modality's head folder (head.onnx + head.json, one input)")
    fit.add_argument("--out", required=True, type=pathlib.Path, metavar="DIR", help="output folder")
    weights = fit.add_mutually_exclusive_group()
    weights.add_argument("--checkpoint", type=pathlib.Path, metavar="PATH",
                         help="the Tiny-BioMoE checkpoint the head was trained on (checked against head.json)")
    weights.add_argument("--random-weights", type=int, nargs="?", const=0, default=None, metavar="SEED",
                         help="random weights of SEED (only for a head trained on them; meaningless otherwise)")
    fit.add_argument("--rank", type=int, default=8, help="low-rank r of the bridge (default 8)")
    fit.add_argument("--prototypes", type=int, default=32, help="prototype count P (default 32)")
    fit.add_argument("--init", choices=("real", "random"), default="real",
                     help="prototypes from real old-model features (default) or random")
    fit.add_argument("--loss", choices=("centred_cosine", "cosine"), default="centred_cosine",
                     help="training loss (default centred_cosine; docs/bridge.md says why)")
    fit.add_argument("--epochs", type=int, default=50)
    fit.add_argument("--lr", type=float, default=3e-3,
                     help="Adam learning rate, annealed to 0 over the fit (default 3e-3)")
    fit.add_argument("--batch-size", type=int, default=16)
    fit.add_argument("--input-position", default="auto", help="new-model tap (default auto: best probe F1)")
    fit.add_argument("--output-position", default="auto",
                     help="fused | experts | ENC1+ENC2 entry points (default auto: best CKA within the time budget)")
    fit.add_argument("--time-budget", type=float, default=1800.0, metavar="S",
                     help="skip output positions whose estimated fit time exceeds S seconds (default 1800)")
    fit.add_argument("--precision", choices=("fp32", "fp16"), default="fp16", help="bridge.onnx precision")
    fit.add_argument("--max-batch", type=int, default=32)
    fit.add_argument("--window-s", type=float, metavar="S",
                     help="paired window length (default: the recording's, else 10 s)")
    fit.add_argument("--hop-s", type=float, metavar="S", help="paired window hop (default: the recording's, else 1 s)")
    fit.add_argument("--subject", help="the subject of every input (default: the recorded subjects, else the name)")
    fit.add_argument("--cache-dir", type=pathlib.Path, metavar="DIR",
                     help="feature cache (default $BIOMOE_EDGE_CACHE_DIR or ~/.cache/biomoe-edge)")
    fit.add_argument("--held-out-block", type=float, default=60.0, metavar="S",
                     help="every 5th S-second block of each session is held out to score the bridge (default 60); "
                          "the paired data must give at least twice --batch-size training windows and one held-out "
                          "block: 10 minutes with the defaults, under a minute with --held-out-block 5 --batch-size 8")
    fit.add_argument("--no-progress", action="store_true", help="no progress bars")

    evaluate = actions.add_parser("evaluate", help="the bridged head's metrics on labelled new-modality recordings")
    evaluate.add_argument("bridge", type=pathlib.Path, metavar="DIR", help="bridge folder (bridge.onnx + bridge.json)")
    evaluate.add_argument("recordings", nargs="+", type=pathlib.Path, metavar="RECORDING")
    evaluate.add_argument("--map", metavar="CH:MOD,...", help="channel map for EDF/CSV recordings")
    evaluate.add_argument("--labels", required=True, type=pathlib.Path, metavar="CSV",
                          help="labels by time, as `embed --labels` takes them (subject,start_s,end_s,label)")
    evaluate.add_argument("--subject", help="the subject of every input (default: the recorded subjects)")
    evaluate.add_argument("--json", required=True, type=pathlib.Path, metavar="FILE", help="write the metrics here")
    backbone = evaluate.add_mutually_exclusive_group()
    backbone.add_argument("--engine", type=pathlib.Path, metavar="MODEL",
                          help="the backbone as the gateway runs it: an ONNX graph (or TensorRT engine) exported "
                               "with --taps naming the bridge's tap (no torch needed)")
    backbone.add_argument("--checkpoint", type=pathlib.Path, metavar="PATH",
                          help="the Tiny-BioMoE checkpoint the bridge was fitted on, on the PyTorch engine")
    backbone.add_argument("--random-weights", type=int, metavar="SEED",
                          help="random weights of SEED on the PyTorch engine (default for a bridge fitted on them)")


def _weights_asked_for(args, head) -> tuple[pathlib.Path | None, int | None, dict]:
    """(checkpoint, seed, backbone identity) of the Tiny-BioMoE the fit will load: --checkpoint, --random-weights,
    or the head's own random seed; known before any weight is loaded (the checkpoint is hashed, not read)."""
    from biomoe_edge.identity import backbone_identity, describe_backbone
    from biomoe_edge.manifest import sha256_file

    if args.checkpoint is not None:
        if not args.checkpoint.is_file():
            raise ValueError(f"--checkpoint {args.checkpoint}: no such file")
        return args.checkpoint, None, backbone_identity({"checkpoint_sha256": sha256_file(args.checkpoint),
                                                         "random_weights": False, "precision": "fp32"})
    seed = args.random_weights
    if seed is None:
        if not head.backbone.get("random_weights"):
            raise ValueError(f"{head.directory} was trained on {describe_backbone(head.backbone)}: give that "
                             "checkpoint with --checkpoint")
        seed = head.backbone.get("seed")
        log.warning("the head was trained on random weights (seed %s): the bridge uses them too", seed)
    return None, seed, backbone_identity({"random_weights": True, "seed": seed, "precision": "fp32"})


def _fit(args) -> int:
    from biomoe_edge.training.bridge import export_bridge, fit_bridge, load_paired_windows, read_head, torch_backbone
    from biomoe_edge.training.bridge.head import check_head_backbone
    from biomoe_edge.training.bridge.report import entry_point_table, input_position_table, output_position_table
    from biomoe_edge.vocabulary import InputType

    if args.no_progress:  # no bars: each long step's start and duration as a log line instead, never silence
        bridge_log = logging.getLogger("biomoe_edge.training.bridge")
        if bridge_log.getEffectiveLevel() > logging.INFO:
            bridge_log.setLevel(logging.INFO)
    from .weights import load_model

    try:
        new = InputType.parse(args.new)
    except ValueError as exc:
        raise ValueError(f"--new: {exc}") from None
    new_modality, new_representation = new.modality.value, new.representation.value
    head = read_head(args.head)
    if new_modality == head.modality:
        raise ValueError(f"--new {args.new}: the head already reads {head.inputs[0]}; a bridge carries it to another "
                         "modality")
    # Every input is checked (head, weights, recordings, map, modalities, pairing) before the model is loaded.
    checkpoint, seed, backbone = _weights_asked_for(args, head)
    check_head_backbone(head, backbone)
    paired = load_paired_windows(args.paired, args.map, head.modality, new_modality, window_s=args.window_s,
                                 hop_s=args.hop_s, subject=args.subject)
    model = load_model(checkpoint, seed, log=log)
    backbone = torch_backbone(model, seed=seed, precision="fp32")
    fit = fit_bridge(paired, head, model, new_representation=new_representation, backbone=backbone, rank=args.rank,
                     prototypes=args.prototypes, init=args.init, loss=args.loss, epochs=args.epochs, lr=args.lr,
                     batch_size=args.batch_size, input_position=args.input_position,
                     output_position=args.output_position, time_budget_s=args.time_budget, cache_dir=args.cache_dir,
                     progress=not args.no_progress, block_s=args.held_out_block)
    print(input_position_table(fit.positions), end="\n\n")
    print(entry_point_table(fit.positions), end="\n\n")
    print(output_position_table(fit.positions), end="\n\n")
    from biomoe_edge.training.bridge.diagnostics import degenerate_fit_warnings
    from biomoe_edge.training.bridge.features import progress_bar

    with progress_bar(f"exporting the bridged graph ({args.precision} ONNX, checked against PyTorch)", 1,
                      not args.no_progress) as advance:
        path = export_bridge(fit, args.out, precision=args.precision, max_batch=args.max_batch)
        advance()
    held = fit.held_out
    print(f"wrote {path} and {path.with_suffix('.json')} ({args.precision}): {fit.positions['input']['name']} -> "
          f"{fit.positions['output']['name']}, {fit.trainable_parameters:,} trainable parameters; held-out "
          f"{held['windows']} windows: agreement with the old head {held['agreement_with_old_head']:.3f} (old head "
          f"on {new_modality} embeddings directly: {held['old_head_on_new_embeddings_agreement']:.3f}), cosine to "
          f"targets {held['cosine_to_targets_mean']:.4f}")
    print(f"held out: {', '.join(fit.split.held_out_blocks)} ({len(fit.split.held_out_blocks)} of "
          f"{fit.split.block_count} blocks of {len(set(paired.session))} session(s)); the fit never saw them")
    for warning in degenerate_fit_warnings(fit.positions, fit.held_out):
        print(f"warning: {warning}")
    from biomoe_edge.training.plots import write_bridge_fit_png

    caveat = "; RANDOM weights: the figures show the method, not Tiny-BioMoE" if backbone.get("random_weights") else ""
    picture = write_bridge_fit_png(fit.positions, fit.curve, path.parent / "bridge_fit.png",
                                   title=f"bridge {head.inputs[0]} -> {args.new}{caveat}")
    print(f"wrote {picture} (probe F1 and CKA per candidate position, the fit curve)")
    if backbone.get("random_weights"):
        print("random weights: the bridge's predictions mean nothing")
    return 0


def _evaluation_engine(args, manifest):
    """The backbone the bridge reads its features from: --engine, --checkpoint, --random-weights, or the random
    weights bridge.json names."""
    from biomoe_edge.identity import describe_backbone
    from biomoe_edge.runtime.engines import open_engine

    if args.engine is not None:
        return open_engine("auto", args.engine)
    if args.checkpoint is not None:
        return open_engine("pytorch", args.checkpoint)
    seed = args.random_weights
    if seed is None:
        if not manifest["backbone"].get("random_weights"):
            raise ValueError(f"{args.bridge} was fitted on {describe_backbone(manifest['backbone'])}: give the "
                             f"engine (--engine MODEL, exported with --taps {manifest.get('tap')}) or --checkpoint")
        seed = manifest["backbone"].get("seed")
    return open_engine("pytorch", None, random_weights=True, seed=seed)


def _evaluate(args) -> int:
    from biomoe_edge.runtime.heads.bridge import read_bridge_manifest
    from biomoe_edge.training.bridge.data import load_labelled_windows
    from biomoe_edge.training.bridge.evaluate import evaluate_bridge
    from biomoe_edge.vocabulary import InputType

    # The manifest first: a folder that is no bridge is named before any recording is read. Windows are cut as
    # long as those the bridge was fitted on (as the gateway's configuration check demands when serving it).
    manifest = read_bridge_manifest(args.bridge)
    modality = InputType.parse(manifest["inputs"][0]).modality.value
    window_s = (manifest.get("data") or {}).get("window_s")
    windows, fs, labels, unlabelled = load_labelled_windows(args.recordings, args.map, modality, args.labels,
                                                            subject=args.subject,
                                                            window_s=None if window_s is None else float(window_s))
    with _evaluation_engine(args, manifest) as engine:
        metrics = evaluate_bridge(args.bridge, windows, fs, labels, engine)
    metrics["unlabelled_windows"] = unlabelled
    args.json.parent.mkdir(parents=True, exist_ok=True)
    from biomoe_edge.training.metrics import write_confusion_png

    caveat = "RANDOM weights: not the published model's accuracy" if metrics.get("backbone", {}).get("random_weights") \
        else "simulated or recorded data as given"
    metrics["confusion_matrix_png"] = str(write_confusion_png(
        metrics, args.json.with_suffix(".png"), title=f"bridge {args.bridge.name} on "
                                                      f"{', '.join(p.name for p in args.recordings)}; {caveat}"))
    args.json.write_text(json.dumps(metrics, indent=2) + "\n")
    print(f"{metrics['windows']} windows: accuracy {metrics['accuracy']:.3f}, macro F1 {metrics['macro_f1']:.3f}; "
          f"wrote {args.json} and the confusion matrix {metrics['confusion_matrix_png']}")
    return 0


def run(args) -> int:
    return _fit(args) if args.bridge_action == "fit" else _evaluate(args)
