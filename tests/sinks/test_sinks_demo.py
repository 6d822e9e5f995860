"""``biomoe-edge demo --sinks FILE.toml``: the demo's emulated wearables feed any sink of a TOML file, here a JSONL
folder and an MQTT broker over TLS with a password file (a real Mosquitto)."""

import asyncio
import subprocess

import pytest
from mqtt_clients import Subscriber, client_context, tls_listener

pytestmark = pytest.mark.torch
pytest.importorskip("bumble", reason="the demo's wearables run on Bumble")
pytest.importorskip("torch", reason="the test's engine is the PyTorch engine (no ONNX export in the test budget)")
pytest.importorskip("paho.mqtt.client", reason="paho-mqtt not installed")

from biomoe_edge.commands.demo import load_demo_sinks, open_demo_engine, run_demo  # noqa: E402
from biomoe_edge.runtime.gateway_config import ConfigError  # noqa: E402
from biomoe_edge.runtime.sinks import read_jsonl_records  # noqa: E402


def test_demo_writes_to_the_sinks_of_a_toml_file(tmp_path, make_broker, certificates):
    passwords = tmp_path / "passwd"
    subprocess.run(["mosquitto_passwd", "-b", "-c", str(passwords), "demo", "pw"], check=True, capture_output=True,
                   timeout=30)
    passwords.chmod(0o644)
    broker = make_broker("tls", listener_options=tls_listener(certificates) + f"password_file {passwords}\n",
                         allow_anonymous=False)
    (tmp_path / "secret").write_text("pw\n")
    sinks_file = tmp_path / "sinks.toml"
    sinks_file.write_text(f"""
[engine]
kind = "this table is ignored: only [[sinks]] are taken"

[[sinks]]
kind = "jsonl"
directory = "out"

[[sinks]]
kind = "mqtt"
host = "127.0.0.1"
port = {broker.port}
username = "demo"
password_file = "secret"
tls_ca_file = "{certificates['ca']}"
""")
    sinks = load_demo_sinks(sinks_file)
    assert [s.kind for s in sinks] == ["jsonl", "mqtt"] and sinks[0].options["directory"] == tmp_path / "out"
    sub = Subscriber(broker.port, "biomoe/#", tls=client_context(certificates), username="demo", password="pw")

    engine = open_demo_engine("pytorch", None, max_batch=8)
    try:
        report, gateway, _ = asyncio.run(run_demo(
            duration_s=7.0, devices=1, loss=0.0, engine=engine, modalities=("bvp",),
            representations=("spectrogram_psd",), window_s=4.0, hop_s=1.0, seed=1, quiet=True, sinks=sinks))
    finally:
        engine.close()
    sub.wait_for(report["embeddings"])
    sub.close()
    assert report["embeddings"] > 0
    records = [r for path in sorted((tmp_path / "out").glob("*.jsonl")) for r in read_jsonl_records(path)]
    assert len(records) == report["embeddings"]
    assert len(sub.messages) == report["embeddings"]
    mqtt_stats = next(s for s in gateway.stats()["sinks"] if s["name"] == "mqtt")
    assert mqtt_stats["tls"] and mqtt_stats["published"] == report["embeddings"] and mqtt_stats["dropped_at_close"] == 0


def test_demo_sinks_file_errors_name_the_file_and_key(tmp_path):
    path = tmp_path / "sinks.toml"
    path.write_text('[[sinks]]\nkind = "jsonl"\ndirectory = "x"\nprefix = "../../escaped"\n')
    with pytest.raises(ConfigError) as info:
        load_demo_sinks(path)
    assert info.value.key_path == "sinks[0].prefix" and str(path) in str(info.value)
    path.write_text("[windows]\nhop_s = 1\n")
    with pytest.raises(ConfigError, match="no \\[\\[sinks\\]\\]"):
        load_demo_sinks(path)
