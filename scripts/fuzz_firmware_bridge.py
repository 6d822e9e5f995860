#!/usr/bin/env python3
"""Fuzz every firmware_bridge decoder: anything but a PacketError is a bug. Differential against the C codec.

    python scripts/fuzz_firmware_bridge.py --seconds 120 --seed 1 [--sanitize]

Inputs are mutations of valid values (bit flips, byte overwrites, truncation, extension, splices, header
fields rewritten with the CRC recomputed so that the checks after the CRC are reached too) and plain random
bytes. Targets: decode_packet, decode_description, decode_control, the Heart Rate, PLX and Polar PMD parsers
(data frames, control responses, settings), and one StreamReassembler fed valid packets with adversarial
sequence numbers, timestamps and arrival times (its counters must balance after every push). Every packet input is also decoded by the C reference
(firmware_bridge/c, built with gcc into a temporary folder), which must accept exactly what Python accepts,
with the same fields, and reject the rest with the same error kind. Prints counts per target and per outcome;
exits 1 on the first failure, printing the input in hex.
"""

from __future__ import annotations

import argparse
import collections
import pathlib
import shutil
import struct
import subprocess
import sys
import tempfile
import time

import numpy as np

from biomoe_edge import firmware_bridge as fb
from biomoe_edge.firmware_bridge import gatt
from biomoe_edge.firmware_bridge.profiles import heart_rate, polar_pmd, pulse_oximeter

C_DIR = pathlib.Path(fb.__file__).resolve().parent / "c"
C_ERROR_NAMES = {
    fb.TruncatedPacketError: "truncated",
    fb.LengthMismatchError: "length",
    fb.CRCError: "crc",
    fb.UnsupportedVersionError: "version",
    fb.SampleFormatError: "format",
    fb.SampleCountError: "count",
}


def random_packet(rng) -> bytes:
    fmt = fb.SampleFormat(int(rng.integers(1, 4)))
    n, channels = int(rng.integers(1, 24)), int(rng.integers(1, 5))
    if fmt is fb.SampleFormat.FLOAT32:
        samples = rng.integers(0, 1 << 32, size=(n, channels), dtype=np.uint64).astype(np.uint32).view(np.float32)
    else:
        bound = 1 << (15 if fmt is fb.SampleFormat.INT16 else 23)
        samples = rng.integers(-bound, bound, size=(n, channels))
    return fb.encode_packet(stream_id=int(rng.integers(0, 256)), sequence=int(rng.integers(0, 65536)),
                            timestamp_us=int(rng.integers(0, 1 << 32)), samples=samples, sample_format=fmt)


def random_description(rng) -> bytes:
    streams = tuple(
        fb.StreamDescription(i, ["ecg", "bvp", "eda", "resp", "spo2"][i % 5], float(rng.uniform(1, 1000)),
                             int(rng.integers(1, 4)), int(rng.integers(1, 4)), float(rng.normal()), float(rng.normal()), "mV")
        for i in range(int(rng.integers(1, 5)))
    )
    return fb.encode_description(fb.DeviceDescription("1.0." + str(int(rng.integers(0, 99))), streams))


SEEDS = {
    "hr": [bytes.fromhex(h) for h in ("0048", "014801", "164b00041002", "1900012c010004")],
    "plx": [bytes.fromhex(h) for h in ("0062004800", "1f62004800cff34700ff0700082001030201" "19f0")],
    "pmd": [bytes.fromhex(h) for h in (
        "00" "0094357700000000" "00" "0280ff028000",
        "02" "6500000000000000" "81" "f1ff1400f003" "0601" "7b0f08",
        "01" "0094357700000000" "00" "010203040506ffff7f000000ffffff0fefef0000800fefef",
        "02" "0094357700000000" "01" "f7ffffffe703f8fffeffe503",
    )],
    "pmd_cp": [bytes.fromhex(h) for h in ("f001020000ffffff", "f001060700", "f0010200000001340001011000040103")],
    "pmd_settings": [bytes.fromhex(h) for h in ("0001340001011000" "0204f500f401e803d007" "040103", "05010000803f")],
    "control": [gatt.encode_control(1), gatt.encode_control(2, 3), gatt.encode_control(3, 1, sample_rate_hz=64.0)],
}


