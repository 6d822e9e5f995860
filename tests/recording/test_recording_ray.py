"""``embed --ray``: a corpus on Ray Data (a local Ray, 2 CPUs, started once for the module) gives the serial embed's
dataset exactly, also when an input is split into time slices, when a worker is killed mid-run, and when an
interrupted run is resumed.

The engine is a small real ONNX graph (a strided convolution and a projection to 192 values: cheap, and sensitive
to every pixel), run by ONNX Runtime in the driver and in every worker; stand-in weights, labelled random."""

from __future__ import annotations

import functools
import os
import signal

import numpy as np
import pandas as pd
import pytest

ray = pytest.importorskip("ray", reason="Ray is not installed (the cluster extra: pip install 'biomoe-edge[cluster]'; "
                                        "Ray has no wheel for every Python)")
pytest.importorskip("ray.data", reason="Ray Data is not installed (pip install 'ray[data]')")
onnx = pytest.importorskip("onnx", reason="building the test graph needs the onnx package")

from onnx import TensorProto, helper, numpy_helper  # noqa: E402
from recording_helpers import lossy, packets, record_gateway_run  # noqa: E402

from biomoe_edge.dataset import load_dataset  # noqa: E402
from biomoe_edge.manifest import write_manifest  # noqa: E402
from biomoe_edge.runtime.engines import open_engine  # noqa: E402
from biomoe_edge.runtime.recording import distributed  # noqa: E402
from biomoe_edge.runtime.recording.distributed import canonical_order, embed_on_ray  # noqa: E402
from biomoe_edge.runtime.recording.embed import build_dataset  # noqa: E402
from biomoe_edge.runtime.recording.labels import LabelInterval  # noqa: E402

REPRESENTATIONS = ["spectrogram_psd", "waveform"]


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def onnx_model(tmp_path_factory):
    """images (B, 3, 224, 224) -> (B, 192): a 16x16 stride-16 convolution to 4 planes, flattened, times a matrix."""
    folder = tmp_path_factory.mktemp("model")
    rng = np.random.default_rng(5)
    kernel = numpy_helper.from_array(rng.standard_normal((4, 3, 16, 16)).astype(np.float32) / 16, "kernel")
    weights = numpy_helper.from_array(rng.standard_normal((4 * 14 * 14, 192)).astype(np.float32) / 28, "weights")
    graph = helper.make_graph(
        [helper.make_node("Conv", ["images", "kernel"], ["planes"], kernel_shape=[16, 16], strides=[16, 16]),
         helper.make_node("Flatten", ["planes"], ["flat"], axis=1),
         helper.make_node("MatMul", ["flat", "weights"], ["embeddings"])],
        "patch_projection", [helper.make_tensor_value_info("images", TensorProto.FLOAT, ["batch", 3, 224, 224])],
        [helper.make_tensor_value_info("embeddings", TensorProto.FLOAT, ["batch", 192])], initializer=[kernel, weights])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(folder / "model.onnx"))
    write_manifest(folder / "model.onnx", {"precision": "fp32", "max_batch": 8, "random_weights": True})
    return folder / "model.onnx"


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """Four inputs: a lossy, reordered gateway recording (55 s), two CSV files (one by rate, one with a time column
    and a gap) and a long CSV (150 s) that the tests split into slices."""
    folder = tmp_path_factory.mktemp("corpus")
    _, _, recording = record_gateway_run(folder / "gateway", lossy(packets(55.0, seed=4), 0.08, seed=5),
                                         representations=tuple(REPRESENTATIONS), length_s=8.0, hop_s=2.0)
    rng = np.random.default_rng(7)
    fs = 32.0

    def eda(seconds, seed):
        t = np.arange(int(seconds * fs)) / fs
        return t, 2.0 + 0.3 * np.sin(2 * np.pi * 0.05 * t + seed) + 0.02 * rng.standard_normal(t.size)

    t, x = eda(40, 1)
    pd.DataFrame({"EDA": x}).to_csv(folder / "s01.csv", index=False)
    t, x = eda(45, 2)
    keep = (t < 20) | (t > 20.5)  # a half-second gap: filled, flagged
    pd.DataFrame({"time_s": 100.0 + t[keep], "EDA": x[keep]}).to_csv(folder / "s02.csv", index=False,
                                                                      float_format="%.9f")
    t, x = eda(150, 3)
    pd.DataFrame({"EDA": x}).to_csv(folder / "long.csv", index=False)
    return [recording, folder / "s01.csv", folder / "s02.csv", folder / "long.csv"]


