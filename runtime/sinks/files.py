"""Rotating JSONL and NPZ files that never count a record as written unless it can be read back.

Each file grows under a temporary name (``<final>.partial``) and gets its final name (``*.jsonl``, ``*.npz``)
when it is rotated out or the sink closes: a reader that lists ``*.jsonl`` / ``*.npz`` only ever sees complete
files. What the sinks guarantee (README, "What the sinks guarantee"):

- Every batch is appended to the ``.partial`` file with ``os.write`` before ``write`` returns, so a ``kill -9``
  loses nothing that was written; it is fsynced at least every ``flush_s`` seconds, which bounds what a power
  cut can take. A record counts as written only once all its bytes are in the file.
- A failed append (disk full, I/O error) is cut off again (``ftruncate`` to where the batch began), the batch is
  counted in ``records_lost`` under the error's name (``ENOSPC``...) and the exception reaches the sink's guard.
  Writing resumes by itself once space returns. No finalised file holds a partial record; a file with no record
  is removed, never finalised.
- At start a sink finalises what a previous run left (``*.partial`` named by its exact grammar,
  ``<prefix>-<UTC stamp>-<index><suffix>``, never another prefix's files): complete records are kept, a
  cut-off last record is dropped, both counted and logged (``recovered_*`` in ``stats()``).
- Files are created with ``file_mode`` (0640 by default, whatever the umask); the prefix is a plain name, never
  a path; one sink per directory and prefix (an advisory lock refuses a second).

NPZ is a format written in one go: its records are journalled as JSON lines in the ``.partial`` file (that is
what survives a crash) and written as ``.npz`` at rotation; if that fails (disk full), the journal stays and is
converted at the next rotation, at close, or at the next start.
"""

from __future__ import annotations

import collections
import datetime
import errno
import fcntl
import json
import logging
import os
import pathlib
import re
import time
from collections.abc import Sequence

import numpy as np

from biomoe_edge.durable import fsync_directory
from biomoe_edge.runtime.records import EmbeddingRecord, PredictionRecord, jsonl_lines, record_from_dict
from biomoe_edge.runtime.sinks.base import Sink
from biomoe_edge.vocabulary import EMBEDDING_DIM

log = logging.getLogger(__name__)

#: A prefix is a file name, not a path.
PREFIX_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
DEFAULT_FILE_MODE = 0o640


