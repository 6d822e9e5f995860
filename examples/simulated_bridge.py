"""BioX-Bridge end to end on a SIMULATED paired session with STAND-IN weights: an old head trained on labelled ECG
sessions, a bridge fitted on an unlabelled paired ECG + PPG recording with one command, and the gateway serving the
bridged head on PPG-only wearables playing held-out subjects.

    python examples/simulated_bridge.py --out build/simulated_bridge            # 1-3 min on 2 cores
    python examples/simulated_bridge.py --out build/simulated_bridge --paired-minutes 30 --epochs 50

Steps (docs/bridge.md):

1. Labelled ECG sessions of ``--head-subjects`` simulated subjects (``training.bridge.simulation``: one beat train
   per subject whose heart rate, variability, T wave, pulse arrival time and PPG amplitude follow its state
   rest / moderate / high), embedded by the backbone; the old head is trained on them by the SDK's ``train_head``
   (what ``biomoe-edge train-head`` runs; ELU -> Linear, cross-validated leaving one subject out).
2. An unlabelled paired session of another subject: a Polar H10 (ECG, 130 Hz) and a Verity Sense (PPG, 55 Hz) worn
   together, written as the gateway's recording sink writes it. Then the one command:
   ``biomoe-edge bridge fit --paired REC --new bvp:spectrogram_psd --head HEAD --out BRIDGE`` (positions chosen by
   probe F1 and CKA, protoLRFC fitted on cached features, one ONNX graph exported and checked).
3. The gateway (``runtime.gateway.Gateway``, PyTorch engine of the same weights) with the bridge folder under
   ``[[heads]]`` and one PPG-only wearable per held-out subject, each playing that subject's PPG as native
   float32 packets in Verity-sized frames (fed in process, no radio: the Bumble path is the demo's). Every
   PredictionRecord it emits says ``via_bridge``; they are scored against the simulated states, beside the old
   head applied directly to the gateway's PPG embeddings (no bridge).

The backbone is ``../shared/reference/tiny_biomoe_seed11.pth`` (perturbed reference weights, a STAND-IN for the
published Tiny-BioMoE weights), or random weights with ``--random-weights SEED``. Every figure printed is on
simulated physiology with those weights: it shows the SDK's path, not what the published weights would reach.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import pathlib
import shlex
import shutil
import sys
import time
import warnings

import numpy as np

REPO = pathlib.Path(__file__).resolve().parents[1]
REFERENCE_DIR = pathlib.Path(os.environ.get("BIOMOE_REFERENCE_DIR", REPO.parent / "shared" / "reference"))
REPRESENTATION = "spectrogram_psd"
T0 = 1000.0  # gateway time of every simulated session's first sample


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=pathlib.Path, required=True, help="output folder")
    parser.add_argument("--head-subjects", type=int, default=4, help="labelled ECG subjects for the old head")
    parser.add_argument("--head-minutes", type=float, default=5.0, help="minutes per labelled ECG session")
    parser.add_argument("--paired-minutes", type=float, default=12.0, help="the unlabelled paired session's length")
    parser.add_argument("--paired-hop", type=float, default=2.0, help="paired window hop in s")
    parser.add_argument("--epochs", type=int, default=50)
    parser.add_argument("--held-out-subjects", type=int, default=2, help="PPG-only wearables at the gateway")
    parser.add_argument("--held-out-minutes", type=float, default=3.0)
    parser.add_argument("--hop", type=float, default=5.0, help="the gateway's window hop in s")
    parser.add_argument("--random-weights", type=int, metavar="SEED", help="random weights instead of the stand-in")
    return parser.parse_args(argv)


def sdk(*argv) -> None:
    """Run one ``biomoe-edge`` command in this process and echo it."""
    from biomoe_edge.cli import main

    print("$ biomoe-edge " + " ".join(shlex.quote(str(a)) for a in argv), flush=True)
    if main([str(a) for a in argv]):
        sys.exit(f"biomoe-edge {argv[0]} failed")


def ppg_packets(device: str, sim, t0: float):
    """(arrival_time_s, device, payload): the subject's PPG as a native float32 stream in 28-sample frames."""
    from biomoe_edge.firmware_bridge import SampleFormat, encode_packet
    from biomoe_edge.training.bridge.simulation import PPG_FS

    frame = 28
    out = []
    for sequence, first in enumerate(range(0, len(sim.ppg) - frame + 1, frame)):
        payload = encode_packet(stream_id=0, sequence=sequence, timestamp_us=int(round(first / PPG_FS * 1e6)),
                                samples=sim.ppg[first:first + frame, None], sample_format=SampleFormat.FLOAT32)
        out.append((t0 + (first + frame - 1) / PPG_FS + 0.03, device, payload))
    return out


