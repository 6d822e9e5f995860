"""Quality gating and faults: gaps, NaN, flat line, saturation, clock jumps, late data, bursts, garbage.

Expected counts are worked out by hand from the scenario (sample rate x seconds), not read from the code.
"""

from __future__ import annotations

import logging

import numpy as np
import pytest

from biomoe_edge.runtime.ingest import (
    ChannelCountError,
    DuplicateStreamError,
    Ingest,
    IngestConfig,
    IngestError,
    QualityConfig,
    SampleDtypeError,
    SampleShapeError,
    StreamKey,
    TimestampError,
    UnknownStreamError,
)

FS = 100.0


def _stream(quality=None, **config):
    ingest = Ingest()
    config.setdefault("model_rate_hz", FS)  # no resampling: window samples are the slots themselves
    key = ingest.add_stream(StreamKey("dev", "ecg"), FS, config=IngestConfig(quality=quality or QualityConfig(), **config))
    return ingest, key


def _times(t0, t1):
    return np.arange(round(t0 * FS), round(t1 * FS)) / FS


def _check_balanced(account):
    assert account.samples_received == account.samples_windowed + account.samples_pending + sum(account.samples_dropped.values())


def test_lost_packets_become_gaps_interpolated_and_measured():
    ingest, key = _stream()
    t = _times(0, 30)
    keep = np.ones(len(t), bool)
    keep[1500:1520] = False  # a lost 0.2 s packet run at 15.00..15.19 s
    ingest.push(key, 2.0 * t[keep], t[keep])
    ingest.mark_lost(key, 20)
    windows = ingest.pop_windows()
    assert [w.index for w in windows] == list(range(21))
    for w in windows:
        covers_gap = w.start_s <= 15.0 and w.end_s >= 15.2
        assert w.gap_fraction == pytest.approx(0.02 if covers_gap else 0.0)
        assert w.quality == () and not w.withheld
        # linear interpolation of a ramp is exact, also for the window that opens inside the hole
        # (interpolated from the last real sample before the window)
        np.testing.assert_allclose(w.samples[0], 2.0 * (w.start_s + np.arange(1000) / FS))
    account = ingest.account(key)
    assert (account.samples_received, account.samples_windowed, account.samples_pending) == (2980, 2980, 0)
    assert account.samples_lost == {"packet_loss": 20} and account.samples_dropped == {}
    assert account.events == {"gap_filled": 1}


def test_too_many_gaps_withholds_with_the_reason():
    ingest, key = _stream(QualityConfig(max_gap_fraction=0.05))
    t = _times(0, 12)
    keep = (t < 5.0) | (t >= 5.9)  # a 0.9 s hole: 9 % of a 10 s window
    ingest.push(key, np.sin(t[keep]), t[keep])
    windows = ingest.pop_windows()
    assert [(w.index, w.quality, w.withheld) for w in windows] == [(0, ("gaps",), True), (1, ("gaps",), True), (2, ("gaps",), True)]
    assert windows[0].gap_fraction == pytest.approx(0.09)
    assert np.isfinite(windows[0].samples).all()


def test_nan_samples_are_counted_flagged_and_never_passed_on():
    ingest, key = _stream(QualityConfig(action="flag"))
    t = _times(0, 11)
    x = np.cos(t)
    x[[300, 301, 700]] = [np.nan, np.inf, -np.inf]
    ingest.push(key, x, t)
    windows = ingest.pop_windows()
    assert len(windows) == 2
    for w in windows:
        assert w.quality == ("nonfinite",) and not w.withheld
        assert np.isfinite(w.samples).all()
    assert windows[0].gap_fraction == pytest.approx(0.003)
    np.testing.assert_allclose(windows[0].samples[0, 300], np.cos(3.0), atol=1e-4)  # interpolated neighbour values
    account = ingest.account(key)
    assert account.samples_dropped == {"invalid": 3}
    assert (account.samples_received, account.samples_windowed) == (1100, 1097)
    _check_balanced(account)


def test_nan_gateway_times_are_invalid():
    ingest, key = _stream()
    t = _times(0, 1)
    t[[5, 6]] = np.nan
    ingest.push(key, np.ones(len(t)), t)
    account = ingest.account(key)
    assert account.samples_dropped == {"invalid": 2} and account.samples_pending == 98


def test_flat_line_and_saturation_are_withheld_by_default():
    quality = QualityConfig(saturation_range=(-1.0, 1.0), max_saturated_fraction=0.05)
    ingest, key = _stream(quality, window_length_s=2.0, hop_s=2.0)
    t = _times(0, 6)
    x = 0.5 * np.sin(2 * np.pi * t)
    x[(t >= 2) & (t < 4)] = 0.25  # a detached sensor
    clipped = np.clip(3.0 * np.sin(2 * np.pi * t), -1.0, 1.0)
    x[t >= 4] = clipped[t >= 4]
    ingest.push(key, x, t)
    windows = ingest.pop_windows()
    assert [(w.quality, w.withheld) for w in windows] == [((), False), (("flat",), True), (("saturated",), True)]
    assert ingest.account(key).windows_withheld == 2
    assert ingest.account(key).windows_flagged == {"flat": 1, "saturated": 1}