def _reason(exc: BaseException) -> str:
    code = getattr(exc, "errno", None)
    return errno.errorcode.get(code, type(exc).__name__) if code else type(exc).__name__


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _create(path: pathlib.Path, mode: int) -> int:
    """A new file opened for writing with exactly ``mode`` (the umask could only make it stricter; fchmod makes
    it what was asked)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), mode)
    try:
        os.fchmod(fd, mode)
    except OSError:
        os.close(fd)
        path.unlink(missing_ok=True)
        raise
    return fd


def _record_lines(records) -> bytes:
    return jsonl_lines(records)


def _complete_lines(path: pathlib.Path) -> tuple[list[bytes], int]:
    """The lines of a journal up to the first one that is cut off or not a record, and how many bytes follow."""
    data = path.read_bytes()
    lines, good = [], 0
    for line in data.splitlines(keepends=True):
        if not line.endswith(b"\n"):
            break
        try:
            record_from_dict(json.loads(line))
        except (ValueError, KeyError, TypeError):
            break
        lines.append(line)
        good += len(line)
    return lines, len(data) - good


def recover_jsonl(partial: pathlib.Path, final: pathlib.Path, file_mode: int = DEFAULT_FILE_MODE) -> tuple[int, int]:
    """Finalise a JSONL journal that a killed writer left: its complete records are kept (the file is cut after
    the last), fsynced and renamed to ``final``; an empty one is removed. Returns (records kept, bytes dropped)."""
    lines, discarded = _complete_lines(partial)
    if not lines:
        partial.unlink()
        return 0, discarded
    with open(partial, "r+b") as f:
        f.truncate(sum(len(line) for line in lines))
        f.flush()
        os.fsync(f.fileno())
    os.chmod(partial, file_mode)
    os.replace(partial, final)
    fsync_directory(final.parent)
    return len(lines), discarded


class _RotatingSink(Sink):
    suffix = ""

    def __init__(self, directory, *, prefix: str = "embeddings", max_bytes: int | None = 64 << 20,
                 max_age_s: float | None = 3600.0, flush_s: float = 1.0, file_mode: int = DEFAULT_FILE_MODE):
        if max_bytes is not None and max_bytes <= 0:
            raise ValueError(f"max_bytes must be positive, got {max_bytes!r}")
        if max_age_s is not None and max_age_s <= 0:
            raise ValueError(f"max_age_s must be positive, got {max_age_s!r}")
        if not flush_s > 0:
            raise ValueError(f"flush_s must be positive, got {flush_s!r}")
        if not isinstance(prefix, str) or not PREFIX_PATTERN.fullmatch(prefix):
            raise ValueError(f"prefix must be a plain file-name prefix (letters, digits, '.', '_', '-'), got {prefix!r}")
        if file_mode & ~0o777 or file_mode & 0o600 != 0o600:
            raise ValueError(f"file_mode must give the owner read and write, got {oct(file_mode)}")
        self.directory = pathlib.Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o750)
        self.prefix = prefix
        self.max_bytes = max_bytes
        self.max_age_s = max_age_s
        self.flush_s = float(flush_s)
        self.file_mode = file_mode
        self.files_written: list[pathlib.Path] = []
        #: records appended in full (readable from the final file, or from the journal by the next start)
        self.records_written = 0
        #: records not written, by reason (errno name such as ENOSPC, or exception type)
        self.records_lost: collections.Counter = collections.Counter()
        #: journals this run could not finish (converted at the next rotation, at close, or at the next start)
        self.unfinished: list[pathlib.Path] = []
        self.recovered_files = 0
        self.recovered_records = 0
        self.recovery_discarded_bytes = 0
        self._index = 0
        self._opened_at: float | None = None
        self._final_path: pathlib.Path | None = None
        self._fd: int | None = None
        self._size = 0
        self._records_in_file = 0
        self._synced_at = 0.0
        self._lock_fd = self._lock()
        try:
            self._recover()
        except BaseException:
            os.close(self._lock_fd)
            raise

    # -- naming, locking, recovery -------------------------------------------------------------------------
    def _partial(self, final_path: pathlib.Path) -> pathlib.Path:
        return final_path.with_name(final_path.name + ".partial")

    def _lock_path(self) -> pathlib.Path:
        return self.directory / f".{self.prefix}{self.suffix}.lock"

    def _lock(self) -> int:
        fd = os.open(self._lock_path(), os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), self.file_mode)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise RuntimeError(f"another sink is writing {self.prefix}-*{self.suffix} in {self.directory} "
                               "(give each sink its own directory or prefix)") from None
        return fd

    def _own_files(self, ending: str) -> list[pathlib.Path]:
        """This sink's files ending in ``ending`` (``.partial``, ``.writing``): only names of its exact grammar
        (``<prefix>-<UTC stamp>-<index><suffix>``), so a sink with prefix ``emb`` never takes ``emb-x``'s files."""
        grammar = re.compile(re.escape(self.prefix) + r"-\d{8}T\d{6}-\d{5,}" + re.escape(self.suffix + ending))
        return sorted(p for p in self.directory.iterdir() if grammar.fullmatch(p.name))

    def _recover(self) -> None:
        """Finalise the ``.partial`` files of this sink that a previous run left (it was killed or lost power)."""
        leftovers = self._own_files(".partial")
        for stale in self._own_files(".writing"):
            stale.unlink(missing_ok=True)  # an NPZ being written when the run died; its journal is still there
        for partial in leftovers:
            final = partial.with_name(partial.name[:-len(".partial")])
            try:
                lines, discarded = _complete_lines(partial)
                if lines:
                    self._finalise_journal(partial, final, lines)
                    self.files_written.append(final)
                else:
                    partial.unlink()
            except OSError as exc:  # no space to convert: leave it, report it, try again at close
                log.warning("%s: cannot finalise %s left by a previous run (%s); kept for a later try",
                            self.name, partial, exc)
                self.unfinished.append(partial)
                continue
            self.recovered_files += 1
            self.recovered_records += len(lines)
            self.recovery_discarded_bytes += discarded
            log.warning("%s: a previous run left %s unfinished: %d complete records kept as %s%s", self.name,
                        partial.name, len(lines), final.name if lines else "(nothing: removed)",
                        f", {discarded} bytes of a cut-off record dropped" if discarded else "")

    def _next_final_path(self) -> pathlib.Path:
        stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%S")
        while True:
            self._index += 1
            path = self.directory / f"{self.prefix}-{stamp}-{self._index:05d}{self.suffix}"
            if not path.exists() and not self._partial(path).exists():
                return path

    def _due(self, now: float) -> bool:
        if self._final_path is None:
            return False
        if self.max_age_s is not None and now - self._opened_at >= self.max_age_s:
            return True
        return self.max_bytes is not None and self._current_bytes() >= self.max_bytes

    # -- writing -------------------------------------------------------------------------------------------
    def write(self, records: Sequence) -> None:
        if not records:
            return
        now = time.monotonic()
        if self._due(now):
            self.rotate()
        try:
            if self._fd is None:
                final = self._next_final_path()
                self._fd = _create(self._partial(final), self.file_mode)
                self._final_path, self._opened_at, self._size, self._records_in_file = final, now, 0, 0
                self._synced_at = now
            data = self._encode(records)
            try:
                _write_all(self._fd, data)
            except OSError:
                self._cut_back()
                raise
        except OSError as exc:
            self.records_lost[_reason(exc)] += len(records)
            raise
        self._size += len(data)
        self._records_in_file += len(records)
        self.records_written += len(records)
        self._appended(records)
        if now - self._synced_at >= self.flush_s:
            self._sync(now)

    def _cut_back(self) -> None:
        """After a failed append: cut the file back to its last complete record. Where even that fails, the file
        is given up as it is (kept as ``.partial``; the next start drops the cut-off tail) and a new one begun."""
        try:
            os.ftruncate(self._fd, self._size)
            os.lseek(self._fd, self._size, os.SEEK_SET)
        except OSError as exc:
            log.warning("%s: cannot cut %s back after a failed write (%s); leaving it for recovery",
                        self.name, self._partial(self._final_path).name, exc)
            try:
                os.close(self._fd)
            except OSError:
                pass
            if self._records_in_file:
                self.unfinished.append(self._partial(self._final_path))
            self._fd, self._final_path = None, None
            self._forget_file()

    def _sync(self, now: float) -> None:
        try:
            os.fsync(self._fd)
        except OSError as exc:  # the kernel could not write back: report; the next sync tries again
            log.warning("%s: fsync of %s failed: %s", self.name, self._partial(self._final_path), exc)
        self._synced_at = now

    def rotate(self) -> pathlib.Path | None:
        """Finish the current file (fsync + atomic rename); the next record starts a new one. Returns the final
        path, or None when there was nothing to finish (or finishing failed: the journal is kept for later)."""
        self._retry_unfinished()
        if self._fd is None:
            return None
        final, fd = self._final_path, self._fd
        self._fd, self._final_path = None, None
        partial = self._partial(final)
        for step in (os.fsync, os.close):
            try:
                step(fd)
            except OSError as exc:  # what was written is in the file; the rename below still finishes it
                log.warning("%s: %s of %s failed: %s", self.name, step.__name__, partial.name, exc)
        if self._records_in_file == 0:
            partial.unlink(missing_ok=True)  # never a finalised file without a record
            self._forget_file()
            return None
        try:
            self._finish(partial, final)
        except OSError as exc:
            log.warning("%s: cannot finish %s (%s); its records stay in %s and are finished later",
                        self.name, final.name, exc, partial.name)
            self.unfinished.append(partial)
            self._forget_file()
            return None
        self._forget_file()
        self.files_written.append(final)
        return final

    def _retry_unfinished(self) -> None:
        for partial in list(self.unfinished):
            final = partial.with_name(partial.name[:-len(".partial")])
            try:
                lines, _ = _complete_lines(partial)
                if lines:
                    self._finalise_journal(partial, final, lines)
                    self.files_written.append(final)
                else:
                    partial.unlink()
            except OSError:
                return  # still no space: try again next time
            self.unfinished.remove(partial)

    def close(self) -> None:
        try:
            self.rotate()
            self._retry_unfinished()
            if self.unfinished:
                log.warning("%s: %d unfinished files kept as *.partial (finalised at the next start): %s", self.name,
                            len(self.unfinished), ", ".join(p.name for p in self.unfinished))
        finally:
            if self._lock_fd is not None:
                # Removed while still held: a sink opening it now fails its non-blocking lock, as it should.
                self._lock_path().unlink(missing_ok=True)
                os.close(self._lock_fd)
                self._lock_fd = None

    def stats(self) -> dict:
        return {"files_written": len(self.files_written), "records_appended": self.records_written,
                "records_lost": dict(self.records_lost), "unfinished_files": len(self.unfinished),
                "recovered_files": self.recovered_files, "recovered_records": self.recovered_records,
                "recovery_discarded_bytes": self.recovery_discarded_bytes}

    # -- format-specific -----------------------------------------------------------------------------------
    def _encode(self, records) -> bytes:
        return _record_lines(records)

    def _appended(self, records) -> None:
        pass

    def _forget_file(self) -> None:
        self._size, self._records_in_file = 0, 0

    def _current_bytes(self) -> int:
        return self._size

    def _finish(self, partial: pathlib.Path, final: pathlib.Path) -> None:
        raise NotImplementedError

    def _finalise_journal(self, partial: pathlib.Path, final: pathlib.Path, lines: list[bytes]) -> None:
        raise NotImplementedError


