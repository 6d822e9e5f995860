"""Labels that would label nothing are refused before any work, naming both sides; labels in another time base
are recognised: an SDK-exported EDF+ (its biomoe:t0) is moved onto the gateway's clock, seconds from a recording's
start are refused with the offset to add. EDF tools' "Recording starts" is never a label."""

import numpy as np
import pytest

from recording_helpers import ProjectionEngine, lossy, packets, record_gateway_run

from biomoe_edge.runtime.recording import LabelError, build_dataset, export_edf, open_recording, read_labels
from biomoe_edge.runtime.recording.labels import InputSpan, LabelInterval, fit_labels_to_inputs

START = 500.0  # gateway time of the recording's first packet


def _span(subject="subject-1", device="biomoe-demo-1", start=START, end=START + 40.0):
    return InputSpan("session-01", subject, device, start, end)


def test_labels_in_the_inputs_time_base_pass_unchanged():
    labels = [LabelInterval("subject-1", START + 5, START + 15, "rest"), LabelInterval("ghost", 0, 1, "pain")]
    assert fit_labels_to_inputs(labels, [_span()]) == labels


def test_labels_in_seconds_from_the_start_of_a_gateway_recording_are_refused_with_the_offset():
    labels = [LabelInterval("subject-1", 5, 15, "rest"), LabelInterval("subject-1", 15, 30, "pain")]
    with pytest.raises(LabelError) as caught:
        fit_labels_to_inputs(labels, [_span()], labels_name="labels.csv")
    message = str(caught.value)
    assert message.startswith("no interval of labels.csv overlaps any input's data")
    assert "labels subject subject-1 5.000-30.000 s" in message
    assert "inputs subject subject-1 (device biomoe-demo-1 of session-01) 500.000-540.000 s" in message
    assert "look like seconds from the recording's start" in message and "(500.000 s)" in message


def test_a_misspelt_subject_is_refused_naming_the_subjects_on_both_sides():
    with pytest.raises(LabelError, match=r"the labels' subjects subjcet-1 are none of the inputs' subject-1, "
                                         r"subject-2\): labels subject subjcet-1 505.000-515.000 s"):
        fit_labels_to_inputs([LabelInterval("subjcet-1", START + 5, START + 15, "rest")],
                             [_span(), _span("subject-2", "biomoe-demo-2")])


def test_intervals_whose_file_places_its_start_on_the_gateway_clock_are_moved_there():
    labels = [LabelInterval(None, 5, 15, "rest", gateway_t0=START), LabelInterval(None, 15, 30, "pain", gateway_t0=START)]
    moved = fit_labels_to_inputs(labels, [_span()])
    assert [(i.start_s, i.end_s, i.label, i.gateway_t0) for i in moved] == [
        (START + 5, START + 15, "rest", None), (START + 15, START + 30, "pain", None)]
    # The same EDF+ labelling the EDF+ itself (times from its start): they already overlap, nothing moves.
    assert fit_labels_to_inputs(labels, [_span(start=0.0, end=40.0)]) == labels


@pytest.fixture(scope="module")
def recording(tmp_path_factory):
    folder = tmp_path_factory.mktemp("labels-reach")
    items = [(arrival + START, sid, seq, data) for arrival, sid, seq, data in lossy(packets(40.0, seed=4), 0.0)]
    _, _, recording = record_gateway_run(folder, items)
    return folder, recording


def test_the_recordings_edf_export_annotated_by_an_edf_tool_labels_the_recording(recording, tmp_path):
    """The round trip: export-edf, annotate (as EDFbrowser writes it: the file's own annotations kept, plus
    "Recording starts" and the user's intervals in seconds from the file's start), feed back as --labels."""
    pyedflib = pytest.importorskip("pyedflib", reason="EDF+ needs pyEDFlib (the recordings extra)")
    _, folder = recording
    summary = export_edf(open_recording(folder), tmp_path / "session.edf")
    annotated = tmp_path / "annotated.edf"
    with pyedflib.EdfReader(str(tmp_path / "session.edf")) as reader:
        headers = reader.getSignalHeaders()
        signals = [reader.readSignal(i) for i in range(reader.signals_in_file)]
        onsets, durations, texts = reader.readAnnotations()
    writer = pyedflib.EdfWriter(str(annotated), len(signals), file_type=pyedflib.FILETYPE_EDFPLUS)
    try:
        writer.setSignalHeaders(headers)
        writer.writeSamples(signals)
        for onset, duration, text in zip(onsets, durations, texts):
            writer.writeAnnotation(onset, duration, text)
        writer.writeAnnotation(0, -1, "Recording starts")
        writer.writeAnnotation(2.0, 18.0, "rest")
        writer.writeAnnotation(20.0, 18.0, "pain")
    finally:
        writer.close()
    intervals = read_labels(annotated)
    assert sorted(i.label for i in intervals) == ["pain", "rest"]  # not "Recording starts", not biomoe:*
    frame = build_dataset([folder], ProjectionEngine(), labels=annotated)
    labelled = frame[frame["label"].notna()]
    assert set(labelled["label"]) == {"rest", "pain"}
    t0 = summary["t0"]
    for row in labelled.itertuples():  # each labelled window lies inside its interval on the gateway's clock
        low, high = (t0 + 2.0, t0 + 20.0) if row.label == "rest" else (t0 + 20.0, t0 + 38.0)
        assert low - 1e-3 <= row.window_start_s and row.window_end_s <= high + 1e-3
    unlabelled = frame[frame["label"].isna()]
    assert len(unlabelled) and not np.any((unlabelled["window_start_s"] >= t0 + 2.0 + 1e-3)
                                          & (unlabelled["window_end_s"] <= t0 + 20.0 - 1e-3))


def test_embed_refuses_labels_that_reach_no_input_before_embedding(recording, tmp_path, capsys):
    from biomoe_edge.cli import main

    _, folder = recording
    (tmp_path / "labels.csv").write_text("subject,start_s,end_s,label\nsession,2,18,rest\n")
    code = main(["embed", str(folder), "--out", str(tmp_path / "ds"), "--labels", str(tmp_path / "labels.csv"),
                 "--engine", "onnxruntime", "--model", str(tmp_path / "never-opened.onnx"), "--quiet"])
    err = capsys.readouterr().err
    assert code != 0 and "no interval of" in err and f"subject {folder.name}" in err
    assert not (tmp_path / "ds").exists()
