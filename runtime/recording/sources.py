"""Every input ``biomoe-edge embed`` takes, behind the interface of a :class:`~.reader.Recording`: the SDK's own
recordings, EDF/EDF+ files and CSV files, the last two through an explicit channel-to-modality map.

An imported file becomes one device (named after the file, without its suffix) whose streams are the mapped
channels, in seconds from the file's start; its blocks are one-second chunks, interleaved across channels in
time order and placed by sample count (EDF, or CSV at a stated rate) or by their times (CSV with a time
column), so the ingest windows them exactly as it windows a wearable's stream.
"""

from __future__ import annotations

import math
import pathlib

import numpy as np

from biomoe_edge.vocabulary import Modality

from . import format as fmt
from .exc import SignalFileError
from .reader import Block, Marker, StreamInfo, open_recording

#: Column names taken as the time column of a CSV file when none is named.
CSV_TIME_COLUMNS = ("time_s", "time")
#: Units a CSV time column may be in (``--time-unit``), in seconds.
TIME_UNITS_S = {"s": 1.0, "ms": 1e-3, "us": 1e-6}
TIME_UNIT_NAMES = {"s": "seconds", "ms": "milliseconds", "us": "microseconds"}
#: A wearable's sample rate lies within these factors of the modality's model rate (``vocabulary.MODEL_RATES_HZ``:
#: 64 Hz for bvp gives 4 Hz to 64 kHz); outside, the time column's unit is taken to be wrong, not the wearable.
PLAUSIBLE_RATE_FACTORS = (1 / 16, 1000.0)
#: ``heartpy:NAME``: one of the real PPG recordings HeartPy's wheel ships, as ``inspect-signal`` takes it.
HEARTPY_PREFIX = "heartpy:"


def check_plausible_rate(fs: float, modality: str, *, what: str, unit: str = "s") -> None:
    """SignalFileError when ``fs`` (Hz, implied by ``what``) is no wearable's rate for ``modality``, naming the
    time unit that would make it plausible (a time column in milliseconds read as seconds gives 1000x too low)."""
    from biomoe_edge.vocabulary import model_rate_hz

    model = model_rate_hz(modality)
    low, high = model * PLAUSIBLE_RATE_FACTORS[0], model * PLAUSIBLE_RATE_FACTORS[1]
    if low <= fs <= high:
        return
    likely = [(name, fs * TIME_UNITS_S[unit] / factor) for name, factor in TIME_UNITS_S.items()
              if name != unit and low <= fs * TIME_UNITS_S[unit] / factor <= high]
    hint = (f"; in {TIME_UNIT_NAMES[likely[0][0]]} it gives {likely[0][1]:.6g} Hz: pass --time-unit {likely[0][0]}"
            if likely else "")
    raise SignalFileError(f"{what} gives {fs:.6g} Hz, which no {modality} wearable samples at (expected "
                          f"{low:g}-{high:g} Hz){hint}")


def parse_channel_map(text) -> list[tuple[str, str, float | None]]:
    """``"ECG:ecg,PPG:bvp@64"`` -> [("ECG", "ecg", None), ("PPG", "bvp", 64.0)]: channel (as the file names it),
    modality, and the sample rate the map claims (checked against an EDF header or a CSV time column; the rate
    of a CSV without a time column)."""
    if text is None:
        return []
    items = text if isinstance(text, (list, tuple)) else [part for part in str(text).split(",") if part.strip()]
    out: list[tuple[str, str, float | None]] = []
    for item in items:
        if isinstance(item, tuple):
            channel, modality, rate = (tuple(item) + (None,))[:3]
        else:
            channel, colon, target = item.strip().rpartition(":")
            if not colon or not channel.strip():
                raise ValueError(f"--map entry {item.strip()!r}: expected CHANNEL:MODALITY[@HZ], e.g. ECG:ecg@256")
            modality, _, rate_text = target.partition("@")
            try:
                rate = float(rate_text) if rate_text else None
            except ValueError:
                raise ValueError(f"--map entry {item.strip()!r}: rate {rate_text!r} is not a number") from None
        if rate is not None and not (math.isfinite(rate) and rate > 0):
            raise ValueError(f"--map entry {item!r}: the rate must be a positive number of Hz")
        try:
            modality = Modality.parse(modality).value
        except ValueError as exc:
            raise ValueError(f"--map entry {item!r}: {exc}") from None
        if any(m == modality for _, m, _ in out):
            raise ValueError(f"--map names modality {modality!r} twice (one stream per modality and file)")
        out.append((str(channel).strip(), modality, rate))
    return out


