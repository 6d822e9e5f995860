#!/usr/bin/env python3
"""Size your hardware: per-stage latency, throughput and memory of the gateway, beside the reference pipeline.

    python benchmarks/latency.py                     # ONNX Runtime (or TensorRT where present), 4 wearables
    python benchmarks/latency.py --quick --json out.json
    python benchmarks/latency.py --backend pytorch --precision fp16 --batch-size 16 --devices 8
    python benchmarks/latency.py --backend pytorch --device cuda --cuda-graphs --devices 64

What runs. N emulated wearables, each streaming four modalities (bvp 64 Hz, eda 32 Hz, resp 32 Hz, ecg 250 Hz)
in native-protocol packets (encoded before the clock starts: that is the wearable's work), are fed packet by
packet through the gateway's own data path (``biomoe_edge.runtime.pipeline.Pipeline``): decode + reassembly,
ingest (ring buffers, 10 s windows, 1 s hop, resampling, quality gating), the batch scheduler,
preprocess + render into the engine's preallocated input buffer, the engine, and a JSONL sink. The packets are
fed as fast as the gateway takes them, so the run measures capacity, not a real-time replay.

Stages (milliseconds, p50/p95/p99): ``decode`` and ``window`` per notification, ``transform``, ``inference``
and ``sink`` per engine batch (``--batch-size`` images), ``end_to_end`` per image from the moment its window
was complete (the window's last packet decoded) to its record written by the sink.

The reference pipeline, measured in the same run on the same windows: per window and representation, the
scipy / PyWavelets / pyts map drawn by matplotlib to a PNG, loaded and resized by PIL
(``transforms.reference_render``), then the PyTorch model in eager mode at batch 1. ``speedup_vs_reference``
is the reference's time per window (all representations) over the SDK's (wall time / windows).

``--web-client``: instead, is the live page light? The gateway itself (``runtime.gateway.Gateway`` with its web
listener, ``runtime.web``) runs in real time, packets fed at their arrival times, in alternating rounds without
and with a page client connected (a separate process that reads the page's event stream, decodes every update
as a browser does, and scrapes /metrics every 2 s); it prints the per-window latency (newest sample's arrival to
embedding) of both, medians side by side, and their ratio (goal: under 1.05).

``realtime_devices`` is how many such wearables (4 windows per second each) the measured throughput keeps up
with. On a Jetson with ``tegrastats``, ``power`` reports mean module power and energy per embedding.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import pathlib
import platform
import sys
import tempfile
import time

import numpy as np

MODALITY_RATES_HZ = {"bvp": 64.0, "eda": 32.0, "resp": 32.0, "ecg": 250.0}
SAMPLES_PER_PACKET = 16
WINDOW_S, HOP_S = 10.0, 1.0
STAGE_NAMES = ("decode", "window", "transform", "inference", "sink", "end_to_end")


# -- inputs ---------------------------------------------------------------------------------------------------

def device_description():
    from biomoe_edge.firmware_bridge import DeviceDescription, SampleFormat, StreamDescription

    return DeviceDescription("bench-1.0", tuple(
        StreamDescription(stream_id=i, modality=m, sample_rate_hz=fs, channels=1, sample_format=SampleFormat.INT16,
                          scale=0.001, offset=0.0, units="au")
        for i, (m, fs) in enumerate(MODALITY_RATES_HZ.items())))


def encode_stream_packets(devices: int, seconds: float, seed: int = 0):
    """All packets of all devices, sorted by arrival: (arrival_s, device, payload)."""
    from biomoe_edge.firmware_bridge import SampleFormat, encode_packet

    from biomoe_edge.simulation import simulate

    rng = np.random.default_rng(seed)
    out = []
    for d in range(devices):
        device = f"bench-{d + 1:02d}"
        phase = rng.uniform(0, 0.01)  # devices are not in lockstep
        for stream_id, (modality, fs) in enumerate(MODALITY_RATES_HZ.items()):
            n = int(seconds * fs)
            # No NeuroKit2 on a gateway: the simulator's harmonic shapes (speed is measured, shapes need only be busy).
            signal, _ = simulate(modality, n / fs, fs, seed=seed * 1000 + 10 * d + stream_id, method="harmonic")
            raw = np.clip(np.round(signal * 1000), -32768, 32767).astype(np.int16)
            for seq, start in enumerate(range(0, n - SAMPLES_PER_PACKET + 1, SAMPLES_PER_PACKET)):
                payload = encode_packet(stream_id=stream_id, sequence=seq % 65536,
                                        timestamp_us=int(round(start / fs * 1e6)) % (1 << 32),
                                        samples=raw[start:start + SAMPLES_PER_PACKET, None],
                                        sample_format=SampleFormat.INT16)
                out.append(((start + SAMPLES_PER_PACKET - 1) / fs + 0.004 + phase, device, payload))
    out.sort(key=lambda p: p[0])
    return out


# -- model and engine ------------------------------------------------------------------------------------------

def load_reference_model(args):
    """The PyTorch model for the reference path and for exporting ONNX (random weights unless --checkpoint);
    None where PyTorch is not installed (a Jetson gateway): the reference is then skipped, not faked."""
    import warnings

    try:
        from biomoe_edge.export import load_tiny_biomoe

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # random weights: fine for timing, and said in the report
            return load_tiny_biomoe(args.checkpoint)
    except ImportError as exc:
        print(f"no PyTorch ({exc}): the reference pipeline is not measured", file=sys.stderr)
        return None


def open_benchmark_engine(args, model):
    """The engine under test."""
    from biomoe_edge.runtime.engines import open_engine

    backend = args.backend
    if backend == "auto":
        backend = "tensorrt" if args.model and str(args.model).endswith((".engine", ".plan")) else "onnxruntime"
    if backend == "pytorch":
        engine = open_engine("pytorch", args.checkpoint, device=args.device, precision=args.precision,
                             max_batch=args.batch_size, cuda_graphs=args.cuda_graphs)
    elif backend == "tensorrt":
        if not args.model:
            raise SystemExit("--backend tensorrt needs --model PATH.engine (build it with `biomoe-edge build-engine`)")
        engine = open_engine("tensorrt", args.model)
    else:
        if not args.model and model is None:
            raise SystemExit("exporting ONNX needs PyTorch: pass --model PATH.onnx (from `biomoe-edge export`)")
        path = pathlib.Path(args.model) if args.model else ensure_onnx(model, args)
        engine = open_engine("onnxruntime", path, max_batch=args.batch_size)
    return backend, engine


def ensure_onnx(model, args) -> pathlib.Path:
    """The model exported once per (checkpoint, precision, largest batch, export format) into the cache folder and
    reused (``export.cache``: fp32 at batch 16 is the demo's file)."""
    from biomoe_edge.export.cache import DEFAULT_MAX_BATCH, cached_onnx

    return cached_onnx(args.checkpoint, precision=args.precision, max_batch=max(DEFAULT_MAX_BATCH, args.batch_size),
                       model=model)


# -- the SDK path ----------------------------------------------------------------------------------------------

def percentiles(values_s) -> dict:
    """p50/p95/p99 in ms of a sequence of seconds, and how many (NaN when empty; strict JSON turns it to null)."""
    from biomoe_edge.timing import percentiles_ms

    values_s = list(values_s)
    figures = {f"{name}_ms": math.nan if value is None else value for name, value in percentiles_ms(values_s).items()}
    return {**figures, "count": len(values_s)}


class MemoryPeak:
    """Peak resident memory: psutil where installed, else the kernel's own high-water mark (getrusage)."""

    def __init__(self):
        try:
            import psutil

            self.process = psutil.Process()
        except ImportError:  # a bare gateway install: psutil is only in the dev extra
            self.process = None
        self.start_rss = self._rss()
        self.peak_rss = self.start_rss

    def _rss(self) -> int:
        if self.process is not None:
            return self.process.memory_info().rss
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # kilobytes on Linux

    def sample(self):
        self.peak_rss = max(self.peak_rss, self._rss())


def gpu_memory() -> dict | None:
    try:
        import cupy
    except ImportError:
        return None
    try:
        free, total = cupy.cuda.runtime.memGetInfo()
    except Exception:  # noqa: BLE001 - CuPy without a usable device
        return None
    pool = cupy.get_default_memory_pool()
    return {"used_mb": (total - free) / 2**20, "total_mb": total / 2**20, "cupy_pool_mb": pool.total_bytes() / 2**20}


def run_sdk(engine, packets, devices: int, representations, batch_size: int, memory: MemoryPeak, sink_dir):
    from biomoe_edge.runtime.pipeline import ModalitySettings, Pipeline, PipelineSettings
    from biomoe_edge.runtime.sinks import JsonlSink
    from biomoe_edge.vocabulary import WindowSpec, check_representations

    settings = PipelineSettings(max_batch=batch_size, deadline_s=1e6, max_queue=1 << 20, windows=ModalitySettings(
        WindowSpec(WINDOW_S, HOP_S), check_representations(representations)))
    pipeline = Pipeline(settings, engine, clock=time.perf_counter)
    # As the gateway does before connecting: kernels compiled, FFTs planned, the engine's first runs done,
    # so one-time costs are not charged to the first windows.
    pipeline.warmup(MODALITY_RATES_HZ)
    description = device_description()
    for d in range(devices):
        pipeline.add_device(f"bench-{d + 1:02d}", description)
    sink = JsonlSink(sink_dir, max_bytes=64 << 20, max_age_s=None)
    end_to_end = []
    windows_done = 0
    images_done = 0
    windows_seen: set = set()

    def process(jobs):
        nonlocal windows_done, images_done
        result = pipeline.run_batch(jobs)
        ordered = result.jobs
        t0 = time.perf_counter()
        sink.write(result.records)
        done = time.perf_counter()
        pipeline.timings["sink"].append(done - t0)
        end_to_end.extend(done - job.submitted_s for job in ordered)
        images_done += len(ordered)
        # A window's images can land in two batches: count each window once over the run.
        windows_seen.update((job.window.key, job.window.index) for job in ordered)
        windows_done = len(windows_seen)
        memory.sample()

    start = time.perf_counter()
    for arrival, device, payload in packets:
        pipeline.handle_notification(device, payload, arrival)
        if len(pipeline.scheduler) >= batch_size:
            process(pipeline.next_batch())
    for device in pipeline.devices:
        pipeline.flush_device(device)
    while jobs := pipeline.next_batch(flush=True):
        process(jobs)
    wall = time.perf_counter() - start
    sink.close()
    stages = {name: percentiles(pipeline.timings[name]) for name in STAGE_NAMES if name != "end_to_end"}
    stages["end_to_end"] = percentiles(end_to_end)
    accounts = pipeline.stream_report()
    balanced = all(e["samples_received"] == e["samples_windowed"] + e["samples_pending"] + sum(e["samples_dropped"].values())
                   for e in accounts)
    return {
        "stages": stages,
        "wall_s": wall,
        "windows": windows_done,
        "images": images_done,
        "seconds_per_window": wall / max(windows_done, 1),
        "accounting_balanced": balanced,
        "jobs_failed": dict(pipeline.jobs_failed),
    }, pipeline


# -- the reference path ------------------------------------------------------------------------------------------

def reference_windows(devices: int, n_windows: int, seed: int = 1):
    """(modality, fs, window) at the model rate, cycling modalities like the gateway does."""
    from biomoe_edge.runtime.transforms.preprocess import preprocess
    from biomoe_edge.simulation import simulate

    rng = np.random.default_rng(seed)
    modalities = list(MODALITY_RATES_HZ)
    out = []
    for i in range(n_windows):
        modality = modalities[i % len(modalities)]
        fs = MODALITY_RATES_HZ[modality]
        raw, _ = simulate(modality, WINDOW_S, fs, seed=int(rng.integers(1 << 31)), method="harmonic")
        out.append((modality, fs, raw))
    return out, preprocess


def run_reference(model, windows, preprocess, representations) -> dict:
    import torch

    from biomoe_edge.runtime.transforms.reference import reference_render

    torch.set_grad_enabled(False)
    transform_s, inference_s, per_window = [], [], []
    for modality, fs, raw in windows:
        w0 = time.perf_counter()
        x, model_fs = preprocess(raw, fs, modality)
        for representation in representations:
            t0 = time.perf_counter()
            image = reference_render(np.asarray(x), model_fs, representation, modality=modality)
            t1 = time.perf_counter()
            model(torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32)[None]))
            t2 = time.perf_counter()
            transform_s.append(t1 - t0)
            inference_s.append(t2 - t1)
        per_window.append(time.perf_counter() - w0)
    return {
        "stages": {"transform": percentiles(transform_s), "inference": percentiles(inference_s),
                   "end_to_end": percentiles(per_window)},
        "windows": len(windows),
        "seconds_per_window": float(np.mean(per_window)),
    }


