"""EDF+ export, read back by two independent readers (pyEDFlib and MNE), and imported again; EDF errors."""

import numpy as np
import pytest

pyedflib = pytest.importorskip("pyedflib", reason="EDF export needs pyEDFlib (pip install 'biomoe-edge[recordings]')")

from biomoe_edge.runtime.recording import (  # noqa: E402
    RecordingWriter, SignalFileError, export_edf, open_recording, open_source)

BVP_FS, ECG_FS = 64.0, 130.0
T0 = 5000.0  # gateway time of the first sample


def _make_recording(folder):
    """bvp: 20 s at 64 Hz with 32 samples lost after 6 s; ecg: 130 Hz for 15 s, starting 1.5 s after the bvp.
    Markers at 8 s (pain) and 14 s (rest); one accounting event."""
    rng = np.random.default_rng(3)
    bvp = np.sin(2 * np.pi * 1.1 * np.arange(int(20 * BVP_FS)) / BVP_FS) * 50 + rng.normal(0, 1, int(20 * BVP_FS))
    ecg = np.cos(2 * np.pi * 7.0 * np.arange(int(15 * ECG_FS)) / ECG_FS) * 0.8 + 0.1
    keep = np.ones(bvp.size, bool)
    keep[int(6 * BVP_FS):int(6 * BVP_FS) + 32] = False
    blocks = []  # (arrival, device, modality, values, times, lost_before) in arrival order
    for start in range(0, bvp.size, 16):
        index = np.arange(start, start + 16)
        if keep[index].all():
            lost = 32 if start == int(6 * BVP_FS) + 32 else 0
            blocks.append((T0 + index[-1] / BVP_FS, "wrist", "bvp", bvp[index], T0 + index / BVP_FS, lost))
    for start in range(0, ecg.size, 13):
        index = np.arange(start, min(start + 13, ecg.size))
        times = T0 + 1.5 + index / ECG_FS
        blocks.append((times[-1], "chest", "ecg", ecg[index], times, 0))
    blocks.sort(key=lambda b: b[0])
    with RecordingWriter(folder, {"subjects": {"wrist": "S01", "chest": "S01"}}, register=False) as writer:
        writer.add_stream("wrist", "bvp", {"sample_rate_hz": BVP_FS, "channels": 1, "units": "au"})
        writer.add_stream("chest", "ecg", {"sample_rate_hz": ECG_FS, "channels": 1, "units": "mV"})
        for arrival, device, modality, values, times, lost in blocks:
            writer.write_block(device, modality, values, times, arrival_time_s=arrival, lost_before=lost)
        writer.write_event("wrist", "bvp", "gap", T0 + 6.5, {"samples_lost": 32})
        writer.write_marker("pain", T0 + 8.0)
        writer.write_marker("rest", T0 + 14.0)
    return bvp, keep, ecg


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    folder = tmp_path_factory.mktemp("edf")
    bvp, keep, ecg = _make_recording(folder / "rec")
    summary = export_edf(open_recording(folder / "rec"), folder / "session.edf")
    return folder, bvp, keep, ecg, summary


def test_pyedflib_reads_the_signals_on_their_grids_with_gaps_annotated(exported):
    folder, bvp, keep, ecg, summary = exported
    assert summary["t0"] == T0
    with pyedflib.EdfReader(str(folder / "session.edf")) as reader:
        labels = reader.getSignalLabels()
        assert labels == ["BVP", "ECG"]
        assert list(reader.getSampleFrequencies()) == [BVP_FS, ECG_FS]
        assert reader.getPhysicalDimension(0) == "au" and reader.getTransducer(1) == "chest/ecg"
        assert reader.getPatientCode() == "S01"
        edf_bvp, edf_ecg = reader.readSignal(0), reader.readSignal(1)
        step_bvp = (reader.getPhysicalMaximum(0) - reader.getPhysicalMinimum(0)) / 65535
        step_ecg = (reader.getPhysicalMaximum(1) - reader.getPhysicalMinimum(1)) / 65535
        onsets, durations, texts = reader.readAnnotations()
    # bvp: sample k at k / 64 s; the kept samples in place (16-bit quantisation), the lost ones held
    np.testing.assert_allclose(edf_bvp[:bvp.size][keep], bvp[keep], atol=step_bvp)
    gap = slice(int(6 * BVP_FS), int(6 * BVP_FS) + 32)
    np.testing.assert_allclose(edf_bvp[gap], bvp[int(6 * BVP_FS) - 1], atol=step_bvp)
    # ecg: starts 1.5 s into the file
    first = int(1.5 * ECG_FS)
    np.testing.assert_allclose(edf_ecg[first:first + ecg.size], ecg, atol=step_ecg)
    annotations = list(zip(onsets, durations, texts))

    def annotated(onset, duration, text) -> bool:
        # EDFlib keeps times in 100 us units, the start's fraction of a second apart: two roundings
        return any(t == text and abs(o - onset) <= 2e-4 and (d <= 0 if duration is None else abs(d - duration) <= 2e-4)
                   for o, d, t in annotations)

    assert annotated(0.0, None, f"biomoe:t0={T0:.6f}")
    assert annotated(6.0, 0.5, "biomoe:gap BVP")
    assert annotated(0.0, 1.5, "biomoe:gap ECG")  # the ecg device started 1.5 s later
    assert annotated(8.0, 6.0, "pain") and annotated(14.0, 6.0, "rest")  # until the next marker / the end
    assert annotated(6.5, None, "biomoe:gap wrist/bvp")  # the accounting event


