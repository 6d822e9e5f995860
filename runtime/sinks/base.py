"""The sink interface, and the guard that keeps a failing sink from taking the gateway down."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from biomoe_edge.runtime.records import EmbeddingRecord

log = logging.getLogger(__name__)


class Sink:
    """Somewhere embeddings go. Subclasses implement ``write``; ``close`` releases files and sockets.

    ``write`` is called from the gateway's event loop with the records of one engine batch, so it must
    not block for long: file sinks write a few lines, network sinks hand records to their own thread.
    """

    name: str = "sink"

    def write(self, records: Sequence[EmbeddingRecord]) -> None:
        raise NotImplementedError

    def close(self) -> None:
        pass

    def stats(self) -> dict:
        """Counters worth showing (published, queued, dropped...); empty by default."""
        return {}

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()


class GuardedSink:
    """Wraps a sink: an exception in ``write`` is counted per exception type and logged once per type,
    never raised, so one broken sink cannot stop embeddings from reaching the others."""

    def __init__(self, sink: Sink):
        self.sink = sink
        self.records_written = 0
        self.records_failed = 0
        self.batches_failed = 0
        self.errors: dict[str, int] = {}

    @property
    def name(self) -> str:
        return getattr(self.sink, "name", type(self.sink).__name__)

    def write(self, records: Sequence[EmbeddingRecord]) -> bool:
        try:
            self.sink.write(records)
        except Exception as exc:  # noqa: BLE001 - a sink's failure must never reach the gateway
            reason = type(exc).__name__
            if reason not in self.errors:
                log.warning("sink %s failed (%s: %s); counting further failures of this kind silently",
                            self.name, reason, exc)
            self.errors[reason] = self.errors.get(reason, 0) + 1
            self.records_failed += len(records)
            self.batches_failed += 1
            return False
        self.records_written += len(records)
        return True

    def close(self) -> None:
        try:
            self.sink.close()
        except Exception as exc:  # noqa: BLE001
            log.warning("sink %s failed to close: %s: %s", self.name, type(exc).__name__, exc)
            self.errors["close:" + type(exc).__name__] = self.errors.get("close:" + type(exc).__name__, 0) + 1

    def stats(self) -> dict:
        return {
            "records_written": self.records_written,
            "records_failed": self.records_failed,
            "batches_failed": self.batches_failed,
            "errors": dict(self.errors),
            **self.sink.stats(),
        }