class JsonlSink(_RotatingSink):
    """One JSON object per line (``EmbeddingRecord.to_dict()`` or ``PredictionRecord.to_dict()``, told apart by
    ``"record"``), appended after every batch."""

    name = "jsonl"
    suffix = ".jsonl"

    def _finish(self, partial, final):
        os.replace(partial, final)
        fsync_directory(final.parent)

    def _finalise_journal(self, partial, final, lines):
        # Keep only the complete records: cut the file after the last one, then give it its final name.
        with open(partial, "r+b") as f:
            f.truncate(sum(len(line) for line in lines))
            f.flush()
            os.fsync(f.fileno())
        os.chmod(partial, self.file_mode)
        self._finish(partial, final)


#: NumPy arrays of one NPZ file; ``model``/``engine`` hold each record's identity as a JSON string.
NPZ_FIELDS = ("embedding", "device", "modality", "representation", "window_start_s", "window_end_s",
              "quality", "arrival_time_s", "emitted_time_s", "model", "engine", "record_id")
#: Arrays of the prediction records of an NPZ file (present only when it has some). Probabilities of record i
#: are ``prediction_probabilities[prediction_offsets[i]:prediction_offsets[i + 1]]`` (heads differ in classes);
#: ``devices``, ``classes``, ``inputs``, ``modalities``, ``head`` and ``model`` are JSON strings.
PREDICTION_NPZ_FIELDS = ("prediction_subject", "prediction_devices", "prediction_window_start_s",
                         "prediction_window_end_s", "prediction_probabilities", "prediction_offsets",
                         "prediction_classes", "prediction_predicted", "prediction_inputs", "prediction_modalities",
                         "prediction_via_bridge", "prediction_quality", "prediction_head", "prediction_model",
                         "prediction_arrival_time_s", "prediction_emitted_time_s", "prediction_record_id")