# -- main ------------------------------------------------------------------------------------------------------

def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--backend", choices=("auto", "onnxruntime", "pytorch", "tensorrt"), default="auto")
    p.add_argument("--precision", choices=("fp32", "fp16", "int8"), default="fp32")
    p.add_argument("--device", default="cpu", help='PyTorch engine device: "cpu", "cuda" or "cuda:N" (CUDA renders with CuPy)')
    p.add_argument("--cuda-graphs", action="store_true", help="PyTorch engine on CUDA: replay a captured CUDA graph per batch size")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--devices", type=int, default=4, help="emulated wearables, 4 modalities each")
    p.add_argument("--representations", default="spectrogram_psd,scalogram",
                   help="comma-separated representation names (each window gives one image per name)")
    p.add_argument("--duration", type=float, default=30.0, help="seconds of signal per wearable (>= 11)")
    p.add_argument("--reference-windows", type=int, default=8, help="windows run through the reference pipeline")
    p.add_argument("--checkpoint", default=None, help="Tiny-BioMoE .pth (default: random weights; timing is the same)")
    p.add_argument("--model", default=None, help="an exported .onnx or a TensorRT .engine to use instead of exporting")
    p.add_argument("--quick", action="store_true", help="1 wearable, 12 s of signal, 2 reference windows: under a minute on 2 CPU cores")
    p.add_argument("--json", metavar="FILE", default=None, help="write the results as JSON")
    p.add_argument("--web-client", action="store_true",
                   help="measure the gateway's per-window latency in real time without and with a live-page client "
                        "(alternating rounds of --duration seconds; --rounds)")
    p.add_argument("--rounds", type=int, default=2, help="--web-client: rounds of each condition (default 2)")
    args = p.parse_args(argv)
    if args.quick:
        args.devices, args.duration, args.reference_windows = 1, 12.0, 2
    if args.backend != "pytorch" and (args.device != "cpu" or args.cuda_graphs):
        p.error("--device and --cuda-graphs choose the PyTorch engine's device: use them with --backend pytorch")
    if args.duration < WINDOW_S + 1:
        p.error(f"--duration must be at least {WINDOW_S + 1} s (one {WINDOW_S} s window and a hop)")
    from biomoe_edge.vocabulary import check_representations

    try:
        args.representations = check_representations([r.strip() for r in args.representations.split(",") if r.strip()])
    except ValueError as exc:
        p.error(str(exc))
    return args


