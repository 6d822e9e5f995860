"""Ten minutes of four streams through ingest and the scheduler: memory stays flat, accounting stays exact."""

from __future__ import annotations

import tracemalloc

import numpy as np

from biomoe_edge.runtime.ingest import Ingest, IngestConfig, StreamKey
from biomoe_edge.runtime.scheduler import BatchScheduler

RATES = {"ecg": 130.0, "bvp": 64.0, "eda": 4.0, "resp": 25.0}


def test_long_streaming_holds_memory_flat_through_an_overloaded_engine():
    ingest = Ingest(max_ready_windows=64)
    keys = {m: ingest.add_stream(StreamKey("soak", m), fs, config=IngestConfig(10.0, 1.0)) for m, fs in RATES.items()}
    scheduler = BatchScheduler(max_batch=4, deadline_s=0.05, max_queue=64)
    ring_bytes = ingest.buffer_bytes
    rng = np.random.default_rng(0)
    tracemalloc.start()
    try:
        for second in range(600):
            for modality, key in keys.items():
                fs = RATES[modality]
                first, stop = round(second * fs), round((second + 1) * fs)
                t = np.arange(first, stop) / fs
                ingest.push(key, np.sin(t) + 0.1 * rng.standard_normal(len(t)), t, lost_before=0)
            for window in ingest.pop_windows():
                scheduler.submit(window, ("spectrogram_psd", "scalogram"), now=float(second))
            scheduler.next_batch(float(second))  # 4 images a second for 8 arriving: it must stay bounded
            if second == 120:
                after_warm_up = tracemalloc.get_traced_memory()[0]
        grown = tracemalloc.get_traced_memory()[0] - after_warm_up
    finally:
        tracemalloc.stop()
    assert grown < 64 * 1024, f"memory grew by {grown} bytes over 8 minutes"
    assert ingest.buffer_bytes == ring_bytes
    for key in keys.values():
        account = ingest.account(key)
        assert account.windows_emitted == 591
        assert account.samples_pending < RATES[key.modality] * 1.0 + 1
        assert account.samples_received == account.samples_windowed + account.samples_pending
    stats = scheduler.stats()
    assert len(scheduler) == 60 and stats.jobs_batched == 4 * 591  # one batch a second once windows come
    assert stats.total_jobs_dropped() == 4 * 591 * 2 - 60 - stats.jobs_batched
