"""Markers from outside the gateway process: ``biomoe-edge mark LABEL`` and LSL marker streams.

``time.monotonic()`` is CLOCK_MONOTONIC, one clock for the whole machine on Linux, and it is the gateway's clock:
so a separate process stamps a marker in gateway time simply by reading it. ``mark`` writes one small JSON file
per marker into the recording's ``markers/`` folder (temporary name, fsync, rename: whole or absent), which the
reader merges with the markers of the segments. Running recordings list themselves in
``<cache>/active-recordings/`` so that ``mark`` finds the one running without being told where it is.

LSL: an inlet on a marker stream (string samples, the lab convention) runs in a thread beside the writer; LSL
timestamps (``pylsl.local_clock``, plus the inlet's clock correction) are mapped to gateway time by the offset
between the two clocks measured when the inlet opens.
"""

from __future__ import annotations

import json
import logging
import os
import pathlib
import threading
import time

from biomoe_edge.paths import cache_dir

from . import format as fmt
from .exc import RecordingError

log = logging.getLogger("biomoe_edge.runtime.recording")

ACTIVE_DIR = "active-recordings"


def active_dir() -> pathlib.Path:
    return cache_dir() / ACTIVE_DIR


def _process_start(pid: int) -> str | None:
    """When process ``pid`` started (Linux: /proc/<pid>/stat field 22), so a reused pid is not taken for it."""
    try:
        stat = pathlib.Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[-1].split()[19]


def register_active(directory: pathlib.Path) -> pathlib.Path | None:
    """List a running recording (removed by ``unregister_active`` at close; entries of dead processes, what a
    crash leaves, are skipped by readers and removed here)."""
    folder = active_dir()
    entry = folder / f"{os.getpid()}-{time.monotonic_ns()}.json"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        for stale in folder.glob("*.json"):
            if _entry(stale) is None:
                try:
                    stale.unlink(missing_ok=True)
                except OSError:  # another user's: skipped by readers all the same
                    pass
        fmt.write_json_atomically(entry, {"directory": str(pathlib.Path(directory).resolve()), "pid": os.getpid(),
                                          "process_start": _process_start(os.getpid()), "started_utc": fmt.utc_now()})
    except OSError as exc:  # a read-only cache must not stop a recording; mark then needs --recording
        log.warning("cannot list the recording as running in %s (%s); biomoe-edge mark will need --recording",
                    entry.parent, exc)
        return None
    return entry


def unregister_active(entry: pathlib.Path) -> None:
    try:
        entry.unlink(missing_ok=True)
    except OSError:
        pass


def _alive(pid: int, process_start: str | None) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        pass
    return process_start is None or _process_start(pid) in (None, process_start)


def _entry(path: pathlib.Path) -> pathlib.Path | None:
    """The recording folder an entry lists, when its writer still runs and the recording is not closed."""
    try:
        data = json.loads(path.read_text())
        directory, pid = pathlib.Path(data["directory"]), int(data["pid"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if not _alive(pid, data.get("process_start")):
        return None
    if not (directory / fmt.RECORDING_FILE).is_file() or (directory / fmt.END_FILE).exists():
        return None
    return directory


def running_recordings() -> list[pathlib.Path]:
    """Recording folders of running writers on this machine (entries of dead processes are skipped)."""
    folder = active_dir()
    if not folder.is_dir():
        return []
    return [directory for directory in map(_entry, sorted(folder.glob("*.json"))) if directory is not None]


def find_running_recording() -> pathlib.Path:
    """The one running recording, or a RecordingError saying there is none or several (then use --recording)."""
    found = running_recordings()
    if not found:
        raise RecordingError(f"no running recording found (none listed in {active_dir()}); start one with "
                             "biomoe-edge demo --record DIR or a [[sinks]] kind = \"recording\", or pass --recording DIR")
    if len(found) > 1:
        raise RecordingError("several recordings are running; choose one with --recording: "
                             + ", ".join(str(d) for d in found))
    return found[0]


def write_marker_file(directory, label: str, time_s: float | None = None, *, source: str = "mark",
                      subject: str | None = None, device: str | None = None,
                      duration_s: float | None = None) -> pathlib.Path:
    """Add a marker to the recording in ``directory`` at gateway time ``time_s`` (default: now, from
    ``time.monotonic()``); returns the file written."""
    directory = pathlib.Path(directory)
    if not (directory / fmt.RECORDING_FILE).is_file():
        raise RecordingError(f"{directory}: not a biomoe-edge recording (no {fmt.RECORDING_FILE})")
    now = time.monotonic() if time_s is None else float(time_s)
    marker = fmt.make_marker(label, now, source=source, subject=subject, device=device, duration_s=duration_s)
    marker["written_utc"] = fmt.utc_now()
    folder = directory / fmt.MARKERS_DIR
    folder.mkdir(exist_ok=True)
    path = folder / f"{time.monotonic_ns()}-{os.getpid()}.json"
    fmt.write_json_atomically(path, marker)
    return path


class LslMarkerInlet:
    """Pull markers from the LSL stream named ``name`` into ``writer`` (a thread; ``close`` stops it).

    Each string sample becomes a marker (``source="lsl"``) at its LSL timestamp mapped to gateway time. The
    stream is looked for until it appears (a lab's stimulus program may start after the gateway)."""

    def __init__(self, name: str, writer, *, clock=time.monotonic, resolve_timeout_s: float = 1.0):
        import pylsl  # imported only when an LSL marker stream is configured

        self._pylsl = pylsl
        self.name = name
        self.writer = writer
        self.clock = clock
        self.resolve_timeout_s = resolve_timeout_s
        self.markers = 0
        self.connected = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"biomoe-lsl-markers-{name}", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        pylsl = self._pylsl
        inlet = None
        while not self._stop.is_set() and inlet is None:
            found = pylsl.resolve_byprop("name", self.name, minimum=1, timeout=self.resolve_timeout_s)
            if found:
                inlet = pylsl.StreamInlet(found[0])
        if inlet is None:
            return
        inlet.open_stream(timeout=5.0)
        # LSL's clock and the gateway's: both monotonic; their offset, measured now, maps one to the other.
        offset = self.clock() - pylsl.local_clock()
        correction = inlet.time_correction(timeout=5.0)
        self.connected.set()
        while not self._stop.is_set():
            sample, stamp = inlet.pull_sample(timeout=0.2)
            if sample is None:
                continue
            label = str(sample[0]) if sample else ""
            try:
                self.writer.write_marker(label, stamp + correction + offset, source="lsl")
                self.markers += 1
            except ValueError as exc:  # an empty label: not a marker
                log.warning("LSL marker stream %s: sample %r ignored (%s)", self.name, sample, exc)
        inlet.close_stream()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5.0)