def test_clock_jump_back_re_anchors_on_the_grid_counts_and_logs_once(caplog):
    ingest, key = _stream()
    with caplog.at_level(logging.WARNING, logger="biomoe_edge.runtime.ingest"):
        ingest.push(key, np.zeros(1550) + np.arange(1550) % 7, _times(0, 15.5))
        assert ingest.account(key).samples_pending == 50  # 15.00..15.49 s: in no window yet
        ingest.push(key, np.arange(2000) % 5, _times(3.0, 23.0))  # gateway time went back 12.5 s
        ingest.push(key, np.arange(1000) % 5, _times(1.5, 11.5))  # and again, 11.5 s back
    windows = ingest.pop_windows()
    # before the first jump windows [0, 10) .. [5, 15); after it [3, 13) .. [13, 23); none yet after the second
    assert [w.start_s for w in windows] == [float(s) for s in [*range(0, 6), *range(3, 14)]]
    account = ingest.account(key)
    assert account.events["clock_jump"] == 2
    # first jump: 50 pending; second jump: 3.00..22.99 all entered windows, nothing pending
    assert account.samples_dropped["clock_jump"] == 50
    # after the second jump: samples 1.50..1.99 precede the grid point 2.0 ("alignment"); 2.0..11.49 pending
    assert account.samples_dropped["alignment"] == 50
    assert account.samples_pending == 950
    _check_balanced(account)
    jump_logs = [r for r in caplog.records if "clock_jump" in r.getMessage()]
    assert len(jump_logs) == 1 and "went back 12.490 s" in jump_logs[0].getMessage()


def test_forward_leap_beyond_the_gap_fill_re_anchors():
    ingest, key = _stream(max_gap_fill_s=1.0)
    ingest.push(key, np.sin(_times(0, 15.5)), _times(0, 15.5))
    ingest.push(key, np.sin(_times(40.25, 52.0)), _times(40.25, 52.0))
    starts = [w.start_s for w in ingest.pop_windows()]
    assert starts == [float(s) for s in [*range(0, 6), 41, 42]]
    account = ingest.account(key)
    assert account.samples_dropped == {"gap": 50, "alignment": 75}
    assert account.events == {"gap": 1}
    _check_balanced(account)


def test_late_samples_are_dropped_and_the_stream_goes_on():
    ingest, key = _stream()
    ingest.push(key, np.sin(_times(0, 12)), _times(0, 12))
    ingest.push(key, np.ones(50), _times(11.5, 12.0))  # re-sent, 0.5 s late
    ingest.push(key, np.sin(_times(11.9, 14.0)), _times(11.9, 14.0))  # 10 late, then new ones
    windows = ingest.pop_windows()
    assert [w.index for w in windows] == [0, 1, 2, 3, 4]
    assert all(w.quality == () for w in windows)
    account = ingest.account(key)
    assert account.samples_dropped == {"late": 60}
    assert (account.samples_received, account.samples_windowed, account.samples_pending) == (1460, 1400, 0)


def test_hop_longer_than_the_window_counts_the_skipped_samples():
    ingest, key = _stream(window_length_s=2.0, hop_s=5.0)
    ingest.push(key, np.sin(_times(0, 20)), _times(0, 20))
    assert [w.start_s for w in ingest.pop_windows()] == [0.0, 5.0, 10.0, 15.0]
    account = ingest.account(key)
    assert account.samples_windowed == 4 * 200
    # 19.99 s stays pending: it would start the window at 20 s if no sample came nearer
    assert account.samples_dropped == {"hop_gap": 2000 - 800 - 1}
    assert account.samples_pending == 1


def test_burst_after_reconnect_is_windowed_in_order_through_a_small_ring():
    ingest, key = _stream()
    ring_capacity = ingest._get(key).ring.capacity
    ingest.push(key, np.sin(_times(0, 12)), _times(0, 12))
    ingest.restart(key, "disconnect")  # the gateway saw the link drop: 12.00..? nothing pending (0)
    burst = _times(30.0, 90.0)  # 60 s buffered on the device, delivered at once
    assert len(burst) > 4 * ring_capacity
    emitted = ingest.push(key, np.sin(burst), burst, arrival_time_s=91.0)
    windows = ingest.pop_windows()
    assert emitted == 51 and [w.start_s for w in windows[3:]] == [float(s) for s in range(30, 81)]
    assert all(w.arrival_time_s == 91.0 for w in windows[3:])
    account = ingest.account(key)
    assert account.samples_dropped == {} and account.samples_windowed == 1200 + 6000
    assert ingest._get(key).ring.capacity == ring_capacity


