"""The SIMULATED task end to end: labelled sessions -> dataset of embeddings -> train-head -> evaluate-head -> the
gateway serving a head live to emulated wearables playing held-out subjects.

    python examples/simulated_heads.py --out build/simulated            # about 10-15 min on a 2-core CPU
    python examples/simulated_heads.py --out build/simulated --quick    # a smaller grid, a few minutes

What it does, step by step (each ``$ biomoe-edge ...`` line it prints is the command it runs):

1. Simulated sessions (``biomoe_edge.simulated_sessions``): NeuroKit2 EDA, BVP, respiration and SpO2 whose
   physiology differs by class (rest / mild / strong: heart rate and variability, breathing rate, skin-conductance
   responses), for training subjects and held-out subjects, each with their own baseline.
2. An emulated recording per partition, in real time: each subject's wearables (a wristband for EDA and BVP, a
   chest strap for respiration, a finger oximeter for SpO2; ``[[subjects]]``) play its session over Bumble to a
   gateway with a recording sink; ``labels.csv`` gets the class intervals in gateway time (where each wearable
   started its session). Then ``biomoe-edge embed REC --labels labels.csv --out DATASET`` replays the recording
   through the gateway's own ``Pipeline`` with the grid's representations. ``--in-process`` skips the radio and
   the real-time wait: the sessions are encoded as native packets and fed to the ``Pipeline`` directly
   (``biomoe_edge.training.simulated_dataset``, the same windows and embeddings up to the radio's timing).
3. The paper's grid on the simulated task: each representation alone, intra-modality fusion (two
   representations of one modality), multimodal fusion: ``train-head`` (leave-one-subject-out on the training
   subjects) and ``evaluate-head`` (the held-out subjects).
4. ``biomoe-edge demo --head`` serves the best multimodal head to emulated wearables (Bumble) playing held-out
   subjects' sessions; its report scores the live predictions.

The backbone is the demo's: Tiny-BioMoE exported with RANDOM weights unless ``--checkpoint`` is given. With random
weights every accuracy here measures the SDK's path on a simulated task, not Tiny-BioMoE and not pain; the
paper's numbers need the published weights and AI4PAIN (examples/ai4pain_paper_grid.sh).
"""

from __future__ import annotations

import argparse
import json
import pathlib
import shlex
import sys
import time
import warnings

MODALITIES = ("eda", "bvp", "resp", "spo2")
REPRESENTATIONS = ("scalogram", "recurrence")


def grid(modalities=MODALITIES, representations=REPRESENTATIONS) -> list[tuple[str, str, str]]:
    """(kind, name, inputs) of every head: each representation alone, each modality's representations fused,
    every modality fused (one representation, then all)."""
    rows = [("single", f"{m}_{r}", f"{m}:{r}") for m in modalities for r in representations]
    rows += [("intra-modality", f"{m}_fused", ",".join(f"{m}:{r}" for r in representations)) for m in modalities]
    rows += [("multimodal", f"all_{r}", ",".join(f"{m}:{r}" for m in modalities)) for r in representations[:1]]
    rows += [("multimodal", "all_fused", ",".join(f"{m}:{r}" for m in modalities for r in representations))]
    return rows


def sdk(*argv) -> None:
    """Run one ``biomoe-edge`` command in this process (saves re-importing torch per command) and echo it."""
    from biomoe_edge.cli import main

    print("$ biomoe-edge " + " ".join(shlex.quote(str(a)) for a in argv), flush=True)
    code = main([str(a) for a in argv])
    if code:
        raise SystemExit(f"biomoe-edge {argv[0]} failed with exit code {code}")


