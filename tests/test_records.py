"""Records round-trip through their JSON form, and refuse shapes that do not fit."""

import json

import numpy as np
import pytest

from biomoe_edge.runtime.records import EmbeddingRecord, PredictionRecord, record_from_dict


def _prediction(**overrides):
    fields = dict(subject="s01", devices=("h10", "sense"), window_start_s=10.0, window_end_s=20.0,
                  probabilities=[0.2, 0.7, 0.1], classes=("rest", "low", "high"), inputs=("ecg:scalogram", "bvp:waveform"),
                  modalities=("ecg", "bvp"), quality=("flat",), head={"kind": "head", "sha256": "a" * 64},
                  arrival_time_s=20.1, emitted_time_s=20.4)
    fields.update(overrides)
    return PredictionRecord(**fields)


def test_prediction_round_trips_through_json_and_names_its_class():
    record = _prediction()
    data = json.loads(json.dumps(record.to_dict()))
    assert data["record"] == "prediction" and data["predicted"] == "low"
    back = record_from_dict(data)
    assert isinstance(back, PredictionRecord)
    np.testing.assert_array_equal(back.probabilities, record.probabilities)
    assert (back.classes, back.devices, back.inputs, back.quality) == (record.classes, record.devices, record.inputs,
                                                                      record.quality)
    assert back.latency_s == pytest.approx(0.3)


def test_embedding_records_are_told_apart_from_predictions():
    record = EmbeddingRecord("d", "bvp", "scalogram", 0.0, 10.0, np.arange(192, dtype=np.float32))
    back = record_from_dict(json.loads(json.dumps(record.to_dict())))
    assert isinstance(back, EmbeddingRecord)
    np.testing.assert_array_equal(back.embedding, record.embedding)


def test_prediction_refuses_probabilities_that_do_not_match_the_classes():
    with pytest.raises(ValueError, match="one value per class"):
        _prediction(probabilities=[0.5, 0.5])
    with pytest.raises(ValueError, match="one value per class"):
        _prediction(probabilities=[], classes=())
