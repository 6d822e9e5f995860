"""Crash safety: a writer killed with SIGKILL at random moments (mid-block, mid-segment, mid-rename) leaves a
recording that opens, holds exactly the blocks written up to its last whole segment (a prefix, in order, bit for
bit), and keeps every segment it had finished: it lacks at most the segment being filled and the one being written.
(How many seconds of data that is depends on how fast the machine writes; on a loaded machine the writer thread
falls behind, so the test checks segments, not seconds.)"""

import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from biomoe_edge.runtime.recording import format as fmt
from biomoe_edge.runtime.recording import open_recording

SEGMENT_S = 0.25

WRITER = textwrap.dedent(f"""
    import sys, time
    import numpy as np
    from biomoe_edge.runtime.recording import RecordingWriter

    writer = RecordingWriter(sys.argv[1], {{"test": "crash"}}, segment_s={SEGMENT_S}, register=False)
    writer.add_stream("small", "bvp", {{"sample_rate_hz": 64.0, "channels": 1}})
    writer.add_stream("large", "ecg", {{"sample_rate_hz": 2000.0, "channels": 2}})
    print("ready", flush=True)
    i = 0
    while True:
        # block i holds the numbers i*1000 ... : what was written is known from its index alone
        small = i * 1000.0 + np.arange(16.0)
        writer.write_block("small", "bvp", small, small / 64.0, arrival_time_s=time.monotonic(), lost_before=0)
        if i % 5 == 0:  # large blocks make segment writes take long enough to be killed in the middle
            large = i * 1000.0 + np.arange(2 * 4000.0).reshape(4000, 2)
            writer.write_block("large", "ecg", large, large[:, 0], arrival_time_s=time.monotonic(), lost_before=None)
        i += 1
        time.sleep(0.002)
""")


def _check(folder, finished_before_kill: list[str]) -> None:
    recording = open_recording(folder)
    assert not recording.complete  # no end.json: it did not close
    small = [b for b in recording.blocks() if b.device == "small"]
    for i, block in enumerate(small):  # a prefix of what was written, in order, exact
        np.testing.assert_array_equal(block.samples[:, 0], i * 1000.0 + np.arange(16.0))
        assert block.lost_before == 0
    for block in recording.blocks():
        if block.device == "large":
            i = int(block.samples[0, 0] // 1000)
            np.testing.assert_array_equal(block.samples, i * 1000.0 + np.arange(8000.0).reshape(4000, 2))
            assert block.lost_before is None
    assert small, "nothing read back"
    # Every segment finished before the kill is still there, whole (open_recording read them all above).
    finished_after = {path.name for path in (folder / fmt.SEGMENTS_DIR).glob("*.npz")}
    assert set(finished_before_kill) <= finished_after


def _finished_segments(folder, at_least: int, timeout_s: float = 120.0) -> list[str]:
    """The names of the segments the writer has finished, once there are ``at_least`` (a deadline by progress)."""
    deadline = time.monotonic() + timeout_s
    while True:
        names = sorted(path.name for path in (folder / fmt.SEGMENTS_DIR).glob("*.npz"))
        if len(names) >= at_least:
            return names
        assert time.monotonic() < deadline, f"the writer finished {len(names)} segments in {timeout_s:g} s"
        time.sleep(0.01)


@pytest.mark.skipif(os.name != "posix", reason="SIGKILL")
def test_kill_9_at_random_moments_leaves_a_readable_prefix(tmp_path):
    rng = np.random.default_rng(7)
    for attempt in range(8):
        folder = tmp_path / f"rec{attempt}"
        child = subprocess.Popen([sys.executable, "-c", WRITER, str(folder)], stdout=subprocess.PIPE, text=True)
        try:
            assert child.stdout.readline().strip() == "ready"
            _finished_segments(folder, at_least=2)  # data flows and segments are being finished
            time.sleep(float(rng.uniform(0, 4 * SEGMENT_S)))  # then a random moment
            finished = _finished_segments(folder, at_least=0)
            child.send_signal(signal.SIGKILL)
            child.wait(timeout=10)
        finally:
            if child.poll() is None:
                child.kill()
        _check(folder, finished)
