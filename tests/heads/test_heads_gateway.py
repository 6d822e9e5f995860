"""A head served by the Gateway: [[subjects]] and [[heads]] in the configuration, a subject's two wearables
(started 0.37 s apart) fused by window time into PredictionRecords that reach on_prediction, predictions() and
the JSONL sink; a wearable dropping out is counted, never imputed; a head of other weights is refused at start;
configuration errors name the key."""

import asyncio
import json

import numpy as np
import pytest

pytest.importorskip("onnxruntime", reason="heads are served with ONNX Runtime")

from heads_helpers import PooledEngine, device_packets, native_description, write_head  # noqa: E402

from biomoe_edge.runtime.gateway import Gateway  # noqa: E402
from biomoe_edge.runtime.gateway_config import ConfigError, parse_config  # noqa: E402
from biomoe_edge.runtime.heads import HeadError, load_head  # noqa: E402
from biomoe_edge.runtime.records import PredictionRecord, record_from_dict  # noqa: E402

WRIST = {"eda": 16.0, "bvp": 64.0}
FINGER = {"spo2": 4.0}
INPUTS = ["eda:scalogram", "bvp:scalogram", "spo2:scalogram"]


def config_dict(head_folder, tmp_path, **head_options):
    return {
        "windows": {"length_s": 4.0, "hop_s": 1.0, "representations": ["scalogram"]},
        "devices": [{"name": "p1-wrist", "modalities": ["eda", "bvp"]}, {"name": "p1-finger", "modalities": ["spo2"]}],
        "subjects": [{"name": "p1", "devices": ["p1-wrist", "p1-finger"]}],
        "heads": [{"path": str(head_folder), "deadline_s": 1.0, **head_options}],
        "engine": {"max_batch": 16, "deadline_ms": 20},
        "sinks": [{"kind": "jsonl", "directory": str(tmp_path / "out"), "prefix": "records"}],
    }


async def serve(config, packets, *, engine=None):
    gateway = Gateway(config, engine=engine or PooledEngine(), transport=False, warmup=False)
    embeddings, predictions, iterated = [], [], []
    async with gateway:
        gateway.add_device("p1-wrist", native_description(WRIST))
        gateway.add_device("p1-finger", native_description(FINGER))
        gateway.on_embedding(embeddings.append)
        gateway.on_prediction(predictions.append)

        async def iterate():
            async for record in gateway.predictions():
                iterated.append(record)

        reader = asyncio.get_running_loop().create_task(iterate())
        await asyncio.sleep(0)
        for i, (arrival, device, payload) in enumerate(packets):
            gateway.feed(device, payload, arrival)
            if i % 50 == 0:
                await asyncio.sleep(0)  # let the worker run batches as a live gateway would
    await reader
    return gateway, embeddings, predictions, iterated


@pytest.fixture
def head_folder(tmp_path):
    folder, _, _ = write_head(tmp_path / "head", INPUTS, ["rest", "mild", "strong"], window_length_s=4.0)
    return folder


async def test_a_subjects_wearables_are_fused_into_predictions_equal_to_the_head_on_their_embeddings(head_folder, tmp_path):
    config = parse_config(config_dict(head_folder, tmp_path))
    packets = sorted(device_packets("p1-wrist", WRIST, 14.0, start_s=100.0)
                     + device_packets("p1-finger", FINGER, 14.0, start_s=100.37, seed=1), key=lambda p: p[0])
    gateway, embeddings, predictions, iterated = await serve(config, packets)

    by_input = {}
    for r in embeddings:
        by_input.setdefault(f"{r.modality}:{r.representation}", {})[r.window_end_s] = r
    # The subject grid: the oximeter's windows end exactly when the wristband's do.
    assert set(by_input["spo2:scalogram"]) <= set(by_input["eda:scalogram"])
    times = sorted(set(by_input["eda:scalogram"]) & set(by_input["bvp:scalogram"]) & set(by_input["spo2:scalogram"]))
    assert len(times) >= 6
    assert [p.window_end_s for p in sorted(predictions, key=lambda p: p.window_end_s)] == times
    head = load_head(head_folder)
    for p in predictions:
        parts = [by_input[name][p.window_end_s].embedding[None] for name in INPUTS]
        np.testing.assert_allclose(p.probabilities, head.predict(parts)[0], atol=1e-6)
        assert p.subject == "p1" and p.devices == ("p1-wrist", "p1-finger")
        assert p.model == gateway.pipeline.model_identity
        assert p.latency_s >= 0
    assert [p.window_end_s for p in iterated] == [p.window_end_s for p in predictions]

    # The JSONL sink holds the embeddings and the predictions, each readable back.
    lines = [json.loads(line) for path in sorted((tmp_path / "out").glob("*.jsonl")) for line in path.read_text().splitlines()]
    written = [record_from_dict(d) for d in lines if d["record"] == "prediction"]
    assert len(written) == len(predictions) and all(isinstance(r, PredictionRecord) for r in written)
    np.testing.assert_allclose(np.stack([r.probabilities for r in written]),
                               np.stack([p.probabilities for p in predictions]), atol=0)
    assert sum(d["record"] == "embedding" for d in lines) == len(embeddings)
    (stats,) = gateway.stats()["heads"]
    assert stats["predictions"] == len(predictions)
    # Window times the oximeter (started later) did not reach by the end are counted, not predicted.
    wrist_only = (set(by_input["eda:scalogram"]) & set(by_input["bvp:scalogram"])) - set(times)
    assert sum(stats["windows_dropped"].values()) == len(wrist_only) <= 1


