"""EDF+ in and out, with pyEDFlib (imported only here, only when used).

Export (``export_edf``, ``biomoe-edge recording export-edf DIR OUT.edf``): one EDF+C (continuous) file, one signal
per recorded stream channel, sample k of a signal at ``k / fs`` seconds after the file's start. EDF has one time
grid per signal and no "no sample" value, so gaps (lost packets, a device that started late or stopped early, the
padding of the last data record) are filled by holding the last value and marked by an annotation
``biomoe:gap <signal>`` with its onset and duration. We chose annotated gaps over EDF+D (discontinuous records)
because pyEDFlib (edflib) refuses to read EDF+D files ("the file is discontinuous"), while annotations are read by
every EDF+ tool; importing the file again drops the annotated gap samples. Within a run of samples without a
gap, samples are written in order (the device clock's drift against the gateway's is not resampled); at each
gap a signal is re-synchronised with its gateway times.

Annotations: ``biomoe:t0=<gateway time>`` at onset 0 (the gateway time of the file's start: add it to an EDF time to
get the recording's time base back); each marker with its label and the interval it labels (its duration, else
until the next marker of the same device and subject, else the end); each accounting event as
``biomoe:<kind> <device>/<modality>``. EDF+ limits an annotation's text to 40 characters (longer marker labels
are cut, with a warning). Values are 16-bit: each signal's physical range is its data's range, so the
quantisation step is range / 65535.

Import (``read_edf``): the channels a map names, as imported streams in seconds from the file's start.
"""

from __future__ import annotations

import datetime
import logging
import math
import pathlib

import numpy as np

from biomoe_edge.durable import move_into_place

from .exc import RecordingError, SignalFileError

log = logging.getLogger("biomoe_edge.runtime.recording")

SDK_ANNOTATION_PREFIX = "biomoe:"
MAX_ANNOTATION_CHARS = 40
DIGITAL_MIN, DIGITAL_MAX = -32768, 32767


def _pyedflib():
    try:
        import pyedflib
    except ImportError as exc:
        raise RuntimeError(f"EDF needs pyEDFlib ({exc}): pip install 'biomoe-edge[recordings]'") from None
    return pyedflib


def _edf_number(value: float, *, up: bool) -> float | int:
    """``value`` rounded outward to what EDF's 8-character header field can hold."""
    for decimals in range(6, -1, -1):
        scale = 10.0 ** decimals
        rounded = (math.ceil(value * scale) if up else math.floor(value * scale)) / scale
        text = f"{rounded:.{decimals}f}".rstrip("0").rstrip(".") if decimals else f"{rounded:.0f}"
        if len(text) <= 8:  # pyEDFlib writes str(value): an integral float would gain a ".0"
            value = float(text)
            return int(value) if value.is_integer() else value
    raise RecordingError(f"a value of {value:g} does not fit EDF's 8-character physical range")


def _signal_labels(streams) -> list[str]:
    """EDF labels (16 characters at most): the modality, numbered by device when several devices have it."""
    devices_per_modality: dict[str, list[str]] = {}
    for info in streams:
        devices_per_modality.setdefault(info.modality, [])
        if info.device not in devices_per_modality[info.modality]:
            devices_per_modality[info.modality].append(info.device)
    labels = []
    for info in streams:
        devices = devices_per_modality[info.modality]
        base = info.modality.upper() if len(devices) == 1 else f"{info.modality.upper()} {devices.index(info.device) + 1}"
        labels.append(base)
    return labels


def _runs(times: np.ndarray, fs: float) -> list[tuple[int, int]]:
    """[start, stop) index ranges of samples without a gap (a step over 1.5 periods, or back in time)."""
    if times.size == 0:
        return []
    steps = np.diff(times)
    breaks = np.flatnonzero((steps > 1.5 / fs) | (steps <= 0)) + 1
    edges = np.concatenate([[0], breaks, [times.size]])
    return [(int(a), int(b)) for a, b in zip(edges[:-1], edges[1:])]


def _place(times: np.ndarray, values: np.ndarray, fs: float, t0: float):
    """One channel on the EDF grid: (filled values, [(onset_s, duration_s) of filled stretches])."""
    out: list[np.ndarray] = []
    gaps: list[tuple[float, float]] = []
    written = 0
    last = float(values[0]) if values.size else 0.0
    for start, stop in _runs(times, fs):
        target = int(round((times[start] - t0) * fs))
        if target > written:
            out.append(np.full(target - written, last))
            gaps.append((written / fs, (target - written) / fs))
            written = target
        out.append(values[start:stop])
        written += stop - start
        last = float(values[stop - 1])
    return (np.concatenate(out) if out else np.zeros(0)), gaps, last