# -- the live page's cost (--web-client) -----------------------------------------------------------------------

#: The page client: a separate process, as a browser is. Reads every server-sent event and decodes it; scrapes
#: /metrics every 2 s.
PAGE_CLIENT = """
import json, sys, threading, time, urllib.request
base = sys.argv[1]
def scrape():
    while True:
        urllib.request.urlopen(base + "metrics").read()
        time.sleep(2.0)
threading.Thread(target=scrape, daemon=True).start()
events = 0
for line in urllib.request.urlopen(base + "events"):
    if line.startswith(b"data: "):
        json.loads(line[6:])
        events += 1
"""


async def realtime_round(engine, packets, devices: int, representations, batch_size: int, page_client: bool) -> dict:
    """One real-time run of the gateway with its web listener; per-window latency of every embedding."""
    import asyncio
    import subprocess

    from biomoe_edge.runtime.gateway import Gateway
    from biomoe_edge.runtime.gateway_config import WebConfig, parse_config
    from biomoe_edge.runtime.web.server import WebServer

    config = parse_config({"windows": {"length_s": WINDOW_S, "hop_s": HOP_S, "representations": list(representations)},
                           "engine": {"max_batch": batch_size, "deadline_ms": 100}})
    latencies = []
    client = None
    async with Gateway(config, engine=engine, transport=False) as gateway:
        gateway.on_embedding(lambda record: latencies.append(record.latency_s))
        for d in range(devices):
            gateway.add_device(f"bench-{d + 1:02d}", device_description())
        async with WebServer(gateway, WebConfig(port=0)) as server:
            if page_client:
                client = subprocess.Popen([sys.executable, "-c", PAGE_CLIENT, server.url],
                                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                while not server.clients:
                    await asyncio.sleep(0.05)
            loop = asyncio.get_running_loop()
            start = loop.time()
            for arrival_s, device, payload in packets:
                delay = start + arrival_s - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
                gateway.feed(device, payload)
            clients = server.clients
            snapshot_ms = [t * 1e3 for t in server.snapshot_seconds]
            if client is not None:
                client.terminate()
                client.wait()
    return {"page_client": page_client, "clients_connected": clients, "windows": len(latencies),
            "latency_ms": percentiles(latencies), "snapshots": len(snapshot_ms),
            "snapshot_ms_p50": float(np.median(snapshot_ms)) if snapshot_ms else None}


def web_client_comparison(engine, args) -> dict:
    import asyncio

    packets = encode_stream_packets(args.devices, args.duration)
    rounds = []
    for i in range(args.rounds):
        for page_client in (False, True):
            result = asyncio.run(realtime_round(engine, packets, args.devices, args.representations, args.batch_size,
                                                page_client))
            print(f"round {i + 1} {'with' if page_client else 'without'} a page client: {result['windows']} windows, "
                  f"p50 {result['latency_ms']['p50_ms']:.1f} ms", file=sys.stderr)
            rounds.append(result)
    medians = {flag: float(np.median([r["latency_ms"]["p50_ms"] for r in rounds if r["page_client"] is flag]))
               for flag in (False, True)}
    snapshot = [r["snapshot_ms_p50"] for r in rounds if r["snapshot_ms_p50"] is not None]
    return {"rounds": rounds, "median_p50_ms_without": medians[False], "median_p50_ms_with": medians[True],
            "ratio": medians[True] / medians[False],
            "snapshot_ms_p50": float(np.median(snapshot)) if snapshot else None}


def main(argv=None) -> int:
    args = parse_args(argv)
    model = load_reference_model(args)
    backend, engine = open_benchmark_engine(args, model)
    if args.web_client:
        result = web_client_comparison(engine, args)
        engine.close()
        print(f"per-window latency, {args.devices} wearables x 4 modalities in real time, {args.duration:g} s rounds, "
              f"backend {backend} (median of the rounds' p50s):")
        print(f"  without a page client  {result['median_p50_ms_without']:8.1f} ms")
        print(f"  with a page client     {result['median_p50_ms_with']:8.1f} ms")
        print(f"  ratio                  {result['ratio']:8.3f}  (goal: < 1.05)")
        print(f"  the page's snapshot: {result['snapshot_ms_p50']:.2f} ms on the gateway's loop, once a second, "
              "shared by every open page (median)")
        for r in result["rounds"]:
            print(f"    round {'with' if r['page_client'] else 'without':<8} p50 {r['latency_ms']['p50_ms']:8.1f} ms, "
                  f"p95 {r['latency_ms']['p95_ms']:8.1f} ms, {r['windows']} windows")
        if args.json:
            pathlib.Path(args.json).write_text(json.dumps(finite_or_none(result), indent=2, allow_nan=False) + "\n")
        return 0
    packets = encode_stream_packets(args.devices, args.duration)
    memory = MemoryPeak()
    sampler = None
    try:
        from biomoe_edge.runtime.power import TegrastatsSampler
        import shutil

        if shutil.which("tegrastats"):
            sampler = TegrastatsSampler(100).start()
    except ImportError:
        pass
    t_start = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="biomoe-bench-") as sink_dir:
        sdk, pipeline = run_sdk(engine, packets, args.devices, args.representations, args.batch_size, memory, sink_dir)
    t_end = time.monotonic()
    power = None
    if sampler is not None:
        sampler.stop()
        try:
            power = {"mean_power_w": sampler.mean_power_w(t_start, t_end),
                     "energy_per_embedding_j": sampler.energy_j(t_start, t_end) / max(sdk["images"], 1)}
        except ValueError as exc:  # tegrastats printed no power rails (some images need root for them)
            print(f"no power figures: {exc}", file=sys.stderr)
    print(f"SDK path: {sdk['windows']} windows in {sdk['wall_s']:.1f} s; reference path on "
          f"{args.reference_windows} windows ...", file=sys.stderr)
    reference, speedup = None, None
    if model is not None:
        windows, preprocess = reference_windows(args.devices, args.reference_windows)
        reference = run_reference(model, windows, preprocess, args.representations)
        speedup = reference["seconds_per_window"] / sdk["seconds_per_window"]
    throughput = sdk["windows"] / sdk["wall_s"]
    result = {
        "backend": backend,
        "engine": engine.identity,
        "precision": engine.identity.get("precision"),
        "batch_size": args.batch_size,
        "devices": args.devices,
        "representations": list(args.representations),
        "signal_seconds_per_device": args.duration,
        "stages": sdk["stages"],
        "throughput_windows_per_s": throughput,
        "throughput_images_per_s": sdk["images"] / sdk["wall_s"],
        "realtime_devices": throughput / len(MODALITY_RATES_HZ) / (1.0 / HOP_S),
        "windows": sdk["windows"],
        "accounting_balanced": sdk["accounting_balanced"],
        "reference": reference,
        "speedup_vs_reference": speedup,
        "memory": {"rss_start_mb": memory.start_rss / 2**20, "rss_peak_mb": memory.peak_rss / 2**20,
                   "ingest_buffers_mb": pipeline.ingest.buffer_bytes / 2**20,
                   "gpu": gpu_memory()},
        "power": power,
        "machine": {"cpu_count": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()},
        "weights": args.checkpoint or "random (seed 0)",
    }
    engine.close()
    print(format_summary(result))
    if args.json:
        # Strict JSON: a percentile of nothing is null, never NaN.
        pathlib.Path(args.json).write_text(json.dumps(finite_or_none(result), indent=2, allow_nan=False) + "\n")
    return 0