# Labels across the slice boundaries (30 s) and between window starts (8 s windows every 2 s): labelled, straddling
# and unlabelled windows; the gateway recording's subject has none.
LABELS = [LabelInterval("s01", 0.0, 19.0, "rest"), LabelInterval("s01", 19.0, 40.0, "pain"),
          LabelInterval("s02", 5.0, 31.0, "rest"), LabelInterval("long", 0.0, 71.0, "rest"),
          LabelInterval("long", 71.0, 150.0, "pain")]
OPTIONS = dict(representations=REPRESENTATIONS, window_s=8.0, hop_s=2.0, any_model=True, labels=LABELS)
SOURCE_OPTIONS = dict(channel_map="EDA:eda", rate_hz=32.0)


@pytest.fixture(scope="module")
def serial(corpus, onnx_model, tmp_path_factory):
    engine = open_engine("onnxruntime", onnx_model)
    try:
        return build_dataset(corpus, engine, out=tmp_path_factory.mktemp("serial") / "ds", **SOURCE_OPTIONS, **OPTIONS)
    finally:
        engine.close()


def assert_same_dataset(frame, serial):
    expected = canonical_order(serial)
    assert len(frame) == len(expected) > 0
    for column in ("subject", "device", "modality", "representation", "label", "model_sha256", "engine"):
        assert list(frame[column]) == list(expected[column]), column
    np.testing.assert_array_equal(frame["window_start_s"], expected["window_start_s"])
    np.testing.assert_array_equal(frame["window_end_s"], expected["window_end_s"])
    assert list(frame["quality"]) == list(expected["quality"])
    np.testing.assert_allclose(np.stack(frame["embedding"]), np.stack(expected["embedding"]), rtol=0, atol=1e-6)
    keys = list(zip(frame["device"], frame["modality"], frame["representation"], frame["window_start_s"]))
    assert len(set(keys)) == len(keys)  # no window twice


def factory(onnx_model):
    return functools.partial(open_engine, "onnxruntime", onnx_model)


def test_ray_with_slices_equals_the_serial_embed(local_ray, corpus, serial, onnx_model, tmp_path):
    states = []
    frame = embed_on_ray(corpus, factory(onnx_model), out=tmp_path / "ds", workers=2, slice_s=30.0,
                         source_options=SOURCE_OPTIONS, progress=states.append, **OPTIONS)
    metadata = frame.attrs["metadata"]
    assert metadata["ray"]["items"] > len(corpus)  # the gateway recording and long.csv were sliced
    assert_same_dataset(frame, serial)
    assert {"rest", "pain", None} <= set(frame["label"])
    loaded = load_dataset(tmp_path / "ds")
    summary, expected = loaded.attrs["metadata"]["summary"], serial.attrs["metadata"]["summary"]
    for key in ("windows", "rows", "labelled", "unlabelled", "labels"):
        assert summary[key] == expected[key], key
    assert expected["unlabelled"]["straddles_labels"] > 0
    assert [(e["path"], e["windows"], e["rows"]) for e in summary["inputs"]] == \
        [(e["path"], e["windows"], e["rows"]) for e in expected["inputs"]]
    assert_same_dataset(loaded, serial)
    assert not (tmp_path / "ds.work").exists()
    # Progress: after each item, windows done so far (rising to all of them), a rate and the time left.
    assert len(states) == metadata["ray"]["items"]
    assert [s["windows_done"] for s in states] == sorted(s["windows_done"] for s in states)
    assert states[-1]["windows_done"] == metadata["summary"]["windows"]
    assert all(s["windows_per_s"] > 0 for s in states) and states[-1]["eta_s"] == 0


