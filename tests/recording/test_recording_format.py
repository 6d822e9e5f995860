"""The recording folder: written and read back exactly, in order; whole segments only; damage is a named error;
a failed write is counted and said in the recording, never silent."""

import json
import os

import numpy as np
import pytest

from biomoe_edge.runtime.recording import RecordingError, RecordingWriter, open_recording
from biomoe_edge.runtime.recording import format as fmt

SETTINGS = {"windows": {"bvp": {"length_s": 10.0, "hop_s": 1.0, "representations": ["waveform"]}},
            "subjects": {"wrist-1": "S01"}}


def _write_session(directory, *, segment_s=0.05, blocks=30):
    """Interleaved blocks of two streams (one 3-channel), events and markers, over several segments. Returns what
    was written, in order."""
    rng = np.random.default_rng(0)
    written = []
    with RecordingWriter(directory, SETTINGS, segment_s=segment_s, register=False) as writer:
        writer.add_stream("wrist-1", "bvp", {"sample_rate_hz": 64.0, "channels": 1, "units": "au"})
        writer.add_stream("chest", "ecg", {"sample_rate_hz": 130.0, "channels": 3, "units": "uV"})
        for i in range(blocks):
            device, modality, c = ("wrist-1", "bvp", 1) if i % 3 else ("chest", "ecg", 3)
            n = int(rng.integers(1, 40))
            samples = rng.standard_normal((n, c))
            times = 100.0 + i + np.arange(n) / 64.0
            lost = None if i % 7 == 0 else int(rng.integers(0, 3))
            writer.write_block(device, modality, samples, times, arrival_time_s=100.0 + i + 0.5, lost_before=lost)
            written.append((device, modality, samples, times, 100.0 + i + 0.5, lost))
            if i == 10:
                writer.write_event("wrist-1", "bvp", "gap", 110.0, {"samples_lost": 4})
                writer.write_marker("pain", 110.25, subject="S01")
            if i % 10 == 0:
                writer.flush()  # a segment ends here, whatever the load (the writer thread may cut more)
    return written


def test_blocks_read_back_exactly_and_in_order(tmp_path):
    written = _write_session(tmp_path / "rec")
    recording = open_recording(tmp_path / "rec")
    assert recording.complete and len(recording.segments) >= 3 and not recording.partial_segments
    assert recording.settings == SETTINGS
    assert recording.subject_of("wrist-1") == "S01" and recording.subject_of("chest") == "rec"
    assert recording.subject_of("chest", "P7") == "P7"
    blocks = list(recording.blocks())
    assert len(blocks) == len(written) == recording.total_blocks
    for block, (device, modality, samples, times, arrival, lost) in zip(blocks, written):
        assert (block.device, block.modality, block.arrival_time_s, block.lost_before) == (device, modality, arrival, lost)
        assert block.samples.dtype == np.float64 and block.samples.shape == samples.shape
        np.testing.assert_array_equal(block.samples, samples)  # bit for bit
        np.testing.assert_array_equal(block.gateway_times_s, times)
    assert recording.streams[("chest", "ecg")].channels == 3
    assert recording.streams[("wrist-1", "bvp")].units == "au"
    times, samples = recording.stream("chest", "ecg")
    expected = [w for w in written if w[0] == "chest"]
    np.testing.assert_array_equal(samples, np.concatenate([w[2] for w in expected]))
    np.testing.assert_array_equal(times, np.concatenate([w[3] for w in expected]))
    (event,) = recording.events
    assert (event.kind, event.time_s, event.detail) == ("gap", 110.0, {"samples_lost": 4})
    (marker,) = recording.markers
    assert (marker.label, marker.time_s, marker.subject, marker.source) == ("pain", 110.25, "S01", "mark")
    end = json.loads((tmp_path / "rec" / fmt.END_FILE).read_text())
    assert end["streams"] == {"wrist-1/bvp": sum(len(w[3]) for w in written if w[0] == "wrist-1"),
                              "chest/ecg": sum(len(w[3]) for w in expected)}


def test_a_partial_segment_is_ignored_and_an_unclosed_recording_reads_up_to_its_last_whole_segment(tmp_path):
    _write_session(tmp_path / "rec")
    folder = tmp_path / "rec" / fmt.SEGMENTS_DIR
    last = sorted(folder.glob("*.npz"))[-1]
    # What a crash leaves: the segment being written under its temporary name, and no end.json.
    last.rename(last.with_name(last.name + fmt.PARTIAL_SUFFIX))
    (tmp_path / "rec" / fmt.END_FILE).unlink()
    recording = open_recording(tmp_path / "rec")
    assert not recording.complete
    assert recording.partial_segments == [last.with_name(last.name + fmt.PARTIAL_SUFFIX)]
    assert len(list(recording.blocks())) == recording.total_blocks < 30


