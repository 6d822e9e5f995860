#!/usr/bin/env python3
"""The transforms' and the engine's numbers on two machines, compared (used by jetson/arm64_check.sh).

Three steps, so that both machines work on byte-identical inputs:

    python jetson/arm64_compare.py inputs --out inputs.npz                      # once, on x86-64
    python jetson/arm64_compare.py compute inputs.npz --reference DIR \\
        --onnx 11=seed11.onnx --onnx 29=seed29.onnx --out x86.npz               # on each machine
    python jetson/arm64_compare.py compare x86.npz aarch64.npz                  # anywhere

``inputs``: simulated windows of each modality at its wearable's rate (NeuroKit2) and two windows of HeartPy's
real PPG, raw. ``compute``: the gateway's own transforms on them (``preprocess``; the spectrogram in its three
modes, the scalogram and the recurrence plot with the modality's parameters; ``render`` of every representation),
and ONNX Runtime (the gateway's ``OnnxRuntimeEngine``) on the images of the reference fixtures
(``tiny_biomoe_seed{11,29}_io.npz``) with the ONNX files exported from their checkpoints. ``compare``: the max
absolute and relative differences of every array, each against the tolerance the x86 tests hold the same
computation to (in the table below); exit 1 if any is beyond it. A spectrogram's angle and phase are compared
modulo 2 pi and only where the gateway draws them (PSD within the picture's dB range of the peak): below that a
bin's phase is rounding noise, different on every machine, and ``render`` draws it as 0.

The weights are the reference fixtures' stand-in weights (seeded noise on the real architecture), not the
published ones; the signals are simulated, apart from HeartPy's PPG.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import platform
import sys

import numpy as np

MODALITIES = {"bvp": 64.0, "eda": 16.0, "resp": 50.0, "ecg": 250.0}  # the emulated wearables' rates
WINDOW_S = 10.0
SPECTROGRAM_MODES = ("psd", "angle", "phase")

# Rendered images are held to the renderer's parity floor instead (a colour index off by one at a boundary moves a
# pixel by a grey level or more): PSNR >= 35 dB; their atol is only the column "limit" (one grey level).
IMAGE_PSNR_FLOOR_DB = 35.0
# Kind of array -> (rtol, atol as a fraction of the x86 array's largest magnitude, where the x86 figure comes from).
# tests/transforms/test_transforms_equivalence.py holds the transforms to their references with these; the
# engine is held to the reference embeddings with 1e-4 (tests/export/test_export_onnx.py, fp32 ONNX Runtime).
TOLERANCES = {
    "window": (1e-4, 1e-5, "preprocess: as the spectrogram's input (test_transforms_equivalence)"),
    "spectrogram": (1e-4, 1e-5, "spectrogram vs scipy (test_transforms_equivalence)"),
    # Not an x86 tolerance but a finding (docs/jetson.md): in a bin 80 dB below the peak, float32 rounding of the
    # STFT moves the angle by up to ~6e-4 rad between machines; a colour level of the picture is 2 pi / 256.
    "spectrogram_angle": (0.0, 1e-3, "angle in drawn bins, modulo 2 pi, absolute rad: 1/25 of a colour level"),
    "scalogram": (1e-4, 2e-5, "scalogram vs PyWavelets (test_transforms_equivalence)"),
    "recurrence": (1e-5, 1e-5, "recurrence_plot vs pyts (test_transforms_equivalence)"),
    "image": (0.0, 1 / 255, f"render: PSNR >= {IMAGE_PSNR_FLOOR_DB:g} dB, the renderer parity floor (test_transforms_render)"),
    "embedding": (0.0, 1e-4, "fp32 ONNX Runtime vs the reference embeddings, absolute (test_export_onnx)"),
    "embedding_batch1": (0.0, 1e-4, "the same, one image per run"),
}


def make_inputs(out: pathlib.Path) -> None:
    from biomoe_edge.runtime.transforms.signals import real_ppg_windows, simulated_signal

    arrays = {}
    for seed, (modality, fs) in enumerate(MODALITIES.items()):
        raw, rate = simulated_signal(modality, WINDOW_S, fs, seed=seed)
        arrays[f"{modality}/raw"] = np.asarray(raw, np.float64)
        arrays[f"{modality}/fs"] = np.float64(rate)
    raw_ppg, ppg_fs = real_ppg_windows(2, WINDOW_S, preprocessed=False)
    for i, window in enumerate(raw_ppg):
        arrays[f"heartpy_ppg{i}/raw"] = np.asarray(window, np.float64)
        arrays[f"heartpy_ppg{i}/fs"] = np.float64(ppg_fs)
    np.savez(out, **arrays)
    print(f"inputs: {len(arrays) // 2} raw windows of {WINDOW_S:g} s -> {out}")


def compute(inputs: pathlib.Path, reference: pathlib.Path, onnx: dict[str, pathlib.Path], out: pathlib.Path) -> None:
    import onnxruntime

    from biomoe_edge.runtime.engines import open_engine
    from biomoe_edge.runtime.transforms import (
        preprocess,
        recurrence_plot,
        render,
        representation_params,
        scalogram,
        spectrogram,
    )
    from biomoe_edge.vocabulary import REPRESENTATIONS

    data = np.load(inputs)
    results = {}
    for name in sorted({key.split("/")[0] for key in data.files}):
        modality = "bvp" if name.startswith("heartpy_ppg") else name
        window, fs = preprocess(data[f"{name}/raw"], float(data[f"{name}/fs"]), modality)
        params = representation_params(fs, window.shape[-1], modality)
        results[f"window/{name}"] = window
        for mode in SPECTROGRAM_MODES:
            results[f"spectrogram/{name}/{mode}"] = spectrogram(window, fs, mode=mode, **params["spectrogram"])[2]
        results[f"scalogram/{name}"] = scalogram(window, fs, **params["scalogram"])
        results[f"recurrence/{name}"] = recurrence_plot(window, **params["recurrence"])
        images = render(window[None], fs, REPRESENTATIONS, modality=modality)
        for r, representation in enumerate(REPRESENTATIONS):
            results[f"image/{name}/{representation}"] = images[r]
    vs_reference, vs_batch1 = {}, {}
    for seed, path in sorted(onnx.items()):
        io = np.load(reference / f"tiny_biomoe_seed{seed}_io.npz")
        with open_engine("onnxruntime", path, providers=["CPUExecutionProvider"]) as engine:
            results[f"embedding/seed{seed}"] = engine.infer(io["images"])
            # The gateway batches by deadline, so one window may run alone or with others: batch 1 as well.
            results[f"embedding_batch1/seed{seed}"] = np.concatenate([engine.infer(image[None]) for image in io["images"]])
        vs_reference[f"seed{seed}"] = float(np.abs(results[f"embedding/seed{seed}"] - io["embeddings"]).max())
        vs_batch1[f"seed{seed}"] = float(np.abs(results[f"embedding/seed{seed}"]
                                                - results[f"embedding_batch1/seed{seed}"]).max())
    about = {"machine": platform.machine(), "python": platform.python_version(), "numpy": np.__version__,
             "onnxruntime": onnxruntime.__version__, "embedding_max_abs_vs_reference": vs_reference,
             "embedding_max_abs_batch_vs_batch1": vs_batch1}
    np.savez(out, about=np.array(json.dumps(about)), **results)
    print(f"computed {len(results)} arrays on {about['machine']} ({json.dumps(about)}) -> {out}")


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(1.0 / mse)


def drawn_bins(psd: np.ndarray, modality: str) -> np.ndarray:
    """The spectrogram bins the gateway draws a phase for: PSD within ``db_range`` of the window's peak. Below it a
    bin's phase is rounding noise, which ``render`` draws as angle 0 (render.py, ``_spectral_maps``)."""
    from biomoe_edge.runtime.transforms import modality_defaults
    from biomoe_edge.runtime.transforms.render import PSD_FLOOR

    psd_db = 10.0 * np.log10(np.maximum(psd.astype(np.float64), PSD_FLOOR))
    return psd_db >= psd_db.max() - modality_defaults(modality).spectrogram.db_range


