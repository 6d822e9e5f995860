"""Hand each record to a Python function (the simplest way to embed the gateway in an application)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from biomoe_edge.runtime.records import EmbeddingRecord
from biomoe_edge.runtime.sinks.base import Sink


class CallbackSink(Sink):
    """Calls ``callback(record)`` for every record, in the order the engine produced them."""

    name = "callback"

    def __init__(self, callback: Callable[[EmbeddingRecord], object]):
        if not callable(callback):
            raise TypeError(f"callback must be callable, got {type(callback).__name__}")
        self.callback = callback

    def write(self, records: Sequence[EmbeddingRecord]) -> None:
        for record in records:
            self.callback(record)