def test_damage_is_a_named_error(tmp_path):
    _write_session(tmp_path / "rec")
    folder = tmp_path / "rec" / fmt.SEGMENTS_DIR
    segments = sorted(folder.glob("*.npz"))
    # a truncated segment
    data = segments[1].read_bytes()
    segments[1].write_bytes(data[: len(data) // 2])
    with pytest.raises(RecordingError, match=str(segments[1].name)):
        recording = open_recording(tmp_path / "rec")
        list(recording.blocks())
    segments[1].write_bytes(data)
    # a missing segment (the sequence has a hole)
    segments[1].rename(tmp_path / "elsewhere.npz")
    with pytest.raises(RecordingError, match=f"segment {segments[1].name} is missing"):
        open_recording(tmp_path / "rec")
    (tmp_path / "elsewhere.npz").rename(segments[1])
    # end.json says more segments than there are
    end = json.loads((tmp_path / "rec" / fmt.END_FILE).read_text())
    segments[-1].unlink()
    with pytest.raises(RecordingError, match="end.json: field 'segments'"):
        open_recording(tmp_path / "rec")
    # not a recording at all, a foreign recording.json, a future version
    (tmp_path / "empty").mkdir()
    with pytest.raises(RecordingError, match="not a biomoe-edge recording"):
        open_recording(tmp_path / "empty")
    (tmp_path / "empty" / "recording.json").write_text('{"format": "something-else"}')
    with pytest.raises(RecordingError, match="field 'format'"):
        open_recording(tmp_path / "empty")
    (tmp_path / "empty" / "recording.json").write_text('{"format": "biomoe-edge-recording", "version": 99}')
    with pytest.raises(RecordingError, match="field 'version' is 99"):
        open_recording(tmp_path / "empty")
    (tmp_path / "empty" / "recording.json").write_text("{not json")
    with pytest.raises(RecordingError, match="not valid JSON"):
        open_recording(tmp_path / "empty")
    assert end["segments"] == len(segments)


def test_a_foreign_file_posing_as_a_segment_is_refused(tmp_path):
    _write_session(tmp_path / "rec", blocks=3)
    segment = tmp_path / "rec" / fmt.SEGMENTS_DIR / fmt.segment_name(0)
    segment.write_bytes(b"PK\x03\x04 certainly not an archive")
    with pytest.raises(RecordingError, match="000000.npz: not a readable recording segment"):
        open_recording(tmp_path / "rec")


def test_the_writer_refuses_an_existing_recording_and_bad_blocks(tmp_path):
    _write_session(tmp_path / "rec", blocks=2)
    with pytest.raises(RecordingError, match="already holds a recording"):
        RecordingWriter(tmp_path / "rec", register=False)
    with RecordingWriter(tmp_path / "other", register=False) as writer:
        with pytest.raises(RecordingError, match="was not added"):
            writer.write_block("x", "bvp", np.zeros(3), np.zeros(3), arrival_time_s=0.0, lost_before=0)
        writer.add_stream("x", "bvp", {"sample_rate_hz": 64.0, "channels": 1})
        with pytest.raises(RecordingError, match="do not pair up"):
            writer.write_block("x", "bvp", np.zeros(3), np.zeros(4), arrival_time_s=0.0, lost_before=0)
        with pytest.raises(RecordingError, match="another description"):
            writer.add_stream("x", "bvp", {"sample_rate_hz": 32.0, "channels": 1})
        with pytest.raises(ValueError, match="non-empty label"):
            writer.write_marker("  ", 1.0)


@pytest.mark.skipif(os.name != "posix", reason="replaces the segments folder under a running writer")
def test_a_failed_segment_write_is_counted_and_recorded_as_lost(tmp_path):
    writer = RecordingWriter(tmp_path / "rec", segment_s=3600, register=False)
    writer.add_stream("x", "bvp", {"sample_rate_hz": 64.0, "channels": 1})
    writer.write_block("x", "bvp", np.ones(10), np.arange(10.0), arrival_time_s=1.0, lost_before=0)
    writer.flush()
    segments = tmp_path / "rec" / fmt.SEGMENTS_DIR
    segments.rename(tmp_path / "moved")
    segments.write_text("a file where the folder was: every write fails")  # a real failure, whoever runs the test
    writer.write_block("x", "bvp", np.ones(7), np.arange(10.0, 17.0), arrival_time_s=2.0, lost_before=0)
    writer.flush()
    assert writer.stats()["blocks_lost"] == 1 and writer.stats()["samples_lost"] == 7
    assert sum(writer.stats()["write_errors"].values()) == 1
    segments.unlink()
    (tmp_path / "moved").rename(segments)
    writer.write_block("x", "bvp", np.ones(5), np.arange(20.0, 25.0), arrival_time_s=3.0, lost_before=3)
    writer.close()
    recording = open_recording(tmp_path / "rec")
    assert [len(b.gateway_times_s) for b in recording.blocks()] == [10, 5]
    (lost,) = [e for e in recording.events if e.kind == "recording_lost"]
    assert lost.detail["blocks"] == 1 and lost.detail["samples"] == {"x/bvp": 7}
    assert json.loads((tmp_path / "rec" / fmt.END_FILE).read_text())["samples_lost"] == 7