def test_slices_are_exact_at_every_boundary(corpus, serial, onnx_model, tmp_path):
    """Slices of the lossy gateway recording at boundaries 7 s apart (not on the window grid): each slice's rows,
    joined, are the whole replay's (no Ray needed: the same item code the workers run)."""
    recording = corpus[0]
    from biomoe_edge.runtime.recording.sources import open_source

    items = distributed.plan_items([recording], [open_source(recording)], slice_s=7.0)
    assert len(items) >= 6
    engine = open_engine("onnxruntime", onnx_model)
    try:
        for item in items:
            distributed.embed_item(item, engine, tmp_path, {}, {k: v for k, v in OPTIONS.items() if k != "any_model"})
    finally:
        engine.close()
    parts = pd.concat([load_dataset(distributed.item_folder(tmp_path, item)) for item in items], ignore_index=True)
    whole = serial.iloc[:serial.attrs["metadata"]["summary"]["inputs"][0]["rows"]]
    key = ["device", "modality", "representation", "window_start_s"]
    merged = whole.merge(parts, on=key, how="outer", suffixes=("", "_sliced"), indicator=True)
    assert set(merged["_merge"]) == {"both"} and len(merged) == len(whole) == len(parts)
    np.testing.assert_allclose(np.stack(merged["embedding_sliced"]), np.stack(merged["embedding"]), rtol=0, atol=1e-6)
    assert list(merged["quality_sliced"]) == list(merged["quality"])


def test_a_killed_worker_is_retried_and_the_dataset_is_still_exact(local_ray, corpus, serial, onnx_model, tmp_path):
    psutil = pytest.importorskip("psutil", reason="checking the worker died needs psutil (the test extra)")
    states = []

    def kill_a_worker(state):
        states.append(state)
        if len(states) == 1:
            # SIGKILL the worker that finished the first item: Ray Data has already given it the next ones.
            os.kill(state["worker_pid"], signal.SIGKILL)

    frame = embed_on_ray(corpus, factory(onnx_model), out=tmp_path / "ds", workers=2, slice_s=30.0,
                         source_options=SOURCE_OPTIONS, progress=kill_a_worker, **OPTIONS)
    killed = states[0]["worker_pid"]
    assert not psutil.pid_exists(killed) or psutil.Process(killed).status() == psutil.STATUS_ZOMBIE
    item_ids = [s["item_id"] for s in states]
    assert len(item_ids) == len(set(item_ids)) == frame.attrs["metadata"]["ray"]["items"]  # each once
    assert_same_dataset(frame, serial)


def test_resume_skips_the_items_already_complete(local_ray, corpus, serial, onnx_model, tmp_path):
    out, work = tmp_path / "ds", tmp_path / "ds.work"

    class Interrupted(Exception):
        pass

    def interrupt_after_two(state):
        if state["items_done"] == 2:
            raise Interrupted

    options = dict(out=out, slice_s=30.0, source_options=SOURCE_OPTIONS, **OPTIONS)
    with pytest.raises(Interrupted):
        embed_on_ray(corpus, factory(onnx_model), workers=1, progress=interrupt_after_two, **options)
    assert not out.exists()
    finished = {folder.name: folder.stat().st_mtime_ns for folder in work.glob("item-*")
                if (folder / "_dataset.json").is_file()}
    assert len(finished) >= 2
    with pytest.raises(FileExistsError, match="--resume"):
        embed_on_ray(corpus, factory(onnx_model), workers=1, **options)
    with pytest.raises(ValueError, match="other inputs"):
        embed_on_ray(corpus[:3], factory(onnx_model), workers=1, resume=True, **options)
    states = []
    frame = embed_on_ray(corpus, factory(onnx_model), workers=2, resume=True, progress=states.append, **options)
    items = frame.attrs["metadata"]["ray"]["items"]
    assert frame.attrs["metadata"]["ray"]["items_resumed"] == len(finished)
    assert len(states) == items - len(finished)  # only the others ran
    assert {f"item-{s['item_id']}" for s in states}.isdisjoint(finished)
    assert states[0]["items_done"] == len(finished) + 1 and states[-1]["items_done"] == items
    assert_same_dataset(frame, serial)


