"""``open_recording``: a recording folder read back, checked, as NumPy arrays with their gateway times.

Only whole segments are read (``*.partial`` files, what a crash leaves of the segment being written, are listed
in ``partial_segments`` and ignored). A recording without ``end.json`` crashed or is still running:
``complete`` is False and everything up to its last whole segment is there. Anything else out of place (a
segment missing from the sequence, a segment that is not a NumPy archive or is truncated, a foreign
``recording.json``) is a :class:`RecordingError` naming the file and what is wrong in it.
"""

from __future__ import annotations

import json
import math
import pathlib
import zipfile
import zlib
from dataclasses import dataclass, field

import numpy as np

from . import format as fmt
from .exc import RecordingError


@dataclass(frozen=True)
class StreamInfo:
    """One recorded stream: ``description`` as the gateway gave it (``sample_rate_hz``, ``channels``, ``units``,
    ``profile``...)."""

    device: str
    modality: str
    description: dict
    number: int = 0

    @property
    def sample_rate_hz(self) -> float:
        return float(self.description["sample_rate_hz"])

    @property
    def channels(self) -> int:
        return int(self.description["channels"])

    @property
    def units(self) -> str:
        return str(self.description.get("units") or "")


@dataclass(frozen=True, eq=False)
class Block:
    """One ``Ingest.push`` as the gateway made it: samples (n, c) float64, gateway times (n,), the push's arrival
    time, and ``lost_before`` (samples lost just before it; None: placed by its times)."""

    device: str
    modality: str
    samples: np.ndarray
    gateway_times_s: np.ndarray
    arrival_time_s: float
    lost_before: int | None


@dataclass(frozen=True)
class Event:
    """An accounting event: ``gap`` (``detail["samples_lost"]``), ``restart``, ``clock_jump``, ``recording_lost``."""

    device: str | None
    modality: str | None
    kind: str
    time_s: float
    detail: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Marker:
    """A marker in the recording's time base: from ``biomoe-edge mark``, an LSL stream, or ``write_marker``."""

    label: str
    time_s: float
    source: str = "mark"
    subject: str | None = None
    device: str | None = None
    duration_s: float | None = None


@dataclass
class _Segment:
    path: pathlib.Path
    index: np.ndarray
    meta: list