async def serve(config, engine, sims):
    """The gateway on PPG-only wearables playing ``sims``; returns (gateway, embeddings, predictions)."""
    from biomoe_edge.firmware_bridge import DeviceDescription, SampleFormat, StreamDescription
    from biomoe_edge.runtime.gateway import Gateway
    from biomoe_edge.training.bridge.simulation import PPG_FS

    description = DeviceDescription("simulated-verity-1.0", (StreamDescription(
        stream_id=0, modality="bvp", sample_rate_hz=PPG_FS, channels=1, sample_format=SampleFormat.FLOAT32),))
    packets = sorted((p for sim in sims for p in ppg_packets(f"verity-{sim.subject}", sim, T0)), key=lambda p: p[0])
    gateway = Gateway(config, engine=engine, transport=False, warmup=False)
    embeddings, predictions = [], []
    async with gateway:
        for sim in sims:
            gateway.add_device(f"verity-{sim.subject}", description)
        gateway.on_embedding(embeddings.append)
        gateway.on_prediction(predictions.append)
        for i, (arrival, device, payload) in enumerate(packets):
            gateway.feed(device, payload, arrival)
            if i % 20 == 0:
                await asyncio.sleep(0)  # let the worker run batches as a live gateway would
    return gateway, embeddings, predictions


