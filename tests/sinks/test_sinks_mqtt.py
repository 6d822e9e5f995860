import json
import os
import signal
import subprocess
import time
import urllib.parse

import pytest
from mqtt_clients import Subscriber, client_context, tls_listener
from mqtt_clients import wait as _wait
from sink_records import make_predictions, make_records

mqtt = pytest.importorskip("paho.mqtt.client", reason="paho-mqtt not installed")


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


# -- TLS and secrets ---------------------------------------------------------------------------------------------


def test_tls_with_the_ca_publishes_and_checks_the_host_name(make_broker, certificates):
    from biomoe_edge.runtime.sinks import MqttSink

    broker = make_broker("tls", listener_options=tls_listener(certificates))
    sub = Subscriber(broker.port, "biomoe/#", tls=client_context(certificates))
    sink = MqttSink("127.0.0.1", broker.port, tls_ca_file=certificates["ca"], reconnect_min_s=0.1, reconnect_max_s=0.5)
    assert _wait(lambda: sink.connected), sink.last_error
    sink.write(make_records(3))
    assert len(sub.wait_for(3)) == 3
    sink.close()
    sub.close()
    assert sink.stats()["tls"] is True

    # A broker whose certificate names another host is refused (hostname verification is on by default)...
    other = make_broker("other", listener_options=tls_listener(certificates, server="other_host"))
    sink = MqttSink("localhost", other.port, tls_ca_file=certificates["ca"], reconnect_min_s=0.1, reconnect_max_s=0.5)
    assert _wait(lambda: sink.last_error is not None)
    time.sleep(0.3)
    assert not sink.connected
    assert "TLS handshake failed" in sink.last_error and "localhost" in sink.last_error
    sink.close()
    # ...unless it is turned off on purpose.
    sink = MqttSink("localhost", other.port, tls_ca_file=certificates["ca"], tls_verify_hostname=False)
    assert _wait(lambda: sink.connected), sink.last_error
    sink.close()


def test_tls_client_certificate(make_broker, certificates):
    from biomoe_edge.runtime.sinks import MqttSink

    broker = make_broker("mtls", listener_options=tls_listener(certificates, require_certificate=True))
    sink = MqttSink("127.0.0.1", broker.port, tls_ca_file=certificates["ca"], tls_cert_file=certificates["client"],
                    tls_key_file=certificates["client_key"])
    assert _wait(lambda: sink.connected), sink.last_error
    sink.close()
    sink = MqttSink("127.0.0.1", broker.port, tls_ca_file=certificates["ca"], reconnect_min_s=0.1)
    assert _wait(lambda: sink.last_error is not None)
    assert not sink.connected
    sink.close()


def test_a_plaintext_client_of_a_tls_only_broker_fails_with_a_clear_message(make_broker, certificates, caplog):
    from biomoe_edge.runtime.sinks import MqttSink

    broker = make_broker("tls-only", listener_options=tls_listener(certificates))
    sink = MqttSink("127.0.0.1", broker.port, reconnect_min_s=0.1, reconnect_max_s=0.5)
    sink.write(make_records(2))
    assert _wait(lambda: sink.last_error is not None)
    assert not sink.connected
    assert "closed the connection before accepting it" in sink.last_error and "tls_ca_file" in sink.last_error
    assert any("tls_ca_file" in r.getMessage() for r in caplog.records)
    sink.close(timeout_s=0.2)
    assert sink.stats()["dropped_at_close"] == 2 and sink.stats()["published"] == 0