class NpzSink(_RotatingSink):
    """Records written as one ``.npz`` per file period (``np.savez``): arrays ``embedding`` (N, 192) float32,
    ``window_start_s``/``window_end_s`` float64, string arrays ``device``, ``modality``, ``representation``,
    ``quality`` (flags joined by ``,``), ``model`` and ``engine`` (identity as JSON); prediction records in the
    ``prediction_*`` arrays (``PREDICTION_NPZ_FIELDS``). Until the file is written the records are journalled
    in ``<file>.npz.partial`` (JSON lines). ``max_bytes`` bounds the size of the ``.npz`` (estimated), and so
    the memory held before it is written."""

    name = "npz"
    suffix = ".npz"

    def __init__(self, directory, **options):
        self._records: list = []
        self._npz_bytes = 0
        super().__init__(directory, **options)

    def _appended(self, records):
        self._records.extend(records)
        self._npz_bytes += sum(4 * EMBEDDING_DIM + 256 if isinstance(r, EmbeddingRecord) else 4 * len(r.classes) + 512
                               for r in records)

    def _forget_file(self):
        super()._forget_file()
        self._records, self._npz_bytes = [], 0

    def _current_bytes(self):
        return self._npz_bytes

    def _write_npz(self, final: pathlib.Path, records) -> None:
        tmp = final.with_name(final.name + ".writing")
        fd = _create(tmp, self.file_mode)
        try:
            with os.fdopen(fd, "wb") as f:
                np.savez(f, **records_to_arrays(records))
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, final)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        fsync_directory(final.parent)

    def _finish(self, partial, final):
        self._write_npz(final, self._records)
        partial.unlink()

    def _finalise_journal(self, partial, final, lines):
        self._write_npz(final, [record_from_dict(json.loads(line)) for line in lines])
        partial.unlink()