class ImportedRecording:
    """An EDF or CSV file as a recording: ``streams``, ``blocks()``, ``markers`` (EDF+ annotations other than the
    SDK's), ``settings`` empty (windows and representations come from the caller)."""

    def __init__(self, path: pathlib.Path, kind: str, signals, *, markers=(), placed_by_times: bool = False):
        self.path = path
        self.kind = kind
        self.settings: dict = {}
        self.info: dict = {}
        self.events: list = []
        self.markers: list[Marker] = sorted(markers, key=lambda m: m.time_s)
        self.complete = True
        self.partial_segments: list = []
        self._signals = signals  # [(modality, fs, units, times, values (n, 1), runs [(start, stop, lost_before)])]
        self._placed_by_times = placed_by_times
        self.streams = {
            (self.name, modality): StreamInfo(self.name, modality, {"sample_rate_hz": fs, "channels": 1,
                                                                     "units": units, "profile": kind,
                                                                     "placed_by_count": not placed_by_times}, i)
            for i, (modality, fs, units, _, _, _) in enumerate(signals)}
        self.total_samples = sum(int(values.shape[0]) for _, _, _, _, values, _ in signals)

    @property
    def name(self) -> str:
        return self.path.stem

    @property
    def subjects(self) -> dict:
        return {}

    def subject_of(self, device: str, override: str | None = None) -> str:
        return override or self.name

    def blocks(self, *, segments_done=None):
        chunks = []
        for modality, fs, _, times, values, runs in self._signals:
            size = max(1, int(round(fs)))
            for start, stop, lost_before in runs:
                for a in range(start, stop, size):
                    b = min(stop, a + size)
                    lost = None if self._placed_by_times else (lost_before if a == start else 0)
                    chunks.append((float(times[a]), modality, a, b, lost, times, values))
        chunks.sort(key=lambda chunk: chunk[0])  # stable: channels in map order at equal times
        for _, modality, a, b, lost, times, values in chunks:
            yield Block(self.name, modality, values[a:b], times[a:b], float(times[b - 1]), lost)
        if segments_done is not None:
            segments_done(1)

    def stream(self, device: str, modality: str):
        for m, _, _, times, values, runs in self._signals:
            if (device, modality) == (self.name, m):
                keep = np.concatenate([np.arange(a, b) for a, b, _ in runs]) if runs else np.zeros(0, int)
                return times[keep], values[keep]
        raise KeyError(f"{self.path}: no stream {device}/{modality}")

    def iter_streams(self):
        for (device, modality), info in self.streams.items():
            times, values = self.stream(device, modality)
            yield info, times, values

    def __repr__(self) -> str:
        return f"ImportedRecording({str(self.path)!r}, kind={self.kind!r}, streams={list(self.streams)})"


def _runs_without(n: int, fs: float, gaps) -> list[tuple[int, int, int]]:
    """(start, stop, lost_before) runs of ``n`` samples at ``fs`` outside the annotated ``gaps`` (onset, duration);
    ``lost_before``: the samples left out since the previous run."""
    keep = np.ones(n, dtype=np.int8)
    for onset, duration in gaps:
        keep[max(0, int(round(onset * fs))):max(0, int(round((onset + duration) * fs)))] = 0
    edges = np.flatnonzero(np.diff(np.concatenate([[0], keep, [0]])))
    runs, previous_stop = [], None
    for start, stop in zip(edges[0::2], edges[1::2]):
        runs.append((int(start), int(stop), 0 if previous_stop is None else int(start - previous_stop)))
        previous_stop = stop
    return runs


def open_edf(path, channel_map) -> ImportedRecording:
    from .edf import read_edf
    from .labels import is_label_annotation

    path = pathlib.Path(path)
    if not channel_map:
        raise ValueError(f"{path}: an EDF file needs --map CHANNEL:MODALITY[,...] (which channel is which modality)")
    content = read_edf(path, channel_map)
    signals = []
    for channel, modality, fs, units, values, gaps in content["signals"]:
        times = np.arange(values.size) / fs
        signals.append((modality, fs, units, times, values[:, None], _runs_without(values.size, fs, gaps)))
    markers = [Marker(text, onset, "edf", None, None, duration) for onset, duration, text in content["annotations"]
               if is_label_annotation(text)]
    return ImportedRecording(path, "edf", signals, markers=markers)


def open_heartpy(name: str) -> ImportedRecording:
    """``heartpy:data.csv`` (``data2.csv``, ``data3.csv``): one of HeartPy's real PPG recordings, as bvp at its
    own rate (the name ``inspect-signal`` takes, so what it draws can be embedded as it is)."""
    from biomoe_edge.runtime.transforms.signals import real_ppg

    try:
        values, fs = real_ppg(name)
    except ValueError as exc:
        raise SignalFileError(f"{HEARTPY_PREFIX}{name}: {exc}") from None
    except ImportError:
        raise SignalFileError(f"{HEARTPY_PREFIX}{name}: needs the heartpy package (pip install heartpy)") from None
    times = np.arange(values.size) / fs
    return ImportedRecording(pathlib.Path(name), "heartpy", [("bvp", float(fs), "", times, values[:, None],
                                                              [(0, values.size, 0)])])


