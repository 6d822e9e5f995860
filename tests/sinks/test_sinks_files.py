import logging
import time

import numpy as np
import pytest
from sink_records import assert_same_records, make_records

from biomoe_edge.runtime.records import EmbeddingRecord
from biomoe_edge.runtime.sinks import (CallbackSink, GuardedSink, JsonlSink, NpzSink, Sink, read_jsonl_records,
                                       read_npz_records)


def test_record_refuses_a_wrong_embedding_shape():
    with pytest.raises(ValueError, match=r"\(192,\)"):
        EmbeddingRecord("d", "bvp", "scalogram", 0.0, 10.0, np.zeros(96, np.float32))


def test_jsonl_rotates_by_size_and_keeps_every_record_in_order(tmp_path):
    records = make_records(60)
    sink = JsonlSink(tmp_path, max_bytes=8_000, max_age_s=None)
    for start in range(0, 60, 3):
        sink.write(records[start:start + 3])
        # While the sink is open only finished files carry the final suffix; each is complete JSONL.
        for path in sorted(tmp_path.glob("*.jsonl")):
            read_jsonl_records(path)
    sink.close()
    files = sorted(tmp_path.glob("*.jsonl"))
    assert len(files) >= 3, "8 kB files must rotate several times for 60 records of ~4.3 kB"
    assert files == sorted(sink.files_written)
    assert not list(tmp_path.glob("*.partial"))
    assert_same_records([r for f in files for r in read_jsonl_records(f)], records)


def test_jsonl_rotates_by_time(tmp_path):
    records = make_records(4)
    with JsonlSink(tmp_path, max_bytes=None, max_age_s=0.05) as sink:
        sink.write(records[:2])
        time.sleep(0.08)
        sink.write(records[2:])
    files = sorted(tmp_path.glob("*.jsonl"))
    assert [len(read_jsonl_records(f)) for f in files] == [2, 2]


def test_npz_rotates_and_round_trips_every_field(tmp_path):
    records = make_records(25, seed=3)
    sink = NpzSink(tmp_path, prefix="emb", max_bytes=10 * (4 * 192 + 256), max_age_s=None)
    for record in records:
        sink.write([record])
    # Finished files only under *.npz; the records of the open one are journalled in its .partial (crash-safe).
    assert [len(read_npz_records(f)) for f in sorted(tmp_path.glob("emb-*.npz"))] == [10, 10]
    assert len(list(tmp_path.glob("emb-*.npz.partial"))) == 1
    sink.close()
    assert not list(tmp_path.glob("*.partial"))
    files = sorted(tmp_path.glob("emb-*.npz"))
    assert [len(read_npz_records(f)) for f in files] == [10, 10, 5]
    assert_same_records([r for f in files for r in read_npz_records(f)], records)
    with np.load(files[0]) as data:
        assert data["embedding"].dtype == np.float32 and data["embedding"].shape == (10, 192)


def test_callback_sink_sees_each_record_once_in_order():
    seen = []
    records = make_records(5)
    CallbackSink(seen.append).write(records)
    assert seen == records


class _BrokenSink(Sink):
    name = "broken"

    def write(self, records):
        raise OSError("disk full")


def test_a_failing_sink_is_counted_and_logged_once(caplog):
    guarded = GuardedSink(_BrokenSink())
    with caplog.at_level(logging.WARNING):
        for _ in range(4):
            assert guarded.write(make_records(2)) is False
    assert guarded.errors == {"OSError": 4}
    assert guarded.records_failed == 8
    assert sum("disk full" in r.getMessage() for r in caplog.records) == 1
