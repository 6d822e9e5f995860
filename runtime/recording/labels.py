"""Labels: intervals from a CSV file or EDF+ annotations, or from a recording's markers; and the rule that gives a
window its label.

CSV: header ``subject,start_s,end_s,label`` with an optional ``device`` column (a row with a device applies to that
device only; without, to every device of the subject). Times are seconds in the recording's own time base
(gateway time for the gateway's recordings, seconds from the file's start for imported files). A reversed or empty
interval, or two intervals of one subject that overlap where they both apply, is a :class:`LabelError` naming the
file and the line(s).

Markers (``biomoe-edge mark``, LSL, EDF+ annotations without a duration): a marker labels from its time until the
next marker that applies to the same device, or for its ``duration_s``; the last one to the end of the data.

The rule: a window takes the label whose intervals cover it whole; a window that no label touches
(``no_label``), that touches two labels (``straddles_labels``), or that one label covers only in part
(``partly_labelled``) is kept unlabelled and counted by that reason. Never guessed.
"""

from __future__ import annotations

import collections
import csv
import math
import pathlib
from dataclasses import dataclass

from .exc import LabelError

CSV_COLUMNS = ("subject", "start_s", "end_s", "label")
OPTIONAL_COLUMNS = ("device",)
#: Window and label times come from different sums of floats: this much is "the same time".
TIME_TOLERANCE_S = 1e-6
UNLABELLED_REASONS = ("no_label", "straddles_labels", "partly_labelled")


@dataclass(frozen=True)
class LabelInterval:
    subject: str | None
    start_s: float
    end_s: float
    label: str
    device: str | None = None
    #: where it came from, for messages ("labels.csv:7", "marker 'pain' at 123.4 s")
    origin: str = ""

    def applies_to(self, subject: str, device: str) -> bool:
        return (self.subject is None or self.subject == subject) and (self.device is None or self.device == device)


def read_label_csv(path) -> list[LabelInterval]:
    """Intervals of a label CSV (see the module docstring); errors name the file and the line."""
    path = pathlib.Path(path)
    try:
        handle = open(path, newline="", encoding="utf-8-sig")
    except OSError as exc:
        raise LabelError(f"{path}: cannot read the label file ({exc.strerror or exc})") from None
    intervals = []
    with handle:
        reader = csv.reader(handle)
        try:
            header = [name.strip() for name in next(reader)]
        except StopIteration:
            raise LabelError(f"{path}: empty; expected the header {','.join(CSV_COLUMNS)}[,device]") from None
        except (csv.Error, UnicodeDecodeError) as exc:
            raise LabelError(f"{path}:1: not a CSV file ({exc})") from None
        missing = [c for c in CSV_COLUMNS if c not in header]
        unknown = [c for c in header if c not in CSV_COLUMNS + OPTIONAL_COLUMNS]
        if missing or unknown or len(set(header)) != len(header):
            problem = (f"lacks {', '.join(missing)}" if missing else f"has unknown column {unknown[0]!r}" if unknown
                       else "names a column twice")
            raise LabelError(f"{path}:1: header {','.join(header)!r} {problem}; expected "
                             f"{','.join(CSV_COLUMNS)} and optionally device")
        column = {name: i for i, name in enumerate(header)}
        try:
            for row in reader:
                line = reader.line_num
                if not any(cell.strip() for cell in row):
                    continue
                if len(row) != len(header):
                    raise LabelError(f"{path}:{line}: {len(row)} fields, the header has {len(header)}")
                values = {name: row[i].strip() for name, i in column.items()}
                times = {}
                for name in ("start_s", "end_s"):
                    try:
                        times[name] = float(values[name])
                    except ValueError:
                        raise LabelError(f"{path}:{line}: {name} is {values[name]!r}, not a number") from None
                    if not math.isfinite(times[name]):
                        raise LabelError(f"{path}:{line}: {name} is {values[name]!r}, not a finite number")
                if not times["end_s"] > times["start_s"]:
                    raise LabelError(f"{path}:{line}: end_s {times['end_s']:g} is not after start_s "
                                     f"{times['start_s']:g} (a reversed or empty interval)")
                for name in ("subject", "label"):
                    if not values[name]:
                        raise LabelError(f"{path}:{line}: {name} is empty")
                intervals.append(LabelInterval(values["subject"], times["start_s"], times["end_s"], values["label"],
                                               values.get("device") or None, f"{path}:{line}"))
        except (csv.Error, UnicodeDecodeError) as exc:
            raise LabelError(f"{path}:{reader.line_num}: not a CSV file ({exc})") from None
    check_no_overlaps(intervals)
    return intervals