async def test_a_wearable_that_drops_out_stops_predictions_and_every_window_time_is_counted(head_folder, tmp_path):
    config = parse_config(config_dict(head_folder, tmp_path))
    wrist = device_packets("p1-wrist", WRIST, 16.0, start_s=100.0)
    finger = [p for p in device_packets("p1-finger", FINGER, 16.0, start_s=100.0, seed=1) if p[0] < 108.0]
    gateway, embeddings, predictions, _ = await serve(config, sorted(wrist + finger, key=lambda p: p[0]))
    spo2_times = {r.window_end_s for r in embeddings if r.modality == "spo2"}
    wrist_times = {r.window_end_s for r in embeddings if r.modality == "eda"} & \
        {r.window_end_s for r in embeddings if r.modality == "bvp"}
    assert {p.window_end_s for p in predictions} == spo2_times & wrist_times  # nothing made up for the gap
    (stats,) = gateway.stats()["heads"]
    lost = sum(stats["windows_dropped"].values())
    assert lost == len(wrist_times - spo2_times) > 0
    assert set(stats["windows_dropped"]) <= {"input_missing", "closed"}
    assert stats["missing_inputs"] == {"spo2:scalogram": lost}


async def test_a_head_of_other_weights_is_refused_when_the_gateway_starts(tmp_path):
    folder, _, _ = write_head(tmp_path / "head", INPUTS, ["rest", "pain"], window_length_s=4.0,
                              backbone={"checkpoint_sha256": "cd" * 32, "random_weights": False, "seed": None,
                                        "precision": "fp16"})
    gateway = Gateway(parse_config(config_dict(folder, tmp_path)), engine=PooledEngine(), transport=False, warmup=False)
    with pytest.raises(HeadError) as error:
        async with gateway:
            pass
    assert "checkpoint cdcdcdcdcdcdcdcd... fp16" in str(error.value)
    assert "random weights (seed None) fp32" in str(error.value)


@pytest.mark.parametrize("edit, key, message", [
    (lambda c: c["subjects"][0]["devices"].append("p9-chest"), "subjects[0].devices[2]",
     "\"p9-chest\" is not a device of [[devices]]"),
    (lambda c: c["subjects"].append({"name": "p2", "devices": ["p1-finger"]}), "subjects[1].devices[0]",
     "already worn by subject \"p1\""),
    (lambda c: c["subjects"].append({"name": "p1", "devices": []}), "subjects[1].name", "listed twice"),
    (lambda c: c["heads"][0].update(path="/nonexistent/head"), "heads[0].path", "no such head folder"),
    (lambda c: c["heads"][0].update(subjects=["p7"]), "heads[0].subjects[0]", "\"p7\" is not a [[subjects]] name"),
    (lambda c: c["heads"][0].update(tolerance_s=0.5), "heads[0].tolerance_s", "below half the hop"),
    (lambda c: c["heads"][0].update(deadline_ms=3), "heads[0].deadline_ms", "unknown key"),
    (lambda c: c["windows"].update(representations=["spectrogram_psd"]), "windows.representations",
     "needs eda:scalogram"),
    (lambda c: c["windows"].update(length_s=10.0), "windows.length_s", "trained on 4 s windows of eda:scalogram"),
])
def test_configuration_errors_name_the_key(head_folder, tmp_path, edit, key, message):
    data = config_dict(head_folder, tmp_path)
    edit(data)
    with pytest.raises(ConfigError) as error:
        parse_config(data)
    assert error.value.key_path == key
    assert message in str(error.value)


def test_subjects_resolve_devices_by_address_and_a_device_in_no_subject_is_its_own(head_folder, tmp_path):
    data = config_dict(head_folder, tmp_path)
    data["devices"][1] = {"address": "aa-bb-cc-dd-ee-01", "modalities": ["spo2"]}
    data["devices"].append({"name": "loner"})
    data["subjects"][0]["devices"] = ["p1-wrist", "AA:BB:CC:DD:EE:01"]
    config = parse_config(data)
    assert config.subjects[0].devices == ("p1-wrist", "AA:BB:CC:DD:EE:01")
    assert config.subject_of("AA:BB:CC:DD:EE:01") == "p1" and config.subject_of("loner") == "loner"
    assert config.heads[0].path == head_folder and config.heads[0].deadline_s == 1.0


def test_the_examples_subjects_load_and_its_commented_heads_table_loads_when_uncommented(tmp_path):
    import pathlib
    import re

    from biomoe_edge.config import tomllib
    from biomoe_edge.runtime.gateway_config import load_config

    example = pathlib.Path(__file__).resolve().parents[2] / "examples" / "gateway.toml"
    config = load_config(example)
    assert [(s.name, s.devices) for s in config.subjects] == [("participant-01", ("biomoe-wrist-1", "C4:7D:4F:00:00:02"))]
    folder, _, _ = write_head(tmp_path / "eda_bvp", ["bvp:scalogram", "eda:scalogram"], ["rest", "pain"],
                              window_length_s={"bvp:scalogram": 10.0, "eda:scalogram": 20.0})
    text = re.sub(r"(?m)^# (?=\[\[heads\]\]|path =|tolerance_s =|deadline_s =|subjects =)", "", example.read_text())
    text = text.replace('"../heads/eda_bvp"', json.dumps(str(folder)))
    config = parse_config(tomllib.loads(text), base_dir=example.parent)
    (head,) = config.heads
    assert (head.path, head.tolerance_s, head.deadline_s, head.subjects) == (folder, 0.25, 5.0, ("participant-01",))
