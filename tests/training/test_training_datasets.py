"""From a dataset to fused windows: inputs of one subject's devices matched by window time within the tolerance
(nearest, one to one), windows lacking an input counted and never imputed; bad datasets are clear errors."""

import numpy as np
import pandas as pd
import pytest

from training_helpers import class_frame

from biomoe_edge.training.datasets import (DatasetError, dataset_backbone, fuse_windows, keep_devices,
                                           parse_device_choices, parse_inputs, read_dataset, save_dataset,
                                           training_windows)


def test_inputs_of_two_devices_are_matched_by_nearest_window_end_within_the_tolerance():
    # eda on the wrist at 10, 12, 14...; bvp on another device 0.3 s later; the first bvp window missing.
    frame = class_frame(subjects=2, windows=6, inputs=("eda:scalogram", "bvp:spectrogram_psd"), device_offset_s=0.3)
    frame = frame.drop(frame[(frame.modality == "bvp") & (frame.window_end_s == 10.3)].index)
    fused = fuse_windows(frame, ["eda:scalogram", "bvp:spectrogram_psd"], tolerance_s=0.5)
    assert len(fused) == 2 * 6 - 2  # each subject's first window time has no bvp: left out
    assert fused.incomplete == {"bvp:spectrogram_psd": 2}
    for i in range(len(fused)):
        subject, end = fused.subjects[i], fused.window_end_s[i]
        for j, (modality, shift) in enumerate((("eda", 0.0), ("bvp", 0.3))):
            row = frame[(frame.subject == subject) & (frame.modality == modality)
                        & np.isclose(frame.window_end_s, end + shift)].iloc[0]
            np.testing.assert_array_equal(fused.embeddings[i, j], row["embedding"])
        assert fused.devices[i] == (f"{subject}-eda", f"{subject}-bvp")
    # Beyond the tolerance nothing matches: no window is made up.
    strict = fuse_windows(frame, ["eda:scalogram", "bvp:spectrogram_psd"], tolerance_s=0.2)
    assert len(strict) == 0 and strict.incomplete == {"bvp:spectrogram_psd": 12}


def test_subjects_are_never_mixed_and_labels_must_agree():
    frame = class_frame(subjects=2, windows=4, inputs=("eda:scalogram", "resp:scalogram"))
    frame.loc[(frame.subject == "s01") & (frame.modality == "resp"), "subject"] = "s09"
    fused = fuse_windows(frame, ["eda:scalogram", "resp:scalogram"])
    assert set(fused.subjects) == {"s00"}  # s01's eda has no resp of s01; s09 has no eda
    frame = class_frame(subjects=1, windows=4, inputs=("eda:scalogram", "resp:scalogram"))
    frame.loc[(frame.modality == "resp") & (frame.window_end_s == 12.0), "label"] = "strong"  # was "mild"
    fused = fuse_windows(frame, ["eda:scalogram", "resp:scalogram"])
    assert len(fused) == 3 and fused.label_conflicts == 1


def test_parse_inputs_normalises_and_names_bad_entries():
    assert parse_inputs(" EDA:scalogram, bvp:spectrogram_psd ") == ("eda:scalogram", "bvp:spectrogram_psd")
    for text, message in (("eda", "not MODALITY:REPRESENTATION"), ("eeg:scalogram", "unknown modality 'eeg'"),
                          ("eda:specgram", "unknown representation 'specgram'"), ("", "no inputs given"),
                          ("eda:scalogram,eda:scalogram", "given twice")):
        with pytest.raises(ValueError, match=message):
            parse_inputs(text)


def test_an_empty_dataset_is_a_clear_error():
    frame = class_frame(subjects=1, windows=1).iloc[0:0]
    with pytest.raises(DatasetError, match="the dataset is empty"):
        training_windows(frame, ["eda:scalogram"], source="empty.parquet")


def test_missing_columns_are_named():
    frame = class_frame(subjects=1, windows=2).drop(columns=["label", "embedding"])
    with pytest.raises(DatasetError, match=r"missing column\(s\) \['label', 'embedding'\]"):
        training_windows(frame, ["eda:scalogram"])


def test_inputs_missing_from_the_dataset_are_named_with_what_it_has():
    frame = class_frame(subjects=2, windows=3, inputs=("eda:scalogram", "bvp:waveform"))
    with pytest.raises(DatasetError) as error:
        training_windows(frame, ["eda:scalogram", "eda:recurrence", "spo2:scalogram"], source="d.parquet")
    text = str(error.value)
    assert "d.parquet: no windows of input(s) ['eda:recurrence', 'spo2:scalogram']" in text
    assert "the dataset has: bvp:waveform, eda:scalogram" in text


def test_nan_embeddings_are_named_by_subject_device_input_and_time():
    frame = class_frame(subjects=2, windows=3)
    bad = frame.index[4]
    vector = frame.at[bad, "embedding"].copy()
    vector[7] = np.nan
    frame.at[bad, "embedding"] = vector
    with pytest.raises(DatasetError) as error:
        training_windows(frame, ["eda:scalogram"], source="d.parquet")
    text = str(error.value)
    assert "1 eda:scalogram embedding(s) hold NaN or infinite values" in text
    assert f"row {bad}" in text and "subject s01, device s01-eda" in text and "12.000 s" in text


