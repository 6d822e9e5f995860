"""The sink interface, and the guard that keeps a failing sink from taking the gateway down."""

from __future__ import annotations

import logging
import time
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
    never raised, so one broken sink cannot stop embeddings from reaching the others.

    ``GuardedSink.start(factory, kind=..., path=...)`` also isolates a sink that cannot start (a full disk, a
    folder it may not write): the gateway runs on, the sink is ``failed`` with its path and reason, the records
    it misses are counted as lost, and ``factory`` is tried again with back-off (``retry_min_s`` doubling up to
    ``retry_max_s``) when records arrive. A sink whose writes fail is ``failed`` until one succeeds.
    """

    def __init__(self, sink: Sink | None, *, kind: str | None = None, path: str | None = None, factory=None,
                 retry_min_s: float = 1.0, retry_max_s: float = 60.0, clock=time.monotonic):
        self.sink = sink
        self.kind = kind or (getattr(sink, "name", None) if sink is not None else None) or "sink"
        self.path = path
        self.records_written = 0
        self.records_failed = 0
        #: records handed to the sink while it was not running (it failed to start or to restart)
        self.records_missed = 0
        #: the gateway's input blocks and samples an observing sink (the recording) missed while not running
        self.blocks_missed = 0
        self.samples_missed = 0
        self.batches_failed = 0
        self.errors: dict[str, int] = {}
        self.state = "ok"
        self.reason: str | None = None
        #: attempts to start the sink again after it failed to start
        self.retries = 0
        self._factory = factory
        self._retry_min_s = float(retry_min_s)
        self._retry_max_s = float(retry_max_s)
        self._clock = clock
        self._backoff_s = self._retry_min_s
        self._next_retry_s = 0.0

    @classmethod
    def start(cls, factory, *, kind: str, path: str | None = None, **options) -> "GuardedSink":
        """``factory()`` started under guard: a failure leaves a ``failed`` guard that retries it later."""
        guard = cls(None, kind=kind, path=path, factory=factory, **options)
        guard._try_start()
        return guard

    def _try_start(self) -> bool:
        try:
            self.sink = self._factory()
        except Exception as exc:  # noqa: BLE001 - a sink that cannot start must not stop the gateway
            first = self.state == "ok"
            self._failed("start", exc)
            self._next_retry_s = self._clock() + self._backoff_s
            if first:
                log.warning("sink %s (%s) cannot start: %s; the gateway goes on without it, retrying every %g s "
                            "at most and counting what it misses", self.kind, self.path or "no path", self.reason,
                            self._retry_max_s)
            self._backoff_s = min(self._backoff_s * 2, self._retry_max_s)
            return False
        if self.state == "failed":
            log.warning("sink %s (%s) started after %d retries; it missed %d records", self.kind,
                        self.path or "no path", self.retries, self.records_missed)
        self.state, self.reason, self._backoff_s = "ok", None, self._retry_min_s
        return True

    def _failed(self, where: str, exc: BaseException) -> None:
        self.state = "failed"
        self.reason = f"{where}: {type(exc).__name__}: {exc}"
        key = ("start:" if where == "start" else "") + type(exc).__name__
        self.errors[key] = self.errors.get(key, 0) + 1

    @property
    def name(self) -> str:
        if self.sink is None:
            return self.kind
        return getattr(self.sink, "name", type(self.sink).__name__)

    def _retry_due(self) -> bool:
        """Try to start the sink again when its back-off has passed; True when it is running."""
        if self.sink is not None:
            return True
        if self._factory is None or self._clock() < self._next_retry_s:
            return False
        self.retries += 1
        return self._try_start()

    def write(self, records: Sequence[EmbeddingRecord]) -> bool:
        if self.sink is None and not self._retry_due():
            self.records_missed += len(records)
            return False
        try:
            self.sink.write(records)
        except Exception as exc:  # noqa: BLE001 - a sink's failure must never reach the gateway
            reason = type(exc).__name__
            if reason not in self.errors:
                log.warning("sink %s failed (%s: %s); counting further failures of this kind silently",
                            self.name, reason, exc)
            self.errors[reason] = self.errors.get(reason, 0) + 1
            self.state, self.reason = "failed", f"write: {reason}: {exc}"
            self.records_failed += len(records)
            self.batches_failed += 1
            return False
        self.state, self.reason = "ok", None
        self.records_written += len(records)
        return True

    # -- an observing sink (the recording) that is not running: what it misses of the gateway's input ---------
    def on_block(self, device, modality, samples, gateway_times_s, arrival_time_s, lost_before) -> None:
        if self.sink is None:
            self.blocks_missed += 1
            self.samples_missed += len(gateway_times_s)
            self._retry_due()  # input keeps coming: the sink need not wait for embeddings to restart

    def close(self) -> None:
        if self.sink is None:
            if self.state == "failed":
                log.warning("sink %s (%s) never started (%s): %d records, %d input blocks missed", self.kind,
                            self.path or "no path", self.reason, self.records_missed, self.blocks_missed)
            return
        try:
            self.sink.close()
        except Exception as exc:  # noqa: BLE001
            log.warning("sink %s failed to close: %s: %s", self.name, type(exc).__name__, exc)
            self.errors["close:" + type(exc).__name__] = self.errors.get("close:" + type(exc).__name__, 0) + 1

    def stats(self) -> dict:
        return {
            "kind": self.kind,
            "state": self.state,
            "reason": self.reason,
            "path": self.path,
            "written": self.records_written,
            "lost": self.records_failed + self.records_missed,
            "retries": self.retries,
            "records_written": self.records_written,
            "records_failed": self.records_failed,
            "records_missed": self.records_missed,
            **({"blocks_missed": self.blocks_missed, "samples_missed": self.samples_missed}
               if self.blocks_missed else {}),
            "batches_failed": self.batches_failed,
            "errors": dict(self.errors),
            **(self.sink.stats() if self.sink is not None else {}),
        }
