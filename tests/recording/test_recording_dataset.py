"""Datasets: built from gateway recordings and imported files through the same Pipeline, labelled by the rule,
written whole or not at all, loaded in one line with exactly the agreed columns."""

import numpy as np
import pandas as pd
import pytest
from recording_helpers import ProjectionEngine, lossy, packets, record_gateway_run

from biomoe_edge.dataset import DATASET_COLUMNS, DatasetError, dataset_sha256, load_dataset, write_dataset
from biomoe_edge.runtime.recording.embed import build_dataset
from biomoe_edge.runtime.recording import ModelMismatchError, RecordingError, write_marker_file


@pytest.fixture(scope="module")
def session(tmp_path_factory):
    folder = tmp_path_factory.mktemp("session")
    gateway, records, recording = record_gateway_run(folder, lossy(packets(40.0, seed=2), 0.1, seed=3))
    return gateway, records, recording


def test_a_gateway_recording_becomes_the_live_records_as_rows(session, tmp_path):
    _, records, folder = session
    frame = build_dataset([folder], ProjectionEngine(), out=tmp_path / "ds")
    assert tuple(frame.columns) == DATASET_COLUMNS
    loaded = load_dataset(tmp_path / "ds")
    assert tuple(loaded.columns) == DATASET_COLUMNS and len(loaded) == len(records)
    rows = {(r.device, r.modality, r.representation, r.window_start_s): r for r in loaded.itertuples()}
    for record in records:
        row = rows[(record.device, record.modality, record.representation, record.window_start_s)]
        assert row.window_end_s == record.window_end_s and row.quality == record.quality
        assert row.embedding.dtype == np.float32 and row.embedding.shape == (192,)
        np.testing.assert_allclose(row.embedding, record.embedding, atol=1e-5 * np.abs(record.embedding).max())
        assert row.subject == folder.name  # no subjects recorded: the recording's name
        assert row.label is None
        assert (row.model_sha256, row.checkpoint_sha256, row.precision, row.engine) == ("0" * 64, None, "fp32", "projection")
        assert row.random_weights is True and row.seed is None
    summary = loaded.attrs["metadata"]["summary"]
    assert summary["unlabelled"] == {"no_label": summary["windows"]}
    # One line, no SDK: pandas reads the folder.
    plain = pd.read_parquet(tmp_path / "ds")
    assert list(plain.columns) == list(DATASET_COLUMNS) and len(plain) == len(loaded)


def test_markers_label_windows_and_a_label_file_replaces_them(session, tmp_path):
    _, records, folder = session
    copy = tmp_path / "rec"
    import shutil

    shutil.copytree(folder, copy)
    starts = sorted({r.window_start_s for r in records})
    t_pain = starts[8] + 0.5  # between two window starts: the windows around it straddle rest and pain
    write_marker_file(copy, "rest", starts[0])
    write_marker_file(copy, "pain", t_pain)
    frame = build_dataset([copy], ProjectionEngine(), subject="P1")
    for row in frame.itertuples():
        assert row.subject == "P1"
        if row.window_end_s <= t_pain:
            assert row.label == "rest"
        elif row.window_start_s >= t_pain:
            assert row.label == "pain"  # the last marker lasts to the recording's end
        else:
            assert row.label is None  # straddles rest and pain
    summary = frame.attrs["metadata"]["summary"]
    assert summary["labelled"]["rest"] > 0 and summary["labelled"]["pain"] > 0
    assert summary["unlabelled"]["straddles_labels"] > 0
    assert sum(summary["labelled"].values()) + sum(summary["unlabelled"].values()) == summary["windows"]
    # --labels: the file's intervals, not the markers
    labels = tmp_path / "labels.csv"
    labels.write_text(f"subject,start_s,end_s,label\nP1,{starts[0]},{starts[0] + 1000},baseline\n")
    frame = build_dataset([copy], ProjectionEngine(), subject="P1", labels=labels)
    assert set(frame["label"]) == {"baseline"}


def test_imported_csv_by_rate_and_by_time_column_give_the_same_windows(tmp_path):
    fs, seconds = 32.0, 60
    t = np.arange(int(seconds * fs)) / fs
    eda = 2.0 + 0.3 * np.sin(2 * np.pi * 0.05 * t) + 0.01 * np.random.default_rng(0).standard_normal(t.size)
    pd.DataFrame({"EDA": eda}).to_csv(tmp_path / "by_rate.csv", index=False)
    pd.DataFrame({"time_s": 1000.0 + t, "EDA": eda}).to_csv(tmp_path / "by_time.csv", index=False, float_format="%.9f")
    by_rate = build_dataset([tmp_path / "by_rate.csv"], ProjectionEngine(), channel_map="EDA:eda", rate_hz=fs,
                            representations=["waveform"])
    by_time = build_dataset([tmp_path / "by_time.csv"], ProjectionEngine(), channel_map="EDA:eda@32",
                            representations=["waveform"])
    # 10 s windows every 1 s on seconds from the file's start: [k, k + 10] for k = 0 .. 50
    assert list(by_rate["window_start_s"]) == [float(k) for k in range(51)]
    assert list(by_time["window_start_s"]) == pytest.approx(list(by_rate["window_start_s"]), abs=1e-6)
    np.testing.assert_allclose(np.stack(by_time["embedding"]), np.stack(by_rate["embedding"]), rtol=1e-5, atol=1e-4)
    assert set(by_rate["subject"]) == {"by_rate"} and set(by_rate["device"]) == {"by_rate"}


