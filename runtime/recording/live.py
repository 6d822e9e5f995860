"""What came of a recording live: the embedding records, one JSON object per line, to compare with a replay."""

from __future__ import annotations

import json
import os
import pathlib

from biomoe_edge.runtime.sinks.base import Sink


class EmbeddingsFile(Sink):
    """``demo --embeddings FILE.jsonl``: every record as ``EmbeddingRecord.to_dict()`` JSON (as the JSONL sink writes
    them), one per line, in ``FILE.jsonl.partial`` flushed per batch, renamed to ``FILE.jsonl`` after an fsync when
    the gateway closes: a file under the final name is whole. ``runtime.sinks.read_jsonl_records`` reads it."""

    name = "embeddings-file"

    def __init__(self, path):
        self.path = pathlib.Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._partial = self.path.with_name(self.path.name + ".partial")
        self._file = open(self._partial, "w", encoding="utf-8")
        self.records = 0

    def write(self, records) -> None:
        self._file.write("".join(json.dumps(r.to_dict(), allow_nan=True) + "\n" for r in records))
        self._file.flush()
        self.records += len(records)

    def close(self) -> None:
        if self._file.closed:
            return
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        self._partial.replace(self.path)

    def stats(self) -> dict:
        return {"records": self.records, "path": str(self.path)}
