"""Store-and-forward MQTT with a real Mosquitto broker: an outage loses nothing, a full outbox evicts the oldest
(counted), a killed gateway's outbox is sent by the next run. Delivery is checked by record_id at a
persistent-session QoS 1 subscriber."""

from __future__ import annotations

import collections
import json
import os
import signal
import subprocess
import sys
import threading
import time

import pytest

pytest.importorskip("paho.mqtt", reason="the MQTT sink needs paho-mqtt (pip install 'biomoe-edge[mqtt]')")

from mqtt_clients import Subscriber, wait  # noqa: E402
from sink_records import make_records  # noqa: E402

from biomoe_edge.runtime.sinks.mqtt import MqttSink  # noqa: E402
from biomoe_edge.runtime.sinks.outbox import Outbox  # noqa: E402


def _ids(messages):
    return [document["record_id"] for _, document in messages]


def test_a_broker_outage_loses_nothing_and_the_backlog_arrives(mosquitto, tmp_path):
    subscriber = Subscriber(mosquitto.port, "biomoe/#")
    sink = MqttSink("127.0.0.1", mosquitto.port, outbox_dir=tmp_path / "outbox", outbox_rate=200,
                    reconnect_min_s=0.1, reconnect_max_s=0.5)
    records = make_records(300)
    written = []

    def produce():  # 20 batches of 5 a second, like a busy gateway
        for start in range(0, len(records), 5):
            sink.write(records[start:start + 5])
            written.extend(records[start:start + 5])
            time.sleep(0.05)

    producer = threading.Thread(target=produce)
    try:
        assert wait(lambda: sink.connected, 5)
        producer.start()
        time.sleep(1.5)
        mosquitto.stop()
        assert wait(lambda: not sink.connected, 5)
        time.sleep(2.5)
        held_during_outage = sink.stats()["outbox_records"]
        mosquitto.start()
        producer.join()
        expected = {r.record_id for r in written}
        assert wait(lambda: expected <= set(_ids(subscriber.messages)), 30), \
            f"missing {len(expected - set(_ids(subscriber.messages)))} of {len(expected)}"
        assert wait(lambda: sink.stats()["outbox_records"] == 0 and sink.stats()["catch_up_s"], 10)
        stats = sink.stats()
    finally:
        sink.close()
        subscriber.close()
    assert held_during_outage > 0  # the outage really went through the outbox
    assert stats["outbox_peak_records"] >= held_during_outage
    assert stats["outbox_evicted"] == 0 and stats["dropped_offline"] == 0
    assert stats["backlog_published"] >= held_during_outage
    assert stats["catch_up_s"][-1] > 0


def test_a_full_outbox_evicts_the_oldest_and_counts_them(make_broker, tmp_path):
    broker = make_broker()
    subscriber = Subscriber(broker.port, "biomoe/#")  # a persistent session: the broker keeps it across restarts
    broker.stop()  # unreachable for the sink from the start
    records = make_records(40)
    size = len(json.dumps(records[0].to_dict()).encode())
    sink = MqttSink("127.0.0.1", broker.port, outbox_dir=tmp_path / "outbox", outbox_max_mb=10 * size / (1 << 20),
                    reconnect_min_s=0.1, reconnect_max_s=0.3)
    try:
        for record in records:
            sink.write([record])
        stats = sink.stats()
        kept = stats["outbox_records"]
        assert stats["outbox_bytes"] <= 10 * size
        assert 0 < kept <= 10
        assert stats["outbox_evicted"] == 40 - kept
        broker.start()
        newest = [r.record_id for r in records[-kept:]]
        assert wait(lambda: set(newest) <= set(_ids(subscriber.messages)), 20)
        assert wait(lambda: sink.stats()["outbox_records"] == 0, 10)
    finally:
        sink.close()
        subscriber.close()
    assert list(dict.fromkeys(_ids(subscriber.messages))) == newest  # the oldest went, the rest came in order


WRITER = """
import sys, time
sys.path.insert(0, {tests!r})
from sink_records import make_records
from biomoe_edge.runtime.sinks.mqtt import MqttSink
sink = MqttSink("127.0.0.1", {port}, outbox_dir={outbox!r}, reconnect_min_s=0.1)
sink.write(make_records(25))
print("written", sink.stats()["outbox_records"], flush=True)
time.sleep(60)
"""


def test_a_killed_gateways_outbox_is_sent_by_the_next_run(make_broker, tmp_path):
    broker = make_broker()
    subscriber = Subscriber(broker.port, "biomoe/#")
    broker.stop()
    outbox = tmp_path / "outbox"
    script = WRITER.format(tests=os.path.dirname(__file__), port=broker.port, outbox=str(outbox))
    process = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        line = process.stdout.readline()
        assert line.split() == ["written", "25"]
    finally:
        process.send_signal(signal.SIGKILL)  # no close, no flush: a crash
        process.wait()
    broker.start()
    sink = MqttSink("127.0.0.1", broker.port, outbox_dir=outbox, reconnect_min_s=0.1)
    try:
        assert sink.stats()["outbox_recovered"] == 25
        expected = {r.record_id for r in make_records(25)}
        assert wait(lambda: expected <= set(_ids(subscriber.messages)), 20)
        assert wait(lambda: sink.stats()["outbox_records"] == 0, 10)
    finally:
        sink.close()
        subscriber.close()
    ordered = list(dict.fromkeys(_ids(subscriber.messages)))
    assert ordered == [r.record_id for r in make_records(25)]  # in the order written
    assert collections.Counter(_ids(subscriber.messages)).most_common(1)[0][1] <= 2


def test_a_corrupt_outbox_fails_its_sink_alone_naming_the_file(tmp_path):
    from biomoe_edge.runtime.sinks import GuardedSink

    (tmp_path / "outbox").mkdir()
    (tmp_path / "outbox" / "outbox.sqlite3").write_bytes(b"not a database" * 100)
    with pytest.raises(ValueError, match=r"outbox_dir .*outbox: cannot open outbox.sqlite3"):
        Outbox(tmp_path / "outbox", 1 << 20)
    guard = GuardedSink.start(lambda: Outbox(tmp_path / "outbox", 1 << 20), kind="mqtt", path=str(tmp_path / "outbox"))
    assert guard.state == "failed" and "outbox.sqlite3" in guard.reason
