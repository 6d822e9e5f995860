"""The fusion stage on hand-made embedding records: cross-device alignment by window time within the tolerance,
subjects kept apart, missing inputs waited for up to the deadline and then counted by reason (never imputed),
late and duplicate inputs counted, and every prediction equal to the head's graph recomputed in NumPy."""

import numpy as np
import pytest

pytest.importorskip("onnxruntime", reason="heads are served with ONNX Runtime")

from heads_helpers import record, softmax_head, write_head  # noqa: E402

from biomoe_edge.runtime.heads import FusionStage, load_head  # noqa: E402
from biomoe_edge.runtime.records import PredictionRecord  # noqa: E402

INPUTS = ["eda:scalogram", "bvp:spectrogram_psd", "spo2:scalogram"]
CLASSES = ["rest", "mild", "strong"]


class Clock:
    def __init__(self, t=100.0):
        self.t = t

    def __call__(self):
        return self.t


@pytest.fixture
def head(tmp_path):
    folder, w, b = write_head(tmp_path / "head", INPUTS, CLASSES)
    return load_head(folder), w, b


def stage_for(head, clock, **options):
    subjects = {"p1-wrist": "p1", "p1-finger": "p1", "p2-wrist": "p2", "p2-finger": "p2"}
    return FusionStage([head], subjects=subjects, clock=clock, **options)


def test_inputs_from_two_devices_of_one_subject_fuse_by_window_time(head):
    head, w, b = head
    clock = Clock()
    stage = stage_for(head, clock, tolerance_s=0.25)
    eda = record("p1-wrist", "eda", "scalogram", 50.0, arrival=50.3, quality=("gaps",))
    bvp = record("p1-wrist", "bvp", "spectrogram_psd", 50.0, arrival=50.2)
    spo2 = record("p1-finger", "spo2", "scalogram", 50.1, arrival=50.9)  # another device, 0.1 s later on its grid
    assert stage.add([eda, bvp]) == []  # still waiting for the oximeter
    clock.t = 51.5
    (prediction,) = stage.add([spo2])
    assert isinstance(prediction, PredictionRecord)
    expected = softmax_head(w, b, [eda.embedding[None], bvp.embedding[None], spo2.embedding[None]])[0]
    np.testing.assert_allclose(prediction.probabilities, expected, atol=1e-6)
    assert prediction.predicted == CLASSES[int(np.argmax(expected))]
    assert prediction.subject == "p1"
    assert prediction.devices == ("p1-wrist", "p1-finger")
    assert prediction.inputs == tuple(INPUTS)
    assert prediction.modalities == ("eda", "bvp", "spo2")
    assert prediction.quality == ("gaps",)
    assert (prediction.window_start_s, prediction.window_end_s) == (40.0, 50.1)
    assert prediction.arrival_time_s == 50.9 and prediction.emitted_time_s == 51.5
    assert prediction.latency_s == pytest.approx(0.6)
    assert prediction.head == head.identity and prediction.model == eda.model
    assert stage.stats()[0]["predictions"] == 1 and stage.pending == 0


def test_windows_further_apart_than_the_tolerance_are_different_window_times(head):
    head, _, _ = head
    clock = Clock()
    stage = stage_for(head, clock, tolerance_s=0.25, deadline_s=2.0)
    out = stage.add([record("p1-wrist", "eda", "scalogram", 50.0), record("p1-wrist", "bvp", "spectrogram_psd", 50.0),
                     record("p1-finger", "spo2", "scalogram", 50.4)])  # 0.4 s off: not the same window time
    assert out == [] and stage.pending == 2
    clock.t += 2.0
    assert stage.expire() == 2
    stats = stage.stats()[0]
    assert stats["windows_dropped"] == {"input_missing": 2}
    assert stats["missing_inputs"] == {"spo2:scalogram": 1, "eda:scalogram": 1, "bvp:spectrogram_psd": 1}


def test_devices_of_different_subjects_never_fuse(head):
    head, _, _ = head
    clock = Clock()
    stage = stage_for(head, clock)
    out = stage.add([record("p1-wrist", "eda", "scalogram", 50.0), record("p1-wrist", "bvp", "spectrogram_psd", 50.0),
                     record("p2-finger", "spo2", "scalogram", 50.0)])
    assert out == []
    # A device in no [[subjects]] entry is a subject of its own.
    assert stage.subject_of("loner") == "loner"
    (prediction,) = stage.add([record("p2-wrist", "eda", "scalogram", 50.0),
                               record("p2-wrist", "bvp", "spectrogram_psd", 50.0)])
    assert prediction.subject == "p2" and prediction.devices == ("p2-wrist", "p2-finger")