def test_ready_queue_is_bounded_and_drops_the_oldest_windows():
    ingest = Ingest(max_ready_windows=16)
    key = ingest.add_stream(("dev", "bvp"), 64.0, config=IngestConfig(10.0, 1.0))
    t = np.arange(64 * 70) / 64.0
    assert ingest.push(key, np.sin(t), t) == 61
    windows = ingest.pop_windows()
    assert [w.index for w in windows] == list(range(45, 61))
    account = ingest.account(key)
    assert account.windows_dropped == {"ingest_overflow": 45} and account.windows_emitted == 61
    assert account.samples_windowed == len(t)  # they entered windows; the windows are counted as dropped
    _check_balanced(account)


def test_restart_by_the_caller_drops_pending_with_its_reason():
    ingest, key = _stream()
    ingest.push(key, np.sin(_times(0, 4)), _times(0, 4))
    assert ingest.restart(key, "disconnect") == 400
    assert ingest.account(key).samples_dropped == {"disconnect": 400}


@pytest.mark.parametrize(
    "samples, times, error",
    [
        (np.zeros((10, 2)), np.arange(10.0), ChannelCountError),
        (np.zeros((10, 1, 1)), np.arange(10.0), SampleShapeError),
        (np.array(["a"] * 10), np.arange(10.0), SampleDtypeError),
        (np.zeros(10, dtype=complex), np.arange(10.0), SampleDtypeError),
        ([[1.0], [2.0, 3.0]] + [[0.0]] * 8, np.arange(10.0), SampleShapeError),
        (np.zeros(10), np.arange(9.0), TimestampError),
        (np.zeros(10), np.array(["x"] * 10), TimestampError),
    ],
)
def test_garbage_raises_a_typed_error_and_is_counted(samples, times, error):
    ingest, key = _stream()
    ingest.push(key, np.ones(5), _times(0, 0.05))
    with pytest.raises(error) as info:
        ingest.push(key, samples, times)
    assert isinstance(info.value, IngestError) and isinstance(info.value, ValueError)
    assert str(key) in str(info.value)
    account = ingest.account(key)
    assert account.samples_dropped == {"malformed": 10} and account.samples_received == 15
    _check_balanced(account)
    ingest.push(key, np.ones(5), _times(0.05, 0.1))  # the stream carries on
    assert ingest.account(key).samples_pending == 10


def test_unknown_and_duplicate_streams_and_bad_arguments():
    ingest, key = _stream()
    with pytest.raises(UnknownStreamError, match="dev/ecg"):
        ingest.push(("other", "bvp"), np.zeros(3), np.arange(3.0))
    with pytest.raises(DuplicateStreamError):
        ingest.add_stream(key, FS)
    with pytest.raises(IngestError):
        ingest.mark_lost(key, -1)
    with pytest.raises(ValueError, match="hop_s"):
        IngestConfig(10.0, 0.0)
    with pytest.raises(ValueError, match="withhold_on"):
        QualityConfig(withhold_on=("blurry",))
    with pytest.raises(ValueError, match="unknown modality"):
        StreamKey("dev", "emg")


def test_a_re_anchor_with_nothing_pending_is_still_logged_and_counted(caplog):
    ingest, key = _stream()
    ingest.push(key, np.sin(_times(0, 15)), _times(0, 15))  # windows [0, 10) .. [5, 15): nothing pending
    with caplog.at_level(logging.WARNING, logger="biomoe_edge.runtime.ingest"):
        ingest.push(key, np.sin(_times(100, 101)), _times(100, 101))
    account = ingest.account(key)
    assert account.events == {"gap": 1} and account.samples_dropped == {}
    (record,) = [r for r in caplog.records if ": gap:" in r.getMessage()]
    assert "leapt 85.010 s forward" in record.getMessage() and "0 pending sample(s) dropped" in record.getMessage()


def test_routine_alignment_drops_are_logged_at_info_and_faults_at_warning(caplog):
    ingest, key = _stream()
    with caplog.at_level(logging.INFO, logger="biomoe_edge.runtime.ingest"):
        ingest.push(key, np.sin(_times(0, 15.5)), _times(0, 15.5))
        ingest.push(key, np.sin(_times(1.5, 11.5)), _times(1.5, 11.5))  # back 14 s: a clock jump, then alignment
    levels = {reason: {r.levelno for r in caplog.records if f": {reason}: " in r.getMessage()}
              for reason in ("clock_jump", "alignment")}
    assert ingest.account(key).samples_dropped["alignment"] == 50  # 1.50..1.99 s precede the grid point 2.0 s
    assert levels == {"clock_jump": {logging.WARNING}, "alignment": {logging.INFO}}
