"""Recording attacks, rerun with figures: single-bit flips in segment files (each must read, or be a
RecordingError naming the file; nothing else may escape the reader).

    python benchmarks/recording_attacks.py --flips 100          # about 10 s

Prints how many flips were refused with a RecordingError, how many read (flips in zip fields nobody reads), and how
many raised anything else (a bug: the reader must name the file).
"""

from __future__ import annotations

import argparse
import collections
import pathlib
import shutil
import tempfile

import numpy as np


def _write(directory: pathlib.Path) -> None:
    from biomoe_edge.runtime.recording import RecordingWriter

    rng = np.random.default_rng(0)
    with RecordingWriter(directory, {}, segment_s=3600, register=False) as writer:
        writer.add_stream("wrist-1", "bvp", {"sample_rate_hz": 64.0, "channels": 1})
        writer.add_stream("chest", "ecg", {"sample_rate_hz": 130.0, "channels": 3})
        for i in range(30):
            device, modality, c = ("wrist-1", "bvp", 1) if i % 3 else ("chest", "ecg", 3)
            n = int(rng.integers(1, 40))
            writer.write_block(device, modality, rng.standard_normal((n, c)), 100.0 + i + np.arange(n) / 64.0,
                               arrival_time_s=100.5 + i, lost_before=0)
            if i % 10 == 9:
                writer.flush()


def bit_flips(flips: int, seed: int = 1) -> collections.Counter:
    from biomoe_edge.runtime.recording import RecordingError, open_recording

    outcomes: collections.Counter = collections.Counter()
    with tempfile.TemporaryDirectory() as tmp:
        clean = pathlib.Path(tmp) / "clean"
        _write(clean)
        segments = sorted((clean / "segments").glob("*.npz"))
        rng = np.random.default_rng(seed)
        for i in range(flips):
            copy = pathlib.Path(tmp) / f"flip{i}"
            shutil.copytree(clean, copy)
            segment = copy / "segments" / segments[int(rng.integers(0, len(segments)))].name
            data = bytearray(segment.read_bytes())
            bit = int(rng.integers(0, len(data) * 8))
            data[bit // 8] ^= 1 << (bit % 8)
            segment.write_bytes(bytes(data))
            try:
                list(open_recording(copy).blocks())
                outcomes["read"] += 1
            except RecordingError as exc:
                outcomes["RecordingError naming the file" if str(copy) in str(exc) else "RecordingError"] += 1
            except Exception as exc:  # noqa: BLE001 - what this benchmark is looking for
                outcomes[f"uncaught {type(exc).__module__}.{type(exc).__name__}"] += 1
            shutil.rmtree(copy)
    return outcomes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--flips", type=int, default=100)
    args = parser.parse_args()
    outcomes = bit_flips(args.flips)
    print(f"{args.flips} single-bit flips in segments: " + ", ".join(f"{k} {v}" for k, v in sorted(outcomes.items())))


if __name__ == "__main__":
    main()
