"""A CSV time column in another unit than seconds is refused with the likely unit, and read with --time-unit;
HeartPy's real recordings are inputs by the names inspect-signal takes (heartpy:data2.csv)."""

import numpy as np
import pytest

heartpy = pytest.importorskip("heartpy", reason="HeartPy ships the real PPG recordings")

from biomoe_edge.runtime.recording import SignalFileError, open_source  # noqa: E402
from biomoe_edge.runtime.recording.sources import check_plausible_rate  # noqa: E402

DATA2 = heartpy.__path__[0] + "/data/data2.csv"


def test_a_millisecond_time_column_read_as_seconds_is_refused_naming_the_unit():
    # HeartPy's data2.csv: an Arduino's millisecond timer. Read as seconds it is 0.117 Hz BVP over 35 hours.
    with pytest.raises(SignalFileError, match=r"column 'timer' read in seconds gives 0.11\d+ Hz, which no bvp wearable "
                                              r"samples at \(expected 4-64000 Hz\); in milliseconds it gives 11\d.\d+ "
                                              r"Hz: pass --time-unit ms"):
        open_source(DATA2, channel_map="hr:bvp", time_column="timer")


def test_the_unit_given_reads_it_at_heartpys_own_rate():
    recording = open_source(DATA2, channel_map="hr:bvp", time_column="timer", time_unit="ms")
    timer = heartpy.get_data(DATA2, column_name="timer")
    expected_fs = heartpy.get_samplerate_mstimer(timer)  # HeartPy's own reading of its file
    ((_, info),) = recording.streams.items()
    assert info.description["sample_rate_hz"] == pytest.approx(expected_fs, rel=1e-3)
    times, values = recording.stream("data2", "bvp")
    np.testing.assert_allclose(times, (timer - timer[0]) / 1000.0)
    np.testing.assert_array_equal(values[:, 0], heartpy.get_data(DATA2, column_name="hr"))


def test_microseconds_and_too_fast_rates_are_named_too():
    # A column in microseconds read as milliseconds, and one in seconds said to be in milliseconds.
    with pytest.raises(SignalFileError, match=r"gives 0.25 Hz.*in microseconds it gives 250 Hz: pass --time-unit us"):
        check_plausible_rate(0.25, "ecg", what="x.csv: column 't' read in milliseconds", unit="ms")
    with pytest.raises(SignalFileError, match=r"gives 25000 Hz, which no resp wearable samples at \(expected "
                                              r"1-16000 Hz\); in seconds it gives 25 Hz: pass --time-unit s"):
        check_plausible_rate(25000.0, "resp", what="x.csv: column 't' read in milliseconds", unit="ms")
    with pytest.raises(SignalFileError, match=r"gives 1e-09 Hz, which no ecg wearable samples at \(expected "
                                              r"6.25-100000 Hz\)$"):  # no unit makes it plausible: no hint
        check_plausible_rate(1e-9, "ecg", what="x.csv")
    check_plausible_rate(4.0, "eda", what="x.csv")  # an Empatica E4's EDA


def test_heartpy_names_open_as_bvp_at_the_recordings_rate():
    recording = open_source("heartpy:data.csv")
    ((key, info),) = recording.streams.items()
    assert key == ("data", "bvp") and info.description["sample_rate_hz"] == 100.0  # HeartPy's documented rate
    np.testing.assert_array_equal(recording.stream(*key)[1][:, 0], heartpy.get_data(heartpy.__path__[0] + "/data/data.csv"))
    with pytest.raises(SignalFileError, match=r"heartpy:nope.csv: unknown HeartPy recording 'nope.csv'"):
        open_source("heartpy:nope.csv")
