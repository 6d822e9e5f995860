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
import dataclasses
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
    #: the gateway time of this interval's time zero, where its file says (an EDF+ the SDK exported carries
    #: ``biomoe:t0``): its times are seconds from that file's start, and plus this they are gateway times.
    gateway_t0: float | None = None

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


#: Annotations EDF tools write on their own (EDFbrowser, pyEDFlib): bookkeeping, never labels.
EDF_BOOKKEEPING_ANNOTATIONS = ("recording starts", "recording ends")


def is_label_annotation(text: str) -> bool:
    """Whether an EDF+ annotation's text can be a label: not the SDK's own (``biomoe:...``), not empty, not an EDF
    tool's bookkeeping ("Recording starts")."""
    from .edf import SDK_ANNOTATION_PREFIX

    text = text.strip()
    return bool(text) and not text.startswith(SDK_ANNOTATION_PREFIX) and text.lower() not in EDF_BOOKKEEPING_ANNOTATIONS


def edf_gateway_t0(annotations) -> float | None:
    """The gateway time of an SDK-exported EDF+'s start (its ``biomoe:t0=`` annotation), else None."""
    from .edf import SDK_ANNOTATION_PREFIX

    for _, _, text in annotations:
        if text.startswith(f"{SDK_ANNOTATION_PREFIX}t0="):
            try:
                return float(text.split("=", 1)[1])
            except ValueError:
                return None
    return None


def edf_label_intervals(annotations, *, subject: str | None, origin: str) -> list[LabelInterval]:
    """Intervals from EDF+ annotations ``(onset_s, duration_s or None, text)`` that have a duration; the SDK's own
    (``biomoe:...``) and EDF tools' bookkeeping are left out. Overlapping ones are a LabelError as in CSV."""
    t0 = edf_gateway_t0(annotations)
    intervals = [LabelInterval(subject, onset, onset + duration, text.strip(), None, f"{origin} annotation {text!r} at "
                               f"{onset:g} s", t0) for onset, duration, text in annotations
                 if duration and duration > 0 and is_label_annotation(text)]
    check_no_overlaps(intervals)
    return intervals


def read_labels(path, *, subject: str | None = None) -> list[LabelInterval]:
    """Label intervals from a CSV file or from the annotations (with a duration) of an EDF+ file; an EDF's
    intervals belong to ``subject`` (default: every subject of the recording an SDK-exported EDF+ came from,
    which its ``biomoe:t0`` marks; else the file's name without its suffix)."""
    path = pathlib.Path(path)
    if path.suffix.lower() in (".edf", ".bdf"):
        from .edf import read_edf_annotations

        annotations = read_edf_annotations(path)
        if subject is None and edf_gateway_t0(annotations) is None:
            subject = path.stem
        return edf_label_intervals(annotations, subject=subject, origin=str(path))
    return read_label_csv(path)


@dataclass(frozen=True)
class InputSpan:
    """Where an input has data: a device's first to last sample time, in the input's time base."""

    input: str
    subject: str
    device: str
    start_s: float
    end_s: float


def input_spans(sources, *, subject: str | None = None) -> list[InputSpan]:
    """One span per device of each opened source (``sources.open_source``); ``subject`` overrides as in embed."""
    spans = []
    for source in sources:
        first: dict = {}
        last: dict = {}
        for info, times, _ in source.iter_streams():
            if len(times):
                first[info.device] = min(first.get(info.device, math.inf), float(times[0]))
                last[info.device] = max(last.get(info.device, -math.inf), float(times[-1]))
        for device in first:
            spans.append(InputSpan(str(source.path), source.subject_of(device, subject), device, first[device],
                                   last[device]))
    return spans


def _reaches(interval: LabelInterval, span: InputSpan, shift: float = 0.0) -> bool:
    return (interval.applies_to(span.subject, span.device) and interval.start_s + shift < span.end_s
            and span.start_s < interval.end_s + shift)


def _describe_labels(intervals, shift: float = 0.0) -> str:
    by_subject: dict = collections.defaultdict(list)
    for interval in intervals:
        by_subject[interval.subject].append(interval)
    return "; ".join(f"{'every subject' if who is None else f'subject {who}'} "
                     f"{min(i.start_s for i in group) + shift:.3f}-{max(i.end_s for i in group) + shift:.3f} s"
                     for who, group in sorted(by_subject.items(), key=lambda item: str(item[0])))


def _describe_spans(spans) -> str:
    return "; ".join(f"subject {s.subject} (device {s.device} of {pathlib.Path(s.input).name}) "
                     f"{s.start_s:.3f}-{s.end_s:.3f} s" for s in spans)


def fit_labels_to_inputs(intervals, spans, *, labels_name: str = "the labels") -> list[LabelInterval]:
    """The label intervals in the inputs' time base, or a LabelError before any work when none would label
    anything. Intervals that overlap an input's data as they are stay as they are; else intervals whose file
    says where its time zero lies on the gateway's clock (an SDK-exported EDF+: ``biomoe:t0``) are moved there;
    else the error names the subjects and time spans on both sides, and says so when the labels look like
    seconds from a recording's start while the recording keeps gateway times."""
    intervals = list(intervals)
    spans = list(spans)
    if not intervals or not spans:
        return intervals
    if any(_reaches(i, s) for i in intervals for s in spans):
        return intervals
    if all(i.gateway_t0 is not None for i in intervals):
        moved = [dataclasses.replace(i, start_s=i.start_s + i.gateway_t0, end_s=i.end_s + i.gateway_t0,
                                     gateway_t0=None) for i in intervals]
        if any(_reaches(i, s) for i in moved for s in spans):
            return moved
    problem = f"no interval of {labels_name} overlaps any input's data"
    known = {s.subject for s in spans}
    unknown = sorted({str(i.subject) for i in intervals if i.subject is not None and i.subject not in known})
    if unknown and len(unknown) == len({i.subject for i in intervals}):
        problem += f" (the labels' subjects {', '.join(unknown)} are none of the inputs' {', '.join(sorted(known))})"
    hint = ""
    longest = max(s.end_s - s.start_s for s in spans)
    if (min(i.start_s for i in intervals) >= 0 and max(i.end_s for i in intervals) <= longest + 1.0
            and any(_reaches(i, s, s.start_s) for i in intervals for s in spans)):
        starts = sorted({f"{s.start_s:.3f}" for s in spans})
        hint = (f". Their times look like seconds from the recording's start, but a gateway recording keeps gateway "
                f"times: add the recording's first sample time ({', '.join(starts)} s) to start_s and end_s, or "
                "label with `biomoe-edge mark` (gateway times) or in the recording's EDF+ export (its biomoe:t0 "
                "places it)")
    raise LabelError(f"{problem}: labels {_describe_labels(intervals)}; inputs {_describe_spans(spans)}{hint}")


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
