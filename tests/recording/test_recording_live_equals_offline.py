"""The session workflow end to end, on emulated wearables over Bumble with 10 % packet loss: record with
``demo --record`` while ``biomoe-edge mark`` runs in other processes, export the recording to EDF+ and open it in
MNE, replay it with ``biomoe-edge embed`` into a labelled dataset, load that in one line: the replayed windows
(boundaries, quality flags, withheld ones, every ingest counter) and embeddings (1e-5, same engine) are the live
ones, and the labels follow the markers by the window rule."""

import asyncio
import json
import sys

import numpy as np
import pytest

pytestmark = pytest.mark.torch
pytest.importorskip("bumble", reason="the demo's wearables run on Bumble")
pytest.importorskip("torch", reason="the engine is the PyTorch engine (no ONNX export in the test budget)")
pytest.importorskip("pyarrow", reason="datasets are Parquet (pip install 'biomoe-edge[recordings]')")

from biomoe_edge.cli import main as cli  # noqa: E402
from biomoe_edge.commands.demo import open_demo_engine, run_demo  # noqa: E402
from biomoe_edge.dataset import load_dataset  # noqa: E402
from biomoe_edge.runtime.recording import open_recording  # noqa: E402
from biomoe_edge.runtime.sinks import read_jsonl_records  # noqa: E402

MARKS = (("pain", 1.0), ("rest", 7.5))  # label, seconds after the recording's first segment


