"""Paired and labelled windows read from recordings: the gateway's own windows, paired by subject and time, and
the refusal of recordings whose modalities do not overlap in time or are missing."""

from __future__ import annotations

import numpy as np
import pytest

pytestmark = pytest.mark.torch
pytest.importorskip("torch", reason="the bridge trains and exports with PyTorch (the export extra)")

from biomoe_edge.runtime.recording import RecordingWriter  # noqa: E402
from biomoe_edge.training.bridge import (  # noqa: E402
    PairingError, load_labelled_windows, load_paired_windows, pair_streams)
from biomoe_edge.training.bridge.simulation import (  # noqa: E402
    ECG_FS, PPG_FS, simulate_streams, write_simulated_recording)


def test_paired_windows_are_the_streams_cut_at_the_same_times(small_recording, small_paired):
    _, _, simulated = small_recording
    assert len(small_paired) == 52 and set(small_paired.subject) == {simulated.subject}
    assert small_paired.old_fs == 100.0 and small_paired.new_fs == 64.0
    assert np.allclose(np.diff(small_paired.start_s), 8.0)
    direct = pair_streams(simulated.ecg_times + 1000.0, simulated.ecg, ECG_FS, simulated.ppg_times + 1000.0,
                          simulated.ppg, PPG_FS, old_modality="ecg", new_modality="bvp", hop_s=8.0)
    for i in (0, 20, 51):
        j = int(np.argmin(np.abs(direct.start_s - small_paired.start_s[i])))
        assert abs(direct.start_s[j] - small_paired.start_s[i]) < 1 / PPG_FS
        scale = np.ptp(direct.new[j])
        assert np.abs(small_paired.new[i] - direct.new[j])[20:-20].max() < 1e-3 * scale
        assert np.abs(small_paired.old[i] - direct.old[j])[20:-20].max() < 1e-3 * np.ptp(direct.old[j])


def test_two_subjects_are_paired_each_with_their_own(tmp_path):
    folder = write_simulated_recording(tmp_path / "two", [simulate_streams(5, 120.0), simulate_streams(6, 90.0)],
                                       hop_s=10.0)
    paired = load_paired_windows([folder], None, "ecg", "bvp")
    counts = {who: int((paired.subject == who).sum()) for who in set(paired.subject)}
    assert counts == {"sim005": 12, "sim006": 9}
    # the recording's windows unless told otherwise
    assert len(load_paired_windows([folder], None, "ecg", "bvp", hop_s=5.0)) == 23 + 17


def _write(folder, *, bvp_offset_s: float, with_bvp: bool = True):
    t = np.arange(0, 60.0, 1 / 64)
    with RecordingWriter(folder, {"subjects": {"chest": "S1", "wrist": "S1"}}, register=False) as writer:
        writer.add_stream("chest", "ecg", {"sample_rate_hz": 64.0, "channels": 1})
        if with_bvp:
            writer.add_stream("wrist", "bvp", {"sample_rate_hz": 64.0, "channels": 1})
        for a in range(0, len(t), 64):
            writer.write_block("chest", "ecg", np.sin(t[a:a + 64] * 7), 500 + t[a:a + 64], arrival_time_s=500 + t[a],
                               lost_before=0)
        if with_bvp:
            for a in range(0, len(t), 64):
                stamp = 500 + bvp_offset_s + t[a:a + 64]
                writer.write_block("wrist", "bvp", np.sin(t[a:a + 64] * 6), stamp, arrival_time_s=stamp[-1],
                                   lost_before=0)
    return folder


def test_modalities_that_do_not_overlap_in_time_are_refused(tmp_path):
    folder = _write(tmp_path / "apart", bvp_offset_s=3600.0)
    with pytest.raises(PairingError, match=r"subject 'S1': ecg 500.0..5\d\d.\d s, bvp 41\d\d.\d..41\d\d.\d s\): the "
                                           r"two modalities do not overlap in time"):
        load_paired_windows([folder], None, "ecg", "bvp")
    assert len(load_paired_windows([_write(tmp_path / "together", bvp_offset_s=0.0)], None, "ecg", "bvp")) > 0


def test_a_recording_without_the_new_modality_is_refused(tmp_path):
    folder = _write(tmp_path / "ecg-only", bvp_offset_s=0.0, with_bvp=False)
    with pytest.raises(PairingError, match=r"no bvp stream \(it has: chest/ecg\)"):
        load_paired_windows([folder], None, "ecg", "bvp")


def test_labelled_windows_are_those_one_label_covers(small_recording):
    folder, labels, simulated = small_recording
    windows, fs, names, unlabelled = load_labelled_windows([folder], None, "bvp", labels)
    assert fs == 64.0 and windows.shape[1] == 640
    assert len(names) + sum(unlabelled.values()) == 52 and set(unlabelled) <= {"straddles_labels"}
    assert set(names) <= {"rest", "moderate", "high"}


def test_bridge_evaluate_refuses_labels_in_seconds_from_the_recordings_start(tmp_path):
    from biomoe_edge.runtime.recording import LabelError

    folder = _write(tmp_path / "paired", bvp_offset_s=0.0)  # gateway times 500..560 s
    labels = tmp_path / "labels.csv"
    labels.write_text("subject,start_s,end_s,label\nS1,0,30,rest\nS1,30,60,pain\n")
    with pytest.raises(LabelError, match=r"no interval of .*labels.csv overlaps any input's data.*look like seconds "
                                         r"from the recording's start.*\(500.000 s\)"):
        load_labelled_windows([folder], None, "bvp", labels)
    labels.write_text("subject,start_s,end_s,label\nS1,500,530,rest\nS1,530,560,pain\n")
    assert set(load_labelled_windows([folder], None, "bvp", labels, window_s=10.0, hop_s=5.0)[2]) == {"rest", "pain"}