def export_edf(recording, out_path, *, patient: str | None = None) -> dict:
    """Write ``recording`` (an opened recording) as EDF+ to ``out_path`` (temporary name, then rename).
    Returns a summary: signals, duration_s, t0 (gateway time of the file's start), annotations."""
    pyedflib = _pyedflib()
    out_path = pathlib.Path(out_path)
    data = [(info, times, samples) for info, times, samples in recording.iter_streams() if times.size]
    if not data:
        raise RecordingError(f"{recording.path}: no samples to export")
    t0 = min(float(times[0]) for _, times, _ in data)
    labels = _signal_labels([info for info, _, _ in data])
    signals, headers, annotations = [], [], [(0.0, -1.0, f"{SDK_ANNOTATION_PREFIX}t0={t0:.6f}")]
    for (info, times, samples), label in zip(data, labels):
        for channel in range(samples.shape[1]):
            name = label if samples.shape[1] == 1 else f"{label}.{channel + 1}"
            values, gaps, _ = _place(times, samples[:, channel], info.sample_rate_hz, t0)
            finite = values[np.isfinite(values)]
            low, high = (float(finite.min()), float(finite.max())) if finite.size else (-1.0, 1.0)
            if high - low < 1e-9:
                low, high = low - 1.0, high + 1.0
            values = np.where(np.isfinite(values), values, low)  # EDF has no NaN: an invalid sample is a gap
            signals.append((values, gaps))
            headers.append({"label": name, "dimension": (info.units or "")[:8],
                            "sample_frequency": info.sample_rate_hz,
                            "physical_min": _edf_number(low, up=False), "physical_max": _edf_number(high, up=True),
                            "digital_min": DIGITAL_MIN, "digital_max": DIGITAL_MAX,
                            "transducer": f"{info.device}/{info.modality}"[:80], "prefilter": ""})
    end_s = max(t[-1] - t0 + 1.0 / info.sample_rate_hz for info, t, _ in data)
    devices = {info.device: recording.subject_of(info.device) for info, _, _ in data}
    for marker in recording.markers:
        # The interval it labels: its duration, else until the next marker of the same scope, else the end.
        later = [m.time_s for m in recording.markers
                 if (m.device, m.subject) == (marker.device, marker.subject) and m.time_s > marker.time_s]
        stop = (marker.time_s + marker.duration_s if marker.duration_s is not None
                else min(later, default=end_s + t0))
        if not 0.0 <= marker.time_s - t0 <= end_s:
            log.warning("marker %r at gateway time %g s lies outside the recording (%g to %g s): not exported",
                        marker.label, marker.time_s, t0, t0 + end_s)
            continue
        if len(marker.label) > MAX_ANNOTATION_CHARS:
            log.warning("marker label %r is longer than EDF+'s %d characters: cut", marker.label, MAX_ANNOTATION_CHARS)
        annotations.append((marker.time_s - t0, max(0.0, stop - marker.time_s), marker.label[:MAX_ANNOTATION_CHARS]))
    for event in recording.events:
        where = f"{event.device}/{event.modality}" if event.device else "recording"
        annotations.append((max(0.0, event.time_s - t0), -1.0,
                            f"{SDK_ANNOTATION_PREFIX}{event.kind} {where}"[:MAX_ANNOTATION_CHARS]))

    tmp = out_path.with_name(out_path.name + ".partial")
    out_path.parent.mkdir(parents=True, exist_ok=True)
    writer = pyedflib.EdfWriter(str(tmp), len(headers), file_type=pyedflib.FILETYPE_EDFPLUS)
    try:
        writer.setSignalHeaders(headers)
        record_s = float(writer.record_duration)
        per_record = [writer.get_smp_per_record(i) for i in range(len(headers))]
        n_records = max(math.ceil(len(values) / spr) for (values, _), spr in zip(signals, per_record))
        columns = []
        for ((values, gaps), spr, header) in zip(signals, per_record, headers):
            total = n_records * spr
            if total > len(values):  # the end: hold the last value, annotated as a gap
                fs = spr / record_s
                gaps = gaps + [(len(values) / fs, (total - len(values)) / fs)]
                values = np.concatenate([values, np.full(total - len(values), values[-1] if len(values) else 0.0)])
            columns.append(np.ascontiguousarray(values, dtype=np.float64))
            for onset, duration in gaps:
                annotations.append((onset, duration, f"{SDK_ANNOTATION_PREFIX}gap {header['label']}"))
        needed = math.ceil(len(annotations) / n_records) + 1
        if needed > 64:
            raise RecordingError(f"{recording.path}: {len(annotations)} annotations do not fit {n_records} EDF data "
                                 "records (at most 64 each)")
        writer.set_number_of_annotation_signals(needed)
        start = _start_datetime(recording, t0)
        if start is not None:
            writer.setStartdatetime(start)
        # EDF+ header subfields are separated by spaces: none inside them.
        writer.setPatientCode((patient or ",".join(sorted(set(devices.values())))).replace(" ", "_")[:80])
        writer.setEquipment("biomoe-edge")
        writer.setRecordingAdditional(f"gateway_time_at_onset_0={t0:.6f}s")
        writer.writeSamples(columns)
        for onset, duration, text in sorted(annotations, key=lambda a: a[0]):
            writer.writeAnnotation(onset, duration, text)
    finally:
        writer.close()
    move_into_place(tmp, out_path)
    return {"path": str(out_path), "signals": [h["label"] for h in headers], "duration_s": n_records * record_s,
            "t0": t0, "annotations": len(annotations), "record_duration_s": record_s}


