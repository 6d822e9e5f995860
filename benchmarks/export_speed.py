"""Speed of the exported Tiny-BioMoE on this machine: PyTorch eager vs ONNX Runtime FP32 / FP16 / INT8.

    python benchmarks/export_speed.py [--checkpoint Tiny-BioMoE.pth] [--onnx-dir DIR] [--repeats 10]
    python benchmarks/export_speed.py --baseline-dir OLD   # + OLD/{fp32,fp16,int8}/model.onnx in the same run

Exports the three graphs (or reuses DIR/{fp32,fp16,int8}/model.onnx from ``biomoe-edge export``), then
times each runtime side by side at batch 1 and 8 and prints the median milliseconds per image and the
ratio to PyTorch eager. ``--baseline-dir`` adds the graphs of another export (an older export format, say)
as rows marked ``[baseline]``, timed in the same process, so a change of the exported graph is measured
side by side rather than across runs on a machine whose load changes. With a CUDA device, also PyTorch CUDA FP32 / FP16, with and without CUDA graphs.
Inputs are images rendered from real signal windows when the SDK's transforms are present, else noise.
Not a test: numbers depend on the machine and on what else runs on it.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import platform
import statistics
import sys
import tempfile
import time
import warnings

import numpy as np

#: pause before each timed run (longer than the thread pools' spin-wait after a run)
SETTLE_S = 0.1
REFERENCE_CHECKPOINT = pathlib.Path(__file__).resolve().parents[1].parent / "shared" / "reference" / \
    "tiny_biomoe_seed11.pth"


def interleaved_ms_per_image(runners: dict, batch: int, repeats: int, warmup: int = 2) -> dict[str, float]:
    """Median ms per image of each runner, timed in rounds (one run of each per round), so that a change of
    the machine's load during the benchmark falls on every row alike. Each timed run starts after a pause
    (``SETTLE_S``): PyTorch's OpenMP and ONNX Runtime's thread pools spin-wait after a run, and that tail
    must not fall on the next runtime's timing."""
    for fn in runners.values():
        for _ in range(warmup):
            fn()
    times: dict[str, list[float]] = {name: [] for name in runners}
    for _ in range(repeats):
        for name, fn in runners.items():
            time.sleep(SETTLE_S)
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) * 1e3 / batch for name, t in times.items()}


def median_ms_per_image(fn, batch: int, repeats: int, warmup: int = 2) -> float:
    return interleaved_ms_per_image({"": fn}, batch, repeats, warmup)[""]


def load_model(checkpoint):
    from biomoe_edge.export import load_tiny_biomoe

    if checkpoint is None and REFERENCE_CHECKPOINT.is_file():
        checkpoint = REFERENCE_CHECKPOINT
    if checkpoint is None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return load_tiny_biomoe(seed=0), "random weights (seed 0)"
    return load_tiny_biomoe(checkpoint), str(checkpoint)


def graphs_in(onnx_dir: pathlib.Path) -> dict[str, pathlib.Path]:
    """{precision: DIR/precision/model.onnx} for the precisions whose graph is there."""
    paths = {precision: onnx_dir / precision / "model.onnx" for precision in ("fp32", "fp16", "int8")}
    return {precision: path for precision, path in paths.items() if path.is_file()}


def exported_graphs(model, onnx_dir: pathlib.Path | None, work: pathlib.Path) -> dict[str, pathlib.Path]:
    from biomoe_edge.export import export_onnx

    graphs = graphs_in(onnx_dir) if onnx_dir is not None else {}
    if graphs:
        return graphs
    started = time.perf_counter()
    graphs["fp32"] = export_onnx(model, work / "fp32" / "model.onnx", max_batch=8)
    print(f"exported fp32 in {time.perf_counter() - started:.1f} s", file=sys.stderr)
    for precision in ("fp16", "int8"):
        started = time.perf_counter()
        graphs[precision] = export_onnx(model, work / precision / "model.onnx", precision=precision, max_batch=8,
                                        from_fp32=graphs["fp32"])
        print(f"exported {precision} (from the fp32 graph) in {time.perf_counter() - started:.1f} s", file=sys.stderr)
    return graphs


