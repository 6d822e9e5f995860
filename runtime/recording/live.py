"""What came of a recording live: the embedding records, one JSON object per line, to compare with a replay."""

from __future__ import annotations

import pathlib

from biomoe_edge.durable import move_into_place
from biomoe_edge.runtime.records import jsonl_lines
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
        self._file = open(self._partial, "wb")
        self.records = 0

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
        return {"records": self.records, "path": str(self.path)}