def main(argv=None) -> int:
    args = parse_args(argv)
    label = "simulated, random weights" if args.random_weights is not None else "simulated, stand-in weights"
    from sklearn.metrics import accuracy_score, f1_score

    from biomoe_edge.export import load_tiny_biomoe
    from biomoe_edge.runtime.engines import open_engine
    from biomoe_edge.runtime.gateway_config import parse_config
    from biomoe_edge.runtime.heads import load_head
    from biomoe_edge.training.bridge import PairedWindows, torch_backbone
    from biomoe_edge.training.bridge.features import embed_windows
    from biomoe_edge.training.bridge.simulation import (STATES, simulate_paired_session, simulate_streams, write_head,
                                                        write_simulated_recording)

    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    for folder in ("head", "paired_recording", "bridge", "served"):  # a rerun starts afresh (the cache is kept)
        shutil.rmtree(out / folder, ignore_errors=True)
    checkpoint = REFERENCE_DIR / "tiny_biomoe_seed11.pth"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if args.random_weights is not None:
            model, weights = load_tiny_biomoe(seed=args.random_weights), ["--random-weights", args.random_weights]
        elif checkpoint.is_file():
            model, weights = load_tiny_biomoe(checkpoint), ["--checkpoint", checkpoint]
        else:
            sys.exit(f"stand-in checkpoint not found at {checkpoint} (set BIOMOE_REFERENCE_DIR or --random-weights)")
    backbone = torch_backbone(model, seed=args.random_weights)
    print(f"BioX-Bridge on a simulated paired session ({label}); backbone {weights[-1]}", flush=True)
    figures: dict = {"label": label, "weights": str(weights[-1])}
    started = time.perf_counter()

    # 1. the old head: labelled ECG sessions of other subjects
    t = time.perf_counter()
    labelled = PairedWindows.concatenate([simulate_paired_session(100 + s, args.head_minutes * 60.0, hop_s=5.0)
                                          for s in range(args.head_subjects)])
    ecg = embed_windows(labelled.old, labelled.old_fs, "ecg", REPRESENTATION, model, progress=True,
                        description=f"ECG of {args.head_subjects} labelled subjects")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        head_manifest = write_head(out / "head", ecg, labelled.label, inputs=f"ecg:{REPRESENTATION}",
                                   backbone=backbone, classes=STATES, subjects=labelled.subject,
                                   window_end_s=labelled.end_s, window_s=labelled.window_s,
                                   cv="loso" if args.head_subjects > 1 else "none")
    cv = (head_manifest["metrics"]["cross_validation"] or {}).get("pooled") or {}
    figures["old_head"] = {"windows": len(labelled), "subjects": args.head_subjects, "seconds": time.perf_counter() - t,
                           "cross_validated_accuracy": cv.get("accuracy"), "cross_validated_macro_f1": cv.get("macro_f1")}
    print(f"old head on ECG: {len(labelled)} windows of {args.head_subjects} subjects, leave-one-subject-out accuracy "
          f"{cv.get('accuracy', float('nan')):.3f} ({label})", flush=True)

    # 2. the unlabelled paired session, recorded; the one command that fits and exports the bridge
    paired_sim = simulate_streams(7, args.paired_minutes * 60.0)
    recording = write_simulated_recording(out / "paired_recording", [paired_sim], hop_s=args.paired_hop, t0=T0)
    print(f"\nfitting the bridge on the unlabelled paired recording ({label}):", flush=True)
    t = time.perf_counter()
    sdk("bridge", "fit", "--paired", recording, "--new", f"bvp:{REPRESENTATION}", "--head", out / "head",
        "--out", out / "bridge", *weights, "--precision", "fp32", "--epochs", args.epochs,
        "--cache-dir", out / "cache", "--no-progress")
    bridge_manifest = json.loads((out / "bridge" / "bridge.json").read_text())
    figures["bridge_fit"] = {"seconds_with_export": time.perf_counter() - t, "timings": bridge_manifest["timings"],
                             "positions": {k: bridge_manifest["positions"][k]["name"] for k in ("input", "output")},
                             "trainable_parameters": bridge_manifest["trainable_parameters"],
                             "held_out": bridge_manifest["held_out"]}

    # 3. the gateway serving the bridge on PPG-only wearables of held-out subjects
    held_out = [simulate_streams(300 + s, args.held_out_minutes * 60.0) for s in range(args.held_out_subjects)]
    config = parse_config({
        "windows": {"length_s": bridge_manifest["data"]["window_s"], "hop_s": args.hop,
                    "representations": [REPRESENTATION]},
        "devices": [{"name": f"verity-{sim.subject}", "modalities": ["bvp"]} for sim in held_out],
        "subjects": [{"name": sim.subject, "devices": [f"verity-{sim.subject}"]} for sim in held_out],
        "heads": [{"path": str(out / "bridge")}],
        "engine": {"max_batch": 8, "deadline_ms": 50},
        "sinks": [{"kind": "jsonl", "directory": str(out / "served"), "prefix": "records"}],
    })
    if args.random_weights is not None:
        engine = open_engine("pytorch", None, random_weights=True, seed=args.random_weights, max_batch=8)
    else:
        engine = open_engine("pytorch", checkpoint, max_batch=8)
    t = time.perf_counter()
    gateway, embeddings, predictions = asyncio.run(serve(config, engine, held_out))
    serve_s = time.perf_counter() - t
    states = {sim.subject: sim for sim in held_out}
    truth = [states[p.subject].state_at(np.array([(p.window_start_s + p.window_end_s) / 2 - T0]))[0] for p in predictions]
    served = [p.predicted for p in predictions]
    # Baseline (a): the old head on the gateway's own PPG embeddings of the same windows (no bridge).
    head = load_head(out / "head")
    by_window = {(r.device, r.window_end_s): r.embedding for r in embeddings}
    direct = [head.classes[int(i)] for i in head.predict(
        [np.stack([by_window[(p.devices[0], p.window_end_s)] for p in predictions])]).argmax(1)]
    figures["served"] = {
        "predictions": len(predictions), "all_via_bridge": all(p.via_bridge for p in predictions),
        "seconds": serve_s, "subjects": [sim.subject for sim in held_out],
        "bridged_accuracy": accuracy_score(truth, served),
        "bridged_macro_f1": f1_score(truth, served, labels=list(STATES), average="macro", zero_division=0.0),
        "old_head_on_ppg_accuracy": accuracy_score(truth, direct),
        "old_head_on_ppg_macro_f1": f1_score(truth, direct, labels=list(STATES), average="macro", zero_division=0.0),
        # latency_ms left out: the packets carry simulated arrival times, fed faster than real time
        "gateway_heads": [{k: v for k, v in entry.items() if k != "latency_ms"} for entry in gateway.stats()["heads"]]}
    s = figures["served"]
    print(f"\ngateway: {len(predictions)} predictions via the bridge on {len(held_out)} held-out PPG-only wearables "
          f"({label})")
    print("| on the held-out subjects' PPG | accuracy | macro F1 |\n|---|---|---|")
    print(f"| bridged head (served) | {s['bridged_accuracy']:.3f} | {s['bridged_macro_f1']:.3f} |")
    print(f"| old head on PPG embeddings, no bridge | {s['old_head_on_ppg_accuracy']:.3f} | "
          f"{s['old_head_on_ppg_macro_f1']:.3f} |")
    figures["total_seconds"] = time.perf_counter() - started
    (out / "figures.json").write_text(json.dumps(figures, indent=2, default=str) + "\n")
    print(f"\n{figures['total_seconds']:.0f} s in all; figures in {out / 'figures.json'} ({label})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
