"""examples/mqtt_consumer.py against a real broker: duplicates (the same records published twice, as QoS 1 and a
replayed outbox do) are dropped by record_id; the Parquet files hold each record once."""

from __future__ import annotations

import pathlib
import subprocess
import sys
import time

import pytest

pytest.importorskip("paho.mqtt", reason="the example needs paho-mqtt")
pq = pytest.importorskip("pyarrow.parquet", reason="the example writes Parquet with pyarrow")

from mqtt_clients import wait  # noqa: E402
from sink_records import make_predictions, make_records  # noqa: E402

from biomoe_edge.runtime.sinks.mqtt import MqttSink  # noqa: E402

EXAMPLE = pathlib.Path(__file__).resolve().parents[2] / "examples" / "mqtt_consumer.py"


def test_the_consumer_drops_duplicates_and_writes_parquet(mosquitto, tmp_path):
    out = tmp_path / "uplink"
    consumer = subprocess.Popen([sys.executable, str(EXAMPLE), "--port", str(mosquitto.port), "--out", str(out),
                                 "--duration", "8", "--flush-s", "0.5", "--client-id", "test-consumer"],
                                stdout=subprocess.PIPE, text=True)
    records = make_records(12) + make_predictions(3)
    sink = MqttSink("127.0.0.1", mosquitto.port)
    try:
        time.sleep(2.0)  # the consumer subscribed
        sink.write(records)
        sink.write(records)  # every record again: what a replayed backlog looks like to the consumer
        assert wait(lambda: sink.published == 2 * len(records), 10)
    finally:
        sink.close()
    output, _ = consumer.communicate(timeout=30)
    assert consumer.returncode == 0, output
    assert f"{len(records)} unique records; {len(records)} duplicates dropped" in output
    ids = [i for path in sorted(out.glob("*.parquet")) for i in pq.read_table(path).column("record_id").to_pylist()]
    assert sorted(ids) == sorted(r.record_id for r in records)
    embeddings = [pq.read_table(p) for p in out.glob("embedding-*.parquet")]
    assert sum(t.num_rows for t in embeddings) == 12
    assert len(embeddings[0].column("embedding")[0].as_py()) == 192
