"""Rotating JSONL and NPZ files.

Each file is written under a temporary name (``*.partial``) and renamed to its final name when it is
rotated out or the sink closes, with ``os.replace`` after an fsync: a reader that lists ``*.jsonl`` /
``*.npz`` only ever sees complete files, and a record is written to exactly one file (rotation happens
between batches, never inside one record).
"""

from __future__ import annotations

import datetime
import json
import os
import pathlib
import time
from collections.abc import Sequence

import numpy as np

from biomoe_edge.runtime.records import EmbeddingRecord
from biomoe_edge.runtime.sinks.base import Sink


class _RotatingSink(Sink):
    suffix = ""

    def __init__(self, directory, *, prefix: str = "embeddings", max_bytes: int | None = 64 << 20,
                 max_age_s: float | None = 3600.0):
        if max_bytes is not None and max_bytes <= 0:
            raise ValueError(f"max_bytes must be positive, got {max_bytes!r}")
        if max_age_s is not None and max_age_s <= 0:
            raise ValueError(f"max_age_s must be positive, got {max_age_s!r}")
        self.directory = pathlib.Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.prefix = prefix
        self.max_bytes = max_bytes
        self.max_age_s = max_age_s
        self.files_written: list[pathlib.Path] = []
        self._index = 0
        self._opened_at: float | None = None
        self._final_path: pathlib.Path | None = None

    # -- naming --------------------------------------------------------------------------------------
    def _next_final_path(self) -> pathlib.Path:
        stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%S")
        while True:
            self._index += 1
            path = self.directory / f"{self.prefix}-{stamp}-{self._index:05d}{self.suffix}"
            if not path.exists() and not path.with_name(path.name + ".partial").exists():
                return path

    def _due(self, now: float) -> bool:
        if self._final_path is None:
            return False
        if self.max_age_s is not None and now - self._opened_at >= self.max_age_s:
            return True
        return self.max_bytes is not None and self._current_bytes() >= self.max_bytes

    def write(self, records: Sequence[EmbeddingRecord]) -> None:
        if not records:
            return
        now = time.monotonic()
        if self._due(now):
            self.rotate()
        if self._final_path is None:
            self._final_path = self._next_final_path()
            self._opened_at = now
            self._open(self._final_path)
        self._append(records)

    def rotate(self) -> pathlib.Path | None:
        """Finish the current file (fsync + atomic rename); the next record starts a new one."""
        if self._final_path is None:
            return None
        final = self._final_path
        self._finish(final)
        self._final_path = None
        self.files_written.append(final)
        return final

    def close(self) -> None:
        self.rotate()

    def stats(self) -> dict:
        return {"files_written": len(self.files_written)}

    # -- format-specific -----------------------------------------------------------------------------
    def _open(self, final_path: pathlib.Path) -> None:
        raise NotImplementedError

    def _append(self, records: Sequence[EmbeddingRecord]) -> None:
        raise NotImplementedError

    def _current_bytes(self) -> int:
        raise NotImplementedError

    def _finish(self, final_path: pathlib.Path) -> None:
        raise NotImplementedError


def _fsync_replace(tmp: pathlib.Path, final: pathlib.Path) -> None:
    os.replace(tmp, final)
    # Make the rename itself durable (the directory entry), where the platform allows.
    try:
        fd = os.open(final.parent, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


class JsonlSink(_RotatingSink):
    """One JSON object per line (``EmbeddingRecord.to_dict()``), flushed after every batch."""

    name = "jsonl"
    suffix = ".jsonl"

    def _open(self, final_path):
        self._file = open(final_path.with_name(final_path.name + ".partial"), "w", encoding="utf-8")

    def _append(self, records):
        self._file.write("".join(json.dumps(r.to_dict(), allow_nan=True) + "\n" for r in records))
        self._file.flush()

    def _current_bytes(self):
        return self._file.tell()

    def _finish(self, final_path):
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        _fsync_replace(final_path.with_name(final_path.name + ".partial"), final_path)


#: NumPy arrays of one NPZ file; ``model``/``engine`` hold each record's identity as a JSON string.
NPZ_FIELDS = ("embedding", "device", "modality", "representation", "window_start_s", "window_end_s",
              "quality", "arrival_time_s", "emitted_time_s", "model", "engine")


class NpzSink(_RotatingSink):
    """Records collected in memory and written as one ``.npz`` per file period (``np.savez``): arrays
    ``embedding`` (N, 192) float32, ``window_start_s``/``window_end_s`` float64, string arrays
    ``device``, ``modality``, ``representation``, ``quality`` (flags joined by ``,``), ``model`` and
    ``engine`` (identity as JSON). ``max_bytes`` bounds the memory held before a file is written."""

    name = "npz"
    suffix = ".npz"

    def _open(self, final_path):
        self._records: list[EmbeddingRecord] = []

    def _append(self, records):
        self._records.extend(records)

    def _current_bytes(self):
        return len(self._records) * (4 * 192 + 256)

    def _finish(self, final_path):
        records, self._records = self._records, []
        tmp = final_path.with_name(final_path.name + ".partial")
        with open(tmp, "wb") as f:
            np.savez(f, **records_to_arrays(records))
            f.flush()
            os.fsync(f.fileno())
        _fsync_replace(tmp, final_path)


def records_to_arrays(records: Sequence[EmbeddingRecord]) -> dict[str, np.ndarray]:
    def column(values, dtype):
        return np.asarray(list(values), dtype=dtype)

    return {
        "embedding": np.stack([r.embedding for r in records]).astype(np.float32) if records
        else np.zeros((0, 192), np.float32),
        "device": column((r.device for r in records), str),
        "modality": column((r.modality for r in records), str),
        "representation": column((r.representation for r in records), str),
        "window_start_s": column((r.window_start_s for r in records), np.float64),
        "window_end_s": column((r.window_end_s for r in records), np.float64),
        "quality": column((",".join(r.quality) for r in records), str),
        "arrival_time_s": column((r.arrival_time_s for r in records), np.float64),
        "emitted_time_s": column((r.emitted_time_s for r in records), np.float64),
        "model": column((json.dumps(r.model, sort_keys=True) for r in records), str),
        "engine": column((json.dumps(r.engine, sort_keys=True) for r in records), str),
    }


def read_npz_records(path) -> list[EmbeddingRecord]:
    """Read back the records of one NPZ file written by ``NpzSink``."""
    with np.load(path, allow_pickle=False) as data:
        n = data["embedding"].shape[0]
        return [
            EmbeddingRecord(
                device=str(data["device"][i]), modality=str(data["modality"][i]),
                representation=str(data["representation"][i]),
                window_start_s=float(data["window_start_s"][i]), window_end_s=float(data["window_end_s"][i]),
                embedding=data["embedding"][i],
                quality=tuple(q for q in str(data["quality"][i]).split(",") if q),
                model=json.loads(str(data["model"][i])), engine=json.loads(str(data["engine"][i])),
                arrival_time_s=float(data["arrival_time_s"][i]), emitted_time_s=float(data["emitted_time_s"][i]),
            )
            for i in range(n)
        ]


def read_jsonl_records(path) -> list[EmbeddingRecord]:
    with open(path, encoding="utf-8") as f:
        return [EmbeddingRecord.from_dict(json.loads(line)) for line in f if line.strip()]
