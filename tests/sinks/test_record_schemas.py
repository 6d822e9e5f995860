"""Every record kind against its JSON Schema in docs/records.md (read from that file), on real sink output; and
record_id: stable, recomputed from the fields by an independent UUID 5, unique per window."""

from __future__ import annotations

import asyncio
import json
import pathlib
import re
import sys
import uuid

import pytest

jsonschema = pytest.importorskip("jsonschema", reason="the schema checks need jsonschema (the test extra)")

from sink_records import make_predictions, make_records  # noqa: E402

from biomoe_edge.runtime.records import EmbeddingRecord, record_from_dict  # noqa: E402
from biomoe_edge.runtime.sinks import JsonlSink, NpzSink, read_npz_records  # noqa: E402

DOCS = pathlib.Path(__file__).resolve().parents[2] / "docs" / "records.md"
NAMESPACE = uuid.UUID("5b0f3c1e-9a4d-5c3e-8f2b-b10e0ed6e001")  # as docs/records.md states it


def schemas() -> dict[str, dict]:
    blocks = re.findall(r"```json\n(.*?)```", DOCS.read_text(), flags=re.S)
    out = {}
    for block in blocks:
        schema = json.loads(block)
        jsonschema.Draft202012Validator.check_schema(schema)
        out[schema["title"]] = schema
    return out


def validate(document: dict) -> None:
    schema = schemas()[document["record"]]
    jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker()).validate(document)


def expected_embedding_id(d: dict) -> str:
    """docs/records.md's definition, written out again here."""
    fields = ["embedding", d["device"], d["modality"], d["representation"], round(d["window_start_s"] * 1e6)]
    return str(uuid.uuid5(NAMESPACE, json.dumps(fields, separators=(",", ":"))))


def test_docs_have_a_schema_per_record_kind():
    assert set(schemas()) >= {"embedding", "prediction", "status"}


async def gateway_records(seconds: float = 5.0, status: list | None = None) -> list:
    """Embedding records a gateway made from packets fed by hand (the gateway tests' helpers)."""
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "gateway"))
    from gateway_helpers import ProjectionEngine, description, packets

    from biomoe_edge.runtime.gateway import Gateway
    from biomoe_edge.runtime.gateway_config import parse_config

    from biomoe_edge.runtime.web.health import HealthMonitor

    config = parse_config({"windows": {"length_s": 2.0, "hop_s": 1.0, "representations": ["waveform", "recurrence"]},
                           "devices": [{"name": "dev-1"}], "engine": {"max_batch": 8, "deadline_ms": 1}})
    records = []
    async with Gateway(config, engine=ProjectionEngine(), transport=False, warmup=False) as gateway:
        gateway.on_embedding(records.append)
        gateway.add_device("dev-1", description())
        health = HealthMonitor(gateway, no_device_s=0.5)
        if status is not None:
            status.append(health.status_record("gateway-test"))  # healthy: the grace period
        for arrival, _, _, data in packets(seconds):
            gateway.feed("dev-1", data, arrival)
        if status is not None:
            await asyncio.sleep(0.6)
            status.append(health.status_record("gateway-test"))  # no device connected: unhealthy, with the reason
    return records


async def test_jsonl_sink_output_matches_the_schemas_and_ids(tmp_path):
    embeddings = await gateway_records()
    assert len(embeddings) >= 6
    records = embeddings[:6] + make_predictions(4)
    with JsonlSink(tmp_path, prefix="r") as sink:
        sink.write(records)
    lines = [json.loads(line) for path in sorted(tmp_path.glob("*.jsonl")) for line in path.read_text().splitlines()]
    assert len(lines) == len(records)
    for line in lines:
        validate(line)
    for line in lines[:6]:
        assert line["record_id"] == expected_embedding_id(line)
    assert len({line["record_id"] for line in lines}) == len(lines)
    # read back, the id is recomputed from the fields: the same
    assert [record_from_dict(line).record_id for line in lines] == [line["record_id"] for line in lines]


def test_record_id_is_stable_and_tells_windows_apart():
    a, b = make_records(2)
    assert a.record_id == make_records(2)[0].record_id  # same window, made again: same id
    assert a.record_id != b.record_id
    shifted = EmbeddingRecord(**{**a.__dict__, "window_start_s": a.window_start_s + 1e-6})
    assert shifted.record_id != a.record_id  # one microsecond apart: another window
    other_representation = EmbeddingRecord(**{**a.__dict__, "representation": "waveform"})
    assert other_representation.record_id != a.record_id
    p, q = make_predictions(2)
    assert p.record_id != q.record_id


def test_a_schema_refuses_a_record_without_record_id():
    document = make_records(1)[0].to_dict()
    del document["record_id"]
    with pytest.raises(jsonschema.ValidationError, match="record_id"):
        validate(document)


def test_npz_sink_keeps_record_ids(tmp_path):
    import numpy as np

    records = make_records(3) + make_predictions(2)
    with NpzSink(tmp_path, prefix="r") as sink:
        sink.write(records)
    [path] = sorted(tmp_path.glob("*.npz"))
    data = np.load(path)
    assert list(data["record_id"]) == [r.record_id for r in records[:3]]
    assert list(data["prediction_record_id"]) == [r.record_id for r in records[3:]]
    assert [r.record_id for r in read_npz_records(path)] == [r.record_id for r in records]


async def test_mqtt_messages_match_the_schemas(mosquitto):
    pytest.importorskip("paho.mqtt", reason="the MQTT sink needs paho-mqtt")
    from mqtt_clients import Subscriber

    from biomoe_edge.runtime.sinks.mqtt import MqttSink

    status = []
    records = (await gateway_records(4.0, status))[:4] + make_predictions(2) + status
    subscriber = Subscriber(mosquitto.port, "biomoe/#")
    sink = MqttSink("127.0.0.1", mosquitto.port)
    try:
        sink.write(records)
        messages = subscriber.wait_for(len(records))
    finally:
        sink.close()
        subscriber.close()
    assert len(messages) == len(records)
    for _, document in messages:
        validate(document)
    kinds = {document["record"]: topic for topic, document in messages}
    assert kinds["status"] == "biomoe/status"
    status_messages = [d for _, d in messages if d["record"] == "status"]
    assert [d["healthy"] for d in status_messages] == [True, False]
    assert "no device connected" in status_messages[1]["reasons"][0]
    assert sorted(d["record_id"] for _, d in messages) == sorted(r.record_id for r in records)
