"""The second attack on the file sinks: two sinks sharing a folder, and reading a large NPZ file back.

A sink touches only files that are provably its own; two sinks whose files would collide are refused at
configuration, naming both; reading an NPZ file costs one read per array, whatever its record count.
"""

from __future__ import annotations

import numpy as np
import pytest
from sink_records import assert_same_records, make_records

from biomoe_edge.runtime.gateway_config import ConfigError, parse_config
from biomoe_edge.runtime.sinks import JsonlSink, NpzSink, read_jsonl_records, read_npz_records


@pytest.mark.parametrize("sink_class", [JsonlSink, NpzSink])
def test_a_restarting_sink_leaves_a_longer_prefix_live_file_alone(tmp_path, sink_class):
    records = make_records(30)
    other = sink_class(tmp_path, prefix="emb-x", max_age_s=None)  # running, its file still .partial
    other.write(records[:20])
    live = sorted(tmp_path.glob("emb-x-*.partial"))
    assert len(live) == 1

    restarted = sink_class(tmp_path, prefix="emb", max_age_s=None)
    restarted.close()
    assert restarted.recovered_files == 0 and restarted.files_written == []
    assert sorted(tmp_path.glob("emb-x-*.partial")) == live  # not taken over

    other.write(records[20:])
    other.close()
    read = read_jsonl_records if sink_class is JsonlSink else read_npz_records
    files = sorted(tmp_path.glob(f"emb-x-*{sink_class.suffix}"))
    assert_same_records([r for f in files for r in read(f)], records)
    assert not list(tmp_path.glob("emb-2*"))  # emb never made a file of its own from emb-x's


def test_a_leftover_of_another_prefix_is_not_recovered(tmp_path):
    (tmp_path / "emb-x-20260101T000000-00001.jsonl.partial").write_bytes(b"\0" * 100)
    (tmp_path / "emb-20260101T000000-00001.jsonl.partial").write_bytes(b"")
    sink = JsonlSink(tmp_path, prefix="emb")
    sink.close()
    assert (tmp_path / "emb-x-20260101T000000-00001.jsonl.partial").exists()
    assert not (tmp_path / "emb-20260101T000000-00001.jsonl.partial").exists()  # its own: recovered (empty: removed)
    assert sink.recovered_files == 1


def test_two_sinks_writing_the_same_names_are_refused_at_configuration(tmp_path):
    sinks = [{"kind": "jsonl", "directory": str(tmp_path), "prefix": "emb"},
             {"kind": "npz", "directory": str(tmp_path), "prefix": "emb"},  # another suffix: no collision
             {"kind": "jsonl", "directory": str(tmp_path / "." ), "prefix": "emb"}]
    with pytest.raises(ConfigError) as info:
        parse_config({"sinks": sinks})
    assert info.value.key_path == "sinks[2].prefix" and "sinks[0]" in str(info.value)
    parse_config({"sinks": sinks[:2]})  # one of each kind is fine


def test_two_mqtt_sinks_sharing_an_outbox_are_refused_at_configuration(tmp_path):
    mqtt = {"kind": "mqtt", "host": "127.0.0.1", "qos": 1}
    sinks = [{**mqtt, "outbox_dir": str(tmp_path / "outbox")},
             {**mqtt, "outbox_dir": str(tmp_path / "other")},
             {**mqtt, "outbox_dir": str(tmp_path / "other" / ".." / "outbox")}]
    with pytest.raises(ConfigError) as info:
        parse_config({"sinks": sinks})
    assert info.value.key_path == "sinks[2].outbox_dir" and "sinks[0]" in str(info.value)
    parse_config({"sinks": sinks[:2]})  # one outbox each is fine


def test_reading_an_npz_file_reads_each_array_once(tmp_path, monkeypatch):
    """Quadratic before: every record re-read (and decompressed) every array of the file."""
    with NpzSink(tmp_path, prefix="emb", max_bytes=None, max_age_s=None) as sink:
        records = make_records(300)
        sink.write(records)
    path = next(tmp_path.glob("*.npz"))
    reads = []
    original = np.lib.npyio.NpzFile.__getitem__

    def counting(self, key):
        reads.append(key)
        return original(self, key)

    monkeypatch.setattr(np.lib.npyio.NpzFile, "__getitem__", counting)
    got = read_npz_records(path)
    assert_same_records(got, records)
    assert len(reads) <= len(np.load(path).files)


def test_a_sink_that_cannot_start_is_failed_counted_and_retried_with_back_off():
    from biomoe_edge.runtime.sinks import CallbackSink, GuardedSink

    now = [0.0]
    attempts, delivered = [], []

    def factory():
        attempts.append(now[0])
        if len(attempts) < 4:
            raise OSError(28, "No space left on device")
        return CallbackSink(delivered.append)

    guard = GuardedSink.start(factory, kind="jsonl", path="/data/emb", retry_min_s=1.0, retry_max_s=4.0,
                              clock=lambda: now[0])
    s = guard.stats()
    assert (s["state"], s["kind"], s["path"], s["written"], s["lost"], s["retries"]) == \
           ("failed", "jsonl", "/data/emb", 0, 0, 0)
    assert "No space left on device" in s["reason"]
    missed = 0
    for step in range(40):  # one batch of 3 every 0.25 s for 10 s, until it starts
        now[0] = step * 0.25
        if guard.sink is not None:
            break
        guard.write(make_records(3))
        missed += 3
    assert attempts == [0.0, 1.0, 3.0, 7.0]  # back-off 1, 2, 4 (the cap) s
    s = guard.stats()
    assert s["state"] == "ok" and s["reason"] is None and s["retries"] == 3
    assert s["lost"] == s["records_missed"] == missed - 3 and s["written"] == len(delivered) == 3
