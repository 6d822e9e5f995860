#!/usr/bin/env python3
"""Embedding a corpus on Ray Data: windows/s of the serial ``embed`` and of ``embed --ray`` with 1 and 2 workers,
side by side in one run, on the same recordings and engine (needs ``biomoe-edge[cluster]``).

    python benchmarks/ray_embed.py                       # 2 recordings of 30 s, 3 runs of each, medians
    python benchmarks/ray_embed.py --recordings 4 --seconds 60 --workers 1,2,4 --json ray_embed.json

What runs. The recording benchmark's wearable (bvp 64 Hz, eda 32 Hz, resp 32 Hz, ecg 250 Hz) is recorded by the
gateway's recording sink (``benchmarks/recording.py``'s ``feed``), ``--recordings`` times. Then, alternating in
each round: the serial embed in this process (``embed_to_dataset``: the engine opened and warmed before the clock
starts) and ``embed_on_ray`` with each worker count on one local Ray started for the run (the clock includes what
a user waits for: starting the workers, opening an engine in each, the join; not starting Ray). Each run's dataset
is checked equal to the serial one (rows, embeddings within 1e-6). 10 s windows, 1 s hop, two representations,
ONNX Runtime fp32 on the demo's model (random weights unless --model) with its default threads in every worker.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import pathlib
import platform
import statistics
import sys
import tempfile
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

from latency import encode_stream_packets  # noqa: E402
from recording import feed  # noqa: E402


def same_rows(frame, serial) -> bool:
    import numpy as np

    from biomoe_edge.runtime.recording.distributed import canonical_order

    expected = canonical_order(serial)
    if len(frame) != len(expected):
        return False
    keys = ["device", "modality", "representation", "window_start_s"]
    if not all(list(frame[k]) == list(expected[k]) for k in keys):
        return False
    return bool(np.abs(np.stack(frame["embedding"]) - np.stack(expected["embedding"])).max() <= 1e-6)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recordings", type=int, default=2, help="recordings in the corpus (default 2)")
    parser.add_argument("--seconds", type=float, default=30.0, help="seconds of each recording (default 30)")
    parser.add_argument("--workers", default="1,2", help="worker counts to run (default 1,2)")
    parser.add_argument("--repeats", type=int, default=3, help="rounds (default 3; medians)")
    parser.add_argument("--slice", type=float, default=None, metavar="S",
                        help="slice recordings longer than S seconds (default: half of --seconds)")
    parser.add_argument("--model", default=None, help="an .onnx file (default: the demo's, exported once)")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--threads-per-worker", type=int, default=None, metavar="N",
                        help="ONNX Runtime intra-op threads in each Ray worker (default: its own, all cores)")
    parser.add_argument("--representations", default="spectrogram_psd,scalogram")
    parser.add_argument("--json", default=None, metavar="FILE")
    args = parser.parse_args(argv)
    os.environ.setdefault("RAY_DATA_LOG_LEVEL", "WARNING")  # the executor's per-run lines; the table says it
    import ray

    from biomoe_edge.runtime.engines import open_engine
    from biomoe_edge.runtime.recording import open_recording
    from biomoe_edge.runtime.recording.distributed import embed_on_ray
    from biomoe_edge.runtime.recording.embed import embed_to_dataset

    model = args.model
    if model is None:
        from biomoe_edge.export.cache import cached_onnx  # needs torch the first time

        model = str(cached_onnx(None, precision="fp32"))
    factory = functools.partial(open_engine, "onnxruntime", model, max_batch=args.batch_size)
    worker_factory = factory
    if args.threads_per_worker:
        worker_factory = functools.partial(factory, intra_op_num_threads=args.threads_per_worker)
    worker_counts = [int(w) for w in args.workers.split(",") if w.strip()]
    representations = [r for r in args.representations.split(",") if r]
    options = dict(representations=representations, window_s=10.0, hop_s=1.0, any_model=True)
    slice_s = args.slice or args.seconds / 2
    result = {"machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "python": platform.python_version(),
                          "ray": ray.__version__, "load_average": os.getloadavg()},
              "recordings": args.recordings, "seconds": args.seconds, "slice_s": slice_s,
              "representations": representations, "batch_size": args.batch_size, "random_weights": args.model is None,
              "threads_per_worker": args.threads_per_worker,
              "runs": {"serial": []} | {f"ray x{w}": [] for w in worker_counts}}

    with tempfile.TemporaryDirectory(prefix="biomoe-ray-bench-") as tmp:
        tmp = pathlib.Path(tmp)
        packets = encode_stream_packets(1, args.seconds)
        inputs = [tmp / f"rec{i}" for i in range(args.recordings)]
        for folder in inputs:
            feed(packets, record_into=folder)
        ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False)
        try:
            for round_ in range(args.repeats):
                engine = factory()
                try:
                    engine.warmup([1, args.batch_size])
                    start = time.perf_counter()
                    serial = embed_to_dataset([open_recording(p) for p in inputs], engine,
                                              out=tmp / f"serial{round_}", **options)
                    result["runs"]["serial"].append(time.perf_counter() - start)
                finally:
                    engine.close()
                windows = serial.attrs["metadata"]["summary"]["windows"]
                for workers in worker_counts:
                    start = time.perf_counter()
                    frame = embed_on_ray(inputs, worker_factory, out=tmp / f"ray{workers}-{round_}", workers=workers,
                                         slice_s=slice_s, **options)
                    result["runs"][f"ray x{workers}"].append(time.perf_counter() - start)
                    if not same_rows(frame, serial):
                        raise SystemExit(f"ray x{workers}: the dataset differs from the serial one")
                print(f"round {round_ + 1}: " + ", ".join(f"{k} {v[-1]:.1f} s" for k, v in result["runs"].items()),
                      file=sys.stderr, flush=True)
        finally:
            ray.shutdown()
    result["windows"] = windows
    result["images"] = len(serial)
    medians = {k: statistics.median(v) for k, v in result["runs"].items()}
    result["windows_per_s"] = {k: windows / v for k, v in medians.items()}
    print(format_summary(result))
    if args.json:
        pathlib.Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    return 0


def format_summary(r: dict) -> str:
    serial = r["windows_per_s"]["serial"]
    lines = [f"{r['recordings']} recordings x {r['seconds']:.0f} s (4 streams), {r['windows']} windows, {r['images']} "
             f"images ({len(r['representations'])} representations), ONNX Runtime fp32 batch {r['batch_size']}"
             + (", RANDOM weights" if r["random_weights"] else "")
             + (f", {r['threads_per_worker']} thread(s) per Ray worker" if r["threads_per_worker"] else "")
             + f"; {r['machine']['cpus']} CPUs, load average {r['machine']['load_average'][0]:.1f} at the start; "
               f"medians of {len(r['runs']['serial'])} runs",
             f"{'run':<10} {'seconds':>8} {'windows/s':>10} {'vs serial':>10}"]
    for name, runs in r["runs"].items():
        rate = r["windows_per_s"][name]
        lines.append(f"{name:<10} {statistics.median(runs):>8.1f} {rate:>10.2f} {rate / serial:>9.2f}x")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
