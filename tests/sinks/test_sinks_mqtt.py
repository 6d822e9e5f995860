import json
import threading
import time

import pytest
from sink_records import make_records

mqtt = pytest.importorskip("paho.mqtt.client", reason="paho-mqtt not installed")


class Subscriber:
    """A persistent-session QoS 1 subscriber: the broker keeps its messages while it is away."""

    def __init__(self, port: int, topic: str):
        self.messages: list[tuple[str, dict]] = []
        self.subscribed = threading.Event()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"sub-{time.monotonic_ns()}",
                                  clean_session=False)
        self.client.on_connect = lambda c, u, f, rc, p: c.subscribe(topic, qos=1)
        self.client.on_subscribe = lambda c, u, mid, rcs, p: self.subscribed.set()
        self.client.on_message = lambda c, u, m: self.messages.append((m.topic, json.loads(m.payload)))
        self.client.reconnect_delay_set(min_delay=0.1, max_delay=0.5)
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        assert self.subscribed.wait(5.0)

    def wait_for(self, n: int, timeout_s: float = 10.0) -> list[tuple[str, dict]]:
        deadline = time.monotonic() + timeout_s
        while len(self.messages) < n and time.monotonic() < deadline:
            time.sleep(0.02)
        return self.messages

    def close(self):
        self.client.disconnect()
        self.client.loop_stop()


def _wait(predicate, timeout_s=10.0):
    deadline = time.monotonic() + timeout_s
    while not predicate() and time.monotonic() < deadline:
        time.sleep(0.02)
    return predicate()


def test_mqtt_publishes_each_record_on_its_topic(mosquitto):
    from biomoe_edge.runtime.sinks import MqttSink

    sub = Subscriber(mosquitto.port, "biomoe/#")
    sink = MqttSink("127.0.0.1", mosquitto.port, qos=1)
    assert _wait(lambda: sink.connected)
    records = make_records(6)
    sink.write(records)
    got = sub.wait_for(6)
    sub.close()
    sink.close()
    assert [topic for topic, _ in got] == [f"biomoe/{r.device}/{r.modality}/{r.representation}" for r in records]
    assert [m["embedding"] for _, m in got] == [r.embedding.tolist() for r in records]
    assert got[0][1]["model"]["sha256"] == "ab" * 32
    assert sink.stats()["published"] == 6


def test_mqtt_queues_while_the_broker_is_down_and_sends_in_order_after_reconnect(mosquitto):
    from biomoe_edge.runtime.sinks import MqttSink

    sub = Subscriber(mosquitto.port, "biomoe/#")
    sink = MqttSink("127.0.0.1", mosquitto.port, qos=1, max_queue=4, reconnect_min_s=0.1, reconnect_max_s=0.5)
    assert _wait(lambda: sink.connected)
    records = make_records(8, seed=1)
    sink.write(records[:2])
    assert sub.wait_for(2) and len(sub.messages) == 2

    mosquitto.stop()
    assert _wait(lambda: not sink.connected)
    sink.write(records[2:])  # 6 records into a queue of 4: the 2 oldest are dropped and counted
    assert sink.stats()["queued"] == 4 and sink.stats()["dropped_offline"] == 2

    mosquitto.start()
    assert _wait(lambda: sink.connected and sink.queued == 0)
    expected = [r.window_start_s for r in records[:2] + records[4:]]
    assert _wait(lambda: set(expected) <= {m["window_start_s"] for _, m in sub.messages})
    sub.close()
    sink.close()
    # QoS 1 is at-least-once: a message in flight when the broker went down may come twice; order holds.
    received = list(dict.fromkeys(m["window_start_s"] for _, m in sub.messages))
    assert received == expected
    assert sink.stats()["connections"] == 2


def test_mqtt_refuses_a_bad_qos():
    from biomoe_edge.runtime.sinks import MqttSink

    with pytest.raises(ValueError, match="qos"):
        MqttSink("127.0.0.1", 1, qos=3)