class Recording:
    """A recording folder, opened by :func:`open_recording`. ``settings``: what the gateway recorded it with;
    ``streams``: (device, modality) -> :class:`StreamInfo`; ``markers``, ``events``: in time order."""

    kind = "recording"

    def __init__(self, path: pathlib.Path, info: dict, segments: list[_Segment], markers: list[Marker],
                 end: dict | None, partial_segments: list[pathlib.Path]):
        self.path = path
        self.info = info
        self.settings: dict = info.get("settings") or {}
        self._segments = segments
        self.partial_segments = partial_segments
        self.end = end
        self.streams: dict[tuple[str, str], StreamInfo] = {}
        self.events: list[Event] = []
        segment_markers: list[Marker] = []
        numbers: dict[int, StreamInfo] = {}
        self.total_samples = 0
        self.total_blocks = 0
        for segment in segments:
            entries = iter(segment.meta)
            for row in segment.index:
                kind = int(row["kind"])
                if kind == fmt.BLOCK:
                    if int(row["stream"]) not in numbers:
                        raise RecordingError(f"{segment.path}: a block of stream {int(row['stream'])}, which no "
                                             "earlier entry declares")
                    self.total_samples += int(row["count"])
                    self.total_blocks += 1
                    continue
                entry = next(entries, None)
                if entry is None:
                    raise RecordingError(f"{segment.path}: index lists more entries than meta describes")
                try:
                    if kind == fmt.STREAM:
                        stream = StreamInfo(str(entry["device"]), str(entry["modality"]), dict(entry["description"]),
                                            int(entry["stream"]))
                        key = (stream.device, stream.modality)
                        if numbers.get(stream.number) == stream and self.streams.get(key) == stream:
                            continue  # every segment declares its streams again (a lost segment orphans nothing)
                        if stream.number in numbers or key in self.streams:
                            raise RecordingError(f"{segment.path}: stream {stream.device}/{stream.modality} "
                                                 "declared twice, differently")
                        numbers[stream.number] = stream
                        self.streams[(stream.device, stream.modality)] = stream
                    elif kind == fmt.EVENT:
                        self.events.append(Event(entry["device"], entry["modality"], str(entry["kind"]),
                                                 float(entry["time_s"]), dict(entry.get("detail") or {})))
                    elif kind == fmt.MARKER:
                        segment_markers.append(_marker(entry))
                    else:
                        raise RecordingError(f"{segment.path}: unknown entry kind {kind}")
                except (KeyError, TypeError, ValueError) as exc:
                    if isinstance(exc, RecordingError):
                        raise
                    raise RecordingError(f"{segment.path}: malformed {fmt.KIND_NAMES.get(kind, kind)} entry "
                                         f"{entry!r} ({type(exc).__name__}: {exc})") from None
        self._numbers = numbers
        self.markers: list[Marker] = sorted(segment_markers + markers, key=lambda m: m.time_s)
        self.events.sort(key=lambda e: e.time_s)

    # -- what it is ----------------------------------------------------------------------------------------
    @property
    def name(self) -> str:
        return self.path.name

    @property
    def complete(self) -> bool:
        """True when the writer closed it cleanly (``end.json``); False after a crash or while running."""
        return self.end is not None

    @property
    def segments(self) -> list[pathlib.Path]:
        return [segment.path for segment in self._segments]

    @property
    def subjects(self) -> dict[str, str]:
        """device -> subject, as recorded (may be empty)."""
        return {str(k): str(v) for k, v in (self.settings.get("subjects") or {}).items()}

    def subject_of(self, device: str, override: str | None = None) -> str:
        """``override`` (``--subject``), else the recorded subject of ``device``, else the recording's name."""
        return override or self.subjects.get(device) or self.name

    def __repr__(self) -> str:
        return (f"Recording({str(self.path)!r}, streams={len(self.streams)}, blocks={self.total_blocks}, "
                f"samples={self.total_samples}, markers={len(self.markers)}, complete={self.complete})")

    # -- data --------------------------------------------------------------------------------------------
    def blocks(self, *, segments_done=None):
        """Every recorded ``Ingest.push``, as :class:`Block`, in the order the gateway made them.
        ``segments_done(n)``: called after each segment (progress)."""
        for number, segment in enumerate(self._segments):
            samples, times = _load_arrays(segment.path)
            s = t = 0
            expected_samples = expected_times = 0
            for row in segment.index:
                if int(row["kind"]) == fmt.BLOCK:
                    expected_times += int(row["count"])
                    expected_samples += int(row["count"]) * int(row["channels"])
            if expected_samples != samples.size or expected_times != times.size:
                raise RecordingError(f"{segment.path}: its index lists {expected_times} samples "
                                     f"({expected_samples} values) but it holds {times.size} ({samples.size})")
            for row in segment.index:
                if int(row["kind"]) != fmt.BLOCK:
                    continue
                n, c = int(row["count"]), int(row["channels"])
                stream = self._numbers[int(row["stream"])]
                lost = int(row["lost_before"])
                yield Block(stream.device, stream.modality, samples[s:s + n * c].reshape(n, c), times[t:t + n],
                            float(row["time_s"]), None if lost < 0 else lost)
                s += n * c
                t += n
            if segments_done is not None:
                segments_done(number + 1)

    def stream(self, device: str, modality: str) -> tuple[np.ndarray, np.ndarray]:
        """``(gateway_times_s (n,), samples (n, c))`` of one stream, every block in order."""
        if (device, modality) not in self.streams:
            known = ", ".join(f"{d}/{m}" for d, m in self.streams) or "none"
            raise KeyError(f"{self.path}: no stream {device}/{modality}; it has: {known}")
        info = self.streams[(device, modality)]
        times, samples = [], []
        for block in self.blocks():
            if block.device == device and block.modality == modality:
                times.append(block.gateway_times_s)
                samples.append(block.samples)
        if not times:
            return np.zeros(0), np.zeros((0, info.channels))
        return np.concatenate(times), np.concatenate(samples)

    def iter_streams(self):
        """``(StreamInfo, gateway_times_s, samples)`` of every stream (one pass over the segments)."""
        parts: dict[tuple[str, str], tuple[list, list]] = {key: ([], []) for key in self.streams}
        for block in self.blocks():
            times, samples = parts[(block.device, block.modality)]
            times.append(block.gateway_times_s)
            samples.append(block.samples)
        for key, info in self.streams.items():
            times, samples = parts[key]
            yield (info, np.concatenate(times) if times else np.zeros(0),
                   np.concatenate(samples) if samples else np.zeros((0, info.channels)))


def _marker(entry: dict) -> Marker:
    duration = entry.get("duration_s")
    marker = Marker(str(entry["label"]), float(entry["time_s"]), str(entry.get("source") or "mark"),
                    entry.get("subject"), entry.get("device"), None if duration is None else float(duration))
    if not marker.label or not math.isfinite(marker.time_s):
        raise ValueError("a marker needs a label and a finite time")
    low, high = fmt.MARKER_TIME_S_RANGE
    if not low <= marker.time_s <= high:
        raise ValueError(f"time_s {marker.time_s!r} is outside {low:g} to {high:g} s")
    if marker.duration_s is not None and not 0 < marker.duration_s <= fmt.MARKER_DURATION_S_MAX:
        raise ValueError(f"duration_s {marker.duration_s!r} is outside 0 to {fmt.MARKER_DURATION_S_MAX:g} s")
    return marker


