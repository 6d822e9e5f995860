"""File sinks on a full disk (a real tmpfs of 256 kB), after kill -9, and their file modes and names.

Every check is the sink's promise: a record counted as written can be read back, whatever happened; a record
that could not be written is counted under its reason; no finalised file holds a partial record or none.
"""

from __future__ import annotations

import json
import os
import pathlib
import signal
import subprocess
import sys
import textwrap
import time

import pytest
from sink_records import assert_same_predictions, assert_same_records, make_predictions, make_records

from biomoe_edge.runtime.records import EmbeddingRecord
from biomoe_edge.runtime.sinks import GuardedSink, JsonlSink, NpzSink, read_jsonl_records, read_npz_records

HERE = pathlib.Path(__file__).resolve().parent




def _fill(disk: pathlib.Path, leave_bytes: int) -> pathlib.Path:
    """Fill the file system but ``leave_bytes`` (a filler file; delete it and the space returns)."""
    filler = disk / "filler"
    stat = os.statvfs(disk)
    free = stat.f_bavail * stat.f_frsize
    with open(filler, "wb") as f:
        f.write(b"\0" * max(0, free - leave_bytes))
    return filler


def _readable(directory: pathlib.Path, suffix: str) -> list:
    read = read_jsonl_records if suffix == ".jsonl" else read_npz_records
    return [r for path in sorted(directory.glob(f"*{suffix}")) for r in read(path)]


def _finalised_files_are_whole(directory: pathlib.Path, suffix: str) -> None:
    for path in directory.glob(f"*{suffix}"):
        assert path.stat().st_size > 0, f"{path.name}: a finalised file with nothing in it"
        if suffix == ".jsonl":
            assert path.read_bytes().endswith(b"\n"), f"{path.name}: ends in a cut-off line"
            read_jsonl_records(path)  # every line parses
        else:
            assert read_npz_records(path), f"{path.name}: a finalised NPZ without a record"


@pytest.mark.parametrize("sink_class, suffix", [(JsonlSink, ".jsonl"), (NpzSink, ".npz")])
def test_disk_full_loses_only_what_it_counts_and_recovers_when_space_returns(small_disk, sink_class, suffix):
    out = small_disk / "out"
    sink = sink_class(out, max_bytes=24_000, max_age_s=None)
    guarded = GuardedSink(sink)
    records = make_records(120, seed=11)
    filler = _fill(small_disk, leave_bytes=40_000)
    accepted = []
    for start in range(0, 80, 4):  # ~17 kB a batch of JSON: the disk is full after a few
        batch = records[start:start + 4]
        if guarded.write(batch):
            accepted += batch
    assert guarded.records_failed > 0, "the disk never filled: the test proves nothing"
    assert guarded.records_written == len(accepted)
    _finalised_files_are_whole(out, suffix)

    filler.unlink()  # space returns: writing resumes by itself
    for start in range(80, 120, 4):
        assert guarded.write(records[start:start + 4])
        accepted += records[start:start + 4]
    sink.close()
    _finalised_files_are_whole(out, suffix)
    assert not list(out.glob("*.partial")) and not list(out.glob("*.writing"))
    assert_same_records(_readable(out, suffix), accepted)
    # The loss is counted by reason, and it is exactly the batches refused while the disk was full.
    assert sink.stats()["records_lost"] == {"ENOSPC": guarded.records_failed}
    assert sink.records_written == len(accepted)


@pytest.mark.parametrize("sink_class, suffix", [(JsonlSink, ".jsonl"), (NpzSink, ".npz")])
def test_a_sink_closed_on_a_full_disk_leaves_what_the_next_start_finalises(small_disk, sink_class, suffix):
    out = small_disk / "out"
    sink = sink_class(out, max_bytes=None, max_age_s=None)
    guarded = GuardedSink(sink)
    records = make_records(40, seed=12)
    accepted = []
    for start in range(0, 8, 4):
        assert guarded.write(records[start:start + 4])
        accepted += records[start:start + 4]
    filler = _fill(small_disk, leave_bytes=0)  # full: an NPZ cannot be written at close
    for start in range(8, 40, 4):
        if guarded.write(records[start:start + 4]):
            accepted += records[start:start + 4]
    sink.close()
    _finalised_files_are_whole(out, suffix)
    filler.unlink()
    again = sink_class(out)  # the next start finalises what the last one could not
    assert again.recovered_records + len(_readable(out, suffix)) >= len(accepted)
    again.close()
    assert_same_records(_readable(out, suffix), accepted)
    assert not list(out.glob("*.partial"))


WRITER = textwrap.dedent("""
    import sys, pathlib
    sys.path.insert(0, {here!r})
    from sink_records import make_records
    from biomoe_edge.runtime.sinks import JsonlSink, NpzSink
    sink = {cls}(pathlib.Path({out!r}), max_bytes=None, max_age_s=3600, flush_s=0.2)
    records = make_records(100000, seed=5)
    for i in range(0, len(records), 3):
        sink.write(records[i:i + 3])
        print(i + 3, flush=True)
""")


