"""Recordings of a subject's wearables: the live gateway cuts them on one grid per subject, the replay (``embed``)
cuts the recording on the same grids with the same embeddings, and the dataset feeds ``train-head`` directly:
the path emulated recording -> embed -> train-head, with nothing in between."""

import asyncio

import numpy as np
import pytest

pytest.importorskip("pyarrow", reason="datasets are Parquet")
pytest.importorskip("onnxruntime")

from heads_helpers import PooledEngine, device_packets, native_description  # noqa: E402

from biomoe_edge.runtime.gateway import Gateway  # noqa: E402
from biomoe_edge.runtime.gateway_config import parse_config  # noqa: E402

WRIST = {"eda": 16.0, "bvp": 64.0}
FINGER = {"spo2": 4.0}
INPUTS = ["eda:scalogram", "bvp:scalogram", "spo2:scalogram"]


async def record_session(tmp_path):
    config = parse_config({
        "windows": {"length_s": 4.0, "hop_s": 1.0, "representations": ["scalogram"]},
        "devices": [{"name": "p1-wrist", "modalities": ["eda", "bvp"]}, {"name": "p1-finger", "modalities": ["spo2"]}],
        "subjects": [{"name": "p1", "devices": ["p1-wrist", "p1-finger"]}],
        "engine": {"max_batch": 16, "deadline_ms": 20},
        "sinks": [{"kind": "recording", "directory": str(tmp_path / "recordings")}],
    })
    packets = sorted(device_packets("p1-wrist", WRIST, 14.0, start_s=100.0)
                     + device_packets("p1-finger", FINGER, 14.0, start_s=100.37, seed=1), key=lambda p: p[0])
    live = []
    async with Gateway(config, engine=PooledEngine(), transport=False, warmup=False) as gateway:
        gateway.add_device("p1-wrist", native_description(WRIST))
        gateway.add_device("p1-finger", native_description(FINGER))
        gateway.on_embedding(live.append)
        for i, (arrival, device, payload) in enumerate(packets):
            gateway.feed(device, payload, arrival)
            if i % 50 == 0:
                await asyncio.sleep(0)
    (folder,) = (tmp_path / "recordings").iterdir()
    return folder, live


@pytest.fixture(scope="module")
def replayed(tmp_path_factory):
    """The recorded session, its live records, and the labelled dataset ``embed`` replays from it."""
    from biomoe_edge.runtime.recording.embed import build_dataset

    tmp_path = tmp_path_factory.mktemp("subject-recording")
    folder, live = asyncio.run(record_session(tmp_path))
    labels = tmp_path / "labels.csv"
    labels.write_text("subject,start_s,end_s,label\np1,100.0,108.0,rest\np1,108.0,116.0,pain\n")
    frame = build_dataset(folder, PooledEngine(), labels=labels, out=tmp_path / "dataset")
    return tmp_path, live, frame


def test_a_subjects_recording_replays_on_the_subject_grid_and_fuses_without_tolerance(replayed):
    from biomoe_edge.training.datasets import fuse_windows

    _, live, frame = replayed
    assert set(frame["subject"]) == {"p1"}
    # Offline equals live: every replayed window is a live one, on the same grid, with the same embedding.
    by_key = {(r.device, r.modality, r.representation, round(r.window_end_s, 6)): r for r in live}
    for row in frame.itertuples():
        record = by_key[(row.device, row.modality, row.representation, round(row.window_end_s, 6))]
        np.testing.assert_allclose(row.embedding, record.embedding, atol=1e-5)
    assert len(frame) == len(live)
    # One grid: the oximeter's windows end exactly when the wristband's do, so the fusion needs no tolerance.
    fused = fuse_windows(frame, INPUTS, tolerance_s=0.0)
    spo2 = frame[frame.modality == "spo2"]
    eda = frame[frame.modality == "eda"]
    assert len(fused) == len(spo2) >= 6  # every oximeter window found its wristband partners
    # the wristband's window times before the oximeter started (it connected 0.37 s later) lack spo2: counted
    assert fused.incomplete == {"spo2:scalogram": len(eda) - len(spo2)}


@pytest.mark.torch
def test_the_replayed_dataset_trains_a_head_directly(replayed):
    pytest.importorskip("torch", reason="train-head needs PyTorch (the export extra)")
    from biomoe_edge.training.classifiers import HeadOptions
    from biomoe_edge.training.datasets import fuse_windows
    from biomoe_edge.training.head_training import train_head

    tmp_path, _, frame = replayed
    fused = fuse_windows(frame, INPUTS, tolerance_s=0.0)
    manifest = train_head(tmp_path / "dataset", INPUTS, tmp_path / "head", cv="none", tolerance_s=0.0,
                          options=HeadOptions(epochs=3))
    assert manifest["dataset"]["windows"] == int(np.sum(fused.labels != None))  # noqa: E711 - object array
    assert set(manifest["classes"]) == {"rest", "pain"}