def test_password_from_a_file_or_the_environment_never_from_the_toml(make_broker, tmp_path, monkeypatch):
    from biomoe_edge.runtime.sinks import MqttSink

    passwords = tmp_path / "passwd"
    subprocess.run(["mosquitto_passwd", "-b", "-c", str(passwords), "gateway", "s3cret"], check=True,
                   capture_output=True, timeout=30)
    os.chmod(passwords, 0o644)  # mosquitto (running as this user) reads it
    broker = make_broker("auth", listener_options=f"password_file {passwords}\n", allow_anonymous=False)
    secret = tmp_path / "mqtt-password"
    secret.write_text("s3cret\n")
    secret.chmod(0o600)
    sink = MqttSink("127.0.0.1", broker.port, username="gateway", password_file=secret)
    assert _wait(lambda: sink.connected), sink.last_error
    sink.close()
    monkeypatch.setenv("BIOMOE_MQTT_PASSWORD", "s3cret")
    sink = MqttSink("127.0.0.1", broker.port, username="gateway", password_env="BIOMOE_MQTT_PASSWORD")
    assert _wait(lambda: sink.connected), sink.last_error
    sink.close()
    monkeypatch.setenv("BIOMOE_MQTT_PASSWORD", "wrong")
    sink = MqttSink("127.0.0.1", broker.port, username="gateway", password_env="BIOMOE_MQTT_PASSWORD",
                    reconnect_min_s=0.1)
    assert _wait(lambda: sink.last_error is not None)
    assert "refused" in sink.last_error and not sink.connected
    sink.close(timeout_s=0)
    with pytest.raises(ValueError, match="NOT_SET_ANYWHERE"):
        MqttSink("127.0.0.1", broker.port, username="gateway", password_env="NOT_SET_ANYWHERE")
    with pytest.raises(ValueError, match="no-such-file"):
        MqttSink("127.0.0.1", broker.port, username="gateway", password_file=tmp_path / "no-such-file")


# -- topics ------------------------------------------------------------------------------------------------------


def test_device_names_cannot_change_a_topic_and_an_unpublishable_record_is_dropped_alone(mosquitto):
    from biomoe_edge.runtime.sinks import MqttSink

    sub = Subscriber(mosquitto.port, "biomoe/#")
    sink = MqttSink("127.0.0.1", mosquitto.port, qos=1)
    assert _wait(lambda: sink.connected)
    names = ["TICKR #3", "a+b", "wrist/left", "nul\0byte", "$SYS", "100%", "x" * 70_000, "plain"]
    records = [make_records(1, device=name, seed=i)[0] for i, name in enumerate(names)]
    for record in records:  # one batch each, as the gateway would send them
        sink.write([record])
    got = sub.wait_for(len(names) - 1)
    time.sleep(0.3)
    sink.close()
    sub.close()
    # Each reachable record arrived once, on a topic of exactly four levels whose device level decodes to its name.
    assert len(got) == len(names) - 1
    for (topic, message), name in zip(got, [n for n in names if len(n) < 1000]):
        levels = topic.split("/")
        assert len(levels) == 4 and levels[0] == "biomoe"
        assert urllib.parse.unquote(levels[1]) == name == message["device"]
    # The 70,000-character name makes a topic longer than MQTT allows: that record alone is dropped and counted.
    stats = sink.stats()
    assert stats["dropped_unpublishable"] == 1 and stats["published"] == len(names) - 1
    assert stats["connections"] == 1, "the broker dropped the connection (a NUL in a topic does that)"


def test_topic_templates_take_only_their_documented_fields():
    from biomoe_edge.runtime.sinks import MqttSink

    for template in ("biomoe/{device.__class__}", "biomoe/{device[0]}", "biomoe/{0}", "biomoe/{}", "b/{device!r}",
                     "b/{device:>10}", "b/{subject}", "b/#", "b/+/x", "$SYS/x", "b/{device"):
        with pytest.raises(ValueError):
            MqttSink("127.0.0.1", 1, topic=template)
    with pytest.raises(ValueError, match="subject"):
        MqttSink("127.0.0.1", 1, prediction_topic="p/{device}")


