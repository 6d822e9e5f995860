"""Exact accounting under random push / gap / clock-jump / late / NaN / garbage / restart / pop sequences.

Every pushed sample carries a unique random value (its fingerprint). With the model rate equal to the input
rate, windows hold the slot values themselves, so the set of samples that entered a window can be read off
the windows independently of the code's counters.
"""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from biomoe_edge.runtime.ingest import Ingest, IngestConfig, IngestError, QualityConfig, StreamKey

operations = st.lists(
    st.one_of(
        st.tuples(st.just("push"), st.integers(1, 90), st.floats(0.0, 0.3)),
        st.tuples(st.just("block"), st.integers(1, 40), st.integers(0, 30)),  # reassembled: lost_before known
        st.tuples(st.just("gap"), st.floats(0.05, 3.0)),
        st.tuples(st.just("jump"), st.floats(-40.0, -1.5)),  # beyond late_tolerance_s (1 s): a clock jump
        st.tuples(st.just("jump"), st.floats(2.0, 60.0)),  # beyond max_gap_fill_s (1 s): a leap
        st.tuples(st.just("late"), st.integers(1, 20)),
        st.tuples(st.just("garbage"), st.integers(0, 12)),
        st.tuples(st.just("lost"), st.integers(0, 50)),
        st.just(("pop",)),
        st.just(("restart",)),
    ),
    max_size=40,
)


def _assert_balanced(account):
    dropped = sum(account.samples_dropped.values())
    assert account.samples_received == account.samples_windowed + account.samples_pending + dropped
    assert all(count > 0 for count in account.samples_dropped.values())


@settings(max_examples=70, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    ops=operations,
    fs=st.sampled_from([4.0, 10.0, 25.0]),
    length_s=st.sampled_from([0.5, 1.0, 2.0]),
    hop_s=st.sampled_from([0.25, 0.5, 1.0, 3.0]),
    seed=st.integers(0, 2**31 - 1),
)
# A jump back, then a block and re-sent data on the new timeline (found by hypothesis in review).
@example(ops=[("push", 1, 0.0), ("jump", -2.0), ("block", 1, 0), ("late", 2)], fs=4.0, length_s=0.5, hop_s=0.25, seed=0)
def test_received_equals_windowed_plus_pending_plus_dropped_at_every_step(ops, fs, length_s, hop_s, seed):
    rng = np.random.default_rng(seed)
    ingest = Ingest(max_ready_windows=100_000)
    config = IngestConfig(length_s, hop_s, model_rate_hz=fs, quality=QualityConfig(action="flag"))
    key = ingest.add_stream(StreamKey("dev", "eda"), fs, config=config)
    t_next, last_pushed = 1000.0 + rng.uniform(0, 5), None
    jumped = False  # after a jump the stream re-anchors: the newest time is the new timeline's, not the max
    real_fingerprints, seen, windows, received, lost = set(), set(), [], 0, 0
    for op in ops:
        if op[0] == "push":
            n, nan_share = op[1], op[2]
            times = t_next + np.arange(n) / fs + rng.uniform(-0.2, 0.2, n) / fs
            values = rng.uniform(1.0, 2.0, n)
            nan = rng.random(n) < nan_share
            values[nan] = np.nan
            real_fingerprints.update(values[~nan].tolist())
            ingest.push(key, values, times)
            received += n
            t_next, last_pushed, jumped = t_next + n / fs, times[-1], False
        elif op[0] == "block":
            n, lost_before = op[1], op[2]
            start = t_next + lost_before / fs
            times = start + np.arange(n) / fs + rng.uniform(-0.4, 0.4, n) / fs  # clock-fit jitter
            values = rng.uniform(1.0, 2.0, n)
            real_fingerprints.update(values.tolist())
            ingest.push(key, values, times, lost_before=lost_before)
            received += n
            lost += lost_before
            newest = times[-1] if jumped or last_pushed is None else max(times[-1], last_pushed)
            t_next, last_pushed, jumped = start + n / fs, newest, False
        elif op[0] == "gap" and last_pushed is not None:
            t_next = last_pushed + 1 / fs + op[1]
        elif op[0] == "jump" and last_pushed is not None:
            t_next, jumped = last_pushed + op[1], True
        elif op[0] == "late" and last_pushed is not None:  # re-sent data, at most 0.9 s old
            times = last_pushed - np.linspace(0.0, 0.9, op[1])[::-1]
            values = rng.uniform(5.0, 6.0, op[1])  # never expected in a window
            ingest.push(key, values, times)
            received += op[1]
        elif op[0] == "garbage":
            try:
                ingest.push(key, np.zeros((op[1], 3)), np.arange(op[1], dtype=float))
            except IngestError:
                received += op[1]
            else:
                raise AssertionError("a 3-channel push into a 1-channel stream was accepted")
        elif op[0] == "lost":
            ingest.mark_lost(key, op[1])
            lost += op[1]
        elif op[0] == "pop":
            windows += ingest.pop_windows()
        elif op[0] == "restart":
            ingest.restart(key)
            last_pushed = None  # the next push starts the stream afresh
        account = ingest.account(key)
        _assert_balanced(account)
        assert account.samples_received == received
        assert sum(account.samples_lost.values()) == lost
    windows += ingest.pop_windows()
    for w in windows:
        assert w.samples.shape == (1, round(length_s * fs)) and np.isfinite(w.samples).all()
        grid = (w.start_s - ingest._anchors["dev"]) / hop_s
        assert abs(grid - round(grid)) < 1e-6 and round(grid) == w.index
        seen.update(w.samples[0].tolist())
    account = ingest.account(key)
    assert account.samples_windowed == len(real_fingerprints & seen)
    assert account.windows_emitted == len(windows)
    assert not any(5.0 <= v <= 6.0 for v in seen)  # late samples never entered a window


@settings(max_examples=40, deadline=None)
@given(
    chunks=st.lists(st.tuples(st.sampled_from(["bvp", "ecg"]), st.integers(1, 400), st.floats(-3.0, 3.0)), max_size=25),
    max_ready=st.integers(1, 8),
)
def test_two_resampled_streams_with_a_small_ready_queue_stay_balanced(chunks, max_ready):
    ingest = Ingest(max_ready_windows=max_ready)
    rates = {"bvp": 55.0, "ecg": 130.0}
    keys = {m: ingest.add_stream(("dev", m), fs, config=IngestConfig(2.0, 0.5)) for m, fs in rates.items()}
    clocks = {"bvp": 0.0, "ecg": 0.3}
    for modality, n, shift in chunks:
        fs = rates[modality]
        times = clocks[modality] + np.arange(n) / fs
        ingest.push(keys[modality], np.sin(times), times)
        clocks[modality] = times[-1] + 1 / fs + (shift if abs(shift) > 1.0 else 0.0)
        for account in ingest.accounts().values():
            _assert_balanced(account)
        assert ingest.windows_ready <= max_ready
        for w in ingest.pop_windows(max_windows=1):
            assert w.samples.shape == (1, round(2.0 * w.fs)) and np.isfinite(w.samples).all()
