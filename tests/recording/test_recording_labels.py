"""Labels: the CSV format and its errors, markers as intervals, and the window rule (covered whole, or unlabelled
and counted by reason)."""

import pytest

from biomoe_edge.runtime.recording import LabelError, Marker
from biomoe_edge.runtime.recording.labels import LabelInterval, WindowLabeller, marker_intervals, read_label_csv


def _csv(tmp_path, text, name="labels.csv"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_csv_rows_become_intervals_with_optional_device(tmp_path):
    path = _csv(tmp_path, "subject,start_s,end_s,label,device\nS1,0,10,rest,\nS1,10,20.5,pain,wrist\nS2, 5 ,6,rest,\n\n")
    intervals = read_label_csv(path)
    assert [(i.subject, i.start_s, i.end_s, i.label, i.device) for i in intervals] == [
        ("S1", 0.0, 10.0, "rest", None), ("S1", 10.0, 20.5, "pain", "wrist"), ("S2", 5.0, 6.0, "rest", None)]
    assert intervals[1].origin == f"{path}:3"
    # columns in any order, device optional
    assert read_label_csv(_csv(tmp_path, "label,end_s,subject,start_s\nrest,2,S,1\n", "b.csv"))[0].end_s == 2.0


@pytest.mark.parametrize("text, message", [
    ("", "empty"),
    ("subject,start,end_s,label\n", "lacks start_s"),
    ("subject,start_s,end_s,label,colour\n", "unknown column 'colour'"),
    ("subject,start_s,end_s,label\nS1,0,ten,rest\n", r"labels.csv:2: end_s is 'ten', not a number"),
    ("subject,start_s,end_s,label\nS1,0,nan,rest\n", r"labels.csv:2: end_s is 'nan', not a finite number"),
    ("subject,start_s,end_s,label\nS1,0,5,rest\nS1,9,8,pain\n", r"labels.csv:3: end_s 8 is not after start_s 9"),
    ("subject,start_s,end_s,label\nS1,3,3,pain\n", r"labels.csv:2: .*reversed or empty"),
    ("subject,start_s,end_s,label\nS1,0,5\n", r"labels.csv:2: 3 fields, the header has 4"),
    ("subject,start_s,end_s,label\n,0,5,rest\n", r"labels.csv:2: subject is empty"),
    ("subject,start_s,end_s,label\nS1,0,10,rest\nS2,0,10,rest\nS1,9.5,20,pain\n",
     r"labels.csv:4: interval 9.5-20 s \('pain'\) overlaps .*labels.csv:2"),
    ("subject,start_s,end_s,label,device\nS1,0,10,rest,\nS1,5,8,pain,wrist\n", r"labels.csv:3: .*overlaps .*labels.csv:2"),
])
def test_bad_label_files_are_errors_naming_the_line(tmp_path, text, message):
    with pytest.raises(LabelError, match=message):
        read_label_csv(_csv(tmp_path, text))


def test_intervals_of_different_devices_may_overlap_and_adjacent_ones_touch(tmp_path):
    path = _csv(tmp_path, "subject,start_s,end_s,label,device\nS1,0,10,rest,wrist\nS1,5,15,pain,chest\nS1,10,20,pain,wrist\n")
    assert len(read_label_csv(path)) == 3


def test_missing_file_is_a_label_error(tmp_path):
    with pytest.raises(LabelError, match="cannot read the label file"):
        read_label_csv(tmp_path / "nope.csv")


def test_the_window_rule():
    labeller = WindowLabeller([
        LabelInterval("S1", 0.0, 10.0, "rest"), LabelInterval("S1", 10.0, 20.0, "rest"),
        LabelInterval("S1", 20.0, 30.0, "pain"), LabelInterval("S1", 40.0, 50.0, "pain", device="wrist"),
    ])
    assert labeller.label("S1", "wrist", 0.0, 10.0) == "rest"            # exactly covered
    assert labeller.label("S1", "wrist", 5.0, 15.0) == "rest"            # two adjacent intervals of one label
    assert labeller.label("S1", "wrist", 15.0, 25.0) is None             # rest then pain: straddles
    assert labeller.label("S1", "wrist", 25.0, 35.0) is None             # pain then nothing: partly labelled
    assert labeller.label("S1", "wrist", 31.0, 39.0) is None             # nothing
    assert labeller.label("S1", "wrist", 41.0, 49.0) == "pain"           # a device's own interval
    assert labeller.label("S1", "chest", 41.0, 49.0) is None             # ... not another device's
    assert labeller.label("S2", "wrist", 0.0, 10.0) is None              # another subject
    assert labeller.label("S1", "wrist", 20.0 - 1e-9, 30.0 + 1e-9) == "pain"  # float noise is not a straddle
    assert labeller.labelled == {"rest": 2, "pain": 2}
    assert labeller.unlabelled == {"straddles_labels": 1, "partly_labelled": 1, "no_label": 3}


def test_markers_label_until_the_next_marker_their_duration_or_the_end():
    markers = [Marker("rest", 100.0), Marker("pain", 130.0), Marker("probe", 140.0, duration_s=5.0, device="chest"),
               Marker("rest", 150.0, subject="S2")]
    intervals = marker_intervals(markers, devices={"wrist": "S1", "chest": "S1"}, end_s=200.0)
    by_device = {(i.device, i.label, i.start_s, i.end_s) for i in intervals}
    assert by_device == {("wrist", "rest", 100.0, 130.0), ("wrist", "pain", 130.0, 200.0),
                         ("chest", "rest", 100.0, 130.0), ("chest", "pain", 130.0, 140.0),
                         ("chest", "probe", 140.0, 145.0)}
    labeller = WindowLabeller(intervals)
    assert labeller.label("S1", "wrist", 140.0, 150.0) == "pain"
    assert labeller.label("S1", "chest", 140.0, 145.0) == "probe"
    assert labeller.label("S1", "chest", 141.0, 151.0) is None