def finite_or_none(value):
    """``value`` with every NaN or infinite float replaced by None, recursively."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: finite_or_none(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite_or_none(v) for v in value]
    return value


def format_summary(r: dict) -> str:
    lines = [f"backend {r['backend']} ({r['precision']}, batch {r['batch_size']}), {r['devices']} wearables x 4 modalities, "
             f"representations {','.join(r['representations'])}",
             f"{'stage':<12}{'p50 ms':>10}{'p95 ms':>10}{'p99 ms':>10}{'ref p50 ms':>12}"]
    for name, s in r["stages"].items():
        ref = r["reference"]["stages"].get(name, {}).get("p50_ms") if r["reference"] else None
        lines.append(f"{name:<12}{s['p50_ms']:>10.2f}{s['p95_ms']:>10.2f}{s['p99_ms']:>10.2f}"
                     f"{'' if ref is None else format(ref, '12.2f')}")
    lines.append(f"throughput {r['throughput_windows_per_s']:.1f} windows/s ({r['throughput_images_per_s']:.1f} images/s)"
                 f" = {r['realtime_devices']:.1f} wearables in real time")
    if r["reference"]:
        lines.append(f"per window: SDK {1e3 / r['throughput_windows_per_s']:.1f} ms, reference "
                     f"{r['reference']['seconds_per_window'] * 1e3:.1f} ms -> speed-up x{r['speedup_vs_reference']:.1f}")
    else:
        lines.append(f"per window: SDK {1e3 / r['throughput_windows_per_s']:.1f} ms (reference not measured: no PyTorch)")
    lines.append(f"peak RSS {r['memory']['rss_peak_mb']:.0f} MB" + (f", GPU {r['memory']['gpu']}" if r["memory"]["gpu"] else ""))
    if r["power"]:
        lines.append(f"power {r['power']['mean_power_w']:.2f} W, {r['power']['energy_per_embedding_j'] * 1e3:.1f} mJ per embedding")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
