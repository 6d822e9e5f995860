"""The second attack on recordings: flipped bits in segments, a full disk during the first segment (and at start,
for the recording sink), unbounded knobs, file modes.

Every corruption is a RecordingError naming the file; losing a segment loses that segment's blocks, counted,
never the recording.
"""

from __future__ import annotations

import asyncio
import errno
import os
import pathlib
import shutil
import subprocess
import sys

import numpy as np
import pytest
from recording_helpers import ProjectionEngine, gateway_toml, packets
from test_recording_format import _write_session

from biomoe_edge.runtime.recording import RecordingError, RecordingWriter, open_recording


def test_every_single_bit_flip_in_a_segment_reads_or_is_a_recording_error(tmp_path):
    """Some flips land in a deflate stream; zlib's own error escaped the reader before."""
    _write_session(tmp_path / "clean")
    segments = sorted((tmp_path / "clean" / "segments").glob("*.npz"))
    rng = np.random.default_rng(1)
    outcomes = {"read": 0, "refused": 0}
    for i in range(100):
        copy = tmp_path / f"flip{i}"
        shutil.copytree(tmp_path / "clean", copy)
        segment = copy / "segments" / segments[int(rng.integers(0, 3))].name
        data = bytearray(segment.read_bytes())
        bit = int(rng.integers(0, len(data) * 8))
        data[bit // 8] ^= 1 << (bit % 8)
        segment.write_bytes(bytes(data))
        try:
            list(open_recording(copy).blocks())
            outcomes["read"] += 1
        except RecordingError as exc:
            assert str(copy) in str(exc)  # names the file
            outcomes["refused"] += 1
        shutil.rmtree(copy)
    assert outcomes["refused"] > 50  # most flips are caught (zip CRCs); the rest hit fields nobody reads




def _fill(directory) -> pathlib.Path:
    filler = directory / "filler"
    with open(filler, "wb", buffering=0) as f:
        try:
            while True:
                f.write(b"\0" * 4096)
        except OSError as exc:
            assert exc.errno == errno.ENOSPC
    return filler


def test_a_full_disk_during_the_first_segment_loses_its_blocks_not_the_recording(small_disk):
    rng = np.random.default_rng(0)
    with RecordingWriter(small_disk / "rec", {}, segment_s=60, register=False) as writer:
        writer.add_stream("wrist-1", "bvp", {"sample_rate_hz": 64.0, "channels": 1})
        writer.add_stream("chest", "ecg", {"sample_rate_hz": 130.0, "channels": 3})
        filler = _fill(small_disk)
        writer.write_block("wrist-1", "bvp", rng.standard_normal((640, 1)), np.arange(640) / 64.0,
                           arrival_time_s=10.0, lost_before=0)
        writer.flush()  # the first segment, declarations and all: no space
        assert writer.stats()["blocks_lost"] == 1 and writer.stats()["segments_written"] == 0
        filler.unlink()
        kept = [rng.standard_normal((n, c)) for n, c in ((130, 3), (64, 1))]
        writer.write_block("chest", "ecg", kept[0], 10 + np.arange(130) / 130.0, arrival_time_s=11.0, lost_before=0)
        writer.write_block("wrist-1", "bvp", kept[1], 10 + np.arange(64) / 64.0, arrival_time_s=11.5, lost_before=0)
    recording = open_recording(small_disk / "rec")
    blocks = list(recording.blocks())
    assert [(b.device, b.modality) for b in blocks] == [("chest", "ecg"), ("wrist-1", "bvp")]
    for block, samples in zip(blocks, kept):
        np.testing.assert_array_equal(block.samples, samples)
    assert recording.end["blocks_lost"] == 1
    assert [e.detail["blocks"] for e in recording.events if e.kind == "recording_lost"] == [1]
    assert set(recording.streams) == {("wrist-1", "bvp"), ("chest", "ecg")}


def test_a_recording_sink_on_a_full_disk_is_isolated_counted_and_retried(small_disk, tmp_path):
    """Before: the gateway did not start ([Errno 28], no sink named). Now it runs, the recording sink is failed with
    its path and reason, what it misses is counted, and it starts once space returns."""
    from biomoe_edge.config import tomllib
    from biomoe_edge.runtime.gateway_config import parse_config

    filler = _fill(small_disk)
    toml = gateway_toml(small_disk / "recordings") + f"""
[[sinks]]
kind = "jsonl"
directory = "{tmp_path / 'embeddings'}"
"""
    config = parse_config(tomllib.loads(toml))
    items = packets(30.0)
    seen = {}

    def free_space_halfway(gateway, arrival, stream_id, seq):
        if "failed" not in seen:
            seen["failed"] = [s.stats() for s in gateway.sinks]
        if arrival >= 5.0 and filler.exists():  # retries at 0, 1, 3, 7 s...: the one at 7 s starts it
            filler.unlink()

    gateway, records = _run(config, items, extra=free_space_halfway)
    recording, jsonl = seen["failed"][0], seen["failed"][1]
    assert recording["state"] == "failed" and recording["kind"] == "recording"
    assert recording["path"] == str(small_disk / "recordings") and "No space left" in recording["reason"]
    assert jsonl["state"] == "ok"
    after = gateway.stats()["sinks"]
    assert after[1]["written"] == len(records) > 0  # the other sink got everything
    assert after[0]["state"] == "ok" and after[0]["retries"] >= 1  # started once space returned
    assert after[0]["blocks_missed"] > 0 and after[0]["samples_missed"] > 0  # what it missed, counted
    (folder,) = [p for p in (small_disk / "recordings").iterdir() if (p / "recording.json").exists()]
    assert open_recording(folder).total_blocks > 0


def _run(config, items, *, extra):
    from recording_helpers import _feed

    return asyncio.run(_feed(config, items, engine=ProjectionEngine(), extra=extra))


@pytest.mark.parametrize("segment_s", [1e-9, 0.0, 61.0])
def test_a_recording_segment_length_out_of_range_is_refused_naming_the_key(tmp_path, segment_s):
    from biomoe_edge.runtime.gateway_config import ConfigError, parse_config

    with pytest.raises(ConfigError) as error:
        parse_config({"sinks": [{"kind": "recording", "directory": str(tmp_path), "segment_s": segment_s}]})
    assert error.value.key_path == "sinks[0].segment_s" and ("at least 0.1" in str(error.value) or "at most 60" in str(error.value))
    with pytest.raises(ValueError, match="segment_s must be a number of seconds from 0.01 to 3600"):
        RecordingWriter(tmp_path / "rec", {}, segment_s=1e-9, register=False)


@pytest.mark.parametrize("time_s, duration_s, key", [(10.0, 1e308, "duration_s"), (-1e300, None, "time_s"),
                                                     (1e300, None, "time_s"), (10.0, 31 * 86400.0, "duration_s")])
def test_a_marker_out_of_range_is_refused_naming_the_key(tmp_path, time_s, duration_s, key):
    from biomoe_edge.runtime.recording.markers import write_marker_file

    with RecordingWriter(tmp_path / "rec", {}, register=False):
        with pytest.raises(ValueError, match=f"{key} must be"):
            write_marker_file(tmp_path / "rec", "pain", time_s, duration_s=duration_s)
    assert not list((tmp_path / "rec" / "markers").glob("*.json"))


def test_demo_refuses_a_hundred_thousand_devices_at_once():
    result = subprocess.run([sys.executable, "-m", "biomoe_edge", "demo", "--devices", "100000", "--duration", "1",
                             "--random-weights"], capture_output=True, text=True, timeout=120)
    assert result.returncode != 0 and "--devices must be from 1 to 64" in result.stderr


def test_a_head_manifest_nested_200000_deep_is_a_head_error(tmp_path):
    from biomoe_edge.runtime.heads import HeadError, load_head

    folder = tmp_path / "head"
    folder.mkdir()
    (folder / "head.json").write_text("[" * 200_000 + "]" * 200_000)
    (folder / "head.onnx").write_bytes(b"")
    with pytest.raises(HeadError, match="nested too deeply"):
        load_head(folder)


def test_recording_files_are_0640_whatever_the_umask(tmp_path):
    """Before: 0644 (the umask's default), while the file sinks write 0640."""
    from biomoe_edge.runtime.recording.markers import write_marker_file

    old = os.umask(0o022)
    try:
        with RecordingWriter(tmp_path / "rec", {}, register=False) as writer:
            writer.add_stream("wrist-1", "bvp", {"sample_rate_hz": 64.0, "channels": 1})
            writer.write_block("wrist-1", "bvp", np.zeros((64, 1)), np.arange(64) / 64.0, arrival_time_s=1.0,
                               lost_before=0)
            write_marker_file(tmp_path / "rec", "pain", 0.5)
    finally:
        os.umask(old)
    files = [p for p in (tmp_path / "rec").rglob("*") if p.is_file()]
    assert {p.name for p in files} >= {"recording.json", "end.json", "000000.npz"} and len(files) == 4
    assert {oct(p.stat().st_mode & 0o777) for p in files} == {"0o640"}
    folders = [tmp_path / "rec"] + [p for p in (tmp_path / "rec").iterdir() if p.is_dir()]
    assert {oct(p.stat().st_mode & 0o777) for p in folders} == {"0o750"}


def test_a_marker_file_out_of_range_is_a_recording_error_naming_it(tmp_path):
    with RecordingWriter(tmp_path / "rec", {}, register=False):
        pass
    marker = tmp_path / "rec" / "markers" / "edited.json"
    marker.write_text('{"label": "pain", "time_s": 10.0, "duration_s": 1e308}')
    with pytest.raises(RecordingError, match="edited.json.*duration_s"):
        open_recording(tmp_path / "rec")
