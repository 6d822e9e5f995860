"""demo --head says why live predictions were not scored: a window across a class change, or a simulated class the
head does not have (then it says the demo scores only heads of the simulated task), never one for the other."""

from types import SimpleNamespace

import pytest

pytest.importorskip("neurokit2", reason="simulated sessions")

from biomoe_edge.commands.demo import predictions_line  # noqa: E402
from biomoe_edge.commands.demo_head import live_accuracy  # noqa: E402
from biomoe_edge.simulated_sessions import simulate_session  # noqa: E402


def _prediction(start_s, predicted="rest"):
    return SimpleNamespace(subject="sim-01", window_start_s=start_s, window_end_s=start_s + 10.0,
                           devices=("wrist",), predicted=predicted)


def _report(score, count):
    return {"predictions": {"count": count, "per_class": {}, "latency_ms": {"p50": None}, "heads": []},
            "live_accuracy": score}


@pytest.fixture(scope="module")
def session():
    return simulate_session(1, modalities=("eda",), block_s=20.0)


def test_windows_of_classes_the_head_lacks_are_counted_and_explained(session):
    first = session.labels[0]
    inside = [_prediction(first.start_s + 2.0), _prediction(first.start_s + 5.0)]
    across = [_prediction(first.end_s - 5.0)]  # half in the first block, half in the second
    score = live_accuracy(inside + across, [session], {"sim-01": {"wrist": 0.0}}, ("pain", "no_pain"))
    assert score["windows_scored"] == 0
    assert score["not_scored_by_reason"] == {"not_a_head_class": 2, "class_changes": 1}
    assert score["simulated_classes_not_in_head"] == [first.label]
    line = predictions_line(_report(score, 3))
    assert "no window scored (window spans a class change 1, simulated class not the head's 2)" in line
    assert f"the simulated task's classes ['{first.label}'] are not among the head's ['pain', 'no_pain']" in line


def test_a_head_of_the_simulated_classes_is_scored_and_class_changes_named(session):
    first = session.labels[0]
    classes = sorted({interval.label for interval in session.labels})
    score = live_accuracy([_prediction(first.start_s + 2.0, first.label), _prediction(first.end_s - 5.0)],
                          [session], {"sim-01": {"wrist": 0.0}}, classes)
    assert score["windows_scored"] == 1 and score["not_scored_by_reason"] == {"class_changes": 1}
    line = predictions_line(_report(score, 2))
    assert "(1 not scored: window spans a class change 1)" in line and "not among the head's" not in line
