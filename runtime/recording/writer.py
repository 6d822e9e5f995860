"""``RecordingWriter``: what the gateway's ingest is given, written crash-safe as it happens.

The gateway's event loop calls ``add_stream``/``write_block``/``write_event``/``write_marker``; they only append to
an in-memory segment (a lock, a copy of the block). A background thread writes the segment out every
``segment_s`` seconds: NumPy archive under ``*.partial``, fsync, atomic rename, fsync of the folder. So after a
``kill -9`` or a power cut, every segment that was renamed reads back whole, the one being written is a
``*.partial`` the reader ignores, and at most the last ``segment_s`` (plus one write) is lost. Every segment
declares all the streams known when it is written, so a lost segment takes only its own blocks. Slow storage never
blocks the event loop; a failed write loses that segment's entries, counts them (``stats()``) and says so in
the next segment (an ``recording_lost`` event), never silently.
"""

from __future__ import annotations

import collections
import errno
import json
import logging
import math
import os
import pathlib
import threading
import time

import numpy as np

from biomoe_edge._version import __version__
from biomoe_edge.durable import fsync_directory

from . import format as fmt
from .exc import RecordingError

log = logging.getLogger("biomoe_edge.runtime.recording")


class RecordingWriter:
    """Write a recording into ``directory`` (created; refused when it already holds one).

    ``settings``: JSON-ready dict the replay needs (windows per modality, representations, model identity,
    devices, subjects; ``sink.gateway_settings`` builds it for the gateway). ``segment_s``: how often a segment
    is finalised, i.e. the most a crash can lose. ``clock``: the gateway clock (``time.monotonic``, which
    ``biomoe-edge mark`` reads from another process). ``register``: list the recording as running, so that
    ``biomoe-edge mark`` finds it without ``--recording``.
    """

    def __init__(self, directory, settings: dict | None = None, segment_s: float = 2.0, *, clock=time.monotonic,
                 register: bool = True):
        low, high = fmt.SEGMENT_S_RANGE
        if not (isinstance(segment_s, (int, float)) and math.isfinite(segment_s) and low <= segment_s <= high):
            raise ValueError(f"segment_s must be a number of seconds from {low:g} to {high:g}, got {segment_s!r}")
        self.directory = pathlib.Path(directory)
        self.segment_s = float(segment_s)
        self.clock = clock
        if (self.directory / fmt.RECORDING_FILE).exists():
            raise RecordingError(f"{self.directory}: already holds a recording ({fmt.RECORDING_FILE}); "
                                 "record into a new folder")
        self.settings = dict(settings or {})
        try:
            text = json.dumps(self.settings, allow_nan=False, default=str)
        except ValueError as exc:
            raise ValueError(f"recording settings must be JSON (no NaN): {exc}") from None
        self.directory.mkdir(parents=True, exist_ok=True, mode=fmt.DIR_MODE)
        (self.directory / fmt.SEGMENTS_DIR).mkdir(exist_ok=True, mode=fmt.DIR_MODE)
        (self.directory / fmt.MARKERS_DIR).mkdir(exist_ok=True, mode=fmt.DIR_MODE)
        self.started_time_s = float(clock())
        fmt.write_json_atomically(self.directory / fmt.RECORDING_FILE, {
            "format": fmt.FORMAT_NAME, "version": fmt.FORMAT_VERSION, "sdk_version": __version__,
            "created_utc": fmt.utc_now(), "created_time_s": self.started_time_s, "segment_s": self.segment_s,
            "settings": json.loads(text),
        })
        self._lock = threading.Lock()  # the pending segment
        self._write_lock = threading.Lock()  # one segment written at a time, in order
        self._streams: dict[tuple[str, str], tuple[int, dict]] = {}
        self._pending = self._empty()
        self._sequence = 0
        self._closed = False
        self.counters: collections.Counter = collections.Counter()
        self.samples_per_stream: collections.Counter = collections.Counter()
        self.errors: collections.Counter = collections.Counter()
        self._registration = None
        if register:
            from .markers import register_active

            self._registration = register_active(self.directory)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="biomoe-recording-writer", daemon=True)
        self._thread.start()

    # -- the API the pipeline's observer calls ------------------------------------------------------------
    def add_stream(self, device: str, modality: str, description: dict) -> None:
        """Declare a stream before its first block: ``description`` holds at least ``sample_rate_hz`` and
        ``channels`` (the ingest's), and whatever else describes it (units, profile, device identity)."""
        key = (str(device), str(modality))
        description = dict(description)
        for name in ("sample_rate_hz", "channels"):
            if name not in description:
                raise RecordingError(f"stream {key[0]}/{key[1]}: description lacks {name!r}")
        with self._lock:
            if key in self._streams:
                if self._streams[key][1] != description:
                    raise RecordingError(f"stream {key[0]}/{key[1]} was already added with another description")
                return
            number = len(self._streams)
            self._streams[key] = (number, description)
            self._append_meta(fmt.STREAM, number, math.nan, {"stream": number, "device": key[0], "modality": key[1],
                                                             "description": description})

    def write_block(self, device: str, modality: str, samples, gateway_times_s, *, arrival_time_s: float,
                    lost_before: int | None) -> None:
        """One ``Ingest.push``: samples (n, c) (or (n,)), their gateway times (n,), the push's arrival time and
        ``lost_before`` (None: placed by its times). Copied at once; the caller may reuse its arrays."""
        number, description = self._stream(device, modality)
        values = np.array(samples, dtype=np.float64)
        if values.ndim == 1:
            values = values[:, None]
        times = np.array(gateway_times_s, dtype=np.float64).reshape(-1)
        if values.ndim != 2 or values.shape[0] != times.shape[0]:
            raise RecordingError(f"stream {device}/{modality}: samples {values.shape} and gateway times "
                                 f"{times.shape} do not pair up")
        lost = -1 if lost_before is None else int(lost_before)
        with self._lock:
            pending = self._pending
            pending["rows"].append((fmt.BLOCK, number, len(times), values.shape[1], float(arrival_time_s), lost))
            pending["samples"].append(values)
            pending["times"].append(times)
            pending["blocks"] += 1
            pending["samples_by_stream"][number] += len(times)

    def write_event(self, device: str, modality: str, kind: str, time_s: float, detail: dict | None = None) -> None:
        """An accounting event of a stream (``gap``, ``restart``, ``clock_jump``...) at gateway time ``time_s``."""
        number, _ = self._stream(device, modality)
        with self._lock:
            self._append_meta(fmt.EVENT, number, float(time_s), {"device": str(device), "modality": str(modality),
                                                                "kind": str(kind), "time_s": float(time_s),
                                                                "detail": dict(detail or {})})

    def write_marker(self, label: str, time_s: float, *, source: str = "mark", subject: str | None = None,
                     device: str | None = None, duration_s: float | None = None) -> None:
        """A marker at gateway time ``time_s`` (what ``biomoe-edge mark`` and LSL marker streams give)."""
        marker = fmt.make_marker(label, time_s, source=source, subject=subject, device=device, duration_s=duration_s)
        with self._lock:
            self._append_meta(fmt.MARKER, -1, marker["time_s"], marker)

    def flush(self) -> None:
        """Write the pending segment now (the background thread does this every ``segment_s``)."""
        with self._write_lock:
            with self._lock:
                pending, self._pending = self._pending, self._empty()
            if pending["rows"]:
                self._write_segment(pending)

    def close(self) -> None:
        """Write what is pending and ``end.json`` (the recording is then complete). Safe twice."""
        if self._closed:
            return
        self._closed = True
        self._stop.set()
        self._thread.join()
        self.flush()
        fmt.write_json_atomically(self.directory / fmt.END_FILE, {
            "closed_utc": fmt.utc_now(), "closed_time_s": float(self.clock()), "segments": self._sequence,
            "streams": {f"{d}/{m}": self.samples_per_stream[n] for (d, m), (n, _) in self._streams.items()},
            **{name: self.counters[name] for name in ("blocks_written", "samples_written", "events_written",
                                                       "markers_written", "blocks_lost", "samples_lost")},
            "write_errors": dict(self.errors),
        })
        if self._registration is not None:
            from .markers import unregister_active

            unregister_active(self._registration)

    def stats(self) -> dict:
        return {"segments_written": self._sequence, **{name: self.counters[name] for name in (
                "blocks_written", "samples_written", "bytes_written", "events_written", "markers_written",
                "blocks_lost", "samples_lost")}, "write_errors": dict(self.errors)}

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()

    # -- internals -----------------------------------------------------------------------------------------
    @staticmethod
    def _empty() -> dict:
        return {"rows": [], "samples": [], "times": [], "meta": [], "blocks": 0,
                "samples_by_stream": collections.Counter(), "events": 0, "markers": 0}

    def _stream(self, device: str, modality: str) -> tuple[int, dict]:
        try:
            return self._streams[(str(device), str(modality))]
        except KeyError:
            raise RecordingError(f"stream {device}/{modality} was not added (add_stream before its blocks)") from None

    def _append_meta(self, kind: int, stream: int, time_s: float, entry: dict) -> None:
        pending = self._pending
        pending["rows"].append((kind, stream, 0, 0, time_s, -1))
        pending["meta"].append(entry)
        if kind == fmt.EVENT:
            pending["events"] += 1
        elif kind == fmt.MARKER:
            pending["markers"] += 1

    def _run(self) -> None:
        while not self._stop.wait(self.segment_s):
            try:
                self.flush()
            except Exception as exc:  # noqa: BLE001 - the thread must go on; _write_segment counts losses
                self.errors[type(exc).__name__] += 1
                log.warning("recording %s: segment writer: %s: %s", self.directory, type(exc).__name__, exc)

    def _declare_streams_again(self, pending: dict) -> None:
        """Put every stream declared so far at the head of ``pending`` unless it is declared there: each segment
        then names all its streams, and losing any one segment (a full disk) never orphans later blocks."""
        with self._lock:
            streams = sorted(self._streams.items(), key=lambda item: item[1][0])
        declared = {entry.get("stream") for (kind, *_), entry in
                    zip((r for r in pending["rows"] if r[0] != fmt.BLOCK), pending["meta"]) if kind == fmt.STREAM}
        rows, meta = [], []
        for (device, modality), (number, description) in streams:
            if number not in declared:
                rows.append((fmt.STREAM, number, 0, 0, math.nan, -1))
                meta.append({"stream": number, "device": device, "modality": modality, "description": description})
        pending["rows"][:0] = rows
        pending["meta"][:0] = meta

    def _write_segment(self, pending: dict) -> None:
        sequence = self._sequence
        self._declare_streams_again(pending)
        final = self.directory / fmt.SEGMENTS_DIR / fmt.segment_name(sequence)
        tmp = final.with_name(final.name + fmt.PARTIAL_SUFFIX)
        try:
            arrays = fmt.encode_segment(pending["rows"], pending["samples"], pending["times"], pending["meta"],
                                        sequence)
            with fmt.create_file(tmp) as f:
                np.savez_compressed(f, **arrays)
                f.flush()
                os.fsync(f.fileno())
                size = f.tell()
            os.replace(tmp, final)
            fsync_directory(final.parent)
        except (OSError, ValueError) as exc:
            # Lost, and said so: counted here and recorded in the next segment.
            reason = errno.errorcode.get(getattr(exc, "errno", None) or 0, type(exc).__name__)
            self.errors[reason] += 1
            self.counters["blocks_lost"] += pending["blocks"]
            self.counters["samples_lost"] += sum(pending["samples_by_stream"].values())
            if self.errors[reason] == 1:
                log.warning("recording %s: segment %d could not be written (%s: %s); its %d blocks are lost and "
                            "counted (logged once per reason)", self.directory, sequence, type(exc).__name__, exc,
                            pending["blocks"])
            try:
                tmp.unlink(missing_ok=True)
            except OSError:
                pass
            with self._lock:
                names = {n: f"{d}/{m}" for (d, m), (n, _) in self._streams.items()}
                self._append_meta(fmt.EVENT, -1, float(self.clock()), {
                    "device": None, "modality": None, "kind": "recording_lost", "time_s": float(self.clock()),
                    "detail": {"blocks": pending["blocks"], "samples": {
                        names[n]: c for n, c in pending["samples_by_stream"].items()}, "error": str(exc)}})
            return
        self._sequence += 1
        self.counters["bytes_written"] += size
        self.counters["blocks_written"] += pending["blocks"]
        self.counters["samples_written"] += sum(pending["samples_by_stream"].values())
        self.counters["events_written"] += pending["events"]
        self.counters["markers_written"] += pending["markers"]
        self.samples_per_stream.update(pending["samples_by_stream"])