def compare_arrays(baseline: np.ndarray, other: np.ndarray, kind: str, drawn: np.ndarray | None = None) -> dict:
    """Max abs and rel differences of ``other`` from ``baseline`` and whether they lie within ``kind``'s
    tolerance (|d| <= atol * max|baseline| + rtol * |baseline| everywhere, as numpy's allclose). ``drawn``: for a
    spectrogram's angle or phase, the bins to compare (the rest is noise the gateway never draws), and the
    difference is taken modulo 2 pi (an angle at the branch cut is -pi on one machine and pi on the other)."""
    rtol, atol_fraction, _ = TOLERANCES[kind]
    if baseline.shape != other.shape:
        return {"shape": [list(baseline.shape), list(other.shape)], "within": False}
    a, b = baseline.astype(np.float64), other.astype(np.float64)
    diff = np.abs(a - b)
    if drawn is not None:
        diff = np.where(drawn, np.abs(np.angle(np.exp(1j * (a - b)))), 0.0)
    scale = float(np.abs(a).max()) if a.size else 0.0
    atol = atol_fraction if kind.startswith("embedding") or kind == "spectrogram_angle" else atol_fraction * scale
    nonzero = np.abs(a) > 0
    row = {
        "max_abs": float(diff.max()) if diff.size else 0.0,
        "max_rel": float((diff[nonzero] / np.abs(a[nonzero])).max()) if nonzero.any() else 0.0,
        "differing": int(np.count_nonzero(diff)),
        "size": int(diff.size),
        "limit": float(atol),
        "within": bool(np.all(diff <= atol + rtol * np.abs(a))),
    }
    if kind == "image":
        row["psnr_db"] = psnr(a, b)
        row["within"] = row["psnr_db"] >= IMAGE_PSNR_FLOOR_DB
    return row