def check_no_overlaps(intervals) -> None:
    """LabelError naming both rows when two intervals of one subject overlap where both apply."""
    by_subject = collections.defaultdict(list)
    for interval in intervals:
        by_subject[interval.subject].append(interval)
    for group in by_subject.values():
        group.sort(key=lambda i: i.start_s)
        for i, a in enumerate(group):
            for b in group[i + 1:]:
                if b.start_s >= a.end_s - TIME_TOLERANCE_S:
                    break
                if a.device is None or b.device is None or a.device == b.device:
                    raise LabelError(f"{b.origin}: interval {b.start_s:g}-{b.end_s:g} s ({b.label!r}) overlaps "
                                     f"{a.origin} ({a.start_s:g}-{a.end_s:g} s, {a.label!r}) for subject "
                                     f"{a.subject!r}; a window's label must be unambiguous")


def edf_label_intervals(annotations, *, subject: str, origin: str) -> list[LabelInterval]:
    """Intervals from EDF+ annotations ``(onset_s, duration_s or None, text)`` that have a duration; the SDK's own
    (``biomoe:...``) are left out. Overlapping ones are a LabelError as in CSV."""
    from .edf import SDK_ANNOTATION_PREFIX

    intervals = [LabelInterval(subject, onset, onset + duration, text, None, f"{origin} annotation {text!r} at "
                               f"{onset:g} s") for onset, duration, text in annotations
                 if duration and duration > 0 and not text.startswith(SDK_ANNOTATION_PREFIX)]
    check_no_overlaps(intervals)
    return intervals


def read_labels(path, *, subject: str | None = None) -> list[LabelInterval]:
    """Label intervals from a CSV file or from the annotations (with a duration) of an EDF+ file; an EDF's
    intervals belong to ``subject`` (default: the file's name without its suffix)."""
    path = pathlib.Path(path)
    if path.suffix.lower() in (".edf", ".bdf"):
        from .edf import read_edf_annotations

        return edf_label_intervals(read_edf_annotations(path), subject=subject or path.stem, origin=str(path))
    return read_label_csv(path)


def marker_intervals(markers, *, devices: dict[str, str], end_s: float) -> list[LabelInterval]:
    """Per device (``devices``: device -> subject), the intervals its markers label (module docstring)."""
    intervals = []
    ordered = sorted(markers, key=lambda m: m.time_s)
    for device, subject in devices.items():
        mine = [m for m in ordered if (m.device is None or m.device == device)
                and (m.subject is None or m.subject == subject)]
        for i, marker in enumerate(mine):
            if marker.duration_s is not None:
                stop = marker.time_s + marker.duration_s
            else:
                stop = mine[i + 1].time_s if i + 1 < len(mine) else end_s
            if stop > marker.time_s:
                intervals.append(LabelInterval(subject, marker.time_s, stop, marker.label, device,
                                               f"marker {marker.label!r} at {marker.time_s:.3f} s"))
    return intervals


class WindowLabeller:
    """Applies the labelling rule; ``labelled`` counts windows per label, ``unlabelled`` per reason."""

    def __init__(self, intervals):
        self.intervals = list(intervals)
        self._by_subject = collections.defaultdict(list)
        for interval in self.intervals:
            self._by_subject[interval.subject].append(interval)
        self.labelled: collections.Counter = collections.Counter()
        self.unlabelled: collections.Counter = collections.Counter()

    def label(self, subject: str, device: str, start_s: float, end_s: float) -> str | None:
        touching = [i for i in self._by_subject.get(subject, []) + self._by_subject.get(None, [])
                    if i.applies_to(subject, device) and i.start_s < end_s - TIME_TOLERANCE_S
                    and start_s < i.end_s - TIME_TOLERANCE_S]
        labels = {i.label for i in touching}
        if not labels:
            reason = "no_label"
        elif len(labels) > 1:
            reason = "straddles_labels"
        else:
            reached = start_s
            for interval in sorted(touching, key=lambda i: i.start_s):
                if interval.start_s > reached + TIME_TOLERANCE_S:
                    break
                reached = max(reached, interval.end_s)
            if reached >= end_s - TIME_TOLERANCE_S:
                (label,) = labels
                self.labelled[label] += 1
                return label
            reason = "partly_labelled"
        self.unlabelled[reason] += 1
        return None

    @property
    def subjects(self) -> set:
        return {i.subject for i in self.intervals if i.subject is not None}
