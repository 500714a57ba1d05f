"""A small durable FIFO on SQLite (WAL): work survives ``kill -9`` and power loss until acked.

    queue = DurableQueue(Path("triggers.sqlite3"), max_items=10_000)
    queue.put({"image_path": "..."})          # committed before it returns
    for entry in queue.peek(100):             # oldest first; stays until acked
        handle(entry.json())
    queue.ack([e.id for e in batch])

Items are bytes, or anything JSON-serialisable (stored as compact UTF-8 JSON). Ids only grow
(``AUTOINCREMENT``), so an ack of an old id never removes a newer item.

Bounded by ``max_items`` and ``max_bytes``. When full, a put drops the oldest items that are
not ``protected`` to make room, and counts them in ``dropped`` (kept in the database, so the
count survives restarts); if only protected items are left, the put raises ``QueueFull`` and
the caller decides. Thread-safe: one connection behind a lock.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

SYNCHRONOUS = ("OFF", "NORMAL", "FULL", "EXTRA")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS items (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    created_ms INTEGER NOT NULL,
    protected INTEGER NOT NULL DEFAULT 0,
    data BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS items_droppable ON items (protected, id);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
INSERT OR IGNORE INTO meta (key, value) VALUES ('dropped', 0);
"""


class QueueFull(RuntimeError):
    """No room even after dropping every unprotected item."""


@dataclass(frozen=True)
class Entry:
    id: int
    data: bytes
    created_ms: int
    protected: bool

    def json(self) -> Any:
        return json.loads(self.data)


def _encode(item: Any) -> bytes:
    if isinstance(item, bytes | bytearray | memoryview):
        return bytes(item)
    return json.dumps(item, separators=(",", ":"), ensure_ascii=False).encode()


class DurableQueue:
    def __init__(
        self,
        path: Path,
        *,
        max_items: int = 100_000,
        max_bytes: int | None = None,
        synchronous: str = "FULL",
    ) -> None:
        """``synchronous``: FULL survives power loss; NORMAL survives a crash of the process
        (WAL) and is faster, for high-rate data that may lose its last instant to a power cut."""
        if max_items < 1:
            raise ValueError("max_items must be at least 1")
        if synchronous not in SYNCHRONOUS:
            raise ValueError(f"synchronous must be one of {SYNCHRONOUS}")
        self.path = path
        self.max_items = max_items
        self.max_bytes = max_bytes
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(f"PRAGMA synchronous={synchronous}")
        self._db.executescript(_SCHEMA)
        self._count, self._bytes = self._db.execute(
            "SELECT COUNT(*), COALESCE(SUM(LENGTH(data)), 0) FROM items"
        ).fetchone()

    # -- writing ---------------------------------------------------------------------------

    def put(self, item: Any, *, protected: bool = False) -> int:
        """Store ``item`` durably; returns its id. May drop the oldest unprotected items."""
        return self.put_many([item], protected=protected)[0]

    def put_many(self, items: Iterable[Any], *, protected: bool = False) -> list[int]:
        """Store several items in one transaction (one disk sync): all or none."""
        blobs = [_encode(item) for item in items]
        if not blobs:
            return []
        size = sum(len(b) for b in blobs)
        if len(blobs) > self.max_items or (self.max_bytes is not None and size > self.max_bytes):
            raise QueueFull(f"{len(blobs)} items of {size} bytes exceed the queue's bound")
        now = int(time.time() * 1000)
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                dropped = self._make_room(len(blobs), size)
                ids = [
                    self._db.execute(
                        "INSERT INTO items (created_ms, protected, data) VALUES (?, ?, ?)",
                        (now, int(protected), blob),
                    ).lastrowid
                    for blob in blobs
                ]
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                self._count, self._bytes = self._db.execute(
                    "SELECT COUNT(*), COALESCE(SUM(LENGTH(data)), 0) FROM items"
                ).fetchone()
                raise
            self._count += len(blobs)
            self._bytes += size
        if dropped:
            log.warning("queue %s full: dropped the %d oldest items", self.path, dropped)
        return ids

    def _over(self, extra_items: int, extra_bytes: int) -> bool:
        if self._count + extra_items > self.max_items:
            return True
        return self.max_bytes is not None and self._bytes + extra_bytes > self.max_bytes

    def _make_room(self, extra_items: int, extra_bytes: int) -> int:
        dropped = 0
        while self._over(extra_items, extra_bytes):
            victims = self._db.execute(
                "SELECT id, LENGTH(data) FROM items WHERE protected = 0 ORDER BY id LIMIT ?",
                (max(1, self._count + extra_items - self.max_items),),
            ).fetchall()
            if not victims:
                raise QueueFull(f"queue {self.path} is full of protected items")
            for item_id, length in victims:
                self._db.execute("DELETE FROM items WHERE id = ?", (item_id,))
                self._count -= 1
                self._bytes -= length
                dropped += 1
                if not self._over(extra_items, extra_bytes):
                    break
        if dropped:
            self._db.execute("UPDATE meta SET value = value + ? WHERE key = 'dropped'", (dropped,))
        return dropped

    # -- reading ---------------------------------------------------------------------------

    def peek(self, limit: int = 1) -> list[Entry]:
        """The ``limit`` oldest items, oldest first; they stay until acked."""
        with self._lock:
            rows = self._db.execute(
                "SELECT id, data, created_ms, protected FROM items ORDER BY id LIMIT ?", (limit,)
            ).fetchall()
        return [Entry(i, bytes(d), c, bool(p)) for i, d, c, p in rows]

    def ack(self, ids: Sequence[int]) -> int:
        """Remove these items (done with); unknown ids are ignored. Returns how many went."""
        if not ids:
            return 0
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                removed = size = 0
                for start in range(0, len(ids), 500):
                    chunk = list(ids[start : start + 500])
                    marks = ",".join("?" * len(chunk))
                    n, b = self._db.execute(
                        f"SELECT COUNT(*), COALESCE(SUM(LENGTH(data)), 0) FROM items "
                        f"WHERE id IN ({marks})",
                        chunk,
                    ).fetchone()
                    self._db.execute(f"DELETE FROM items WHERE id IN ({marks})", chunk)
                    removed, size = removed + n, size + b
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._count -= removed
            self._bytes -= size
        return removed

    def count(self) -> int:
        with self._lock:
            return self._count

    @property
    def size_bytes(self) -> int:
        with self._lock:
            return self._bytes

    @property
    def dropped(self) -> int:
        """Items dropped to make room, since the database was created."""
        with self._lock:
            return self._db.execute("SELECT value FROM meta WHERE key = 'dropped'").fetchone()[0]

    def close(self) -> None:
        with self._lock:
            self._db.close()