def open_csv(path, channel_map, *, rate_hz: float | None = None, time_column: str | None = None,
             time_unit: str = "s") -> ImportedRecording:
    """A CSV file with a header row: a time column (in ``time_unit``, seconds by default; ``time_column``, else
    ``time_s`` or ``time`` when present) or a stated rate (``rate_hz``, or ``@HZ`` in the map). Empty cells are
    missing samples (counted as invalid by the ingest); text that is not a number is a SignalFileError naming the
    line and column; a time column implying a rate no wearable of the modality has, one naming the likely unit."""
    import pandas as pd

    path = pathlib.Path(path)
    if not channel_map:
        raise ValueError(f"{path}: a CSV file needs --map COLUMN:MODALITY[,...] (which column is which modality)")
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False, skipinitialspace=True)
    except FileNotFoundError:
        raise SignalFileError(f"{path}: no such file") from None
    except (OSError, ValueError, pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise SignalFileError(f"{path}: not a readable CSV file ({str(exc).strip()})") from None
    frame.columns = [str(c).strip() for c in frame.columns]
    if frame.empty:
        raise SignalFileError(f"{path}: no data rows")
    if time_column is None:
        time_column = next((c for c in CSV_TIME_COLUMNS if c in frame.columns), None)
    elif time_column not in frame.columns:
        raise SignalFileError(f"{path}: no time column {time_column!r}; its columns: {', '.join(frame.columns)}")

    def numbers(column: str, *, allow_empty: bool) -> np.ndarray:
        text = frame[column].str.strip()
        values = pd.to_numeric(text.where(text != "", None), errors="coerce").to_numpy(dtype=np.float64)
        bad = np.isnan(values) & ((text != "").to_numpy() | (not allow_empty))
        if bad.any():
            row = int(np.argmax(bad))
            raise SignalFileError(f"{path}:{row + 2}: column {column!r} holds {frame[column].iloc[row]!r}, not a number")
        return values

    times = None
    if time_column is not None:
        times = numbers(time_column, allow_empty=False)
        steps = np.diff(times)
        if (steps <= 0).any():
            row = int(np.argmax(steps <= 0)) + 1
            raise SignalFileError(f"{path}:{row + 2}: time {frame[time_column].iloc[row]} in column {time_column!r} is "
                                  f"not after the previous row's {frame[time_column].iloc[row - 1]}")
        if time_unit not in TIME_UNITS_S:
            raise ValueError(f"time unit {time_unit!r}: expected one of {', '.join(TIME_UNITS_S)}")
        times = (times - times[0]) * TIME_UNITS_S[time_unit]  # seconds from the file's start
        measured = 1.0 / (float(np.median(steps)) * TIME_UNITS_S[time_unit]) if steps.size else None
    signals = []
    for channel, modality, claimed in channel_map:
        if channel not in frame.columns:
            raise SignalFileError(f"{path}: no column {channel!r} (the map names it); its columns: "
                                  + ", ".join(repr(c) for c in frame.columns))
        values = numbers(channel, allow_empty=True)
        if times is not None:
            fs = measured if measured is not None else (claimed or rate_hz or 1.0)
            if claimed is not None and abs(fs - claimed) > 0.01 * claimed:
                raise SignalFileError(f"{path}: column {time_column!r} gives {fs:.6g} Hz, but the map says "
                                      f"{modality}@{claimed:g}")
            check_plausible_rate(fs, modality, unit=time_unit,
                                 what=f"{path}: column {time_column!r} read in {TIME_UNIT_NAMES[time_unit]}")
            signal_times = times
        else:
            fs = claimed or rate_hz
            if fs is None:
                raise SignalFileError(f"{path}: no time column ({' or '.join(CSV_TIME_COLUMNS)}, or --time-column) "
                                      f"and no rate for {channel!r}: pass --rate HZ or {channel}:{modality}@HZ")
            signal_times = np.arange(values.size) / fs
        signals.append((modality, float(fs), "", signal_times, values[:, None], [(0, values.size, 0)]))
    return ImportedRecording(path, "csv", signals, placed_by_times=times is not None)


def open_source(path, *, channel_map=None, rate_hz: float | None = None, time_column: str | None = None,
                time_unit: str = "s"):
    """A recording folder, an EDF/EDF+/BDF file, a CSV file or ``heartpy:NAME``, as a recording (see the module
    docstring)."""
    if str(path).startswith(HEARTPY_PREFIX):
        return open_heartpy(str(path)[len(HEARTPY_PREFIX):])
    path = pathlib.Path(path)
    channel_map = parse_channel_map(channel_map)
    if path.is_dir():
        return open_recording(path)
    suffix = path.suffix.lower()
    if suffix in (".edf", ".bdf"):
        return open_edf(path, channel_map)
    if suffix in (".csv", ".txt"):
        return open_csv(path, channel_map, rate_hz=rate_hz, time_column=time_column, time_unit=time_unit)
    if not path.exists():
        raise SignalFileError(f"{path}: no such file or recording folder")
    if (path.parent / fmt.RECORDING_FILE).exists():
        raise SignalFileError(f"{path}: give the recording's folder ({path.parent}), not a file in it")
    raise SignalFileError(f"{path}: not a recording folder, an EDF/EDF+ (.edf, .bdf) or a CSV (.csv) file")
