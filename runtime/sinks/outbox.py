"""A disk outbox for the MQTT sink: what the broker has not acknowledged yet, kept in order across outages and
restarts, within a size bound.

An SQLite database (the standard library's ``sqlite3``; write-ahead log) with one row per message: its order
(``seq``), topic and payload. A row is written in one transaction before ``append`` returns, so a killed process
(``kill -9``) loses nothing; ``synchronous=NORMAL`` lets a power cut take the last transactions since the log's
last checkpoint (no fsync per batch on the gateway's event loop). A row is deleted once the broker acknowledged
its message (``delete``). Over ``max_bytes`` the oldest rows are evicted and counted (``evicted``), the only way
the outbox loses a record.

Thread-safe: the gateway's loop appends, paho's thread deletes on acknowledgement, the drain reads.
"""

from __future__ import annotations

import logging
import os
import pathlib
import sqlite3
import threading

log = logging.getLogger(__name__)

FILE_NAME = "outbox.sqlite3"


def default_outbox_dir(state_dir, position: int) -> pathlib.Path:
    """Where ``biomoe-edge run`` keeps the outbox of its ``position``-th sink: under the state directory."""
    from biomoe_edge.runtime.transport.security import state_directory

    base = pathlib.Path(state_dir) if state_dir is not None else state_directory()
    return base / "outbox" / f"sink-{position}"


class Outbox:
    def __init__(self, directory, max_bytes: int):
        if max_bytes < 1:
            raise ValueError(f"outbox max_bytes must be at least 1, got {max_bytes}")
        self.directory = pathlib.Path(directory)
        try:
            self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        except OSError as exc:
            raise ValueError(f"outbox_dir {self.directory}: {exc.strerror or exc}") from None
        self.path = self.directory / FILE_NAME
        self.max_bytes = int(max_bytes)
        self._lock = threading.Lock()
        try:
            self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute("CREATE TABLE IF NOT EXISTS outbox (seq INTEGER PRIMARY KEY AUTOINCREMENT, "
                             "topic TEXT NOT NULL, payload BLOB NOT NULL)")
            self.records, self.bytes = self._db.execute(
                "SELECT COUNT(*), COALESCE(SUM(LENGTH(payload)), 0) FROM outbox").fetchone()
        except sqlite3.Error as exc:
            raise ValueError(f"outbox_dir {self.directory}: cannot open {FILE_NAME}: {exc}") from None
        os.chmod(self.path, 0o600)
        #: records evicted because the outbox was full (the oldest first)
        self.evicted = 0
        #: the most records and bytes held at once
        self.peak_records, self.peak_bytes = self.records, self.bytes
        self.recovered = self.records  # left by an earlier run: sent first
        if self.recovered:
            log.info("MQTT outbox %s: %d records (%d bytes) left by an earlier run, sent once connected",
                     self.path, self.records, self.bytes)

    def append(self, messages) -> None:
        """Store ``(topic, payload)`` messages in order, evicting the oldest beyond ``max_bytes``."""
        messages = list(messages)
        if not messages:
            return
        added = sum(len(payload) for _, payload in messages)
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.executemany("INSERT INTO outbox (topic, payload) VALUES (?, ?)", messages)
                self.records += len(messages)
                self.bytes += added
                evicted = 0
                while self.bytes > self.max_bytes and self.records:
                    rows = self._db.execute("SELECT seq, LENGTH(payload) FROM outbox ORDER BY seq LIMIT 256").fetchall()
                    drop = []
                    for seq, size in rows:
                        if self.bytes <= self.max_bytes:
                            break
                        drop.append((seq,))
                        self.bytes -= size
                        self.records -= 1
                    self._db.executemany("DELETE FROM outbox WHERE seq = ?", drop)
                    evicted += len(drop)
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                self.records, self.bytes = self._db.execute(
                    "SELECT COUNT(*), COALESCE(SUM(LENGTH(payload)), 0) FROM outbox").fetchone()
                raise
            if evicted:
                if not self.evicted:
                    log.warning("MQTT outbox %s full (%d bytes): evicting the oldest records (counted as lost: "
                                "outbox_full)", self.path, self.max_bytes)
                self.evicted += evicted
            self.peak_records = max(self.peak_records, self.records)
            self.peak_bytes = max(self.peak_bytes, self.bytes)

    def after(self, seq: int, limit: int) -> list[tuple[int, str, bytes]]:
        """Up to ``limit`` rows after ``seq``, in order."""
        with self._lock:
            return self._db.execute("SELECT seq, topic, payload FROM outbox WHERE seq > ? ORDER BY seq LIMIT ?",
                                    (seq, limit)).fetchall()

    def delete(self, seq: int) -> None:
        """The broker acknowledged row ``seq``: forget it (a row already evicted is no error)."""
        with self._lock:
            size = self._db.execute("SELECT LENGTH(payload) FROM outbox WHERE seq = ?", (seq,)).fetchone()
            if size is None:
                return
            self._db.execute("DELETE FROM outbox WHERE seq = ?", (seq,))
            self.records -= 1
            self.bytes -= size[0]

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def stats(self) -> dict:
        return {"outbox_records": self.records, "outbox_bytes": self.bytes, "outbox_evicted": self.evicted,
                "outbox_peak_records": self.peak_records, "outbox_peak_bytes": self.peak_bytes,
                "outbox_recovered": self.recovered}
