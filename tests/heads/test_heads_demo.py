"""``demo --head`` end to end, on SIMULATED sessions: a head trained on simulated subjects' embeddings (made by the
gateway's own Pipeline with the demo's engine) is served live to emulated wearables (Bumble) playing a held-out
simulated subject; the report has its predictions, the windows given up by reason, and the live accuracy."""

import asyncio
import warnings

import pytest

pytest.importorskip("bumble", reason="the demo's wearables run on Bumble")
pytestmark = pytest.mark.torch
pytest.importorskip("torch", reason="the demo's engine here is the PyTorch engine, and the head is trained with torch")
pytest.importorskip("neurokit2", reason="simulated sessions")
pytest.importorskip("sklearn")

from biomoe_edge.commands.demo import open_demo_engine, predictions_line, run_demo  # noqa: E402
from biomoe_edge.simulated_sessions import simulate_session  # noqa: E402
from biomoe_edge.training.classifiers import HeadOptions  # noqa: E402
from biomoe_edge.training.head_training import train_head  # noqa: E402
from biomoe_edge.training.simulated_dataset import embed_simulated_sessions  # noqa: E402

INPUTS = ["eda:spectrogram_psd", "resp:spectrogram_psd"]


@pytest.fixture(scope="module")
def demo_with_head(tmp_path_factory):
    folder = tmp_path_factory.mktemp("head")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # random weights: said in every output below
        engine = open_demo_engine("pytorch", None, max_batch=8)
    try:
        sessions = [simulate_session(i, modalities=("eda", "resp"), block_s=20) for i in (1, 2)]
        frame = embed_simulated_sessions(sessions, engine, modalities=("eda", "resp"),
                                         representations=("spectrogram_psd",), window_s=4.0, hop_s=2.0)
        train_head("simulated", INPUTS, folder, frame=frame, dataset_sha256="0" * 64, cv="none",
                   options=HeadOptions(epochs=20))
        report, gateway, wearables = asyncio.run(run_demo(
            duration_s=12.0, devices=1, loss=0.0, engine=engine, window_s=4.0, hop_s=1.0, quiet=True, head=folder,
            head_subjects=1, seed=2))
    finally:
        engine.close()
    return report, gateway, wearables


def test_the_head_is_served_to_a_held_out_simulated_subject_across_two_wearables(demo_with_head):
    report, gateway, wearables = demo_with_head
    # Trained on sim-01 and sim-02: the demo plays sim-03, wearing a wristband (EDA) and a chest strap (resp).
    assert sorted(w.name for w in wearables) == ["sim-03-chest", "sim-03-wrist"]
    assert gateway.config.subjects[0].name == "sim-03"
    assert report["settings"]["devices"] == 2  # the wearables that ran, not the generic ones the head replaced
    assert report["settings"]["modalities"] == ["eda", "resp"]  # the head's, not --modalities' default
    predictions = report["predictions"]
    assert predictions["count"] >= 4  # 4 s windows every 1 s over ~12 s, less the wearables' start
    assert sum(predictions["per_class"].values()) == predictions["count"]
    (head,) = predictions["heads"]
    assert head["predictions"] == predictions["count"] and head["pending"] == 0
    # Every window time either became a prediction or is counted with its reason.
    assert set(head["windows_dropped"]) <= {"input_missing", "input_withheld", "closed"}
    lat = predictions["latency_ms"]
    assert 0 < lat["p50"] <= lat["p95"] <= lat["p99"]


def test_the_report_scores_the_live_predictions_and_says_it_is_simulated(demo_with_head):
    report, _, _ = demo_with_head
    score = report["live_accuracy"]
    assert "SIMULATED" in score["note"]
    assert score["windows_scored"] + score["windows_not_scored"] == report["predictions"]["count"]
    assert score["windows_scored"] >= 1
    assert 0.0 <= score["accuracy"] <= 1.0
    assert sum(map(sum, score["confusion_matrix"])) == score["windows_scored"]
    line = predictions_line(report)
    assert "live accuracy" in line and "SIMULATED" in line
