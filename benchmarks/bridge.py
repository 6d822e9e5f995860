#!/usr/bin/env python3
"""BioX-Bridge on Tiny-BioMoE, end to end on SIMULATED data with STAND-IN weights: fit time for a paired session on
this machine, the position-selection table, the baselines, the prototype initialisations and losses compared,
and the exported graph's check.

    python benchmarks/bridge.py                      # a 30-minute paired session, 10 s windows every second
    python benchmarks/bridge.py --minutes 10 --hop 2 --json bridge.json

What runs (docs/bridge.md, "Measured"):

1. The stand-in backbone: ``../shared/reference/tiny_biomoe_seed11.pth`` (a perturbed copy of the architecture's
   weights, read in place; not the published Tiny-BioMoE weights), or ``--random-weights SEED``.
2. The old head: ``train_head`` (what ``biomoe-edge train-head`` runs; ELU -> Linear, cross-validated leaving one
   subject out) on the ECG embeddings of ``--head-subjects`` simulated labelled sessions (10 min each, a window
   every 5 s).
3. The paired session: one other simulated subject wearing a Polar H10 (ECG) and a Verity Sense (PPG) for
   ``--minutes``, written as an SDK recording (10 s windows every ``--hop`` s) and read back as ``bridge fit``
   reads it (``load_paired_windows``: the gateway's own windows). ``fit_bridge`` runs from a cold feature cache
   (reading plus fitting is the time a user of ``bridge fit`` waits, before the export), then again from the warm
   cache. Positions are selected by the probe and CKA as in the paper.
4. Baselines on the held-out part of the paired session, and on ``--test-subjects`` further simulated subjects
   (their PPG through the bridge; their ECG only for the old head's own row and pseudo-labels); the exported
   fp16 graph evaluated on those subjects' labelled PPG windows as ``bridge evaluate`` does.
5. Variants from the warm cache: prototypes from real features vs random; the centred vs the plain cosine loss;
   later input positions than the probe's choice.
6. Export of the bridged graph (fp32 and fp16) with its ONNX Runtime check.

All accuracies are on simulated physiology with stand-in weights: they show the method's mechanics, not what
the published weights would reach on real recordings.

``--serving`` measures instead what a served bridge adds to a window's engine time (docs/bridge.md, "Cost on the
gateway: served from the engine's run"), on ONNX Runtime's CPU provider: the engine graph without taps, against
the same weights exported with the bridge's tap plus the bridge graph fed that tap, per output position, timed
interleaved in one run (medians per window, and their ratio). The bridges are unfitted (random prototypes and
factors): their cost does not depend on their values.

    python benchmarks/bridge.py --serving --batch 8 --repeats 15
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import platform
import sys
import tempfile
import time
import warnings

import numpy as np

REPO = pathlib.Path(__file__).resolve().parents[1]
REFERENCE_DIR = pathlib.Path(os.environ.get("BIOMOE_REFERENCE_DIR", REPO.parent / "shared" / "reference"))
LABEL = "simulated, stand-in weights"
T0 = 1000.0  # gateway time of the simulated recordings' first sample (write_simulated_recording's default)
REPRESENTATION = "spectrogram_psd"


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=30.0, help="paired session length (default 30)")
    parser.add_argument("--hop", type=float, default=1.0, help="paired window hop in s (default 1, the gateway's)")
    parser.add_argument("--head-subjects", type=int, default=4, help="labelled ECG sessions for the old head")
    parser.add_argument("--test-subjects", type=int, default=2, help="further subjects to evaluate on")
    parser.add_argument("--epochs", type=int, default=50)
    parser.add_argument("--random-weights", type=int, metavar="SEED", help="random weights instead of the stand-in")
    parser.add_argument("--cache-dir", type=pathlib.Path, help="feature cache (default: a fresh temporary folder, "
                        "so that the first fit is a cold one)")
    parser.add_argument("--json", type=pathlib.Path, help="write every figure here")
    parser.add_argument("--serving", action="store_true",
                        help="measure what a served bridge adds to the engine's time per window (nothing else)")
    parser.add_argument("--tap", default="enc1.stage3", help="--serving: the bridge's input position")
    parser.add_argument("--outputs", default="fused,experts,enc1.block4+enc2.blocks3",
                        help="--serving: output positions to measure, comma-separated")
    parser.add_argument("--batch", type=int, default=8, help="--serving: windows per engine run")
    parser.add_argument("--repeats", type=int, default=15, help="--serving: timed runs of each")
    return parser.parse_args(argv)


def write_stand_in_head(path: pathlib.Path, classes: int = 3) -> pathlib.Path:
    """A head graph of the documented form (``input_0`` (B, 192) -> Gemm -> Softmax -> ``probabilities``) with
    random weights: only its cost matters here."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    graph = helper.make_graph(
        [helper.make_node("Gemm", ["input_0", "W", "b"], ["logits"]),
         helper.make_node("Softmax", ["logits"], ["probabilities"], axis=1)], "head",
        [helper.make_tensor_value_info("input_0", TensorProto.FLOAT, ["batch", 192])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["batch", classes])],
        initializer=[numpy_helper.from_array(rng.standard_normal((192, classes)).astype(np.float32), "W"),
                     numpy_helper.from_array(np.zeros(classes, np.float32), "b")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 9
    onnx.save(model, str(path))
    return path


def serving(args) -> int:
    """Engine time per window with and without a served bridge, side by side (ONNX Runtime CPU)."""
    import onnxruntime as ort
    import torch

    from biomoe_edge.export import export_onnx
    from biomoe_edge.runtime.engines import open_engine
    from biomoe_edge.runtime.engines.onnxruntime_engine import cpu_session
    from biomoe_edge.runtime.engines.taps import tap_output_name
    from biomoe_edge.training.bridge.export import append_head, export_served_embedding_graph
    from biomoe_edge.training.bridge.protolrfc import Bridge, ServedBridge

    model, weights = load_model(args)
    work = pathlib.Path(tempfile.mkdtemp(prefix="biomoe-bridge-serving-"))
    print(f"served bridge cost ({weights}; unfitted bridges; ONNX Runtime CPU, {os.cpu_count()} CPUs, load "
          f"average {os.getloadavg()[0]:.1f}); batch {args.batch}, {args.repeats} interleaved runs each")
    images = np.random.default_rng(0).random((args.batch, 3, 224, 224), dtype=np.float32)
    fidelity = images[:2]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        plain_path = export_onnx(model, work / "plain.onnx", max_batch=args.batch, fidelity_images=fidelity)
        tapped_path = export_onnx(model, work / "tapped.onnx", max_batch=args.batch, fidelity_images=fidelity,
                                  taps=(args.tap,))
    head = write_stand_in_head(work / "head.onnx")
    bridges = {}
    for output in args.outputs.split(","):
        bridge = Bridge(args.tap, output.split("+"), rank=8, prototypes=32)
        bridge.init_prototypes("random", seed=0)
        with torch.no_grad():
            for m in bridge.maps:  # nonzero factors: an unfitted bridge of the fitted one's shape and cost
                for parameter in m.parameters():
                    parameter.normal_(0.0, 0.02)
        embedding_graph = work / f"{output}_embedding.onnx"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            export_served_embedding_graph(ServedBridge(model, bridge).eval(), embedding_graph, args.batch)
        append_head(embedding_graph, head, work / f"{output}_bridge.onnx")
        bridges[output] = cpu_session(work / f"{output}_bridge.onnx")
    plain = open_engine("onnxruntime", plain_path, max_batch=args.batch)
    tapped = open_engine("onnxruntime", tapped_path, max_batch=args.batch)
    name = tap_output_name(args.tap)

    def with_bridge(session):
        def run():
            _, taps = tapped.infer_tapped(images, (args.tap,))
            session.run(["probabilities"], {name: taps[args.tap]})
        return run

    features = tapped.infer_tapped(images, (args.tap,))[1][args.tap]
    cases = {"engine, no bridge": lambda: plain.infer(images),
             f"engine with tap {args.tap}, no bridge": lambda: tapped.infer_tapped(images, (args.tap,)),
             **{f"engine with tap + bridge into {output}": with_bridge(session)
                for output, session in bridges.items()},
             # The bridge graph alone, fed the tap: what serving adds, measured without the engine's noise.
             **{f"bridge graph into {output} alone": (lambda session=session: session.run(
                 ["probabilities"], {name: features})) for output, session in bridges.items()}}
    times: dict = {case: [] for case in cases}
    for run in cases.values():  # warm-up
        run()
    for _ in range(args.repeats):
        for case, run in cases.items():
            started = time.perf_counter()
            run()
            times[case].append((time.perf_counter() - started) / args.batch)
    base = float(np.median(times["engine, no bridge"]))
    results = {"label": "stand-in weights, unfitted bridges, random images (cost only)", "weights": weights,
               "runtime": f"onnxruntime {ort.__version__} CPUExecutionProvider", "batch": args.batch,
               "repeats": args.repeats, "tap": args.tap, "cpus": os.cpu_count(), "load_average": os.getloadavg(),
               "bridge_graph_bytes": {o: (work / f"{o}_bridge.onnx").stat().st_size for o in bridges},
               "engine_graph_bytes": plain_path.stat().st_size, "cases": {}}
    print("\n| per window | median ms | ratio to the engine alone |\n|---|---|---|")
    for case, values in times.items():
        median = float(np.median(values))
        results["cases"][case] = {"median_ms": 1e3 * median, "ratio": median / base,
                                  "samples_ms": [1e3 * v for v in values]}
        print(f"| {case} | {1e3 * median:.3f} | {median / base:.4f} |")
    print("\nbridge graph sizes: " + ", ".join(f"{o} {n / 1e6:.2f} MB" for o, n in
                                              results["bridge_graph_bytes"].items())
          + f" (the engine graph: {plain_path.stat().st_size / 1e6:.1f} MB)")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, default=str) + "\n")
        print(f"wrote {args.json}")
    return 0


