"""``Pipeline.run_batch``: one call from jobs to embedding records and predictions, with nothing kept between
calls. A batch's bridge predictions are those of its own windows, computed on the engine's taps of the run that
embedded them (checked against ONNX Runtime run on the engine's taps of ``render_windows`` of the same windows); a
head's predictions come with the batch that completed their window time."""

import numpy as np
import pytest

pytest.importorskip("onnxruntime", reason="heads and bridges are served with ONNX Runtime")

from heads_helpers import PooledEngine, device_packets, native_description, softmax_head, write_head  # noqa: E402
from test_heads_bridge import TAP, TAP_DIM, write_bridge  # noqa: E402

from biomoe_edge.runtime.gateway_config import HeadConfig  # noqa: E402
from biomoe_edge.runtime.pipeline import BatchResult, ModalitySettings, Pipeline, PipelineSettings  # noqa: E402
from biomoe_edge.runtime.transforms.render import render_windows  # noqa: E402
from biomoe_edge.vocabulary import WindowSpec  # noqa: E402


def _settings(*heads, representations=("scalogram",)):
    return PipelineSettings(max_batch=4, deadline_s=0.0, max_queue=1024,
                            windows=ModalitySettings(WindowSpec(4.0, 1.0), representations),
                            subjects={"p1-ppg": "p1", "p1-eda": "p1"}, heads=tuple(heads))


def _feed(pipeline, device, rates, seconds=12.0):
    pipeline.add_device(device, native_description(rates))
    for arrival, name, payload in device_packets(device, rates, seconds, start_s=100.0):
        pipeline.handle_notification(name, payload, arrival)
    pipeline.flush_device(device)


def test_each_batch_returns_its_own_bridge_predictions(tmp_path):
    import onnxruntime as ort

    bridge = write_bridge(tmp_path / "bridge", inputs=("bvp:scalogram",), window_s=4.0)
    engine = PooledEngine(max_batch=4, taps={TAP: TAP_DIM})
    pipeline = Pipeline(_settings(HeadConfig(path=bridge, kind="bridge")), engine)
    _feed(pipeline, "p1-ppg", {"bvp": 64.0})
    session = ort.InferenceSession(str(bridge / "bridge.onnx"), providers=["CPUExecutionProvider"])
    batches = 0
    while jobs := pipeline.next_batch(flush=True):
        result = pipeline.run_batch(jobs)
        assert isinstance(result, BatchResult)
        batches += 1
        assert len(result.records) == len(result.jobs) == len(jobs)
        assert [p.window_end_s for p in result.predictions] == [r.window_end_s for r in result.records]
        assert all(p.via_bridge for p in result.predictions)
        windows = np.stack([job.window.samples[0] for job in result.jobs])
        _, taps = engine.infer_tapped(render_windows(windows, 64.0, "bvp", "scalogram"), (TAP,))
        expected = session.run(["probabilities"], {f"tap.{TAP}": taps[TAP]})[0]
        np.testing.assert_allclose(np.stack([p.probabilities for p in result.predictions]), expected, atol=1e-5)
    assert batches >= 2
    # Nothing left behind for a later call.
    assert pipeline.run_batch([]).predictions == []


def test_a_head_prediction_comes_with_the_batch_that_completes_its_window_time(tmp_path):
    folder, w, b = write_head(tmp_path / "head", ["bvp:scalogram", "eda:scalogram"], ["a", "b"], window_length_s=4.0)
    pipeline = Pipeline(_settings(HeadConfig(path=folder, kind="head")), PooledEngine(max_batch=4))
    _feed(pipeline, "p1-ppg", {"bvp": 64.0})
    _feed(pipeline, "p1-eda", {"eda": 8.0})
    embeddings: dict = {}
    predictions = []
    while jobs := pipeline.next_batch(flush=True):
        result = pipeline.run_batch(jobs)
        for record in result.records:
            embeddings[(record.modality, record.window_end_s)] = record.embedding
        for prediction in result.predictions:
            # Both inputs of this window time were embedded by now, in this batch or an earlier one.
            parts = [embeddings[(m, prediction.window_end_s)][None] for m in ("bvp", "eda")]
            np.testing.assert_allclose(prediction.probabilities[None], softmax_head(w, b, parts), atol=1e-5)
        predictions += result.predictions
    assert len(predictions) == len({end for (m, end) in embeddings if m == "bvp"}) > 0
    assert pipeline.served_classes() == ("a", "b")


def test_fallback_stand_ins_come_with_the_batch_that_settles_them(tmp_path):
    """A head on ECG whose strap is absent, a fallback bridge on PPG: each batch holds the bridge's predictions of
    its windows and returns, in its own result, those whose head deadline passed; nothing is handed on later but
    through ``settle_fallbacks`` (the worker's call between batches) and ``close_predictions``."""
    import json

    from biomoe_edge.manifest import sha256_file

    head, _, _ = write_head(tmp_path / "ecg-head", ["ecg:scalogram"], ["rest", "moderate", "high"],
                            window_length_s=4.0)
    bridge = write_bridge(tmp_path / "ecg-on-bvp", inputs=("bvp:scalogram",), window_s=4.0)
    manifest = json.loads((bridge / "bridge.json").read_text())
    manifest["head"] = {"path": str(head), "sha256": sha256_file(head / "head.onnx")}
    (bridge / "bridge.json").write_text(json.dumps(manifest))
    now = [0.0]
    entry = HeadConfig(path=head, kind="head", deadline_s=2.0, fallback=(bridge,))
    pipeline = Pipeline(_settings(entry), PooledEngine(max_batch=4, taps={TAP: TAP_DIM}), clock=lambda: now[0])
    _feed(pipeline, "p1-ppg", {"bvp": 64.0})
    first = pipeline.run_batch(pipeline.next_batch(flush=True))
    assert first.records and first.predictions == []  # held: the head has until its deadline
    now[0] += 3.0
    second = pipeline.run_batch(pipeline.next_batch(flush=True))
    # The first batch's windows, answered by the bridge standing in for the head, in the second batch's result.
    assert [p.window_end_s for p in second.predictions] == [r.window_end_s for r in first.records]
    assert all(p.via_bridge and p.head["fallback_for"]["path"] == str(head.resolve()) for p in second.predictions)
    assert pipeline.run_batch([]).predictions == []  # the second batch's stand-ins still wait for their deadline
    now[0] += 3.0
    assert [p.window_end_s for p in pipeline.settle_fallbacks()] == [r.window_end_s for r in second.records]
    while jobs := pipeline.next_batch(flush=True):
        pipeline.run_batch(jobs)
    now[0] += 3.0
    due = pipeline.close_predictions()
    assert all(p.via_bridge for p in due)
    (stats,) = [s for s in pipeline.heads_stats() if s.get("kind") == "fallback"]
    assert stats["predictions_via_bridge"] == len(first.records) + len(second.records) + len(due)