async def record_sessions(sessions, folder: pathlib.Path, engine, *, modalities) -> list[tuple]:
    """Emulated wearables play ``sessions`` in real time to a gateway recording into ``folder``; returns the label
    rows (subject, device, start_s, end_s, label) in gateway time, from where each wearable started its session."""
    import asyncio
    import dataclasses

    from biomoe_edge.commands.demo import with_recording
    from biomoe_edge.commands.demo_head import session_origin
    from biomoe_edge.firmware_bridge.emulation import VirtualBleNetwork
    from biomoe_edge.firmware_bridge.profiles.registry import Profile
    from biomoe_edge.runtime.gateway import Gateway
    from biomoe_edge.runtime.gateway_config import parse_config
    from biomoe_edge.runtime.transport.backend import TransportBackend
    from biomoe_edge.simulated_sessions import wearables_of

    worn = {s.subject: wearables_of(s.subject, modalities) for s in sessions}
    # The live gateway only records here: one cheap picture every 10 s keeps the engine idle; embed re-windows.
    config = with_recording(parse_config({
        "windows": {"length_s": 10.0, "hop_s": 10.0, "representations": ["waveform"]},
        "devices": [{"name": d, "profile": Profile.NATIVE.value, "modalities": list(m)}
                    for devices in worn.values() for d, m in devices.items()],
        "subjects": [{"name": subject, "devices": list(devices)} for subject, devices in worn.items()],
        # emulated boards in this process: no link security to set up (docs/ble.md, "Security")
        "transport": {"backoff_min_s": 0.2, "backoff_max_s": 2.0, "connect_timeout_s": 20.0, "security": "none"},
    }), folder)
    config = dataclasses.replace(config, engine=dataclasses.replace(config.engine, max_queue=4096))
    async with VirtualBleNetwork() as network:
        wearables = {}
        for session in sessions:
            for device, mods in worn[session.subject].items():
                wearables[device] = (session, await network.add_wearable(
                    device, modalities=mods, signals=session.recording(mods), seed=len(wearables), security="none"))
        backend = TransportBackend.bumble(await network.central())
        async with Gateway(config, engine=engine, backend=backend):
            await asyncio.sleep(max(s.duration_s for s in sessions) + 3.0)
            origins = {device: session_origin(w) for device, (_, w) in wearables.items()}
            for _, wearable in wearables.values():
                await wearable.stop()
    rows = []
    for device, (session, _) in wearables.items():
        if origins[device] is None:
            print(f"warning: {device} never streamed; its windows stay unlabelled")
            continue
        rows += [(session.subject, device, origins[device] + i.start_s, origins[device] + i.end_s, i.label)
                 for i in session.labels]
    return rows


