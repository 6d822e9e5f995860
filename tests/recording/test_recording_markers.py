"""Live markers: ``biomoe-edge mark`` from another process lands in the running recording at gateway time (one
machine-wide monotonic clock); an LSL marker stream does too."""

import os
import subprocess
import sys
import time

import pytest

from biomoe_edge.runtime.recording import RecordingError, RecordingWriter, open_recording
from biomoe_edge.runtime.recording.markers import find_running_recording


def _mark(*args):
    return subprocess.run([sys.executable, "-m", "biomoe_edge", "mark", *args], capture_output=True, text=True,
                          env=dict(os.environ), timeout=120)


def test_mark_from_another_process_lands_at_the_gateway_time(tmp_path):
    writer = RecordingWriter(tmp_path / "rec", segment_s=0.1)
    try:
        assert find_running_recording() == (tmp_path / "rec").resolve()
        before = time.monotonic()
        result = _mark("pain", "--subject", "S01")
        after = time.monotonic()
        assert result.returncode == 0, result.stderr
        assert "marked 'pain' at gateway time" in result.stdout
        writer.write_marker("rest", after + 1.0, source="test")
    finally:
        writer.close()
    recording = open_recording(tmp_path / "rec")
    pain, rest = recording.markers
    assert (pain.label, pain.subject, pain.source) == ("pain", "S01", "mark")
    # stamped by the other process with its time.monotonic(): inside the window this process saw it run
    assert before < pain.time_s < after
    assert (rest.label, rest.source) == ("rest", "test")


def test_mark_needs_exactly_one_running_recording_or_a_folder(tmp_path):
    result = _mark("pain")
    assert result.returncode == 1 and "no running recording found" in result.stderr
    first = RecordingWriter(tmp_path / "a", segment_s=0.1)
    second = RecordingWriter(tmp_path / "b", segment_s=0.1)
    try:
        with pytest.raises(RecordingError, match="several recordings are running"):
            find_running_recording()
        result = _mark("pain", "--recording", str(tmp_path / "b"), "--duration", "5")
        assert result.returncode == 0, result.stderr
    finally:
        first.close()
        second.close()
    (marker,) = open_recording(tmp_path / "b").markers
    assert marker.duration_s == 5.0
    with pytest.raises(RecordingError, match="no running recording found"):
        find_running_recording()  # closed ones are not running
    result = _mark("pain", "--recording", str(tmp_path))
    assert result.returncode == 1 and "not a biomoe-edge recording" in result.stderr
    result = _mark("", "--recording", str(tmp_path / "a"))
    assert result.returncode == 1 and "non-empty label" in result.stderr


def test_entries_of_dead_or_other_processes_are_not_running_recordings(tmp_path):
    import json

    from biomoe_edge.runtime.recording.markers import active_dir, running_recordings

    finished = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(finished.stdout)
    crashed = tmp_path / "crashed"
    RecordingWriter(crashed, register=False).close()
    (crashed / "end.json").unlink()  # what a crash leaves: no end.json
    active_dir().mkdir(parents=True, exist_ok=True)
    (active_dir() / "dead.json").write_text(json.dumps({"directory": str(crashed), "pid": dead_pid}))
    # this process's pid, but another start time: a pid the system reused after the gateway died
    (active_dir() / "reused.json").write_text(json.dumps({"directory": str(crashed), "pid": os.getpid(),
                                                          "process_start": "0"}))
    assert running_recordings() == []
    writer = RecordingWriter(tmp_path / "live", segment_s=0.1)
    try:
        assert running_recordings() == [(tmp_path / "live").resolve()]
        assert sorted(p.name for p in active_dir().glob("*.json")) == [writer._registration.name]  # stale ones gone
    finally:
        writer.close()


def test_an_lsl_marker_stream_is_recorded_at_gateway_time(tmp_path):
    try:
        import pylsl
    except (ImportError, RuntimeError) as exc:
        pytest.skip(f"pylsl cannot load liblsl here ({exc})")
    from biomoe_edge.runtime.recording.markers import LslMarkerInlet

    name = f"biomoe-markers-{time.monotonic_ns()}"
    outlet = pylsl.StreamOutlet(pylsl.StreamInfo(name, "Markers", 1, pylsl.IRREGULAR_RATE, pylsl.cf_string, name))
    writer = RecordingWriter(tmp_path / "rec", segment_s=0.1, register=False)
    inlet = LslMarkerInlet(name, writer)
    try:
        assert inlet.connected.wait(15.0), "the LSL marker stream was not resolved"
        sent = []
        for label in ("stimulus-1", "rating-7"):
            time.sleep(0.2)
            sent.append(time.monotonic())
            outlet.push_sample([label])
        deadline = time.monotonic() + 5.0
        while inlet.markers < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        inlet.close()
        writer.close()
    markers = open_recording(tmp_path / "rec").markers
    assert [(m.label, m.source) for m in markers] == [("stimulus-1", "lsl"), ("rating-7", "lsl")]
    for marker, at in zip(markers, sent):
        assert abs(marker.time_s - at) < 0.05  # the LSL stamp, mapped to gateway time