@pytest.mark.parametrize("sink_class, suffix", [(JsonlSink, ".jsonl"), (NpzSink, ".npz")])
def test_kill_9_loses_no_record_counted_as_written_and_the_next_start_finalises(tmp_path, sink_class, suffix):
    out = tmp_path / "out"
    code = WRITER.format(here=str(HERE), cls=sink_class.__name__, out=str(out))
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    written = 0
    deadline = time.monotonic() + 60
    while written < 60 and time.monotonic() < deadline:  # 20+ batches written, rotation an hour away
        line = proc.stdout.readline()
        if not line:
            break
        written = int(line)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    for line in proc.stdout:  # what it reported before the signal came (it writes ahead of our reading)
        written = int(line)
    proc.stdout.close()
    assert written >= 60, "the writer did not get going"
    assert list(out.glob(f"*{suffix}.partial")) and not list(out.glob(f"*{suffix}"))

    sink = sink_class(out)
    sink.close()
    got = _readable(out, suffix)
    # Everything reported as written is there (kill -9 loses nothing that reached the file), in order, and at
    # most the one batch being written when the signal came is beyond it.
    assert written <= len(got) <= written + 3
    assert_same_records(got, make_records(len(got), seed=5))
    assert sink.recovered_files == 1 and sink.recovered_records == len(got)
    assert not list(out.glob("*.partial"))


@pytest.mark.parametrize("sink_class, suffix", [(JsonlSink, ".jsonl"), (NpzSink, ".npz")])
def test_a_cut_off_last_record_is_dropped_and_counted_at_the_next_start(tmp_path, sink_class, suffix):
    records = make_records(5, seed=2)
    sink = sink_class(tmp_path)
    sink.write(records)
    partial = next(tmp_path.glob("*.partial"))
    os.close(sink._fd)  # as if the process died here: no close, no rename
    os.close(sink._lock_fd)
    with open(partial, "ab") as f:  # and a power cut had kept half of a sixth line
        f.write(json.dumps(make_records(6, seed=2)[5].to_dict()).encode()[:1000])
    again = sink_class(tmp_path)
    again.close()
    assert again.recovered_records == 5 and again.recovery_discarded_bytes == 1000
    assert_same_records(_readable(tmp_path, suffix), records)


def test_jsonl_and_npz_take_prediction_records_beside_embeddings(tmp_path):
    embeddings, predictions = make_records(6, seed=4), make_predictions(5, seed=4)
    mixed = [r for pair in zip(embeddings, predictions) for r in pair] + embeddings[5:]
    for sink_class, read in ((JsonlSink, read_jsonl_records), (NpzSink, read_npz_records)):
        out = tmp_path / sink_class.name
        with sink_class(out) as sink:
            sink.write(mixed)
        (path,) = out.glob(f"*{sink.suffix}")
        got = read(path)
        assert_same_records([r for r in got if isinstance(r, EmbeddingRecord)], embeddings)
        assert_same_predictions([r for r in got if not isinstance(r, EmbeddingRecord)], predictions)
    if True:  # JSONL keeps the order of the stream; its lines are the records' to_dict()
        lines = (tmp_path / "jsonl").glob("*.jsonl").__next__().read_text().splitlines()
        assert [json.loads(line) for line in lines] == [json.loads(json.dumps(r.to_dict())) for r in mixed]


@pytest.mark.parametrize("umask", [0o000, 0o077])
def test_files_are_created_with_the_sinks_mode_whatever_the_umask(tmp_path, umask):
    old = os.umask(umask)
    try:
        for sink_class in (JsonlSink, NpzSink):
            out = tmp_path / f"{sink_class.name}-{umask:o}"
            with sink_class(out) as sink:
                sink.write(make_records(2))
                assert (next(out.glob("*.partial")).stat().st_mode & 0o777) == 0o640
            (path,) = out.glob(f"*{sink.suffix}")
            assert path.stat().st_mode & 0o777 == 0o640
            with sink_class(out, file_mode=0o600) as sink:
                sink.write(make_records(2))
            assert sorted(p.stat().st_mode & 0o777 for p in out.glob(f"*{sink.suffix}")) == [0o600, 0o640]
    finally:
        os.umask(old)


def test_a_prefix_cannot_leave_the_directory_and_one_sink_owns_a_prefix(tmp_path):
    for prefix in ("../../escaped", "a/b", "", ".hidden", "x" * 65):
        with pytest.raises(ValueError, match="prefix"):
            JsonlSink(tmp_path / "out", prefix=prefix)
    assert not list(tmp_path.rglob("escaped*"))
    first = JsonlSink(tmp_path / "out")
    with pytest.raises(RuntimeError, match="another sink"):
        JsonlSink(tmp_path / "out")
    NpzSink(tmp_path / "out").close()  # another format, another set of files
    first.close()
    JsonlSink(tmp_path / "out").close()  # free again once closed