def test_predictions_go_to_their_own_topic(mosquitto):
    from biomoe_edge.runtime.sinks import MqttSink

    sub = Subscriber(mosquitto.port, "biomoe/#")
    sink = MqttSink("127.0.0.1", mosquitto.port, prediction_topic="biomoe/{subject}/prediction")
    assert _wait(lambda: sink.connected)
    predictions = make_predictions(3, subject="P/07 #a")
    sink.write(make_records(2) + predictions)
    got = sub.wait_for(5)
    sink.close()
    sub.close()
    topics = [topic for topic, _ in got]
    assert topics[2:] == ["biomoe/P%2F07 %23a/prediction"] * 3
    assert [m for _, m in got[2:]] == [json.loads(json.dumps(p.to_dict())) for p in predictions]


# -- what the sink holds -------------------------------------------------------------------------------------------


def test_max_queue_bounds_everything_held_while_the_broker_is_frozen(mosquitto):
    from biomoe_edge.runtime.sinks import MqttSink

    sub = Subscriber(mosquitto.port, "biomoe/#")
    sink = MqttSink("127.0.0.1", mosquitto.port, qos=1, max_queue=50, keepalive_s=60)
    assert _wait(lambda: sink.connected)
    records = make_records(300, seed=9)
    sink.write(records[:10])
    assert _wait(lambda: sink.published == 10)
    os.kill(mosquitto.process.pid, signal.SIGSTOP)  # frozen: TCP stays up, nothing is acknowledged
    try:
        for i in range(10, 300, 10):
            sink.write(records[i:i + 10])
            time.sleep(0.01)
        stats = sink.stats()
        # Held (the sink's queue plus what paho has and the broker has not acknowledged) never exceeds max_queue,
        # and every record is accounted for.
        assert len(sink._client._out_messages) <= 20, "paho's own queue (looked at directly) grew unbounded"
        assert stats["queued"] <= 50 and stats["held_by_paho"] <= 20
        assert stats["published"] + stats["queued"] + stats["dropped_offline"] == 300
    finally:
        os.kill(mosquitto.process.pid, signal.SIGCONT)
    assert _wait(lambda: sink.queued == 0)
    sink.close()
    sub.wait_for(10 + 50)
    sub.close()
    received = {m["window_start_s"] for _, m in sub.messages}
    # What was kept is the newest: the last 30 records written (those paho held were resent) all arrived.
    assert {r.window_start_s for r in records[-30:]} <= received
    assert sink.stats()["dropped_at_close"] == 0


def test_records_left_at_close_are_counted_and_close_is_bounded(mosquitto):
    from biomoe_edge.runtime.sinks import MqttSink

    sink = MqttSink("127.0.0.1", mosquitto.port, qos=1, reconnect_min_s=0.1, reconnect_max_s=0.5)
    assert _wait(lambda: sink.connected)
    os.kill(mosquitto.process.pid, signal.SIGSTOP)
    try:
        sink.write(make_records(40))
        t0 = time.monotonic()
        sink.close(timeout_s=0.5)
        elapsed = time.monotonic() - t0
    finally:
        os.kill(mosquitto.process.pid, signal.SIGCONT)
    assert elapsed < 5.0, f"close took {elapsed:.1f} s with a frozen broker"
    assert sink.stats()["dropped_at_close"] == 40 and sink.stats()["published"] == 0


def test_a_broker_frozen_before_it_accepts_is_not_blamed_on_tls(mosquitto):
    """Before: 'closed the connection before accepting it ...; set tls_ca_file' for a broker that merely hung."""
    from biomoe_edge.runtime.sinks import MqttSink

    os.kill(mosquitto.process.pid, signal.SIGSTOP)  # TCP still accepted by the kernel; no CONNACK ever
    try:
        sink = MqttSink("127.0.0.1", mosquitto.port, qos=1, keepalive_s=1, reconnect_min_s=0.1, reconnect_max_s=0.5)
        assert _wait(lambda: sink.last_error is not None, timeout_s=15.0)
        message = sink.last_error
        sink.close(timeout_s=0.2)
    finally:
        os.kill(mosquitto.process.pid, signal.SIGCONT)
    assert "tls_ca_file" not in message and "did not answer within keepalive_s" in message