def mutate(data: bytes, rng, *, crc_fix: bool) -> bytes:
    out = bytearray(data)
    for _ in range(int(rng.integers(1, 4))):
        kind = int(rng.integers(0, 7))
        if kind == 0 and out:  # flip a bit
            i = int(rng.integers(0, len(out)))
            out[i] ^= 1 << int(rng.integers(0, 8))
        elif kind == 1 and out:  # overwrite a byte with an interesting value
            out[int(rng.integers(0, len(out)))] = int(rng.choice([0, 1, 2, 3, 4, 0x7F, 0x80, 0xFE, 0xFF, rng.integers(0, 256)]))
        elif kind == 2:  # truncate
            out = out[: int(rng.integers(0, len(out) + 1))]
        elif kind == 3:  # extend
            out += bytes(rng.integers(0, 256, size=int(rng.integers(1, 8)), dtype=np.uint8))
        elif kind == 4 and len(out) > 2:  # delete a slice
            i = int(rng.integers(0, len(out) - 1))
            del out[i : i + int(rng.integers(1, 4))]
        elif kind == 5 and out:  # duplicate a slice
            i = int(rng.integers(0, len(out)))
            out[i:i] = out[i : i + int(rng.integers(1, 6))]
        else:  # random bytes
            out = bytearray(rng.integers(0, 256, size=int(rng.integers(0, 40)), dtype=np.uint8))
    if crc_fix and len(out) >= 2:  # recompute the trailer so the checks after the CRC run
        out[-2:] = struct.pack("<H", fb.packet.crc16_ccitt_false(bytes(out[:-2])))
    return bytes(out)


class ReassemblerTarget:
    """Valid packets with adversarial sequence numbers, timestamps and arrival times into one reassembler:
    nothing may raise, and received = delivered + duplicated + late + stale + rejected + pending must hold."""

    def __init__(self, rng):
        self.rng = rng
        self.stream = fb.StreamDescription(1, "ecg", 100.0, 2, "int16", 0.5, 1.0, "mV")
        self.reassembler = fb.StreamReassembler(self.stream, horizon=int(rng.integers(1, 16)))
        self.sequence, self.timestamp_us, self.arrival_s = 0, 0, 0.0

    def step(self) -> fb.Packet:
        rng = self.rng
        jump = int(rng.choice([0, 1, 1, 1, 2, -1, -3, 40, 65535, 30000, int(rng.integers(0, 65536))]))
        self.sequence = (self.sequence + jump) % 65536
        n = int(rng.integers(1, 30))
        self.timestamp_us = (self.timestamp_us + int(rng.choice([n * 10_000, 0, -50_000, 10**9, int(rng.integers(0, 2**32))]))) % 2**32
        self.arrival_s += float(rng.choice([0.0, 0.01, 0.1, 2.0, -1.0]))
        channels = 2 if rng.integers(0, 20) else 3  # now and then a packet the description does not fit
        packet = fb.decode_packet(fb.encode_packet(stream_id=1, sequence=self.sequence, timestamp_us=self.timestamp_us,
                                                   samples=rng.integers(-100, 100, size=(n, channels)), sample_format="int16"))
        arrival = self.arrival_s if rng.integers(0, 50) else float("nan")
        self.reassembler.push(packet, arrival)
        if rng.integers(0, 200) == 0:
            self.reassembler.flush()
        st = self.reassembler.stats
        for unit in ("packets", "samples"):
            parts = [getattr(st, f"{unit}_{k}") for k in ("delivered", "duplicated", "late", "stale", "rejected", "pending")]
            if getattr(st, f"{unit}_received") != sum(parts):
                raise AssertionError(f"{unit}: received {getattr(st, f'{unit}_received')} != {parts}")
        return packet


def build_c(workdir: pathlib.Path, *, sanitize: bool) -> pathlib.Path | None:
    gcc = shutil.which("gcc")
    if gcc is None:
        return None
    exe = workdir / "fwb_test"
    flags = ["-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic"]
    flags += ["-O1", "-g", "-fsanitize=address,undefined", "-fno-sanitize-recover=all"] if sanitize else ["-O2"]
    subprocess.run([gcc, *flags, "-o", str(exe), str(C_DIR / "fwb_test.c"), str(C_DIR / "fwb_packet.c")], check=True)
    return exe


def python_verdict(data: bytes) -> str:
    try:
        packet = fb.decode_packet(data)
    except fb.PacketError as error:
        return "error " + C_ERROR_NAMES[type(error)]
    if packet.sample_format is fb.SampleFormat.FLOAT32:
        values = [f"{b:08x}" for b in packet.samples.view(np.uint32).ravel()]
    else:
        values = [str(int(v)) for v in packet.samples.ravel()]
    head = [packet.stream_id, packet.sequence, packet.timestamp_us, int(packet.sample_format), *packet.samples.shape]
    return "ok " + " ".join(map(str, head + values))


