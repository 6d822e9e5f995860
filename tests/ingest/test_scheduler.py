"""BatchScheduler: full or deadline-due batches, bounded queue dropping the oldest, stale jobs, asyncio wait."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from biomoe_edge.runtime.ingest import Ingest, IngestConfig, StreamKey, Window
from biomoe_edge.runtime.scheduler import BatchScheduler, group_for_render


def _window(device="d", modality="bvp", index=0, withheld=False, fs=64.0):
    return Window(StreamKey(device, modality), float(index), index + 10.0, np.zeros((1, 8)), fs, (), withheld, 0.0, index)


def test_a_full_batch_goes_at_once_a_partial_one_at_its_deadline():
    scheduler = BatchScheduler(max_batch=4, deadline_s=0.05, max_queue=16)
    scheduler.submit(_window(index=0), ("spectrogram_psd", "scalogram"), now=10.0)
    assert scheduler.next_batch(10.01) == []
    assert scheduler.seconds_until_ready(10.01) == pytest.approx(0.04)
    scheduler.submit(_window(index=1), ("spectrogram_psd", "scalogram"), now=10.02)
    batch = scheduler.next_batch(10.02)  # full: released before the deadline
    assert [(j.window.index, j.representation) for j in batch] == [(0, "spectrogram_psd"), (0, "scalogram"), (1, "spectrogram_psd"), (1, "scalogram")]
    scheduler.submit(_window(index=2), ("recurrence",), now=10.03)
    assert scheduler.next_batch(10.0799) == []
    assert [j.window.index for j in scheduler.next_batch(10.08)] == [2]
    assert scheduler.seconds_until_ready(10.08) is None
    stats = scheduler.stats()
    assert (stats.jobs_submitted, stats.jobs_batched, stats.jobs_queued, stats.batches) == (5, 5, 0, 2)


def test_overflow_drops_the_oldest_and_counts_jobs_and_windows_per_stream():
    scheduler = BatchScheduler(max_batch=2, deadline_s=1.0, max_queue=5)
    for index in range(4):  # 4 windows x 2 representations = 8 jobs into a queue of 5
        scheduler.submit(_window(modality="ecg" if index % 2 else "bvp", index=index), ("spectrogram_psd", "waveform"), now=float(index))
    assert len(scheduler) == 5
    stats = scheduler.stats()
    # dropped: window 0 (bvp) both jobs, window 1 (ecg) its first job
    assert stats.jobs_dropped == {StreamKey("d", "bvp"): {"scheduler_overflow": 2}, StreamKey("d", "ecg"): {"scheduler_overflow": 1}}
    assert stats.windows_dropped == {StreamKey("d", "bvp"): {"scheduler_overflow": 1}, StreamKey("d", "ecg"): {"scheduler_overflow": 1}}
    remaining = scheduler.flush(now=4.0) + scheduler.flush(now=4.0) + scheduler.flush(now=4.0)
    assert [(j.window.index, j.representation) for j in remaining] == [(1, "waveform"), (2, "spectrogram_psd"), (2, "waveform"), (3, "spectrogram_psd"), (3, "waveform")]


def test_stale_jobs_are_dropped_instead_of_run_late():
    scheduler = BatchScheduler(max_batch=8, deadline_s=0.1, max_queue=64, max_age_s=0.5)
    scheduler.submit(_window(index=0), ("scalogram",), now=0.0)
    scheduler.submit(_window(index=1), ("scalogram",), now=0.45)
    assert [j.window.index for j in scheduler.next_batch(0.6)] == [1]
    assert scheduler.stats().jobs_dropped == {StreamKey("d", "bvp"): {"stale": 1}}


def test_withheld_windows_and_bad_arguments_are_refused():
    scheduler = BatchScheduler(max_batch=2, deadline_s=0.1, max_queue=4)
    with pytest.raises(ValueError, match="withheld"):
        scheduler.submit(_window(withheld=True), ("scalogram",), now=0.0)
    with pytest.raises(ValueError, match="unknown representation"):
        scheduler.submit(_window(), ("mel",), now=0.0)
    with pytest.raises(ValueError, match="max_queue"):
        BatchScheduler(max_batch=8, deadline_s=0.1, max_queue=4)
    with pytest.raises(ValueError, match="max_batch"):
        BatchScheduler(max_batch=0, deadline_s=0.1, max_queue=4)


@settings(max_examples=60, deadline=None)
@given(
    events=st.lists(st.tuples(st.booleans(), st.integers(1, 3), st.floats(0.0, 0.2)), max_size=80),
    max_batch=st.integers(1, 6),
    extra=st.integers(0, 10),
)
def test_batches_are_fifo_never_leave_an_overdue_job_and_the_queue_stays_bounded(events, max_batch, extra):
    deadline = 0.05
    scheduler = BatchScheduler(max_batch=max_batch, deadline_s=deadline, max_queue=max_batch + extra)
    now, index, released = 0.0, 0, []
    reps = ("spectrogram_psd", "scalogram", "recurrence")
    for is_submit, count, dt in events:
        now += dt
        if is_submit:
            scheduler.submit(_window(index=index), reps[:count], now)
            index += 1
        else:
            batch = scheduler.next_batch(now)
            assert len(batch) <= max_batch
            if len(batch) < max_batch:  # a short batch takes everything; no batch only when none is due
                assert len(scheduler) == 0 or (not batch and 0 < scheduler.seconds_until_ready(now) <= deadline + 1e-9)
            released += [(job.window.index, reps.index(job.representation)) for job in batch]
        assert len(scheduler) <= scheduler.max_queue
        stats = scheduler.stats()
        assert stats.jobs_submitted == stats.jobs_batched + stats.jobs_queued + stats.total_jobs_dropped()
    assert released == sorted(released) and len(set(released)) == len(released)


async def test_wait_batch_wakes_on_a_full_batch_and_on_the_deadline():
    scheduler = BatchScheduler(max_batch=2, deadline_s=0.05, max_queue=8)
    loop = asyncio.get_running_loop()
    waiter = asyncio.ensure_future(scheduler.wait_batch(loop.time))
    await asyncio.sleep(0.01)
    assert not waiter.done()
    scheduler.submit(_window(index=0), ("spectrogram_psd", "scalogram"), now=loop.time())
    batch = await asyncio.wait_for(waiter, 1.0)
    assert len(batch) == 2
    submitted = loop.time()
    scheduler.submit(_window(index=1), ("waveform",), now=submitted)
    batch = await asyncio.wait_for(scheduler.wait_batch(loop.time), 1.0)
    assert [j.window.index for j in batch] == [1] and loop.time() - submitted >= 0.05


def test_group_for_render_keeps_batch_order_inside_each_group():
    scheduler = BatchScheduler(max_batch=8, deadline_s=0.0, max_queue=8)
    scheduler.submit(_window(modality="bvp", index=0), ("scalogram", "recurrence"), now=0.0)
    scheduler.submit(_window(modality="ecg", index=0, fs=250.0), ("scalogram",), now=0.0)
    scheduler.submit(_window(modality="bvp", index=1), ("scalogram",), now=0.0)
    groups = group_for_render(scheduler.next_batch(0.0))
    assert list(groups) == [("bvp", 64.0), ("ecg", 250.0)]
    assert list(groups[("bvp", 64.0)]) == ["scalogram", "recurrence"]
    assert [j.window.index for j in groups[("bvp", 64.0)]["scalogram"]] == [0, 1]
    assert [j.window.index for j in groups[("bvp", 64.0)]["recurrence"]] == [0]
    assert list(groups[("ecg", 250.0)]) == ["scalogram"]


def test_burst_through_ingest_and_a_slow_engine_keeps_samples_and_windows_accounted():
    ingest = Ingest()
    key = ingest.add_stream(("wrist", "bvp"), 64.0, config=IngestConfig(10.0, 1.0))
    scheduler = BatchScheduler(max_batch=4, deadline_s=0.1, max_queue=8)
    t = np.arange(64 * 60) / 64.0  # a 60 s burst after a reconnect
    ingest.push(key, np.sin(2 * np.pi * t), t)
    windows = ingest.pop_windows()
    for window in windows:
        scheduler.submit(window, ("spectrogram_psd", "scalogram"), now=100.0)
    batch = scheduler.next_batch(100.0)
    assert [(j.window.index, j.representation) for j in batch][:2] == [(47, "spectrogram_psd"), (47, "scalogram")]
    stats = scheduler.stats()
    assert stats.windows_dropped == {key: {"scheduler_overflow": 47}}
    account = ingest.account(key)
    assert account.samples_windowed == len(t) and account.samples_pending == 0 and account.samples_dropped == {}


def test_drops_are_logged_once_per_reason(caplog):
    scheduler = BatchScheduler(max_batch=1, deadline_s=0.0, max_queue=2)
    with caplog.at_level("WARNING", logger="biomoe_edge.runtime.scheduler"):
        for index in range(50):
            scheduler.submit(_window(index=index), ("scalogram",), now=float(index))
    assert sum(scheduler.stats().jobs_dropped[StreamKey("d", "bvp")].values()) == 48
    assert len([r for r in caplog.records if "scheduler_overflow" in r.getMessage()]) == 1


def test_wait_batch_works_from_one_event_loop_after_another():
    scheduler = BatchScheduler(max_batch=1, deadline_s=0.0, max_queue=4)

    async def wait_then_submit(index):
        waiter = asyncio.ensure_future(scheduler.wait_batch())
        await asyncio.sleep(0.01)  # the waiter is now blocked on the wake-up event of this loop
        scheduler.submit(_window(index=index), ("scalogram",), now=0.0)
        return await asyncio.wait_for(waiter, 1.0)

    for index in range(2):  # e.g. a gateway stopped and started again, in a new event loop
        assert [j.window.index for j in asyncio.run(wait_then_submit(index))] == [index]