async def _mark_later(folder, label: str, delay_s: float):
    while not (folder / "rec" / "segments" / "000000.npz").exists():  # after warm-up and connections: data flows
        await asyncio.sleep(0.05)
    await asyncio.sleep(delay_s)
    process = await asyncio.create_subprocess_exec(sys.executable, "-m", "biomoe_edge", "mark", label,
                                                   stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await process.communicate()
    assert process.returncode == 0, err.decode()


async def _session(engine, folder):
    marks = [asyncio.ensure_future(_mark_later(folder, label, delay)) for label, delay in MARKS]
    result = await run_demo(
        duration_s=15.0, devices=1, loss=0.1, engine=engine, modalities=("bvp", "eda"),
        representations=("spectrogram_psd",), window_s=4.0, hop_s=1.0, seed=11, quiet=True,
        profiles=[("polar_pmd", ("bvp",)), ("pulse_oximeter", ("spo2",))],
        record=folder / "rec", embeddings=folder / "live.jsonl", segment_s=1.0)
    await asyncio.gather(*marks)
    return result


@pytest.fixture(scope="module")
def session(tmp_path_factory):
    folder = tmp_path_factory.mktemp("session")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("BIOMOE_EDGE_CACHE_DIR", str(folder / "cache"))  # mark finds the demo's recording here
        engine = open_demo_engine("pytorch", None, max_batch=8)
        try:
            report, gateway, wearables = asyncio.run(_session(engine, folder))
        finally:
            engine.close()
    assert cli(["embed", str(folder / "rec"), "--out", str(folder / "dataset"), "--quiet"]) == 0
    return folder, gateway, wearables


def _key(record):
    return record.device, record.modality, record.representation, record.window_start_s


def test_the_replay_equals_the_live_gateway(session):
    folder, gateway, wearables = session
    live = {_key(r): r for r in read_jsonl_records(folder / "live.jsonl")}
    frame = load_dataset(folder / "dataset")  # the one line a data scientist writes
    offline = {_key(r): r for r in frame.itertuples()}
    assert len(offline) == len(frame)
    stats = gateway.stats()
    not_run = sum(sum(r.values()) for r in stats["scheduler"]["jobs_dropped"].values()) + stats["jobs_unfinished"]
    assert set(live) <= set(offline) and len(offline) - len(live) == not_run
    assert len(live) >= 25
    differences = []
    for key, record in live.items():
        row = offline[key]
        assert row.window_end_s == record.window_end_s
        assert row.quality == record.quality
        differences.append(float(np.abs(row.embedding - record.embedding).max()))
    assert max(differences) <= 1e-5, max(differences)
    # The same windows, withheld and flagged ones included: every ingest counter of every stream.
    live_accounts = sorted((a.as_dict() for a in gateway.pipeline.ingest.accounts().values()),
                           key=lambda a: (a["device"], a["modality"]))
    replay_accounts = sorted(frame.attrs["metadata"]["summary"]["inputs"][0]["streams"],
                             key=lambda a: (a["device"], a["modality"]))
    assert replay_accounts == live_accounts
    assert {(a["device"], a["modality"]) for a in live_accounts} == {
        ("biomoe-demo-1", "bvp"), ("biomoe-demo-1", "eda"), ("demo-sense-1", "bvp"), ("demo-oximeter-2", "spo2")}
    lost = sum(sum(a["samples_lost"].values()) for a in live_accounts)
    assert lost > 0 and sum(w.counters.total("packets_dropped") for w in wearables) > 0
    assert sum(a["windows_withheld"] for a in live_accounts) > 0, "10 % loss should withhold some windows for gaps"
    assert set(frame["random_weights"]) == {True} and set(frame["engine"]) == {"pytorch"}


def test_the_labels_follow_the_marks(session):
    folder, _, _ = session
    recording = open_recording(folder / "rec")
    marks = {m.label: m.time_s for m in recording.markers}
    assert set(marks) == {"pain", "rest"} and marks["pain"] < marks["rest"]
    assert all(m.source == "mark" for m in recording.markers)
    frame = load_dataset(folder / "dataset")
    for row in frame.itertuples():
        if row.window_start_s >= marks["pain"] and row.window_end_s <= marks["rest"]:
            expected = "pain"
        elif row.window_start_s >= marks["rest"]:
            expected = "rest"  # the last marker lasts to the recording's end
        else:
            expected = None  # before the first mark, or across one
        assert row.label == expected, (row.window_start_s, row.window_end_s, marks)
    assert set(frame["label"].dropna()) == {"pain", "rest"}
    summary = frame.attrs["metadata"]["summary"]
    assert sum(summary["labelled"].values()) + sum(summary["unlabelled"].values()) == summary["windows"]
    assert summary["unlabelled"]["straddles_labels"] > 0  # across "pain" -> "rest"
    assert summary["unlabelled"].get("partly_labelled", 0) + summary["unlabelled"].get("no_label", 0) > 0  # before


def test_the_recording_exports_to_edf_that_mne_opens(session, capsys):
    mne = pytest.importorskip("mne", reason="MNE reads the EDF+ file")
    import pyedflib

    folder, _, _ = session
    assert cli(["recording", "export-edf", str(folder / "rec"), str(folder / "session.edf")]) == 0
    assert "wrote" in capsys.readouterr().out
    raw = mne.io.read_raw_edf(folder / "session.edf", preload=True, verbose="error")
    assert sorted(raw.ch_names) == ["BVP 1", "BVP 2", "EDA", "SPO2"]
    descriptions = list(raw.annotations.description)
    assert "pain" in descriptions and "rest" in descriptions
    assert any(d.startswith("biomoe:gap ") for d in descriptions)  # the loss, annotated
    recording = open_recording(folder / "rec")
    with pyedflib.EdfReader(str(folder / "session.edf")) as reader:
        t0 = float(reader.readAnnotations()[2][0].split("=")[1])
        onsets = dict(zip(reader.readAnnotations()[2], reader.readAnnotations()[0]))
    # EDFlib keeps times in 100 us units: an onset and the start's fraction of a second are each rounded to them
    # (pyEDFlib alone, random sub-second starts and record lengths: up to 1.24e-4 s off).
    for marker in recording.markers:
        assert onsets[marker.label] == pytest.approx(marker.time_s - t0, abs=2e-4)


def test_recording_info_lists_the_streams(session, capsys):
    folder, _, _ = session
    assert cli(["recording", "info", str(folder / "rec")]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["complete"] is True and len(info["streams"]) == 4
    assert info["streams"]["demo-sense-1/bvp"]["profile"] == "polar_pmd"
    assert info["streams"]["demo-sense-1/bvp"]["device_channels"] == 4  # PPG0-2 + ambient, averaged to one
    assert info["streams"]["demo-oximeter-2/spo2"]["placed_by_count"] is False