def build_datasets(out: pathlib.Path, *, train_subjects: int, held_out: int, block_s: float, hop_s: float,
                   modalities=MODALITIES, checkpoint=None, seed: int = 0,
                   in_process: bool = False) -> tuple[pathlib.Path, pathlib.Path]:
    from biomoe_edge.export.cache import cached_onnx
    from biomoe_edge.runtime.engines import open_engine
    from biomoe_edge.simulated_sessions import simulate_session
    from biomoe_edge.training.datasets import save_dataset
    from biomoe_edge.training.simulated_dataset import embed_simulated_sessions, label_counts

    paths = out / "train", out / "held_out"
    if all(p.exists() for p in paths):
        print(f"reusing {paths[0]} and {paths[1]} (delete them to rebuild)")
        return paths
    # The demo's model (its cached ONNX export), so that demo --head serves these heads on the same backbone.
    # One ONNX Runtime thread: on a shared 2-core machine more threads spin against each other.
    engine = open_engine("onnxruntime", cached_onnx(checkpoint, precision="fp32"), max_batch=16, intra_op_num_threads=1)
    subjects = {"train": range(1, train_subjects + 1),
                "held_out": range(train_subjects + 1, train_subjects + held_out + 1)}
    for path, (part, indices) in zip(paths, subjects.items()):
        t0 = time.perf_counter()
        sessions = [simulate_session(i, modalities=modalities, block_s=block_s, seed=seed) for i in indices]
        if in_process:
            frame = embed_simulated_sessions(sessions, engine, modalities=modalities, representations=REPRESENTATIONS,
                                             window_s=10.0, hop_s=hop_s)
            save_dataset(frame, path, metadata={"simulated": True, "subjects": [s.subject for s in sessions]})
            print(f"{part}: {len(frame)} embeddings of {len(sessions)} SIMULATED subjects {label_counts(frame)} in "
                  f"{time.perf_counter() - t0:.0f} s -> {path}", flush=True)
            continue
        import asyncio
        import csv

        recording = out / "recordings" / part
        print(f"{part}: recording {len(sessions)} SIMULATED subjects in real time ({sessions[0].duration_s:.0f} s)",
              flush=True)
        rows = asyncio.run(record_sessions(sessions, recording, engine, modalities=modalities))
        labels = out / f"{part}_labels.csv"
        with open(labels, "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["subject", "device", "start_s", "end_s", "label"])
            writer.writerows(rows)
        sdk("embed", recording, "--labels", labels, "--representations", ",".join(REPRESENTATIONS), "--window", 10,
            "--hop", hop_s, "--out", path, "--quiet")
        print(f"{part}: recorded and embedded in {time.perf_counter() - t0:.0f} s -> {path}", flush=True)
    engine.close()
    return paths


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="build/simulated", help="output folder (datasets, heads, reports)")
    parser.add_argument("--train-subjects", type=int, default=6)
    parser.add_argument("--held-out", type=int, default=2)
    parser.add_argument("--block", type=float, default=40.0, help="seconds per class block of each session")
    parser.add_argument("--hop", type=float, default=2.0, help="window hop in seconds (windows are 10 s)")
    parser.add_argument("--epochs", type=int, default=60)
    parser.add_argument("--checkpoint", default=None, help="Tiny-BioMoE .pth (default: the demo's random weights)")
    parser.add_argument("--demo-duration", type=float, default=90.0, help="seconds of live serving (0: skip)")
    parser.add_argument("--quick", action="store_true", help="4 + 1 subjects, 30 s blocks, the grid on EDA and BVP")
    parser.add_argument("--in-process", action="store_true",
                        help="no emulated recording: feed the sessions' packets to the Pipeline directly (faster)")
    args = parser.parse_args(argv)
    warnings.simplefilter("ignore")  # the random-weights warning is printed once by the commands themselves
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    modalities = MODALITIES
    if args.quick:
        args.train_subjects, args.held_out, args.block = 4, 1, 30.0
        modalities = ("eda", "bvp")
    train, held_out = build_datasets(out, train_subjects=args.train_subjects, held_out=args.held_out,
                                     block_s=args.block, hop_s=args.hop, modalities=modalities,
                                     checkpoint=args.checkpoint, in_process=args.in_process)

    table = []
    for kind, name, inputs in grid(modalities):
        head = out / "heads" / name
        t0 = time.perf_counter()
        sdk("train-head", train, "--inputs", inputs, "--out", head, "--cv", "loso", "--epochs", args.epochs,
            "--classes", "rest,mild,strong")
        train_s = time.perf_counter() - t0
        sdk("evaluate-head", head, held_out, "--json", out / "eval" / f"{name}.json")
        manifest = json.loads((head / "head.json").read_text())
        evaluation = json.loads((out / "eval" / f"{name}.json").read_text())
        table.append({"kind": kind, "head": name, "inputs": inputs,
                      "cv_balanced_accuracy": manifest["metrics"]["cross_validation"]["pooled"]["balanced_accuracy"],
                      "held_out_balanced_accuracy": evaluation["balanced_accuracy"],
                      "held_out_macro_f1": evaluation["macro_f1"], "train_head_s": round(train_s, 1),
                      "random_weights": manifest["backbone"]["random_weights"]})
    (out / "table.json").write_text(json.dumps(table, indent=2) + "\n")
    print("\n" + accuracy_table(table))

    if args.demo_duration > 0:
        best = max((row for row in table if row["kind"] == "multimodal"), key=lambda r: r["cv_balanced_accuracy"])
        # One held-out subject live: a 2-core CPU embeds about 5-10 images a second with ONNX Runtime.
        sdk("demo", "--head", out / "heads" / best["head"], "--subjects", 1, "--duration",
            args.demo_duration, "--hop", args.hop, "--quiet", "--report", out / "demo_report.json",
            *(["--checkpoint", args.checkpoint] if args.checkpoint else ["--random-weights"]))
    return 0


def accuracy_table(table) -> str:
    """Markdown: one row per head, cross-validated (leave-one-subject-out) and held-out balanced accuracy."""
    random_weights = any(row["random_weights"] for row in table)
    lines = ["SIMULATED task (3 classes, chance 33.3 %)" + (": Tiny-BioMoE with RANDOM weights, not the published "
                                                            "model; these are not the paper's numbers" if random_weights else ""),
             "", "| fusion | head inputs | CV balanced accuracy (LOSO) | held-out balanced accuracy | held-out macro F1 |",
             "| --- | --- | --- | --- | --- |"]
    for row in table:
        lines.append(f"| {row['kind']} | {row['inputs']} | {row['cv_balanced_accuracy']:.1%} | "
                     f"{row['held_out_balanced_accuracy']:.1%} | {row['held_out_macro_f1']:.3f} |")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