def benchmark_images(batch: int) -> tuple[np.ndarray, str]:
    from biomoe_edge.export.calibration import real_signal_images

    try:
        return real_signal_images(batch, seed=3), "images rendered from real signal windows"
    except RuntimeError:
        return np.random.default_rng(0).random((batch, 3, 224, 224), dtype=np.float32), "uniform noise"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", type=pathlib.Path, help="default: the seed-11 reference checkpoint")
    parser.add_argument("--onnx-dir", type=pathlib.Path, help="reuse DIR/{fp32,fp16,int8}/model.onnx")
    parser.add_argument("--baseline-dir", type=pathlib.Path,
                        help="also time DIR/{fp32,fp16,int8}/model.onnx, rows marked [baseline]")
    parser.add_argument("--repeats", type=int, default=10, help="timed runs per cell (median)")
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 8])
    args = parser.parse_args()

    import onnxruntime as ort
    import torch

    model, source = load_model(args.checkpoint)
    images_max, image_source = benchmark_images(max(args.batches))
    rows: dict[str, dict[int, float]] = {}
    with tempfile.TemporaryDirectory(prefix="biomoe-bench-") as tmp:
        graphs = exported_graphs(model, args.onnx_dir, pathlib.Path(tmp))
        sessions = {f"ONNX Runtime {p.upper()} (CPU)": ort.InferenceSession(str(g), providers=["CPUExecutionProvider"])
                    for p, g in graphs.items()}
        if args.baseline_dir is not None:
            baseline = graphs_in(args.baseline_dir)
            if not baseline:
                parser.error(f"--baseline-dir {args.baseline_dir} holds no {{fp32,fp16,int8}}/model.onnx")
            for p, g in baseline.items():
                sessions[f"ONNX Runtime {p.upper()} [baseline]"] = ort.InferenceSession(
                    str(g), providers=["CPUExecutionProvider"])
        for batch in args.batches:
            images = np.ascontiguousarray(images_max[:batch])
            x = torch.from_numpy(images)

            def eager():
                with torch.inference_mode():
                    model(x)

            runners = {"PyTorch eager FP32 (CPU)": eager}
            runners.update({name: (lambda s=session: s.run(None, {"images": images})) for name, session in sessions.items()})
            for name, ms in interleaved_ms_per_image(runners, batch, args.repeats).items():
                rows.setdefault(name, {})[batch] = ms
            if torch.cuda.is_available():
                for name, ms in cuda_rows(model, images, args.repeats).items():
                    rows.setdefault(name, {})[batch] = ms

    print(f"Tiny-BioMoE inference speed: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"torch {torch.__version__} ({torch.get_num_threads()} threads), onnxruntime {ort.__version__}")
    print(f"weights: {source}; inputs: {image_source}; median of {args.repeats} rounds (each runtime once per "
          f"round, CPU rows interleaved) after 2 warm-up runs\n")
    base = rows["PyTorch eager FP32 (CPU)"]
    header = "".join(f"  batch {b:>2}: ms/img  vs eager" for b in args.batches)
    print(f"{'runtime':<32}{header}")
    for name, cells in rows.items():
        line = "".join(f"  {cells[b]:>16.2f}  {base[b] / cells[b]:>6.2f}x" for b in args.batches)
        print(f"{name:<32}{line}")
    return 0


def cuda_rows(model, images: np.ndarray, repeats: int) -> dict[str, float]:
    """PyTorch CUDA FP32 / FP16 per image, eager and replayed from a captured CUDA graph."""
    import copy

    import torch

    out = {}
    batch = len(images)
    for dtype, label in ((torch.float32, "FP32"), (torch.float16, "FP16")):
        gpu_model = copy.deepcopy(model).cuda().to(dtype).eval()
        x = torch.from_numpy(images).cuda().to(dtype)

        def eager():
            with torch.inference_mode():
                gpu_model(x)
            torch.cuda.synchronize()

        out[f"PyTorch CUDA {label}"] = median_ms_per_image(eager, batch, repeats)
        static_x = x.clone()
        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream), torch.inference_mode():
            for _ in range(3):
                gpu_model(static_x)
        torch.cuda.current_stream().wait_stream(stream)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph), torch.inference_mode():
            gpu_model(static_x)

        def replay():
            graph.replay()
            torch.cuda.synchronize()

        out[f"PyTorch CUDA {label} graph"] = median_ms_per_image(replay, batch, repeats)
    return out


if __name__ == "__main__":
    sys.exit(main())
