"""Records for sink tests (a plain helper module, imported by the sink tests)."""

import numpy as np

from biomoe_edge.runtime.records import EmbeddingRecord


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
