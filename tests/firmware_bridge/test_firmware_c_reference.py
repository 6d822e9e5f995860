"""The C reference codec (firmware_bridge/c/), compiled with gcc, agrees with Python byte for byte."""

from __future__ import annotations

import json
import pathlib
import shutil
import struct
import subprocess

import numpy as np
import pytest

from biomoe_edge import firmware_bridge as fb

C_DIR = pathlib.Path(fb.__file__).resolve().parent / "c"
VECTORS = json.loads((C_DIR / "test_vectors.json").read_text())
ERROR_CLASSES = {
    "truncated": fb.TruncatedPacketError,
    "length": fb.LengthMismatchError,
    "crc": fb.CRCError,
    "version": fb.UnsupportedVersionError,
    "format": fb.SampleFormatError,
    "count": fb.SampleCountError,
}
GCC_FLAGS = ["-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic", "-O2"]


def compile_c(tmp_path_factory, name: str, flags: list[str]) -> tuple[pathlib.Path, subprocess.CompletedProcess]:
    """The C test program built with ``flags`` into a fresh folder; skips (saying why) without gcc."""
    gcc = shutil.which("gcc")
    if gcc is None:
        pytest.skip("gcc not found: cannot build the C reference codec")
    exe = tmp_path_factory.mktemp(name) / "fwb_test"
    build = subprocess.run([gcc, *flags, "-o", str(exe), str(C_DIR / "fwb_test.c"), str(C_DIR / "fwb_packet.c")],
                           capture_output=True, text=True)
    return exe, build


@pytest.fixture(scope="session")
def fwb_test(tmp_path_factory) -> pathlib.Path:
    exe, build = compile_c(tmp_path_factory, "fwb_c", GCC_FLAGS)
    assert build.returncode == 0, build.stderr
    return exe


def run_c(exe: pathlib.Path, mode: str, lines: list[str]) -> list[str]:
    result = subprocess.run([str(exe), mode], input="\n".join(lines) + "\n", capture_output=True, text=True, check=True)
    return result.stdout.splitlines()


def vector_samples(vector) -> np.ndarray:
    if vector["sample_format"] == "float32":
        bits = np.array([[int(v, 16) for v in row] for row in vector["samples"]], dtype=np.uint32)
        return bits.view(np.float32)
    return np.array(vector["samples"], dtype=np.int64)


def encode_line(stream_id, sequence, timestamp_us, fmt: fb.SampleFormat, samples: np.ndarray) -> str:
    n, channels = samples.shape
    if fmt is fb.SampleFormat.FLOAT32:
        values = [f"{b:08x}" for b in samples.astype(np.float32).view(np.uint32).ravel()]
    else:
        values = [str(int(v)) for v in samples.ravel()]
    return " ".join(map(str, [stream_id, sequence, timestamp_us, int(fmt), n, channels, *values]))


def decoded_line(packet: fb.Packet) -> str:
    if packet.sample_format is fb.SampleFormat.FLOAT32:
        values = [f"{b:08x}" for b in packet.samples.view(np.uint32).ravel()]
    else:
        values = [str(int(v)) for v in packet.samples.ravel()]
    n, channels = packet.samples.shape
    head = [packet.stream_id, packet.sequence, packet.timestamp_us, int(packet.sample_format), n, channels]
    return "ok " + " ".join(map(str, head + values))