def _start_datetime(recording, t0: float):
    """Wall-clock time of the file's start: the recording's creation time plus the gateway time since."""
    created, created_t = recording.info.get("created_utc"), recording.info.get("created_time_s")
    if not created or created_t is None:
        return None
    try:
        when = datetime.datetime.fromisoformat(created) + datetime.timedelta(seconds=t0 - float(created_t))
    except (TypeError, ValueError):
        return None
    return when.astimezone(datetime.timezone.utc).replace(tzinfo=None)


# -- import --------------------------------------------------------------------------------------------

def _open_reader(path: pathlib.Path):
    pyedflib = _pyedflib()
    if not path.is_file():
        raise SignalFileError(f"{path}: no such file")
    try:
        return pyedflib.EdfReader(str(path))
    except OSError as exc:
        text = str(exc)
        if "discontinuous" in text:
            raise SignalFileError(f"{path}: an EDF+D (discontinuous) file, which pyEDFlib cannot read; convert it to "
                                  "EDF+C (for example with EDFbrowser) first") from None
        raise SignalFileError(f"{path}: not a readable EDF/EDF+ file ({text.strip()})") from None


def _annotations(reader) -> list[tuple[float, float | None, str]]:
    onsets, durations, texts = reader.readAnnotations()
    return [(float(o), float(d) if d is not None and float(d) > 0 else None, str(t))
            for o, d, t in zip(onsets, durations, texts)]


def edf_signal_labels(path) -> list[str]:
    """The channel labels of an EDF/EDF+/BDF file, stripped."""
    path = pathlib.Path(path)
    reader = _open_reader(path)
    try:
        return [label.strip() for label in reader.getSignalLabels()]
    finally:
        reader.close()


def read_edf_annotations(path) -> list[tuple[float, float | None, str]]:
    """(onset_s, duration_s or None, text) of every EDF+ annotation of ``path``."""
    path = pathlib.Path(path)
    reader = _open_reader(path)
    try:
        return _annotations(reader)
    finally:
        reader.close()


def read_edf(path, channel_map) -> dict:
    """The mapped channels of an EDF/EDF+ file: ``{"signals": [(channel, modality, fs, units, values, gaps)],
    "annotations": [...]}``, times in seconds from the file's start. ``channel_map``: [(channel, modality,
    claimed rate or None)]; a missing channel or a rate other than claimed is a SignalFileError."""
    path = pathlib.Path(path)
    reader = _open_reader(path)
    try:
        labels = [label.strip() for label in reader.getSignalLabels()]
        annotations = _annotations(reader)
        signals = []
        for channel, modality, claimed in channel_map:
            if channel not in labels:
                raise SignalFileError(f"{path}: no channel {channel!r} (the map names it); its channels: "
                                      + ", ".join(repr(label) for label in labels))
            i = labels.index(channel)
            fs = float(reader.getSampleFrequency(i))
            if claimed is not None and abs(fs - claimed) > 1e-6 * max(fs, claimed):
                raise SignalFileError(f"{path}: channel {channel!r} is sampled at {fs:g} Hz, but the map says "
                                      f"{modality}@{claimed:g}")
            values = np.asarray(reader.readSignal(i), dtype=np.float64)
            gaps = [(onset, duration) for onset, duration, text in annotations
                    if duration and text == f"{SDK_ANNOTATION_PREFIX}gap {channel}"]
            signals.append((channel, modality, fs, reader.getPhysicalDimension(i).strip(), values, gaps))
    except (OSError, ValueError) as exc:
        if isinstance(exc, SignalFileError):
            raise
        raise SignalFileError(f"{path}: cannot read its signals ({exc})") from None
    finally:
        reader.close()
    return {"signals": signals, "annotations": annotations}