def test_the_command_line_embeds_on_ray_with_progress(local_ray, corpus, serial, onnx_model, tmp_path, capsys):
    from biomoe_edge.cli import main

    labels = tmp_path / "labels.csv"
    labels.write_text("subject,start_s,end_s,label\n" + "".join(f"{i.subject},{i.start_s},{i.end_s},{i.label}\n"
                                                             for i in LABELS))
    arguments = [*map(str, corpus), "--map", "EDA:eda", "--rate", "32", "--engine", "onnxruntime", "--model",
                 str(onnx_model), "--representations", ",".join(REPRESENTATIONS), "--window", "8", "--hop", "2",
                 "--any-model", "--labels", str(labels)]
    assert main(["embed", *arguments, "--out", str(tmp_path / "ds"), "--ray", "--workers", "2", "--slice", "30"]) == 0
    captured = capsys.readouterr()
    progress = [line for line in captured.err.splitlines() if line.startswith("embedding on Ray:")]
    assert progress and all("windows/s" in line and "ETA" in line for line in progress)
    assert progress[-1].endswith("ETA 0:00:00")
    assert "on Ray (2 workers" in captured.out and "RANDOM weights" in captured.out
    assert_same_dataset(load_dataset(tmp_path / "ds"), serial)
    # Ray-only options without --ray: refused, naming them.
    assert main(["embed", *arguments, "--out", str(tmp_path / "other"), "--resume", "--workers", "2"]) == 1
    assert "--resume, --workers apply only with --ray" in capsys.readouterr().err


def test_a_damaged_input_stops_the_run_naming_it_and_resume_finishes_it(local_ray, corpus, onnx_model, tmp_path):
    import shutil

    from biomoe_edge.runtime.recording.distributed import ItemError

    damaged = tmp_path / "damaged"
    shutil.copytree(corpus[0], damaged)
    segment = sorted((damaged / "segments").glob("*.npz"))[-1]
    intact = segment.read_bytes()
    with np.load(segment) as data:
        arrays = dict(data)
    arrays["samples"] = arrays["samples"][:-5]  # its index still lists them: found by the worker replaying it
    with open(segment, "wb") as handle:
        np.savez(handle, **arrays)
    inputs = [corpus[1], damaged]
    options = dict(out=tmp_path / "ds", workers=1, slice_s=None, source_options=SOURCE_OPTIONS, **OPTIONS)
    with pytest.raises(ItemError, match=rf"{damaged} \(work item .*{segment.name}: its index lists.*--resume"):
        embed_on_ray(inputs, factory(onnx_model), **options)
    assert not (tmp_path / "ds").exists() and (tmp_path / "ds.work").is_dir()
    segment.write_bytes(intact)
    frame = embed_on_ray(inputs, factory(onnx_model), resume=True, **options)
    assert frame.attrs["metadata"]["summary"]["inputs"][1]["path"] == str(damaged)
    assert len(frame) == sum(entry["rows"] for entry in frame.attrs["metadata"]["summary"]["inputs"]) > 0


def test_workers_the_cluster_cannot_hold_are_refused_before_any_work(local_ray, corpus, onnx_model, tmp_path):
    options = dict(out=tmp_path / "ds", source_options=SOURCE_OPTIONS, **OPTIONS)
    with pytest.raises(ValueError, match=r"--workers 3: the Ray cluster holds 2 .*it has 2 CPUs"):
        embed_on_ray(corpus, factory(onnx_model), workers=3, **options)
    with pytest.raises(ValueError, match="--gpus-per-worker 1: the Ray cluster has 0 GPUs"):
        embed_on_ray(corpus, factory(onnx_model), gpus_per_worker=1, **options)
    assert not (tmp_path / "ds.work").exists() and not (tmp_path / "ds").exists()