def test_c_selftest_passes(fwb_test):
    result = subprocess.run([str(fwb_test), "selftest"], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert ", 0 failed" in result.stdout


def test_makefile_builds_with_the_same_flags(tmp_path):
    if shutil.which("make") is None or shutil.which("gcc") is None:
        pytest.skip("make or gcc not found")
    subprocess.run(["make", "-C", str(C_DIR), f"BUILD={tmp_path}", "check"], check=True, capture_output=True)
    assert (tmp_path / "fwb_test").exists()


@pytest.mark.parametrize("vector", VECTORS["packets"], ids=lambda v: v["name"])
def test_python_matches_vector(vector):
    samples = vector_samples(vector)
    fields = dict(stream_id=vector["stream_id"], sequence=vector["sequence"], timestamp_us=vector["timestamp_us"])
    data = fb.encode_packet(**fields, samples=samples, sample_format=vector["sample_format"])
    assert data.hex() == vector["hex"]
    packet = fb.decode_packet(bytes.fromhex(vector["hex"]))
    assert (packet.stream_id, packet.sequence, packet.timestamp_us) == tuple(fields.values())
    assert packet.samples.shape == samples.shape
    if packet.sample_format is fb.SampleFormat.FLOAT32:
        np.testing.assert_array_equal(packet.samples.view(np.uint32), samples.view(np.uint32))  # bit for bit, NaN too
    else:
        np.testing.assert_array_equal(packet.samples, samples)


def test_c_encodes_every_vector_byte_for_byte(fwb_test):
    vectors = VECTORS["packets"]
    lines = [
        encode_line(v["stream_id"], v["sequence"], v["timestamp_us"], fb.SampleFormat.parse(v["sample_format"]), vector_samples(v))
        for v in vectors
    ]
    assert run_c(fwb_test, "encode", lines) == [v["hex"] for v in vectors]


def test_c_decodes_every_vector_like_python(fwb_test):
    vectors = VECTORS["packets"]
    out = run_c(fwb_test, "decode", [v["hex"] for v in vectors])
    assert out == [decoded_line(fb.decode_packet(bytes.fromhex(v["hex"]))) for v in vectors]
    # And against the vector's own fields, not only against Python.
    for line, v in zip(out, vectors):
        assert line.split()[1:4] == [str(v["stream_id"]), str(v["sequence"]), str(v["timestamp_us"])]


def test_error_vectors_agree(fwb_test):
    errors = VECTORS["errors"]
    out = run_c(fwb_test, "decode", [e["hex"] for e in errors])
    assert out == [f"error {e['error']}" for e in errors]
    for e in errors:
        with pytest.raises(ERROR_CLASSES[e["error"]]):
            fb.decode_packet(bytes.fromhex(e["hex"]))


def test_random_packets_cross_both_ways(fwb_test):
    rng = np.random.default_rng(4)
    cases = []
    for _ in range(300):
        fmt = fb.SampleFormat(int(rng.integers(1, 4)))
        n, channels = int(rng.integers(1, 30)), int(rng.integers(1, 5))
        if fmt is fb.SampleFormat.FLOAT32:
            samples = rng.integers(0, 1 << 32, size=(n, channels), dtype=np.uint64).astype(np.uint32).view(np.float32)
        else:
            bound = 1 << (15 if fmt is fb.SampleFormat.INT16 else 23)
            samples = rng.integers(-bound, bound, size=(n, channels))
        cases.append((int(rng.integers(0, 256)), int(rng.integers(0, 65536)), int(rng.integers(0, 1 << 32)), fmt, samples))
    c_hex = run_c(fwb_test, "encode", [encode_line(*case) for case in cases])
    python_packets = [fb.encode_packet(stream_id=s, sequence=q, timestamp_us=t, samples=x, sample_format=f) for s, q, t, f, x in cases]
    assert c_hex == [p.hex() for p in python_packets]  # C encodes what Python encodes
    c_decoded = run_c(fwb_test, "decode", [p.hex() for p in python_packets])
    assert c_decoded == [decoded_line(fb.decode_packet(p)) for p in python_packets]  # and decodes it the same


def corrupted_packets(n: int, kinds, rng) -> list[bytes]:
    """``n`` packets made from the valid test vectors by each corruption of ``kinds`` in turn: "flip" (one
    byte XORed), "truncate", "append" (1-3 stray bytes), "overrun_counts" (sample/channel counts that overrun
    the buffer), "random" (0-63 random bytes)."""
    good = [bytes.fromhex(v["hex"]) for v in VECTORS["packets"]]
    out = []
    for i in range(n):
        data = bytearray(good[i % len(good)])
        kind = kinds[i % len(kinds)]
        if kind == "flip":
            data[int(rng.integers(0, len(data)))] ^= int(rng.integers(1, 256))
        elif kind == "truncate":
            data = data[: int(rng.integers(0, len(data)))]
        elif kind == "append":
            data += bytes(rng.integers(0, 256, size=int(rng.integers(1, 4)), dtype=np.uint8))
        elif kind == "overrun_counts":
            data[9:11] = bytes(rng.integers(0, 256, size=2, dtype=np.uint8))
        else:
            data = bytearray(rng.integers(0, 256, size=int(rng.integers(0, 64)), dtype=np.uint8))
        out.append(bytes(data))
    return out


def test_c_rejects_what_python_rejects_on_corrupted_packets(fwb_test):
    corrupted = corrupted_packets(200, ("flip", "truncate", "append"), np.random.default_rng(5))
    c_out = run_c(fwb_test, "decode", [d.hex() for d in corrupted])
    names = {cls: name for name, cls in ERROR_CLASSES.items()}
    for data, line in zip(corrupted, c_out):
        with pytest.raises(fb.PacketError) as info:
            fb.decode_packet(data)
        assert line == f"error {names[type(info.value)]}", data.hex()


def test_vector_trailers_are_crc16_ccitt_false():
    """Each vector's last two bytes are the CRC of the rest, computed here bit by bit (no library)."""
    for vector in VECTORS["packets"]:
        data = bytes.fromhex(vector["hex"])
        crc = 0xFFFF
        for byte in data[:-2]:
            crc ^= byte << 8
            for _ in range(8):
                crc = ((crc << 1) ^ 0x1021) & 0xFFFF if crc & 0x8000 else (crc << 1) & 0xFFFF
        assert struct.unpack("<H", data[-2:])[0] == crc, vector["name"]


def _f64_hex(value: float) -> str:
    return struct.pack("<d", value)[::-1].hex()  # big-endian hex digits of the bit pattern, for strtoull


def test_c_description_encoder_matches_python(fwb_test):
    rng = np.random.default_rng(6)
    descriptions = [
        fb.DeviceDescription("1.4.2", (fb.StreamDescription(0, "ecg", 130.0, 1, "int24", 0.001, 0.0, "mV"),)),
        fb.DeviceDescription("fw-2", (
            fb.StreamDescription(3, "eda", 4.0, 1, "int16", 0.01, -1.5, "uS"),
            fb.StreamDescription(5, "bvp", 64.0, 2, "float32", 1.0, 0.0, ""),
        )),
    ]
    for i in range(20):
        streams = tuple(
            fb.StreamDescription(int(sid), ["ecg", "bvp", "eda", "resp", "spo2"][int(sid) % 5], float(rng.uniform(0.1, 2000)),
                                 int(rng.integers(1, 9)), int(rng.integers(1, 4)), float(rng.normal() * 10.0 ** rng.integers(-6, 6)),
                                 float(rng.normal()), ["mV", "uS", "%", ""][int(sid) % 4])
            for sid in rng.choice(256, size=int(rng.integers(1, 17)), replace=False)
        )
        descriptions.append(fb.DeviceDescription(f"v{i}.{int(rng.integers(0, 1000))}", streams))
    lines = []
    for d in descriptions:
        parts = [d.firmware_version, str(len(d.streams))]
        for s in d.streams:
            parts += [str(s.stream_id), str(int(s.sample_format)), str(s.channels), _f64_hex(s.sample_rate_hz),
                      _f64_hex(s.scale), _f64_hex(s.offset), s.modality, s.units or "-"]
        lines.append(" ".join(parts))
    assert run_c(fwb_test, "describe", lines) == [fb.encode_description(d).hex() for d in descriptions]
    # What C refuses: duplicate ids, a zero rate, a NaN scale.
    bad = [
        "x 2 1 1 1 " + " ".join([_f64_hex(10.0), _f64_hex(1.0), _f64_hex(0.0)]) + " ecg - 1 1 1 " + " ".join([_f64_hex(10.0), _f64_hex(1.0), _f64_hex(0.0)]) + " ecg -",
        "x 1 1 1 1 " + " ".join([_f64_hex(0.0), _f64_hex(1.0), _f64_hex(0.0)]) + " ecg -",
        "x 1 1 1 1 " + " ".join([_f64_hex(10.0), _f64_hex(float("nan")), _f64_hex(0.0)]) + " ecg -",
    ]
    assert run_c(fwb_test, "describe", bad) == ["error range"] * 3


def test_c_control_decoder_matches_python(fwb_test):
    from biomoe_edge.firmware_bridge import gatt

    cases = [b"\x01\xff", b"\x02\x03", b"\x03\x01" + struct.pack("<f", 130.0) + b"\x0a", b"\x03\x00" + bytes(5), b"",
             b"\x01", b"\x02\x00\x00", b"\x09\x00", b"\x03\x00" + struct.pack("<f", -1.0) + b"\x00",
             b"\x03\x00" + struct.pack("<f", float("inf")) + b"\x00", b"\x03\x00" + struct.pack("<f", float("nan")) + b"\x00"]
    rng = np.random.default_rng(7)
    cases += [bytes(rng.integers(0, 256, size=int(rng.integers(0, 9)), dtype=np.uint8)) for _ in range(300)]
    cases += [bytes([int(rng.integers(1, 4))]) + bytes(rng.integers(0, 256, size=6, dtype=np.uint8)) for _ in range(300)]
    out = run_c(fwb_test, "control", [c.hex() for c in cases])
    for data, line in zip(cases, out):
        try:
            command = gatt.decode_control(data)
        except fb.ControlError as error:
            assert line == f"error 0x{error.att_error:02X}", data.hex()
            continue
        rate = struct.unpack("<I", struct.pack("<f", command.sample_rate_hz or 0.0))[0]
        assert line == f"ok {int(command.opcode)} {command.stream_id} {rate:08x} {command.samples_per_packet or 0}", data.hex()


def test_c_sample_timestamps_follow_the_protocol_formula(fwb_test):
    cases = [(0, 130_000), (130, 130_000), (1, 3_000), (7, 64_000), (10**9, 250_000), (4_295_000, 1_000_000),
             (123_456_789, 4_000), (18 * 10**9, 1_000_000)]
    out = run_c(fwb_test, "timestamp", [f"{i} {r}" for i, r in cases])
    # round(index * 1e6 / rate_hz) mod 2**32, in exact integer arithmetic (half up)
    assert out == [str(((i * 10**9 + r // 2) // r) % 2**32) for i, r in cases]


def test_c_firmware_stream_through_the_python_gateway_path(fwb_test):
    """C packs 40 s of 3-channel int24 at 250 Hz (timestamps from its sample counter, sequence and clock both
    wrapping); the link loses, duplicates and reorders; Python decodes and reassembles every sample into place."""
    from biomoe_edge.firmware_bridge.reassembly import StreamReassembler

    fs, per_packet, channels = 250.0, 25, 3
    rng = np.random.default_rng(8)
    total = int(40 * fs)
    signal = rng.integers(-(1 << 23), 1 << 23, size=(total, channels))
    starts = list(range(0, total, per_packet))
    first_index = 3 * 1_073_741 - 20 * 250  # up 3.6 h: 20 s before its u32 microsecond clock wraps a third time
    stamps = run_c(fwb_test, "timestamp", [f"{first_index + k} 250000" for k in starts])
    lines = [encode_line(9, (65500 + i) % 65536, int(stamps[i]), fb.SampleFormat.INT24, signal[k : k + per_packet])
             for i, k in enumerate(starts)]
    packets = [bytes.fromhex(h) for h in run_c(fwb_test, "encode", lines)]
    assert int(stamps[-1]) < int(stamps[0])  # the clock wrapped

    lost = set(rng.choice(len(packets), size=12, replace=False).tolist()) - {0}
    order = [i for i in range(len(packets)) if i not in lost]
    for j in range(5, len(order) - 1, 37):
        order[j], order[j + 1] = order[j + 1], order[j]
    order += [order[50], order[200]]  # two duplicates arrive late
    stream = fb.StreamDescription(9, "ecg", fs, channels, "int24", 1.0, 0.0, "uV")
    reassembler = StreamReassembler(stream)
    blocks = []
    for i in order:
        blocks += reassembler.push(fb.decode_packet(packets[i]), 1000.0 + (starts[i] + per_packet) / fs + 0.01)
    blocks += reassembler.flush()

    position = 0
    for block in blocks:
        position += block.samples_lost_before
        np.testing.assert_array_equal(block.samples, signal[position : position + block.samples.shape[0]])
        position += block.samples.shape[0]
    stats = reassembler.stats
    last_lost_at_end = sum(1 for i in lost if i > max(set(range(len(packets))) - lost))
    assert stats.packets_lost == len(lost) - last_lost_at_end
    assert stats.samples_lost == per_packet * (len(lost) - last_lost_at_end)
    assert stats.packets_duplicated == 2 and stats.restarts == 0 and stats.clock_jumps == 0
    assert reassembler.clock.wraps == 1


@pytest.fixture(scope="session")
def fwb_test_sanitized(tmp_path_factory) -> pathlib.Path:
    exe, build = compile_c(tmp_path_factory, "fwb_c_sanitized",
                           [*GCC_FLAGS[:-1], "-O1", "-g", "-fsanitize=address,undefined", "-fno-sanitize-recover=all"])
    if build.returncode != 0:
        pytest.skip(f"this gcc cannot build with AddressSanitizer/UBSan: {build.stderr.strip()[:200]}")
    return exe


def test_c_decoder_is_memory_and_ub_clean_on_hostile_input(fwb_test_sanitized):
    """AddressSanitizer + UndefinedBehaviorSanitizer (abort on first report) over truncated, bit-flipped,
    count-overrunning and random packets and control writes, and every self-test (which includes an
    over-long description string and a too-small output buffer)."""
    kinds = ("flip", "truncate", "overrun_counts", "random")
    hostile = [data.hex() for data in corrupted_packets(1500, kinds, np.random.default_rng(9))]
    for mode, lines in (("selftest", []), ("decode", hostile), ("control", hostile[:300])):
        result = subprocess.run([str(fwb_test_sanitized), mode], input="\n".join(lines) + "\n",
                                capture_output=True, text=True)
        assert result.returncode == 0, result.stderr[-2000:]
        assert "runtime error" not in result.stderr and "AddressSanitizer" not in result.stderr


def test_c_link_security_checks_match_the_emulated_boards_rules(fwb_test):
    """fwb_check_access / fwb_check_pairing (PROTOCOL.md section 11) against the rules the emulated wearables enforce
    over Bumble (firmware_bridge.emulation.board_security), for every link state and every AuthReq octet."""
    from biomoe_edge.firmware_bridge.emulation.board_security import access_error, pairing_refusal
    from biomoe_edge.vocabulary import SecurityLevel

    levels = list(SecurityLevel)  # in C order: none 0, encrypted 1, bonded 2
    links = [(e, b, sc) for e in (0, 1) for b in (0, 1) for sc in (0, 1)]
    cases = [(i, *link) for i in range(len(levels)) for link in links]
    out = run_c(fwb_test, "access", [" ".join(map(str, case)) for case in cases])
    assert out == [f"0x{access_error(levels[i], encrypted=bool(e), bonded=bool(b), secure_connections=bool(sc)):02X}"
                   for i, e, b, sc in cases]
    assert set(out) == {"0x00", "0x05", "0x0F"}  # every answer occurs
    cases = [(i, auth_req) for i in range(len(levels)) for auth_req in range(256)]
    out = run_c(fwb_test, "pairing", [f"{i} {auth_req}" for i, auth_req in cases])
    assert out == [f"0x{pairing_refusal(levels[i], auth_req):02X}" for i, auth_req in cases]
    # A bonded board takes exactly the requests with Bonding_Flags 01 and the SC bit: 3 bits fixed of 8, 32 octets.
    assert out[512:].count("0x00") == 32