def fail(target: str, data: bytes, why: str) -> None:
    print(f"FAIL {target}: {why}\ninput: {data.hex()}", file=sys.stderr)
    sys.exit(1)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="stop after this long (default 60)")
    parser.add_argument("--max-inputs", type=int, default=0, help="stop after this many inputs (0: no limit)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-c", action="store_true", help="skip the differential check against the C decoder")
    parser.add_argument("--sanitize", action="store_true",
                        help="build the C decoder with AddressSanitizer + UBSan (any report fails the run)")
    args = parser.parse_args()

    rng = np.random.default_rng(args.seed)
    targets = {
        "packet": (fb.decode_packet, lambda: random_packet(rng), True),
        "description": (fb.decode_description, lambda: random_description(rng), True),
        "control": (gatt.decode_control, lambda: SEEDS["control"][int(rng.integers(0, 3))], False),
        "heart_rate": (heart_rate.parse_measurement, lambda: SEEDS["hr"][int(rng.integers(0, 4))], False),
        "plx": (pulse_oximeter.parse_continuous, lambda: SEEDS["plx"][int(rng.integers(0, 2))], False),
        "pmd_frame": (polar_pmd.parse_data_frame, lambda: SEEDS["pmd"][int(rng.integers(0, 4))], False),
        "pmd_response": (polar_pmd.parse_control_response, lambda: SEEDS["pmd_cp"][int(rng.integers(0, 3))], False),
        "pmd_settings": (polar_pmd.parse_settings, lambda: SEEDS["pmd_settings"][int(rng.integers(0, 2))], False),
    }
    outcomes: dict[str, collections.Counter] = {name: collections.Counter() for name in [*targets, "reassembler"]}
    reassembler_target = ReassemblerTarget(rng)
    c_batch: list[bytes] = []
    c_checked = 0
    with tempfile.TemporaryDirectory() as tmp:
        exe = None if args.no_c else build_c(pathlib.Path(tmp), sanitize=args.sanitize)

        def flush_c() -> None:
            nonlocal c_checked
            if exe is None or not c_batch:
                return
            result = subprocess.run([str(exe), "decode"], input="\n".join(d.hex() for d in c_batch) + "\n",
                                    capture_output=True, text=True)
            if result.returncode != 0 or result.stderr:
                fail("packet (C decoder)", b"", f"exit {result.returncode}: {result.stderr[-1500:]}")
            for data, c_line in zip(c_batch, result.stdout.splitlines(), strict=True):
                if c_line != python_verdict(data):
                    fail("packet (C vs Python)", data, f"C says {c_line[:80]!r}, Python {python_verdict(data)[:80]!r}")
            c_checked += len(c_batch)
            c_batch.clear()

        start = time.perf_counter()
        total = 0
        while time.perf_counter() - start < args.seconds and (not args.max_inputs or total < args.max_inputs):
            for name, (decode, seed, crc_fix) in targets.items():
                data = mutate(seed(), rng, crc_fix=crc_fix and bool(rng.integers(0, 2)))
                if name == "packet" and rng.integers(0, 4) == 0:
                    data = random_packet(rng)  # keep valid packets in the differential mix
                try:
                    decode(data if rng.integers(0, 2) else bytearray(data))
                    outcomes[name]["accepted"] += 1
                except fb.PacketError as error:
                    outcomes[name][type(error).__name__] += 1
                except Exception as error:  # noqa: BLE001 - the very thing we hunt
                    fail(name, data, f"{type(error).__name__}: {error}")
                total += 1
                if name == "packet":
                    c_batch.append(data)
            if len(c_batch) >= 2000:
                flush_c()
            try:
                reassembler_target.step()
            except Exception as error:  # noqa: BLE001
                fail("reassembler", b"", f"{type(error).__name__}: {error}")
            outcomes["reassembler"]["pushed"] += 1
            total += 1
        flush_c()
        elapsed = time.perf_counter() - start
        st = reassembler_target.reassembler.stats
        reassembler_summary = (f"delivered {st.packets_delivered}, lost {st.packets_lost}, duplicated "
                               f"{st.packets_duplicated}, late {st.packets_late}, stale {st.packets_stale}, rejected "
                               f"{st.packets_rejected}, restarts {st.restarts}, clock jumps {st.clock_jumps}")

    print(f"fuzz_firmware_bridge: {total} inputs in {elapsed:.1f} s (seed {args.seed}), no exception other than PacketError")
    outcomes["reassembler"] = collections.Counter({reassembler_summary: outcomes["reassembler"]["pushed"]})
    for name, counter in outcomes.items():
        detail = ", ".join(f"{k} {v}" for k, v in counter.most_common())
        print(f"  {name:13s} {sum(counter.values()):8d}  {detail}")
    if exe is None:
        print("  C differential: skipped (" + ("--no-c" if args.no_c else "gcc not found") + ")")
    else:
        checked = "AddressSanitizer + UBSan build" if args.sanitize else "-O2 build"
        print(f"  C differential ({checked}): {c_checked} packet inputs, C and Python agree on every verdict and value")
    return 0


if __name__ == "__main__":
    sys.exit(main())
