"""The ingest's window grid per subject: streams of several devices on one grid get windows at the same gateway
times however far apart the devices started; on their own devices' grids they do not."""

import numpy as np
import pytest

from biomoe_edge.runtime.ingest import Ingest, IngestConfig, StreamKey


def window_ends(grid_of):
    ingest = Ingest()
    config = IngestConfig(window_length_s=4.0, hop_s=1.0)
    wrist = ingest.add_stream(StreamKey("wrist", "bvp"), 64.0, config=config, grid=grid_of("wrist"))
    finger = ingest.add_stream(StreamKey("finger", "spo2"), 4.0, config=config, grid=grid_of("finger"))
    rng = np.random.default_rng(0)
    # The finger oximeter starts 0.37 s after the wristband (connected later), both on the gateway clock.
    for key, fs, start in ((wrist, 64.0, 100.0), (finger, 4.0, 100.37)):
        n = int(12 * fs)
        ingest.push(key, rng.standard_normal(n) + 1.0, start + np.arange(n) / fs, arrival_time_s=start + 12)
    ends = {"wrist": [], "finger": []}
    for window in ingest.pop_windows():
        ends[window.device].append(window.end_s)
    return ends


def test_devices_of_one_subject_get_windows_at_the_same_times():
    ends = window_ends(lambda device: "subject-1")
    assert len(ends["finger"]) >= 5
    # Every oximeter window ends exactly when a wristband window does (one grid, anchored by the first sample).
    assert set(ends["finger"]) <= set(ends["wrist"])
    assert all(abs((e - 100.0) - round(e - 100.0)) < 1e-9 for e in ends["finger"])


def test_on_their_own_grids_the_devices_windows_are_offset_by_their_start():
    ends = window_ends(lambda device: None)  # default: each device its own grid
    offsets = [(f - ends["wrist"][0]) % 1.0 for f in ends["finger"]]
    assert offsets == pytest.approx([0.37] * len(offsets))
    assert not set(ends["finger"]) & set(ends["wrist"])


def test_a_grid_name_must_be_a_non_empty_string():
    with pytest.raises(ValueError, match="grid must be a non-empty string"):
        Ingest().add_stream(StreamKey("wrist", "bvp"), 64.0, grid="")
