"""Transforms benchmark: the reference way vs this SDK on NumPy vs this SDK on CuPy, per representation.

    python benchmarks/transforms.py [--repeats 5] [--reference-windows 16]

Reference way, per window: scipy / PyWavelets / pyts map, matplotlib figure saved as PNG, PIL load,
Resize((224, 224)), to float (``reference_render``). It is sequential, so its time for B windows is B
times its per-window median, measured over ``--reference-windows`` real windows. The SDK renders the
batch in one ``render`` call into a preallocated float32 NCHW buffer. Inputs: real PPG windows from
HeartPy's recordings, preprocessed for BVP (64 Hz, 640 samples). Medians of ``--repeats`` runs.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import numpy as np

from biomoe_edge.runtime.transforms import reference_render, render
from biomoe_edge.runtime.transforms.signals import real_ppg_windows
from biomoe_edge.vocabulary import REPRESENTATIONS

BATCHES = (1, 64)


def median_seconds(fn, repeats: int) -> float:
    fn()  # warm-up: caches, FFT plans, kernel compilation
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def cupy_or_reason():
    try:
        import cupy

        cupy.cuda.runtime.getDeviceCount()
        return cupy, None
    except Exception as exc:  # ImportError, or CUDA runtime errors without a device
        return None, f"CuPy not measured: {type(exc).__name__}: {exc}".splitlines()[0]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--reference-windows", type=int, default=16)
    args = parser.parse_args(argv)

    windows, fs = real_ppg_windows(max(BATCHES))
    cupy, reason = cupy_or_reason()
    rows = []
    for name in REPRESENTATIONS:
        per_window = []
        for window in windows[: args.reference_windows]:
            start = time.perf_counter()
            reference_render(window, fs, name, modality="bvp")
            per_window.append(time.perf_counter() - start)
        reference = statistics.median(per_window[1:] or per_window)  # first call imports and warms up
        for batch in BATCHES:
            out = np.empty((batch, 3, 224, 224), dtype=np.float32)
            host = windows[:batch]
            sdk = median_seconds(lambda: render(host, fs, (name,), modality="bvp", out=out), args.repeats) / batch
            gpu = None
            if cupy is not None:
                device_windows = cupy.asarray(host)
                device_out = cupy.empty((batch, 3, 224, 224), dtype=cupy.float32)
                stream = cupy.cuda.Stream(non_blocking=True)

                def on_gpu():
                    render(device_windows, fs, (name,), modality="bvp", out=device_out, stream=stream)
                    stream.synchronize()

                gpu = median_seconds(on_gpu, args.repeats) / batch
            rows.append((name, batch, reference, sdk, gpu))

    print(f"windows: real PPG (HeartPy), 10 s at {fs:g} Hz; medians of {args.repeats} runs; ms per window")
    header = f"{'representation':<18} {'B':>3} {'reference':>10} {'numpy':>9} {'x ref':>7} {'cupy':>9} {'x ref':>7}"
    print(header)
    print("-" * len(header))
    for name, batch, reference, sdk, gpu in rows:
        gpu_cells = f"{gpu * 1e3:>9.3f} {reference / gpu:>7.0f}" if gpu is not None else f"{'-':>9} {'-':>7}"
        print(f"{name:<18} {batch:>3} {reference * 1e3:>10.2f} {sdk * 1e3:>9.3f} {reference / sdk:>7.1f} {gpu_cells}")
    total_ref = sum(r[2] for r in rows if r[1] == 64)
    total_sdk = sum(r[3] for r in rows if r[1] == 64)
    print(f"all six at B=64: reference {total_ref * 1e3:.1f} ms/window, numpy {total_sdk * 1e3:.2f} ms/window, "
          f"{total_ref / total_sdk:.1f}x")
    if hasattr(os, "getloadavg"):
        print(f"load average at the end: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs (a busy machine slows both sides)")
    if reason:
        print(reason)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