def test_an_embedding_of_the_wrong_size_is_named():
    frame = class_frame(subjects=1, windows=3)
    frame.at[frame.index[1], "embedding"] = np.zeros(96, np.float32)
    with pytest.raises(DatasetError, match=r"row 1 .* has an embedding of shape \(96,\), expected \(192,\)"):
        training_windows(frame, ["eda:scalogram"])


def test_a_single_class_dataset_is_refused():
    frame = class_frame(subjects=3, windows=4, classes=("rest",))
    with pytest.raises(DatasetError, match=r"only one class \('rest'\) among the 12 labelled windows"):
        training_windows(frame, ["eda:scalogram"])
    unlabelled = class_frame(subjects=1, windows=3)
    unlabelled["label"] = pd.Series([None] * len(unlabelled), dtype=object)
    with pytest.raises(DatasetError, match="no labelled window has every input"):
        training_windows(unlabelled, ["eda:scalogram"])


def test_two_devices_measuring_one_input_at_one_time_must_be_resolved_by_the_user():
    frame = class_frame(subjects=1, windows=3)
    twin = frame.copy()
    twin["device"] = "s00-second-wristband"
    with pytest.raises(DatasetError, match="has two eda:scalogram windows ending at 10.000 and 10.000 s"):
        training_windows(pd.concat([frame, twin], ignore_index=True), ["eda:scalogram"])


def test_the_option_the_two_devices_message_names_resolves_it():
    frame = class_frame(subjects=1, windows=3)
    twin = frame.copy()
    twin["device"] = "s00-second-wristband"
    twin["embedding"] = [e + 1.0 for e in twin["embedding"]]
    both = pd.concat([frame, twin], ignore_index=True)
    with pytest.raises(DatasetError) as caught:
        training_windows(both, ["eda:scalogram"])
    option = caught.value.args[0].split("train-head ")[1].split(")")[0]  # the command-line option it promises
    assert option == "--device eda:scalogram=s00-eda"
    choices = parse_device_choices([option.split(" ", 1)[1].replace("eda:", "EDA:")])  # modality names normalised
    assert choices == {"eda:scalogram": "s00-eda"}
    fused, _ = training_windows(keep_devices(both, choices), ["eda:scalogram"])
    assert set(fused.devices) == {("s00-eda",)}
    np.testing.assert_array_equal(fused.embeddings[:, 0], np.stack(frame["embedding"]))
    chosen_twin = keep_devices(both, {"eda:scalogram": "s00-second-wristband"})
    np.testing.assert_array_equal(training_windows(chosen_twin, ["eda:scalogram"])[0].embeddings[:, 0],
                                  np.stack(twin["embedding"]))


def test_a_device_choice_naming_no_device_of_that_input_is_refused_with_the_devices_that_have_it():
    frame = class_frame(subjects=2, windows=3)
    with pytest.raises(DatasetError, match="device 'watch' has no eda:scalogram window; devices with eda:scalogram "
                                           "windows: s00-eda, s01-eda"):
        keep_devices(frame, {"eda:scalogram": "watch"})
    for bad in ("eda:scalogram", "=watch", "eda:scalogram="):
        with pytest.raises(ValueError, match="expected MODALITY:REPRESENTATION=DEVICE"):
            parse_device_choices([bad])
    with pytest.raises(ValueError, match="names input eda:scalogram twice"):
        parse_device_choices(["eda:scalogram=a", "eda:scalogram=b"])


def test_embeddings_of_two_backbones_are_refused_and_one_backbone_is_named():
    frame = class_frame(subjects=1, windows=4)
    assert dataset_backbone(frame, "d") == {"checkpoint_sha256": None, "random_weights": True, "seed": 0,
                                           "precision": "fp32"}
    frame.loc[frame.index[:2], "precision"] = "fp16"
    with pytest.raises(DatasetError, match=r"come from 2 different backbones \(random weights \(seed 0\) fp"):
        dataset_backbone(frame, "d")


def test_a_parquet_dataset_round_trips_and_a_non_dataset_file_is_named(tmp_path):
    frame = class_frame(subjects=2, windows=3)
    frame.loc[frame.index[0], "label"] = None
    path = save_dataset(frame, tmp_path / "d.parquet")
    read, sha = read_dataset(path)
    assert len(sha) == 64
    fused = fuse_windows(read, ["eda:scalogram"])
    assert len(fused) == 6 and fused.labels[0] is None and len(fused.labelled()) == 5
    np.testing.assert_array_equal(fused.embeddings[:, 0], np.stack(frame["embedding"]))
    junk = tmp_path / "junk.parquet"
    junk.write_text("not parquet")
    with pytest.raises(DatasetError, match="junk.parquet"):
        read_dataset(junk)
    with pytest.raises(DatasetError, match="no such dataset"):
        read_dataset(tmp_path / "missing.parquet")
