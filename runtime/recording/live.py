"""What came of a recording live: the embedding records, one JSON object per line, to compare with a replay."""

from __future__ import annotations

import datetime
import logging
import os
import pathlib

from biomoe_edge.durable import move_into_place
from biomoe_edge.runtime.records import jsonl_lines
from biomoe_edge.runtime.sinks.base import Sink
from biomoe_edge.runtime.sinks.files import DEFAULT_FILE_MODE, recover_jsonl

log = logging.getLogger("biomoe_edge.runtime.recording")


class EmbeddingsFile(Sink):
    """``demo --embeddings FILE.jsonl``: every record as ``EmbeddingRecord.to_dict()`` JSON (as the JSONL sink writes
    them), one per line, in ``FILE.jsonl.partial`` flushed per batch, renamed to ``FILE.jsonl`` after an fsync when
    the gateway closes: a file under the final name is whole. ``runtime.sinks.read_jsonl_records`` reads it."""

    name = "embeddings-file"

    def __init__(self, path):
        self.path = pathlib.Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._partial = self.path.with_name(self.path.name + ".partial")
        #: where the records a killed run left in ``FILE.jsonl.partial`` were kept (None: there were none)
        self.recovered_path: pathlib.Path | None = None
        self.recovered_records = 0
        if self._partial.exists():
            self._recover()
        fd = os.open(self._partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0),
                     DEFAULT_FILE_MODE)
        os.fchmod(fd, DEFAULT_FILE_MODE)
        self._file = os.fdopen(fd, "wb")
        self.records = 0

    def _recover(self) -> None:
        """A previous run was killed: keep its complete records beside this run's file, as the JSONL sink does."""
        stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%S")
        target = self.path.with_name(f"{self.path.stem}.recovered-{stamp}{self.path.suffix}")
        kept, dropped = recover_jsonl(self._partial, target)
        if kept:
            self.recovered_path, self.recovered_records = target, kept
        log.warning("%s: a previous run was killed; %d complete records kept as %s%s", self._partial, kept,
                    target.name if kept else "(none: removed)",
                    f", {dropped} bytes of a cut-off record dropped" if dropped else "")

    def write(self, records) -> None:
        self._file.write(jsonl_lines(records))
        self._file.flush()
        self.records += len(records)

    def close(self) -> None:
        if self._file.closed:
            return
        self._file.close()
        move_into_place(self._partial, self.path)

    def stats(self) -> dict:
        return {"records": self.records, "path": str(self.path), "recovered_records": self.recovered_records}
