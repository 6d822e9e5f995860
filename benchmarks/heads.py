"""Heads: training time, fusion-stage overhead per prediction, and the simulated task's accuracy table.

    python benchmarks/heads.py                       # training time (10,000 windows) + fusion overhead
    python benchmarks/heads.py --accuracy-table build/simulated   # + the table examples/simulated_heads.py made
    python benchmarks/heads.py --json heads.json

1. Training time on this CPU for a dataset of 10,000 windows (20 subjects x 500 windows, 3 classes, synthetic
   Gaussian embeddings: the time does not depend on what the numbers mean): the final fit of the default head
   (elu-linear, Adam 1e-3, 60 epochs, batch 64) on 1 and 4 inputs, and the whole ``train_head`` (5 subject folds,
   final fit, ONNX export, ONNX Runtime check) on 4 inputs.
2. Fusion-stage overhead per prediction: a 4-input head (ONNX Runtime, one thread) behind ``FusionStage``, fed the
   4 embedding records of each window time (2 devices of one subject), timed per ``add`` call that completes one
   window time, side by side with the head's own ONNX Runtime run on the same embeddings; and 8 subjects' window
   times completing in one call (one graph run for 8 predictions).
3. ``--accuracy-table DIR``: the SIMULATED task's table (single representations, intra-modality and multimodal
   fusion) written by examples/simulated_heads.py, and the live accuracy of its demo. With random weights these
   measure the SDK's path, not Tiny-BioMoE.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import statistics
import sys
import tempfile
import time
import warnings

import numpy as np

from biomoe_edge.vocabulary import InputType


def synthetic_frame(windows: int, subjects: int, inputs, seed: int = 0):
    """A dataset frame (the load_dataset columns) of ``windows`` labelled window times per ``inputs``."""
    import pandas as pd

    rng = np.random.default_rng(seed)
    classes = ("rest", "mild", "strong")
    directions = {c: rng.standard_normal(192) / np.sqrt(192) * 3 for c in classes}
    per_subject = windows // subjects
    rows = []
    for s in range(subjects):
        for w in range(per_subject):
            label = classes[(w // 20) % 3]
            for input_type in map(InputType.parse, inputs):
                modality, representation = input_type.modality.value, input_type.representation.value
                rows.append({"subject": f"s{s:02d}", "device": f"s{s:02d}-{modality}", "modality": modality,
                             "representation": representation, "window_start_s": 2.0 * w, "window_end_s": 2.0 * w + 10,
                             "quality": [], "label": label,
                             "embedding": (rng.standard_normal(192) + directions[label]).astype(np.float32),
                             "model_sha256": "0" * 64, "checkpoint_sha256": None, "precision": "fp32",
                             "random_weights": True, "seed": 0, "engine": "synthetic"})
    frame = pd.DataFrame(rows)
    frame["label"] = pd.Series(list(frame["label"]), dtype=object)
    return frame


def training_time(windows: int, full: bool) -> dict:
    import torch

    from biomoe_edge.training.classifiers import HeadOptions, fit_head
    from biomoe_edge.training.datasets import training_windows
    from biomoe_edge.training.head_training import train_head

    inputs4 = ["eda:scalogram", "bvp:scalogram", "resp:scalogram", "spo2:scalogram"]
    frame = synthetic_frame(windows, 20, inputs4)
    fit_head(np.zeros((6, 1, 192), np.float32), np.arange(6) % 3, 3, HeadOptions(epochs=1))  # PyTorch's one-time init
    out = {"windows": windows, "subjects": 20, "torch": torch.__version__, "threads": 1}
    for k in (1, 4):
        fused, classes = training_windows(frame, inputs4[:k])
        y = np.array([classes.index(label) for label in fused.labels])
        t0 = time.perf_counter()
        fit_head(fused.embeddings, y, len(classes), HeadOptions())
        out[f"final_fit_{k}_inputs_s"] = time.perf_counter() - t0
        print(f"final fit, {len(fused)} windows x {k} input(s), elu-linear, 60 epochs: "
              f"{out[f'final_fit_{k}_inputs_s']:.1f} s", flush=True)
    if full:
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            manifest = train_head("synthetic", inputs4, pathlib.Path(tmp) / "head", frame=frame,
                                  dataset_sha256="0" * 64, cv=5)
            out["train_head_4_inputs_5_folds_s"] = time.perf_counter() - t0
            out["train_head_timing_s"] = manifest["timing_s"]
        print(f"train_head, 4 inputs, 5 subject folds + final fit + ONNX export and check: "
              f"{out['train_head_4_inputs_5_folds_s']:.1f} s ({manifest['timing_s']})", flush=True)
    return out


def fusion_overhead(window_times: int) -> dict:
    from biomoe_edge.runtime.heads import FusionStage, load_head
    from biomoe_edge.runtime.records import EmbeddingRecord
    from biomoe_edge.training.classifiers import HeadOptions
    from biomoe_edge.training.head_training import train_head

    inputs = ["eda:scalogram", "bvp:scalogram", "resp:scalogram", "spo2:scalogram"]
    devices = {"eda": "p-wrist", "bvp": "p-wrist", "resp": "p-chest", "spo2": "p-chest"}
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        train_head("synthetic", inputs, pathlib.Path(tmp) / "head", frame=synthetic_frame(600, 3, inputs),
                   dataset_sha256="0" * 64, cv="none", options=HeadOptions(epochs=2))
        head = load_head(pathlib.Path(tmp) / "head")

        def records(subject: str, end: float):
            return [EmbeddingRecord(device=f"{subject}{devices[m][1:]}", modality=m, representation="scalogram",
                                    window_start_s=end - 10, window_end_s=end,
                                    embedding=rng.standard_normal(192).astype(np.float32), arrival_time_s=end)
                    for m in (InputType.parse(name).modality.value for name in inputs)]

        subjects = {f"s{i}{d[1:]}": f"s{i}" for i in range(8) for d in set(devices.values())}
        stage = FusionStage([head], subjects=subjects, deadline_s=1e9)
        batches = [records("s0", 10.0 + i) for i in range(window_times)]
        for batch in batches[:50]:  # warm-up: ONNX Runtime's first runs, allocations
            stage.add(batch)
        stage_s, head_s = [], []
        for batch in batches[50:]:
            t0 = time.perf_counter()
            (prediction,) = stage.add(batch)
            stage_s.append(time.perf_counter() - t0)
            parts = [r.embedding[None] for r in batch]
            t0 = time.perf_counter()
            head.predict(parts)
            head_s.append(time.perf_counter() - t0)
        many_s = []
        for i in range(window_times // 8):
            batch = [r for s in range(8) for r in records(f"s{s}", 1e5 + i)]
            t0 = time.perf_counter()
            assert len(stage.add(batch)) == 8
            many_s.append((time.perf_counter() - t0) / 8)
    out = {
        "window_times": len(stage_s),
        "stage_per_prediction_us": {"p50": 1e6 * statistics.median(stage_s),
                                    "p95": 1e6 * float(np.percentile(stage_s, 95))},
        "head_alone_us": {"p50": 1e6 * statistics.median(head_s), "p95": 1e6 * float(np.percentile(head_s, 95))},
        "stage_per_prediction_8_subjects_per_call_us": {"p50": 1e6 * statistics.median(many_s)},
    }
    out["bookkeeping_us_p50"] = out["stage_per_prediction_us"]["p50"] - out["head_alone_us"]["p50"]
    print(f"fusion stage, 4-input head, one window time per call: {out['stage_per_prediction_us']['p50']:.0f} us per "
          f"prediction (p95 {out['stage_per_prediction_us']['p95']:.0f}); the head's ONNX Runtime run alone "
          f"{out['head_alone_us']['p50']:.0f} us (p95 {out['head_alone_us']['p95']:.0f}); the stage's own "
          f"bookkeeping about {out['bookkeeping_us_p50']:.0f} us", flush=True)
    print(f"8 subjects' window times in one call (one graph run): "
          f"{out['stage_per_prediction_8_subjects_per_call_us']['p50']:.0f} us per prediction", flush=True)
    return out


def accuracy_table(folder: pathlib.Path) -> dict:
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "examples"))
    from simulated_heads import accuracy_table as markdown

    table = json.loads((folder / "table.json").read_text())
    print("\n" + markdown(table))
    out = {"table": table}
    report = folder / "demo_report.json"
    if report.exists():
        demo = json.loads(report.read_text())
        out["demo"] = {"predictions": demo["predictions"]["count"], "live_accuracy": demo["live_accuracy"]}
        score = demo["live_accuracy"]
        if score.get("windows_scored"):
            print(f"\nlive (demo --head, emulated wearables, held-out SIMULATED subject): {score['windows_scored']} "
                  f"windows scored, accuracy {score['accuracy']:.1%}, balanced {score.get('balanced_accuracy', 0):.1%}; "
                  f"prediction latency p50 {demo['predictions']['latency_ms']['p50']:.0f} ms")
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--windows", type=int, default=10_000, help="training windows (default 10,000)")
    parser.add_argument("--window-times", type=int, default=2000, help="fusion-stage window times timed")
    parser.add_argument("--no-full", action="store_true", help="skip the whole train_head (5 folds) timing")
    parser.add_argument("--accuracy-table", default=None, metavar="DIR",
                        help="print the simulated task's table from examples/simulated_heads.py --out DIR")
    parser.add_argument("--json", default=None, metavar="FILE")
    args = parser.parse_args(argv)
    warnings.simplefilter("ignore")
    print(f"CPU: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} (shared machines: figures move with it)")
    result = {"load_average_1min": os.getloadavg()[0], "training": training_time(args.windows, not args.no_full),
              "fusion": fusion_overhead(args.window_times)}
    if args.accuracy_table:
        result["simulated"] = accuracy_table(pathlib.Path(args.accuracy_table))
    if args.json:
        pathlib.Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