def load_model(args):
    from biomoe_edge.export import load_tiny_biomoe

    if args.random_weights is not None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return load_tiny_biomoe(seed=args.random_weights), f"random weights (seed {args.random_weights})"
    checkpoint = REFERENCE_DIR / "tiny_biomoe_seed11.pth"
    if not checkpoint.is_file():
        sys.exit(f"stand-in checkpoint not found at {checkpoint} (set BIOMOE_REFERENCE_DIR or use --random-weights)")
    return load_tiny_biomoe(checkpoint), f"stand-in checkpoint {checkpoint.name} (perturbed reference weights)"


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.serving:
        return serving(args)
    from biomoe_edge.training.bridge import (PairedWindows, compare_baselines, evaluate_bridge, export_bridge,
                                             extract_features, fit_bridge, load_labelled_windows,
                                             load_paired_windows, torch_backbone)
    from biomoe_edge.training.bridge.features import embed_windows
    from biomoe_edge.training.bridge.report import (baseline_table, entry_point_table, input_position_table,
                                                    output_position_table)
    from biomoe_edge.training.bridge.simulation import (STATES, simulate_paired_session, simulate_streams,
                                                        write_head, write_simulated_recording,
                                                        write_state_labels)

    import torch

    results: dict = {"label": LABEL, "machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                                                 "torch_threads": torch.get_num_threads(),
                                                 "load_average_start": os.getloadavg()}}
    model, weights = load_model(args)
    results["weights"] = weights
    backbone = torch_backbone(model, seed=args.random_weights)
    print(f"BioX-Bridge benchmark ({LABEL}): {weights}; {os.cpu_count()} CPUs, load average "
          f"{os.getloadavg()[0]:.1f}")
    work = pathlib.Path(tempfile.mkdtemp(prefix="biomoe-bridge-bench-"))
    cache_dir = args.cache_dir or work / "cache"

    # 2. the old head, on labelled ECG sessions of other subjects
    started = time.perf_counter()
    labelled = PairedWindows.concatenate([simulate_paired_session(100 + s, 600.0, hop_s=5.0)
                                          for s in range(args.head_subjects)])
    ecg_embeddings = embed_windows(labelled.old, labelled.old_fs, "ecg", REPRESENTATION, model, progress=True,
                                   description=f"old head: ECG of {args.head_subjects} labelled sessions")
    head_dir = work / "head"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        head_manifest = write_head(head_dir, ecg_embeddings, labelled.label, inputs=f"ecg:{REPRESENTATION}",
                                   backbone=backbone, classes=STATES, subjects=labelled.subject,
                                   window_end_s=labelled.end_s, window_s=labelled.window_s,
                                   cv="loso" if args.head_subjects > 1 else "none")
    cross_validation = head_manifest["metrics"]["cross_validation"]
    results["head"] = {"windows": len(labelled), "subjects": args.head_subjects,
                       "training_set_accuracy": head_manifest["metrics"]["training_set"]["accuracy"],
                       "cross_validation": cross_validation and {
                           k: cross_validation["pooled"].get(k) for k in ("accuracy", "macro_f1")},
                       "seconds": time.perf_counter() - started}

    # 3. the paired session, recorded as the gateway records it; a cold fit (features computed), then a warm one
    simulated = simulate_streams(0, args.minutes * 60.0)
    folder = write_simulated_recording(work / "paired", [simulated], hop_s=args.hop)
    started = time.perf_counter()
    paired = load_paired_windows([folder], None, "ecg", "bvp")
    load_s = time.perf_counter() - started
    paired.label = simulated.state_at((paired.start_s + paired.end_s) / 2 - T0)
    print(f"paired session: {args.minutes:g} min, {len(paired)} windows read from the recording in {load_s:.1f} s "
          f"({LABEL})")
    started = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fit = fit_bridge(paired, head_dir, model, new_representation=REPRESENTATION, backbone=backbone,
                         epochs=args.epochs, cache_dir=cache_dir)
    cold_s = time.perf_counter() - started + load_s
    started = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        warm = fit_bridge(load_paired_windows([folder], None, "ecg", "bvp"), head_dir, model,
                          new_representation=REPRESENTATION, backbone=backbone, epochs=args.epochs,
                          cache_dir=cache_dir, progress=False)
    warm_s = time.perf_counter() - started
    results["fit"] = {"paired_minutes": args.minutes, "hop_s": args.hop, "windows": len(paired),
                      "read_recording_s": load_s, "cold_cache_s": cold_s, "warm_cache_s": warm_s,
                      "cold_timings": fit.timings,
                      "warm_timings": warm.timings, "warnings": [str(w.message) for w in caught],
                      "load_average_after": os.getloadavg()}
    results["positions"] = fit.positions
    results["bridge"] = {"trainable_parameters": fit.trainable_parameters, "rank": fit.rank,
                         "prototypes": fit.prototypes, "initialisation": fit.initialisation,
                         "held_out": fit.held_out, "curve": fit.curve}
    print(f"\nfit time ({LABEL}), {len(paired)} paired windows: {cold_s:.0f} s from a cold cache (reading the "
          f"recording {load_s:.0f} s, features {fit.timings['features_s']:.0f} s, selection "
          f"{fit.timings['selection_s']:.0f} s, training {fit.timings['training_s']:.0f} s); {warm_s:.0f} s from the "
          "warm cache")
    print(f"\nposition selection ({LABEL})\n")
    print(input_position_table(fit.positions), end="\n\n")
    print(entry_point_table(fit.positions), end="\n\n")
    print(output_position_table(fit.positions), end="\n\n")

    # 4. baselines: held-out part of the paired session, and further subjects
    held_rows = compare_baselines(fit, paired.label)
    print(f"baselines on the held-out part of the paired session, {fit.held_out['windows']} windows ({LABEL})\n")
    print(baseline_table(held_rows), end="\n\n")
    results["baselines_held_out"] = held_rows
    if args.test_subjects:
        test_sims = [simulate_streams(200 + s, 600.0) for s in range(args.test_subjects)]
        test_folder = write_simulated_recording(work / "test", test_sims, hop_s=5.0)
        test_labels_csv = write_state_labels(work / "test_labels.csv", test_sims)
        test = load_paired_windows([test_folder], None, "ecg", "bvp")
        by_subject = {sim.subject: sim for sim in test_sims}
        test.label = np.asarray([by_subject[who].state_at((a + b) / 2 - T0)
                                 for who, a, b in zip(test.subject, test.start_s, test.end_s)], dtype=object)
        test_features = extract_features(test, model, old_representation=REPRESENTATION,
                                         new_representation=REPRESENTATION, cache_dir=cache_dir)
        test_rows = compare_baselines(fit, paired.label, test=test_features, test_labels=test.label)
        print(f"baselines on {args.test_subjects} further subjects, {len(test)} windows ({LABEL})\n")
        print(baseline_table(test_rows), end="\n\n")
        results["baselines_test_subjects"] = test_rows

    # 5. variants from the warm cache: prototype initialisation, loss, input position
    variants = []
    chosen_input, chosen_output = fit.positions["input"]["name"], fit.positions["output"]["name"]
    settings = [(chosen_input, "real", "centred_cosine"), (chosen_input, "random", "centred_cosine"),
                (chosen_input, "real", "cosine"), (chosen_input, "random", "cosine")]
    settings += [(tap, "real", "centred_cosine") for tap in ("enc1.embedding", "gated", "embedding")
                 if tap != chosen_input]
    for tap, init, loss in settings:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            variant = fit_bridge(paired, head_dir, model, new_representation=REPRESENTATION, backbone=backbone,
                                 epochs=args.epochs, cache_dir=cache_dir, progress=False, init=init, loss=loss,
                                 input_position=tap, output_position=chosen_output)
        row = {"input_position": tap, "initialisation": init, "loss": loss, **variant.held_out}
        if args.test_subjects:
            bridge_row = next(r for r in compare_baselines(variant, paired.label, test=test_features,
                                                           test_labels=test.label) if r["method"] == "bridge")
            row["test_subjects_accuracy"] = bridge_row["accuracy"]
            row["test_subjects_agreement"] = bridge_row["agreement_with_old_head"]
        variants.append(row)
    results["variants"] = variants
    print(f"variants (output position {chosen_output}; the probe chose {chosen_input}; {LABEL})\n")
    print("| input position | prototypes | loss | held-out agreement % | held-out centred cosine | "
          "further subjects: accuracy % | further subjects: agreement % |")
    print("|---|---|---|---|---|---|---|")
    for row in variants:
        print(f"| {row['input_position']} | {row['initialisation']} | {row['loss']} | "
              f"{100 * row['agreement_with_old_head']:.1f} | {row['centred_cosine_to_targets_mean']:.3f} | "
              f"{100 * row.get('test_subjects_accuracy', float('nan')):.1f} | "
              f"{100 * row.get('test_subjects_agreement', float('nan')):.1f} |")

    # 6. export
    exports = {}
    for precision in ("fp32", "fp16"):
        started = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            path = export_bridge(fit, work / f"bridge_{precision}", precision=precision)
        manifest = json.loads(path.with_suffix(".json").read_text())
        exports[precision] = {"seconds": time.perf_counter() - started, "path": str(path),
                              "bytes": path.stat().st_size, "onnx_check": manifest["onnx_check"]}
        print(f"\nexport {precision}: {exports[precision]['seconds']:.0f} s, {path.stat().st_size / 1e6:.1f} MB, "
              f"ONNX Runtime vs PyTorch probabilities max abs {manifest['onnx_check']['probabilities_max_abs']:.2g}")
    results["export"] = exports
    if args.test_subjects:
        windows, fs, labels, unlabelled = load_labelled_windows([test_folder], None, "bvp", test_labels_csv)
        from biomoe_edge.runtime.engines.pytorch_engine import PyTorchEngine

        served = evaluate_bridge(pathlib.Path(exports["fp16"]["path"]).parent, windows, fs, labels,
                                 PyTorchEngine(model=model))
        results["served_fp16_test_subjects"] = {**served, "unlabelled_windows": unlabelled}
        print(f"\nthe fp16 bridge.onnx on the further subjects' PPG windows that one state covers whole "
              f"({served['windows']}): accuracy {100 * served['accuracy']:.1f} %, macro F1 "
              f"{100 * served['macro_f1']:.1f} % ({LABEL})")

    # distillation into the whole backbone: what one epoch would cost here
    import copy

    student = copy.deepcopy(model).train()
    images = torch.rand(16, 3, 224, 224)
    head_layer = torch.nn.Linear(192, len(STATES))
    optimiser = torch.optim.Adam(list(student.parameters()) + list(head_layer.parameters()), lr=1e-5)
    started = time.perf_counter()
    loss = head_layer(student(images)).logsumexp(1).mean()
    optimiser.zero_grad()
    loss.backward()
    optimiser.step()
    step_s = time.perf_counter() - started
    epoch_s = step_s * len(fit.split.train) / 16
    results["distillation_into_backbone"] = {"step_s_batch16": step_s, "epoch_s_estimate": epoch_s,
                                             "trainable_parameters": sum(p.numel() for p in model.parameters())}
    print(f"\ndistillation into the whole backbone (not run): one batch of 16 forward + backward takes {step_s:.1f} s "
          f"here, so one epoch over {len(fit.split.train)} windows ~{epoch_s / 60:.0f} min, 50 epochs "
          f"~{50 * epoch_s / 3600:.1f} h, training {results['distillation_into_backbone']['trainable_parameters']:,} "
          "parameters")
    results["machine"]["load_average_end"] = os.getloadavg()
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, default=str) + "\n")
        print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
