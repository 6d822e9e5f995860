"""Records for sink tests (a plain helper module, imported by the sink tests)."""

import numpy as np

from biomoe_edge.runtime.records import EmbeddingRecord, PredictionRecord


def make_records(n: int, *, seed: int = 0, device: str = "wearable-1") -> list[EmbeddingRecord]:
    rng = np.random.default_rng(seed)
    return [
        EmbeddingRecord(
            device=device, modality=("bvp", "eda")[i % 2], representation=("scalogram", "recurrence")[i % 2],
            window_start_s=100.0 + i, window_end_s=110.0 + i,
            embedding=rng.standard_normal(192).astype(np.float32),
            quality=("flat_line",) if i % 5 == 0 else (),
            model={"sha256": "ab" * 32, "precision": "fp32"}, engine={"kind": "onnxruntime", "device": "cpu"},
            arrival_time_s=110.5 + i, emitted_time_s=110.6 + i,
        )
        for i in range(n)
    ]


def assert_same_records(got, expected):
    assert len(got) == len(expected)
    for a, b in zip(got, expected):
        assert (a.device, a.modality, a.representation, a.quality, a.model, a.engine) == \
               (b.device, b.modality, b.representation, b.quality, b.model, b.engine)
        assert (a.window_start_s, a.window_end_s, a.arrival_time_s, a.emitted_time_s) == \
               (b.window_start_s, b.window_end_s, b.arrival_time_s, b.emitted_time_s)
        np.testing.assert_array_equal(a.embedding, b.embedding)


def make_predictions(n: int, *, seed: int = 0, subject: str = "subject-1") -> list[PredictionRecord]:
    """Prediction records of two heads with different class counts (NPZ must keep them apart)."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        classes = ("no_pain", "pain") if i % 2 == 0 else ("none", "low", "high")
        p = rng.random(len(classes)).astype(np.float32)
        out.append(PredictionRecord(
            subject=subject, devices=("wearable-1", "wearable-2")[: 1 + i % 2], window_start_s=200.0 + i,
            window_end_s=210.0 + i, probabilities=p / p.sum(), classes=classes,
            inputs=("bvp:scalogram", "eda:waveform")[: 1 + i % 2], modalities=("bvp", "eda")[: 1 + i % 2],
            via_bridge=i % 3 == 0, quality=("flat_line",) if i % 4 == 0 else (),
            head={"path": f"/heads/h{i % 2}", "sha256": f"{i % 2}" * 64, "kind": "head"},
            model={"sha256": "ab" * 32, "precision": "fp32", "random_weights": True},
            arrival_time_s=210.5 + i, emitted_time_s=210.7 + i))
    return out


def assert_same_predictions(got, expected):
    assert len(got) == len(expected)
    for a, b in zip(got, expected):
        assert isinstance(a, PredictionRecord)
        assert a.to_dict() == b.to_dict()