def test_csv_errors_name_the_line_and_column(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text("time_s,EDA\n0.0,1.0\n0.03125,abc\n")
    with pytest.raises(ValueError, match=r"bad.csv:3: column 'EDA' holds 'abc', not a number"):
        build_dataset([path], ProjectionEngine(), channel_map="EDA:eda")
    path.write_text("time_s,EDA\n0.0,1.0\n0.5,1.0\n0.25,1.0\n")
    with pytest.raises(ValueError, match=r"bad.csv:4: time 0.25 in column 'time_s' is not after"):
        build_dataset([path], ProjectionEngine(), channel_map="EDA:eda")
    path.write_text("EDA\n1.0\n2.0\n")
    with pytest.raises(ValueError, match=r"no time column .* and no rate for 'EDA'"):
        build_dataset([path], ProjectionEngine(), channel_map="EDA:eda")
    path.write_text("time_s,EDA\n" + "".join(f"{i / 32},{i}\n" for i in range(100)))
    with pytest.raises(ValueError, match=r"gives 32 Hz, but the map says eda@4"):
        build_dataset([path], ProjectionEngine(), channel_map="EDA:eda@4")
    with pytest.raises(ValueError, match=r"no column 'GSR'"):
        build_dataset([path], ProjectionEngine(), channel_map="GSR:eda")
    with pytest.raises(ValueError, match=r"--map entry 'EDA': expected CHANNEL:MODALITY"):
        build_dataset([path], ProjectionEngine(), channel_map="EDA")
    with pytest.raises(ValueError, match="notes.gz: no such file or recording folder"):
        build_dataset([tmp_path / "notes.gz"], ProjectionEngine())
    (tmp_path / "notes.gz").write_bytes(b"\x1f\x8b")
    with pytest.raises(ValueError, match="notes.gz: not a recording folder, an EDF"):
        build_dataset([tmp_path / "notes.gz"], ProjectionEngine())


def test_a_recording_of_another_model_is_refused_unless_asked(session, tmp_path):
    _, _, folder = session
    other = ProjectionEngine()
    other._identity = dict(other._identity, model_sha256="1" * 64)
    with pytest.raises(ModelMismatchError, match=r"recording.json: settings.model.sha256 is '0000.*the engine's is '1111"):
        build_dataset([folder], other, out=tmp_path / "ds")
    assert not (tmp_path / "ds").exists()
    frame = build_dataset([folder], other, any_model=True)
    assert set(frame["model_sha256"]) == {"1" * 64}


def test_a_failure_midway_leaves_no_dataset(session, tmp_path):
    import shutil

    _, _, folder = session
    damaged = tmp_path / "damaged"
    shutil.copytree(folder, damaged)
    segment = sorted((damaged / "segments").glob("*.npz"))[-1]
    segment.write_bytes(segment.read_bytes()[:100])
    with pytest.raises(RecordingError, match=segment.name):
        build_dataset([folder, damaged], ProjectionEngine(), out=tmp_path / "ds")
    assert not (tmp_path / "ds").exists()


def test_write_and_load_check_what_they_hold(session, tmp_path):
    _, _, folder = session
    frame = build_dataset([folder], ProjectionEngine(), out=tmp_path / "ds")
    first = dataset_sha256(tmp_path / "ds")
    assert first == frame.attrs["sha256"] == dataset_sha256(frame)
    with pytest.raises(DatasetError, match="already exists"):
        write_dataset(frame, tmp_path / "ds", metadata={})
    write_dataset(load_dataset(tmp_path / "ds"), tmp_path / "ds", metadata={"again": True}, overwrite=True)
    assert dataset_sha256(tmp_path / "ds") == first  # the content, not the bytes or the metadata
    changed = frame.copy()
    changed.loc[0, "label"] = "pain"
    assert dataset_sha256(changed) != first
    # tampering with the file is detected
    import pyarrow.parquet as pq

    table = pq.read_table(tmp_path / "ds" / "data.parquet")
    labels = table.column("label").to_pylist()
    labels[0] = "tampered"
    import pyarrow as pa

    table = table.set_column(table.schema.get_field_index("label"), "label", pa.array(labels, pa.string()))
    pq.write_table(table, tmp_path / "ds" / "data.parquet")
    with pytest.raises(DatasetError, match="does not match the sha256"):
        load_dataset(tmp_path / "ds")
    with pytest.raises(DatasetError, match="not a dataset"):
        load_dataset(tmp_path / "nothing")
    pd.DataFrame({"a": [1]}).to_parquet(tmp_path / "plain.parquet")
    with pytest.raises(DatasetError, match="not a biomoe-edge dataset"):
        load_dataset(tmp_path / "plain.parquet")
    (tmp_path / "junk.parquet").write_bytes(b"PAR1 not really")
    with pytest.raises(DatasetError, match="not a readable Parquet file"):
        load_dataset(tmp_path / "junk.parquet")
    bad = frame.copy()
    bad.at[0, "embedding"] = np.full(192, np.nan, np.float32)  # .at: pandas 2 (Python 3.10) refuses .loc here
    with pytest.raises(DatasetError, match="row 0: embedding holds NaN"):
        write_dataset(bad, tmp_path / "nan", metadata={})
    with pytest.raises(DatasetError, match="unknown: extra"):
        write_dataset(frame.assign(extra=1), tmp_path / "extra", metadata={})
