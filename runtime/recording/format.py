"""The on-disk layout of a recording folder (docs/recordings.md, "Format"), shared by the writer and the reader.

    recording.json          format, version, settings (windows, representations, model, devices, subjects),
                            written once at the start (temporary name, fsync, atomic rename)
    segments/000000.npz     what the gateway's ingest was given, in order: one NumPy archive per segment_s,
    segments/000001.npz     each written under ``*.partial``, fsynced, then renamed (a reader sees whole ones only)
    markers/*.json          markers written by another process (``biomoe-edge mark``), one atomic file each
    end.json                written at a clean close: segment count and totals (missing: crashed or running)

A segment holds four arrays: ``index`` (one row per entry, in the order the entries happened: kind, stream
number, sample count, channels, time, lost_before), ``samples`` (every block's (n, c) samples flattened, float64),
``times`` (their gateway times, float64) and ``meta`` (UTF-8 JSON: the stream descriptions, events and markers
of the segment, in entry order). Samples and times are float64 exactly as the ingest received them, so a replay
is bit for bit the live input.
"""

from __future__ import annotations

import datetime
import json
import math
import os
import pathlib

import numpy as np

from biomoe_edge.durable import atomic_write_bytes

FORMAT_NAME = "biomoe-edge-recording"
FORMAT_VERSION = 1
RECORDING_FILE = "recording.json"
END_FILE = "end.json"
SEGMENTS_DIR = "segments"
MARKERS_DIR = "markers"
SEGMENT_SUFFIX = ".npz"
PARTIAL_SUFFIX = ".partial"

#: Entry kinds of a segment's index.
BLOCK, STREAM, EVENT, MARKER = 0, 1, 2, 3
KIND_NAMES = {BLOCK: "block", STREAM: "stream", EVENT: "event", MARKER: "marker"}

#: One row per entry. ``stream``: the recording's stream number (-1 for a marker); ``count``: samples of a block;
#: ``time_s``: a block's arrival time, an event's or marker's time; ``lost_before``: -1 for None.
INDEX_DTYPE = np.dtype([("kind", "u1"), ("stream", "<i4"), ("count", "<i8"), ("channels", "<i4"),
                        ("time_s", "<f8"), ("lost_before", "<i8")])


#: Seconds a segment may span: each is a file written, fsynced and renamed (1e-9 kept the writer thread busy).
SEGMENT_S_RANGE = (0.01, 3600.0)
#: Marker times are gateway times (``time.monotonic``: seconds since boot); durations at most 30 days. Beyond
#: these, EDF+ onsets and durations overflow (a duration of 1e308 s was exported as -1).
MARKER_TIME_S_RANGE = (-1e9, 1e9)
MARKER_DURATION_S_MAX = 30 * 86400.0

#: A recording's files and folders: the owner writes, the group reads (as the file sinks), whatever the umask.
FILE_MODE = 0o640
DIR_MODE = 0o750


def create_file(path: pathlib.Path):
    """``path`` opened for writing (created or emptied) with exactly ``FILE_MODE``."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_CLOEXEC", 0), FILE_MODE)
    try:
        os.fchmod(fd, FILE_MODE)
    except OSError:
        os.close(fd)
        raise
    return os.fdopen(fd, "wb")


def segment_name(sequence: int) -> str:
    return f"{sequence:06d}{SEGMENT_SUFFIX}"


def write_atomically(path: pathlib.Path, data: bytes) -> None:
    """``path`` holds ``data`` or keeps its previous state (never a part of it): ``durable.atomic_write_bytes``,
    created with ``FILE_MODE``."""
    atomic_write_bytes(path, data, mode=FILE_MODE)


def write_json_atomically(path: pathlib.Path, value) -> None:
    write_atomically(path, (json.dumps(value, indent=1, allow_nan=False, default=str) + "\n").encode("utf-8"))


def encode_segment(rows: list[tuple], samples: list[np.ndarray], times: list[np.ndarray], meta: list[dict],
                   sequence: int) -> dict[str, np.ndarray]:
    """The arrays of one segment: ``rows`` are INDEX_DTYPE tuples, ``samples``/``times`` the blocks' arrays in
    order, ``meta`` the non-block entries' JSON in order."""
    return {
        "index": np.array(rows, dtype=INDEX_DTYPE),
        "samples": np.concatenate([s.reshape(-1) for s in samples]) if samples else np.zeros(0),
        "times": np.concatenate(times) if times else np.zeros(0),
        "meta": np.frombuffer(json.dumps({"format": FORMAT_NAME, "version": FORMAT_VERSION, "sequence": sequence,
                                          "entries": meta}, allow_nan=True, default=str).encode("utf-8"),
                              dtype=np.uint8),
    }


def utc_now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="microseconds")


def make_marker(label, time_s, *, source="mark", subject=None, device=None, duration_s=None) -> dict:
    """A marker's JSON form, checked: a non-empty label, a finite time, a positive duration when given."""
    if not isinstance(label, str) or not label.strip():
        raise ValueError(f"a marker needs a non-empty label, got {label!r}")
    time_s = float(time_s)
    low, high = MARKER_TIME_S_RANGE
    if not (math.isfinite(time_s) and low <= time_s <= high):
        raise ValueError(f"marker {label!r}: time_s must be a gateway time from {low:g} to {high:g} s, got {time_s!r}")
    if duration_s is not None:
        duration_s = float(duration_s)
        if not (math.isfinite(duration_s) and 0 < duration_s <= MARKER_DURATION_S_MAX):
            raise ValueError(f"marker {label!r}: duration_s must be a positive number of seconds up to "
                             f"{MARKER_DURATION_S_MAX:g}, got {duration_s!r}")
    return {"label": label.strip(), "time_s": time_s, "source": str(source),
            "subject": None if subject is None else str(subject), "device": None if device is None else str(device),
            "duration_s": duration_s}