def test_mne_reads_the_same_file(exported):
    mne = pytest.importorskip("mne", reason="MNE reads EDF independently of pyEDFlib")
    folder, bvp, keep, ecg, _ = exported
    raw = mne.io.read_raw_edf(folder / "session.edf", preload=True, verbose="error")
    assert raw.ch_names == ["BVP", "ECG"]
    assert raw.info["sfreq"] == ECG_FS  # MNE brings every channel to the highest rate
    with pyedflib.EdfReader(str(folder / "session.edf")) as reader:
        edf_ecg = reader.readSignal(1)
    # MNE scales to SI volts from the file's "mV"
    np.testing.assert_allclose(raw.get_data(picks="ECG")[0], edf_ecg * 1e-3, rtol=1e-9, atol=1e-12)
    descriptions = list(raw.annotations.description)
    assert "pain" in descriptions and "rest" in descriptions and "biomoe:gap BVP" in descriptions
    pain = list(raw.annotations.description).index("pain")
    assert raw.annotations.onset[pain] == pytest.approx(8.0) and raw.annotations.duration[pain] == pytest.approx(6.0)


def test_importing_the_export_gives_back_the_samples_and_the_gap(exported):
    folder, bvp, keep, ecg, _ = exported
    source = open_source(folder / "session.edf", channel_map="BVP:bvp@64,ECG:ecg")
    assert set(source.streams) == {("session", "bvp"), ("session", "ecg")}
    times, samples = source.stream("session", "bvp")
    assert samples.shape == (int(keep.sum()), 1)  # the annotated gap (and the end padding) left out
    np.testing.assert_allclose(times, np.flatnonzero(keep) / BVP_FS)
    step = (bvp.max() - bvp.min()) / 65535
    np.testing.assert_allclose(samples[:, 0], bvp[keep], atol=2 * step)
    blocks = [b for b in source.blocks() if b.modality == "bvp"]
    assert [b.lost_before for b in blocks if b.lost_before] == [32]
    times, samples = source.stream("session", "ecg")
    np.testing.assert_allclose(times, 1.5 + np.arange(ecg.size) / ECG_FS)
    assert [m.label for m in source.markers] == ["pain", "rest"]
    assert source.subject_of("session") == "session" and source.subject_of("session", "S9") == "S9"


def test_edf_errors_name_the_file_and_the_channel(exported, tmp_path):
    folder = exported[0]
    with pytest.raises(SignalFileError, match=r"channel 'BVP' is sampled at 64 Hz, but the map says bvp@128"):
        open_source(folder / "session.edf", channel_map="BVP:bvp@128")
    with pytest.raises(SignalFileError, match=r"no channel 'PPG' .*'BVP', 'ECG'"):
        open_source(folder / "session.edf", channel_map="PPG:bvp")
    with pytest.raises(ValueError, match="needs --map"):
        open_source(folder / "session.edf")
    truncated = tmp_path / "truncated.edf"
    data = (folder / "session.edf").read_bytes()
    truncated.write_bytes(data[: len(data) // 3])
    with pytest.raises(SignalFileError, match="truncated.edf: not a readable EDF"):
        open_source(truncated, channel_map="BVP:bvp")
    foreign = tmp_path / "foreign.edf"
    foreign.write_bytes(b"this is a text file, not EDF\n" * 20)
    with pytest.raises(SignalFileError, match="foreign.edf: not a readable EDF"):
        open_source(foreign, channel_map="BVP:bvp")
    with pytest.raises(ValueError, match="unknown modality 'pleth'"):
        open_source(folder / "session.edf", channel_map="BVP:pleth")