def _load_arrays(path: pathlib.Path) -> tuple[np.ndarray, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as data:
            return np.asarray(data["samples"], dtype=np.float64), np.asarray(data["times"], dtype=np.float64)
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile, zlib.error) as exc:
        raise RecordingError(f"{path}: not a readable recording segment ({type(exc).__name__}: {exc})") from None


def _read_segment(path: pathlib.Path, sequence: int) -> _Segment:
    try:
        with np.load(path, allow_pickle=False) as data:
            index = np.asarray(data["index"])
            meta = json.loads(bytes(np.asarray(data["meta"], dtype=np.uint8)).decode("utf-8"))
    except (OSError, ValueError, KeyError, EOFError, UnicodeDecodeError, zipfile.BadZipFile,
            zlib.error) as exc:  # a damaged deflate stream is zlib's own error
        raise RecordingError(f"{path}: not a readable recording segment ({type(exc).__name__}: {exc})") from None
    if index.dtype != fmt.INDEX_DTYPE:
        raise RecordingError(f"{path}: index has fields {index.dtype}, expected {fmt.INDEX_DTYPE}")
    if not isinstance(meta, dict) or meta.get("format") != fmt.FORMAT_NAME:
        raise RecordingError(f"{path}: meta.format is not {fmt.FORMAT_NAME!r}")
    if meta.get("sequence") != sequence:
        raise RecordingError(f"{path}: meta.sequence is {meta.get('sequence')!r}, its name says {sequence}")
    entries = meta.get("entries")
    if not isinstance(entries, list) or len(entries) != int(np.count_nonzero(index["kind"] != fmt.BLOCK)):
        raise RecordingError(f"{path}: meta.entries does not match the index's non-block entries")
    return _Segment(path, index, entries)


def _read_json(path: pathlib.Path, what: str) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise
    except (OSError, ValueError) as exc:
        raise RecordingError(f"{path}: not valid JSON ({exc}); is this {what}?") from None
    if not isinstance(data, dict):
        raise RecordingError(f"{path}: expected a JSON object ({what})")
    return data


def open_recording(directory) -> Recording:
    """Open a recording folder written by :class:`RecordingWriter` (the gateway's recording sink, ``demo --record``)."""
    path = pathlib.Path(directory)
    if not path.is_dir():
        raise RecordingError(f"{path}: no such recording folder")
    try:
        info = _read_json(path / fmt.RECORDING_FILE, "a biomoe-edge recording")
    except FileNotFoundError:
        raise RecordingError(f"{path}: not a biomoe-edge recording (no {fmt.RECORDING_FILE})") from None
    if info.get("format") != fmt.FORMAT_NAME:
        raise RecordingError(f"{path / fmt.RECORDING_FILE}: field 'format' is {info.get('format')!r}, "
                             f"expected {fmt.FORMAT_NAME!r}")
    if info.get("version") != fmt.FORMAT_VERSION:
        raise RecordingError(f"{path / fmt.RECORDING_FILE}: field 'version' is {info.get('version')!r}; this SDK "
                             f"reads version {fmt.FORMAT_VERSION}")
    if not isinstance(info.get("settings", {}), dict):
        raise RecordingError(f"{path / fmt.RECORDING_FILE}: field 'settings' must be an object")
    folder = path / fmt.SEGMENTS_DIR
    names = [p.name for p in folder.glob("*" + fmt.SEGMENT_SUFFIX)] if folder.is_dir() else []
    foreign = [name for name in names if not name[:-len(fmt.SEGMENT_SUFFIX)].isdigit()]
    if foreign:
        raise RecordingError(f"{folder / foreign[0]}: not a segment of this recording (segments are numbered)")
    names.sort(key=lambda name: int(name[:-len(fmt.SEGMENT_SUFFIX)]))
    partial = sorted(folder.glob("*" + fmt.PARTIAL_SUFFIX)) if folder.is_dir() else []
    segments = []
    for sequence, name in enumerate(names):
        if name != fmt.segment_name(sequence):
            raise RecordingError(f"{folder}: segment {fmt.segment_name(sequence)} is missing (found {name} next); "
                                 "a recording is read whole or not at all")
        segments.append(_read_segment(folder / name, sequence))
    end = None
    if (path / fmt.END_FILE).exists():
        end = _read_json(path / fmt.END_FILE, "a recording's end.json")
        if end.get("segments") != len(segments):
            raise RecordingError(f"{path / fmt.END_FILE}: field 'segments' says {end.get('segments')!r} segments, "
                                 f"{folder} holds {len(segments)}")
    markers = []
    marker_folder = path / fmt.MARKERS_DIR
    if marker_folder.is_dir():
        for marker_path in sorted(marker_folder.glob("*.json")):
            try:
                markers.append(_marker(_read_json(marker_path, "a marker")))
            except (KeyError, TypeError, ValueError) as exc:
                if isinstance(exc, RecordingError):
                    raise
                raise RecordingError(f"{marker_path}: not a marker ({type(exc).__name__}: {exc})") from None
    return Recording(path, info, segments, markers, end, partial)
