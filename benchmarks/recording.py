#!/usr/bin/env python3
"""Recordings: what recording costs the live gateway, and how fast a recording is embedded offline.

    python benchmarks/recording.py                          # 10 min of one 4-modality wearable, ONNX Runtime fp32
    python benchmarks/recording.py --seconds 120 --repeats 3 --json recording.json
    python benchmarks/recording.py --engine pytorch         # no ONNX export (slower engine)

What runs. One emulated wearable streams four modalities (bvp 64 Hz, eda 32 Hz, resp 32 Hz, ecg 250 Hz; the
latency benchmark's) in native-protocol packets, encoded before any clock starts.

1. Recording overhead on the live gateway. The packets go through the gateway's data path
   (``Pipeline.handle_notification``: decode, reassembly, ingest, windows to the scheduler) as fast as it takes
   them, once without and once with the recording sink attached (repeated, alternating, medians). The difference
   in process CPU time (the event loop's thread and the writer's thread) per second of signal and stream is what
   recording costs; segments are finalised every 2 s of signal time, as the gateway does every 2 s of wall time
   (``segment_s``). Bytes per hour per stream: the recording folder's size over the signal's duration.
2. Offline embedding. ``biomoe-edge embed``'s code (``runtime.recording.embed.embed_to_dataset``) on that recording:
   replay through the same Pipeline, render, the engine (two representations per window, 10 s windows every
   1 s), Parquet. Windows per second, and the ratio to real time: seconds of recording embedded per second.
   The replay without the engine (``Replay.windows``) is timed too, to show where the time goes.

Random weights unless --checkpoint: fine for timing (the report says so).
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import platform
import statistics
import sys
import tempfile
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

from latency import MODALITY_RATES_HZ, device_description, encode_stream_packets  # noqa: E402

SEGMENT_S = 2.0


def feed(packets, *, record_into=None) -> tuple[float, float]:
    """Process CPU seconds and wall seconds to feed ``packets`` through a Pipeline (no engine runs: the windows'
    jobs are taken from the scheduler and discarded, alike in both runs), with the recording sink when
    ``record_into``."""
    from biomoe_edge.runtime.pipeline import Pipeline, PipelineSettings
    from biomoe_edge.runtime.recording.sink import RecordingSink

    clock = [0.0]
    pipeline = Pipeline(PipelineSettings(max_batch=16, max_queue=64), None, clock=lambda: clock[0])
    sink = None
    if record_into is not None:
        sink = RecordingSink(record_into, per_run=False, segment_s=3600.0)  # flushed below, by signal time
        sink.attach(pipeline)
    pipeline.add_device("bench-01", device_description())
    next_flush = SEGMENT_S
    cpu, wall = time.process_time(), time.perf_counter()
    for arrival, device, payload in packets:
        clock[0] = arrival
        pipeline.handle_notification(device, payload, arrival)
        if len(pipeline.scheduler) >= pipeline.max_batch:
            pipeline.next_batch(flush=True)
        if sink is not None and arrival >= next_flush:
            sink.writer.flush()
            next_flush += SEGMENT_S
    if sink is not None:
        sink.close()
    return time.process_time() - cpu, time.perf_counter() - wall


def folder_bytes(folder: pathlib.Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def open_engine_for(args):
    from biomoe_edge.runtime.engines import open_engine

    if args.engine == "pytorch":
        return open_engine("pytorch", args.checkpoint, max_batch=args.batch_size)
    from biomoe_edge.export.cache import cached_onnx  # the demo's model, exported once (needs torch the first time)

    return open_engine("onnxruntime", args.model or cached_onnx(args.checkpoint, precision="fp32"),
                       max_batch=args.batch_size)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=600.0, help="seconds of signal (default 600)")
    parser.add_argument("--repeats", type=int, default=3, help="runs with and without recording (default 3)")
    parser.add_argument("--embed-seconds", type=float, default=None,
                        help="seconds of the recording to embed (default: 120, or --seconds if less)")
    parser.add_argument("--engine", choices=("onnxruntime", "pytorch"), default="onnxruntime")
    parser.add_argument("--model", default=None, help="an .onnx file (default: the demo's, exported once)")
    parser.add_argument("--checkpoint", default=None, help="Tiny-BioMoE .pth (default: random weights)")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--representations", default="spectrogram_psd,scalogram")
    parser.add_argument("--json", default=None, metavar="FILE")
    args = parser.parse_args(argv)
    streams = len(MODALITY_RATES_HZ)
    result = {"machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "python": platform.python_version()},
              "seconds": args.seconds, "streams": streams, "rates_hz": MODALITY_RATES_HZ,
              "random_weights": args.checkpoint is None}

    with tempfile.TemporaryDirectory(prefix="biomoe-recording-bench-") as tmp:
        tmp = pathlib.Path(tmp)
        packets = encode_stream_packets(1, args.seconds)
        without, with_recording = [], []
        for i in range(args.repeats):
            without.append(feed(packets)[0])
            folder = tmp / f"rec{i}"
            with_recording.append(feed(packets, record_into=folder)[0])
        size = folder_bytes(tmp / "rec0")
        extra_cpu = statistics.median(with_recording) - statistics.median(without)
        samples = sum(int(args.seconds * fs) for fs in MODALITY_RATES_HZ.values())
        result["overhead"] = {
            "cpu_s_without": statistics.median(without), "cpu_s_with": statistics.median(with_recording),
            "cpu_ms_per_stream_per_signal_s": 1e3 * extra_cpu / (args.seconds * streams),
            "core_percent_per_stream": 100 * extra_cpu / (args.seconds * streams),
            "bytes_per_hour_per_stream": size / (args.seconds / 3600) / streams,
            "raw_float64_bytes_per_hour_per_stream": 16 * samples / (args.seconds / 3600) / streams,
            "segments": len(list((tmp / "rec0" / "segments").glob("*.npz"))),
        }

        from biomoe_edge.runtime.recording import open_recording
        from biomoe_edge.runtime.recording.embed import embed_to_dataset
        from biomoe_edge.runtime.recording.replay import Replay, replay_config

        # a recording of the first embed_seconds
        embed_seconds = min(args.embed_seconds or 120.0, args.seconds)
        feed([p for p in packets if p[0] <= embed_seconds], record_into=tmp / "embed")
        recording = open_recording(tmp / "embed")
        representations = [r for r in args.representations.split(",") if r]
        config = replay_config(recording, representations=representations, window_s=10.0, hop_s=1.0,
                               max_batch=args.batch_size)
        start = time.perf_counter()
        windows = sum(1 for _ in Replay(recording, None, config).windows())
        replay_s = time.perf_counter() - start
        engine = open_engine_for(args)
        try:
            engine.warmup([1, args.batch_size])
            start, cpu = time.perf_counter(), time.process_time()
            frame = embed_to_dataset([recording], engine, out=tmp / "dataset", representations=representations,
                                     window_s=10.0, hop_s=1.0, any_model=True)
            embed_s, embed_cpu_s = time.perf_counter() - start, time.process_time() - cpu
            identity = engine.identity
        finally:
            engine.close()
        result["offline"] = {
            "engine": identity.get("kind"), "precision": identity.get("precision"), "batch_size": args.batch_size,
            "representations": representations, "recording_s": embed_seconds, "windows": windows,
            "images": len(frame), "replay_only_s": replay_s, "replay_windows_per_s": windows / replay_s,
            "embed_s": embed_s, "embed_cpu_s": embed_cpu_s, "windows_per_s": windows / embed_s, "images_per_s": len(frame) / embed_s,
            "realtime_ratio": embed_seconds / embed_s,
        }
    print(format_summary(result))
    if args.json:
        pathlib.Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    return 0


def format_summary(r: dict) -> str:
    o, e = r["overhead"], r["offline"]
    return "\n".join([
        f"recording overhead ({r['seconds']:.0f} s of one wearable, {r['streams']} streams, medians of the runs):",
        f"  CPU: {o['cpu_ms_per_stream_per_signal_s']:.3f} ms per stream per second of signal "
        f"({o['core_percent_per_stream']:.3f} % of one core per stream); feeding {o['cpu_s_without']:.2f} s CPU "
        f"without, {o['cpu_s_with']:.2f} s with",
        f"  disk: {o['bytes_per_hour_per_stream'] / 1e6:.2f} MB per hour per stream "
        f"(raw float64 samples + times: {o['raw_float64_bytes_per_hour_per_stream'] / 1e6:.2f} MB), "
        f"{o['segments']} segments",
        f"offline embedding ({e['engine']} {e['precision']}, batch {e['batch_size']}, "
        f"{len(e['representations'])} representations, {e['recording_s']:.0f} s recording"
        + (", RANDOM weights" if r["random_weights"] else "") + "):",
        f"  {e['windows']} windows ({e['images']} images) in {e['embed_s']:.1f} s: {e['windows_per_s']:.2f} windows/s, "
        f"{e['realtime_ratio']:.2f}x real time for the 4-modality wearable; {e['embed_cpu_s'] / e['windows']:.3f} CPU s "
        f"per window (all threads)",
        f"  replay alone (ingest, no rendering or engine): {e['replay_windows_per_s']:.0f} windows/s",
    ])


if __name__ == "__main__":
    sys.exit(main())