def test_a_missing_input_is_waited_for_up_to_the_deadline_then_counted_never_imputed(head):
    head, _, _ = head
    clock = Clock(10.0)
    stage = stage_for(head, clock, deadline_s=3.0)
    stage.add([record("p1-wrist", "eda", "scalogram", 20.0), record("p1-wrist", "bvp", "spectrogram_psd", 20.0)])
    assert stage.seconds_until_deadline() == pytest.approx(3.0)
    clock.t = 12.9
    assert stage.expire() == 0 and stage.pending == 1  # before the deadline: still waiting
    clock.t = 13.0
    assert stage.expire() == 1 and stage.pending == 0 and stage.seconds_until_deadline() is None
    stats = stage.stats()[0]
    assert stats["predictions"] == 0
    assert stats["windows_dropped"] == {"input_missing": 1}
    assert stats["missing_inputs"] == {"spo2:scalogram": 1}
    # The oximeter's window arriving after the deadline is late: counted, and it opens no new window time.
    assert stage.add([record("p1-finger", "spo2", "scalogram", 20.0)]) == []
    assert stage.stats()[0]["inputs_late"] == 1 and stage.pending == 0


def test_a_window_withheld_for_quality_is_counted_as_withheld(head):
    head, _, _ = head
    clock = Clock(10.0)
    stage = stage_for(head, clock, deadline_s=3.0)
    stage.window_withheld("p1-finger", "spo2", 30.0)  # before any other input of that window time
    stage.add([record("p1-wrist", "eda", "scalogram", 30.0), record("p1-wrist", "bvp", "spectrogram_psd", 30.0)])
    assert stage.pending == 1
    clock.t = 13.0
    stage.expire()
    stats = stage.stats()[0]
    assert stats["windows_dropped"] == {"input_withheld": 1}
    assert stats["missing_inputs"] == {"spo2:scalogram": 1}


def test_a_second_embedding_of_one_input_is_a_duplicate_and_closing_counts_what_waits(head):
    head, _, _ = head
    clock = Clock()
    stage = stage_for(head, clock)
    stage.add([record("p1-wrist", "eda", "scalogram", 60.0), record("p1-finger", "eda", "scalogram", 60.0, seed=1)])
    stats = stage.stats()[0]
    assert stats["inputs_duplicate"] == 1 and stats["pending"] == 1
    assert stage.close() == 1
    assert stage.stats()[0]["windows_dropped"] == {"closed": 1}


def test_head_subjects_restrict_who_a_head_serves(head, tmp_path):
    head, _, _ = head
    stage = FusionStage([head], subjects={"p1-wrist": "p1", "p1-finger": "p1", "p2-wrist": "p2", "p2-finger": "p2"},
                        head_subjects=[["p2"]], clock=Clock())
    p1 = [record("p1-wrist", "eda", "scalogram", 5.0), record("p1-wrist", "bvp", "spectrogram_psd", 5.0),
          record("p1-finger", "spo2", "scalogram", 5.0)]
    assert stage.add(p1) == [] and stage.pending == 0  # p1 is not served: nothing waits for it
    p2 = [record(r.device.replace("p1", "p2"), r.modality, r.representation, 5.0) for r in p1]
    assert len(stage.add(p2)) == 1


def test_many_window_times_in_one_call_run_the_head_once_per_head_and_keep_order(head):
    head, w, b = head
    stage = stage_for(head, Clock())
    records = []
    for end in (10.0, 11.0, 12.0):
        records += [record("p1-wrist", "eda", "scalogram", end), record("p1-wrist", "bvp", "spectrogram_psd", end),
                    record("p1-finger", "spo2", "scalogram", end)]
    predictions = stage.add(records)
    assert [p.window_end_s for p in predictions] == [10.0, 11.0, 12.0]
    for p, i in zip(predictions, range(3)):
        parts = [records[3 * i + j].embedding[None] for j in range(3)]
        np.testing.assert_allclose(p.probabilities, softmax_head(w, b, parts)[0], atol=1e-6)
    assert len(stage.head_time_s) == 1  # one graph run for the three window times


def test_bad_settings_are_refused(head):
    head, _, _ = head
    with pytest.raises(ValueError, match="deadline_s"):
        FusionStage([head], deadline_s=0)
    with pytest.raises(ValueError, match="tolerance_s"):
        FusionStage([head], tolerance_s=float("nan"))
    with pytest.raises(ValueError, match="2 values for 1 heads"):
        FusionStage([head], tolerance_s=[0.1, 0.2])
