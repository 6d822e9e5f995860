"""Cost of ingest + scheduling on this machine: ``python benchmarks/ingest.py``.

Simulates N devices x 4 modalities (ECG 130 Hz, BVP 64 Hz, EDA 4 Hz, respiration 25 Hz) pushing 250 ms
blocks, 10 s windows every 1 s, two representations per window into a BatchScheduler; prints the median and
p99 time per push (windows cut inside it), the CPU share of one core, and the ring memory.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from biomoe_edge.runtime.ingest import Ingest, IngestConfig, StreamKey

RATES_HZ = {"ecg": 130.0, "bvp": 64.0, "eda": 4.0, "resp": 25.0}


def main(argv=None) -> int:
    from biomoe_edge.runtime.scheduler import BatchScheduler

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=300.0, help="seconds of signal per stream")
    args = parser.parse_args(argv)
    ingest = Ingest()
    keys = {
        (device, modality): ingest.add_stream(StreamKey(f"dev{device}", modality), fs, config=IngestConfig(10.0, 1.0))
        for device in range(args.devices)
        for modality, fs in RATES_HZ.items()
    }
    scheduler = BatchScheduler(32, 0.05, 4096)
    rng = np.random.default_rng(0)
    push_s, windows = [], 0
    started = time.process_time()
    for tick in range(int(args.seconds * 4)):
        now = tick * 0.25
        for (_, modality), key in keys.items():
            fs = RATES_HZ[modality]
            first, stop = round(now * fs), round((now + 0.25) * fs)
            if stop == first:
                continue
            t = np.arange(first, stop) / fs
            x = np.sin(2 * np.pi * t) + 0.1 * rng.standard_normal(len(t))
            t0 = time.perf_counter()
            ingest.push(key, x, t, lost_before=0)
            push_s.append(time.perf_counter() - t0)
        for window in ingest.pop_windows():
            windows += 1
            if not window.withheld:
                scheduler.submit(window, ("spectrogram_psd", "scalogram"), now)
        while scheduler.next_batch(now):
            pass
    cpu_s = time.process_time() - started
    push_us = np.asarray(push_s) * 1e6
    print(
        f"{args.devices} devices x 4 modalities, {args.seconds:.0f} s of signal: {len(push_us)} pushes, "
        f"push p50 {np.median(push_us):.0f} us, p99 {np.percentile(push_us, 99):.0f} us; {windows} windows; "
        f"CPU {cpu_s:.2f} s = {100 * cpu_s / args.seconds:.2f} % of one core in real time; "
        f"rings {ingest.buffer_bytes / 1e6:.2f} MB"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