def records_to_arrays(records: Sequence) -> dict[str, np.ndarray]:
    def column(values, dtype):
        return np.asarray(list(values), dtype=dtype)

    def as_json(values):
        return column((json.dumps(v, sort_keys=True) for v in values), str)

    embeddings = [r for r in records if isinstance(r, EmbeddingRecord)]
    arrays = {
        "embedding": np.stack([r.embedding for r in embeddings]).astype(np.float32) if embeddings
        else np.zeros((0, EMBEDDING_DIM), np.float32),
        "device": column((r.device for r in embeddings), str),
        "modality": column((r.modality for r in embeddings), str),
        "representation": column((r.representation for r in embeddings), str),
        "window_start_s": column((r.window_start_s for r in embeddings), np.float64),
        "window_end_s": column((r.window_end_s for r in embeddings), np.float64),
        "quality": column((",".join(r.quality) for r in embeddings), str),
        "arrival_time_s": column((r.arrival_time_s for r in embeddings), np.float64),
        "emitted_time_s": column((r.emitted_time_s for r in embeddings), np.float64),
        "model": as_json(r.model for r in embeddings),
        "engine": as_json(r.engine for r in embeddings),
        "record_id": column((r.record_id for r in embeddings), str),
    }
    predictions = [r for r in records if isinstance(r, PredictionRecord)]
    if predictions:
        arrays.update({
            "prediction_subject": column((r.subject for r in predictions), str),
            "prediction_devices": as_json(list(r.devices) for r in predictions),
            "prediction_window_start_s": column((r.window_start_s for r in predictions), np.float64),
            "prediction_window_end_s": column((r.window_end_s for r in predictions), np.float64),
            "prediction_probabilities": np.concatenate([r.probabilities for r in predictions]).astype(np.float32),
            "prediction_offsets": np.concatenate([[0], np.cumsum([len(r.classes) for r in predictions])]).astype(np.int64),
            "prediction_classes": as_json(list(r.classes) for r in predictions),
            "prediction_predicted": column((r.predicted for r in predictions), str),
            "prediction_inputs": as_json(list(r.inputs) for r in predictions),
            "prediction_modalities": as_json(list(r.modalities) for r in predictions),
            "prediction_via_bridge": column((r.via_bridge for r in predictions), bool),
            "prediction_quality": column((",".join(r.quality) for r in predictions), str),
            "prediction_head": as_json(r.head for r in predictions),
            "prediction_model": as_json(r.model for r in predictions),
            "prediction_arrival_time_s": column((r.arrival_time_s for r in predictions), np.float64),
            "prediction_emitted_time_s": column((r.emitted_time_s for r in predictions), np.float64),
            "prediction_record_id": column((r.record_id for r in predictions), str),
        })
    return arrays


def read_npz_records(path) -> list:
    """Read back the records of one NPZ file written by ``NpzSink``: its embedding records in the order they
    were written, then its prediction records in theirs."""
    # Each ``data[name]`` reads and decompresses that array again: read every array once (linear, not
    # quadratic, in the number of records).
    with np.load(path, allow_pickle=False) as archive:
        data = {name: archive[name] for name in archive.files}
    records: list = [
        EmbeddingRecord(
            device=str(data["device"][i]), modality=str(data["modality"][i]),
            representation=str(data["representation"][i]),
            window_start_s=float(data["window_start_s"][i]), window_end_s=float(data["window_end_s"][i]),
            embedding=data["embedding"][i],
            quality=tuple(q for q in str(data["quality"][i]).split(",") if q),
            model=json.loads(str(data["model"][i])), engine=json.loads(str(data["engine"][i])),
            arrival_time_s=float(data["arrival_time_s"][i]), emitted_time_s=float(data["emitted_time_s"][i]),
        )
        for i in range(data["embedding"].shape[0])
    ]
    if "prediction_subject" in data:
        offsets = data["prediction_offsets"]
        probabilities = data["prediction_probabilities"]
        records += [
            PredictionRecord(
                subject=str(data["prediction_subject"][i]),
                devices=tuple(json.loads(str(data["prediction_devices"][i]))),
                window_start_s=float(data["prediction_window_start_s"][i]),
                window_end_s=float(data["prediction_window_end_s"][i]),
                probabilities=probabilities[offsets[i]:offsets[i + 1]],
                classes=tuple(json.loads(str(data["prediction_classes"][i]))),
                inputs=tuple(json.loads(str(data["prediction_inputs"][i]))),
                modalities=tuple(json.loads(str(data["prediction_modalities"][i]))),
                via_bridge=bool(data["prediction_via_bridge"][i]),
                quality=tuple(q for q in str(data["prediction_quality"][i]).split(",") if q),
                head=json.loads(str(data["prediction_head"][i])),
                model=json.loads(str(data["prediction_model"][i])),
                arrival_time_s=float(data["prediction_arrival_time_s"][i]),
                emitted_time_s=float(data["prediction_emitted_time_s"][i]),
            )
            for i in range(len(data["prediction_subject"]))
        ]
    return records


def read_jsonl_records(path) -> list:
    """The records of one JSONL file (embedding and prediction records, in the order written)."""
    with open(path, encoding="utf-8") as f:
        return [record_from_dict(json.loads(line)) for line in f if line.strip()]