def compare(baseline_path: pathlib.Path, other_path: pathlib.Path, json_out: pathlib.Path | None) -> int:
    baseline, other = np.load(baseline_path), np.load(other_path)
    about_a, about_b = (json.loads(str(f["about"])) for f in (baseline, other))
    print(f"baseline {baseline_path.name}: {about_a}\nother    {other_path.name}: {about_b}")
    keys = sorted(k for k in baseline.files if k != "about")
    missing = sorted(set(keys) - set(other.files))
    rows = {}
    for key in keys:
        if key not in missing:
            kind, *rest = key.split("/")
            kind = "spectrogram_angle" if kind == "spectrogram" and rest[-1] == "angle" else kind
            drawn = None
            if kind.startswith("spectrogram") and rest[-1] in ("angle", "phase"):
                name = rest[0]
                drawn = drawn_bins(baseline[f"spectrogram/{name}/psd"], "bvp" if name.startswith("heartpy") else name)
            rows[key] = compare_arrays(baseline[key], other[key], kind, drawn)
            rows[key]["kind"] = kind
            if drawn is not None:
                rows[key]["not_drawn"] = int(drawn.size - np.count_nonzero(drawn))
    summary = {}
    print(f"\n{'kind':<12} {'arrays':>6} {'max abs':>11} {'max rel':>11} {'limit (max)':>11} {'differing':>13}  "
          "beyond  tolerance (x86)")
    for kind, (rtol, atol_fraction, source) in TOLERANCES.items():
        group = {k: v for k, v in rows.items() if v["kind"] == kind}
        if not group:
            continue
        beyond = sorted(k for k, v in group.items() if not v["within"])
        differing = sum(v.get("differing", 0) for v in group.values())
        size = sum(v.get("size", 0) for v in group.values())
        summary[kind] = {"arrays": len(group), "max_abs": max(v.get("max_abs", np.inf) for v in group.values()),
                         "max_rel": max(v.get("max_rel", np.inf) for v in group.values()),
                         "differing": differing, "size": size, "beyond": beyond, "rtol": rtol,
                         "atol": (atol_fraction if kind.startswith("embedding") or kind == "spectrogram_angle"
                                  else "PSNR floor" if kind == "image"
                                  else f"{atol_fraction:g} x max|x86|")}
        if kind == "image":
            summary[kind]["psnr_min_db"] = min(v.get("psnr_db", -np.inf) for v in group.values())
        limit = max(v.get("limit", 0.0) for v in group.values())
        print(f"{kind:<12} {len(group):>6} {summary[kind]['max_abs']:>11.3g} {summary[kind]['max_rel']:>11.3g} "
              f"{limit:>11.3g} {differing:>6}/{size:<6}  {len(beyond):>6}  rtol {rtol:g}, atol "
              f"{summary[kind]['atol']}: {source}")
        if kind == "image":
            print(f"{'':<12} min PSNR {summary[kind]['psnr_min_db']:.1f} dB (floor {IMAGE_PSNR_FLOOR_DB:g} dB)")
    failures = [k for k, v in rows.items() if not v["within"]] + missing
    for key in failures:
        print(f"BEYOND TOLERANCE: {key}: {rows.get(key, 'missing on ' + other_path.name)}")
    if json_out is not None:
        json_out.write_text(json.dumps({"baseline": about_a, "other": about_b, "summary": summary, "arrays": rows},
                                       indent=1, default=float) + "\n")
    print(f"\n{len(rows)} arrays compared, {len(failures)} beyond the x86 tolerances")
    return 1 if failures else 0


def parse_onnx(values: list[str]) -> dict[str, pathlib.Path]:
    out = {}
    for value in values:
        seed, sep, path = value.partition("=")
        if not sep or not seed.isdigit():
            raise SystemExit(f"--onnx wants SEED=PATH (e.g. 11=model.onnx), got {value!r}")
        out[seed] = pathlib.Path(path)
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="step", required=True)
    p = sub.add_parser("inputs", help="write the shared raw input windows")
    p.add_argument("--out", type=pathlib.Path, required=True)
    p = sub.add_parser("compute", help="transforms and ONNX Runtime on the inputs")
    p.add_argument("inputs", type=pathlib.Path)
    p.add_argument("--reference", type=pathlib.Path, required=True, help="the folder of tiny_biomoe_seed*_io.npz")
    p.add_argument("--onnx", action="append", default=[], metavar="SEED=PATH",
                   help="the ONNX export of tiny_biomoe_seedSEED.pth (repeatable)")
    p.add_argument("--out", type=pathlib.Path, required=True)
    p = sub.add_parser("compare", help="differences of OTHER from BASELINE against the x86 tolerances")
    p.add_argument("baseline", type=pathlib.Path)
    p.add_argument("other", type=pathlib.Path)
    p.add_argument("--json", type=pathlib.Path, default=None, help="also write every array's figures here")
    args = parser.parse_args(argv)
    if args.step == "inputs":
        make_inputs(args.out)
    elif args.step == "compute":
        compute(args.inputs, args.reference, parse_onnx(args.onnx), args.out)
    else:
        return compare(args.baseline, args.other, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
