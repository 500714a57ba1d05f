"""The DataCollector's durable spool: every reading and derived event is committed here before
it is published, and deleted only when the broker acknowledged the message that carried it.

SQLite in WAL mode with ``synchronous=NORMAL``. SQLite keeps a WAL commit durable across a
crash of the application whatever the synchronous setting, so ``kill -9`` loses nothing that
was committed; NORMAL syncs the disk only at checkpoints, so a power loss may roll back the
last commits, as a whole and in order, never corrupting the file
(https://www.sqlite.org/pragma.html#pragma_synchronous, https://www.sqlite.org/wal.html).
What that costs is bounded: counts and states are not lost, because the deriver's memory is
committed in the same transaction as the events derived from it, so the next reading of the
PLC's cumulative counter derives the rolled-back parts again; a rolled-back ack re-publishes
a batch under its stored id, which the cloud removes as a duplicate. Only telemetry read
since the last checkpoint and not yet published can be lost, and only to a power cut. FULL
would add an fsync to every commit (twenty a second), wearing the gateway's flash for that.
``synchronous`` is a parameter for a plant that wants FULL anyway.

Why not ``greengrass_components.common.durable_queue``: the collector needs, in one
transaction, rows of several stations and kinds plus the deriver's memory; it assigns rows to
a batch (the id stored with them, so a re-publish after a crash carries the same id) and
selects per station and kind; and a full spool may drop only telemetry. The generic FIFO
has none of these.

**A full spool** (``max_bytes``, the rows' bodies plus ``ROW_OVERHEAD`` each): the oldest
telemetry readings are deleted until the spool is at ``LOW_WATER`` of its bound; state, count
and event rows are never dropped (they are small, and a lost state or count corrupts a KPI
for good). Each station that lost readings gets a ``SPOOL_DROPPED_READINGS`` event (WARNING,
how many and the time span), and ``dropped_readings`` counts them in ``stats()``, kept in the
database across restarts.
"""

from __future__ import annotations

import json
import logging
import secrets
import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

TELEMETRY, STATE, COUNT, EVENT = "telemetry", "state", "count", "event"
KINDS = (TELEMETRY, STATE, COUNT, EVENT)
ROW_OVERHEAD = 64  # bytes of a row beside its body: row id, columns, index entries
LOW_WATER = 0.9  # a full spool is trimmed to this share of its bound, not one row at a time
SPOOL_DROPPED_READINGS = "SPOOL_DROPPED_READINGS"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS rows (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    station TEXT NOT NULL,
    kind TEXT NOT NULL,
    ts INTEGER NOT NULL,
    body BLOB NOT NULL,
    batch TEXT
);
CREATE INDEX IF NOT EXISTS rows_open ON rows (station, kind, id) WHERE batch IS NULL;
CREATE INDEX IF NOT EXISTS rows_batch ON rows (batch) WHERE batch IS NOT NULL;
CREATE INDEX IF NOT EXISTS rows_kind ON rows (kind, id);
CREATE TABLE IF NOT EXISTS memory (station TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
INSERT OR IGNORE INTO meta (key, value) VALUES ('dropped_readings', 0);
INSERT OR IGNORE INTO meta (key, value) VALUES ('drop_events', 0);
"""


@dataclass(frozen=True, slots=True)
class Row:
    station: str
    kind: str
    ts: int
    body: bytes  # telemetry: one contracts.Reading as JSON; other kinds: the whole payload


@dataclass(frozen=True, slots=True)
class Spooled:
    id: int
    station: str
    kind: str
    ts: int
    body: bytes
    batch: str | None


@dataclass(frozen=True, slots=True)
class Drop:
    """Readings of one station deleted from a full spool."""

    station: str
    count: int
    first_ts: int
    last_ts: int


class Spool:
    """Not thread-safe: one owner (the collector's event loop) calls it."""

    def __init__(self, path: Path, *, max_bytes: int, synchronous: str = "NORMAL") -> None:
        if synchronous not in ("NORMAL", "FULL", "EXTRA"):
            raise ValueError("synchronous is NORMAL, FULL or EXTRA")
        self.path = Path(path)
        self.max_bytes = max_bytes
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(f"PRAGMA synchronous={synchronous}")
        self._db.executescript(_SCHEMA)
        # Ids may repeat after a power loss rolls back the tail: new batch ids carry this
        # session's random prefix, so they never equal one already published.
        self.session = secrets.token_hex(6)
        self._bytes, self._rows = self._db.execute(
            "SELECT COALESCE(SUM(LENGTH(body)), 0), COUNT(*) FROM rows"
        ).fetchone()
        self._bytes += ROW_OVERHEAD * self._rows

    # -- writing ---------------------------------------------------------------------------

    def put(
        self, rows: Sequence[Row], memory: dict[str, dict[str, Any]] | None = None
    ) -> list[Drop]:
        """Commit ``rows`` and the deriver ``memory`` of stations together; returns the drops a
        full spool made (already recorded as events in the same transaction)."""
        incoming = sum(len(r.body) + ROW_OVERHEAD for r in rows)
        self._db.execute("BEGIN IMMEDIATE")
        try:
            drops = self._make_room(incoming) if self._bytes + incoming > self.max_bytes else []
            self._db.executemany(
                "INSERT INTO rows (station, kind, ts, body) VALUES (?, ?, ?, ?)",
                [(r.station, r.kind, r.ts, r.body) for r in rows],
            )
            for station, value in (memory or {}).items():
                self._db.execute(
                    "INSERT OR REPLACE INTO memory (station, value) VALUES (?, ?)",
                    (station, json.dumps(value, separators=(",", ":"))),
                )
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._bytes += incoming
        self._rows += len(rows)
        if self._bytes > self.max_bytes:
            log.warning(
                "spool %s holds %d bytes of state, count and event rows, over its %d bytes: "
                "these are never dropped",
                self.path, self._bytes, self.max_bytes,
            )  # fmt: skip
        return drops

    def _make_room(self, incoming: int) -> list[Drop]:
        """Inside the caller's transaction: delete the oldest telemetry down to LOW_WATER."""
        target = int(self.max_bytes * LOW_WATER) - incoming
        freed = 0
        per_station: dict[str, list[int]] = {}
        doomed: list[int] = []
        cursor = self._db.execute(
            "SELECT id, station, ts, LENGTH(body) FROM rows WHERE kind = ? ORDER BY id",
            (TELEMETRY,),
        )
        for row_id, station, ts, size in cursor:
            if self._bytes - freed <= target:
                break
            doomed.append(row_id)
            freed += size + ROW_OVERHEAD
            span = per_station.setdefault(station, [0, ts, ts])
            span[0] += 1
            span[1], span[2] = min(span[1], ts), max(span[2], ts)
        cursor.close()
        if not doomed:
            return []
        self._db.executemany("DELETE FROM rows WHERE id = ?", ((i,) for i in doomed))
        drops = [Drop(s, n, first, last) for s, (n, first, last) in sorted(per_station.items())]
        events = [_drop_event(drop) for drop in drops]
        self._db.executemany(
            "INSERT INTO rows (station, kind, ts, body) VALUES (?, ?, ?, ?)",
            [(d.station, EVENT, d.last_ts, body) for d, body in zip(drops, events, strict=True)],
        )
        event_bytes = sum(len(body) + ROW_OVERHEAD for body in events)
        self._db.execute(
            "UPDATE meta SET value = value + ? WHERE key = 'dropped_readings'", (len(doomed),)
        )
        self._db.execute(
            "UPDATE meta SET value = value + ? WHERE key = 'drop_events'", (len(drops),)
        )
        self._bytes += event_bytes - freed
        self._rows += len(drops) - len(doomed)
        log.warning(
            "spool full (%d bytes): dropped the %d oldest readings of %s",
            self.max_bytes, len(doomed), ", ".join(d.station for d in drops),
        )  # fmt: skip
        return drops

    # -- reading -------------------------------------------------------------------------

    def memories(self) -> dict[str, dict[str, Any]]:
        return {s: json.loads(v) for s, v in self._db.execute("SELECT station, value FROM memory")}

    def open_rows(
        self, station: str, kind: str, *, min_id: int = 0, limit: int = 1000
    ) -> list[Spooled]:
        """Rows not yet in a batch, oldest first."""
        return [
            Spooled(*row, None)
            for row in self._db.execute(
                "SELECT id, station, kind, ts, body FROM rows "
                "WHERE station = ? AND kind = ? AND batch IS NULL AND id >= ? ORDER BY id LIMIT ?",
                (station, kind, min_id, limit),
            )
        ]

    def head(self, station: str, kind: str, *, min_id: int = 0) -> tuple[int, int] | None:
        """(id, ts) of the oldest open row of ``station`` and ``kind`` with id >= ``min_id``."""
        row = self._db.execute(
            "SELECT id, ts FROM rows WHERE station = ? AND kind = ? AND batch IS NULL "
            "AND id >= ? ORDER BY id LIMIT 1",
            (station, kind, min_id),
        ).fetchone()
        return None if row is None else (row[0], row[1])

    def open_bytes(self, station: str, kind: str, *, min_id: int, limit: int) -> int:
        """Body bytes of at most ``limit`` open rows from ``min_id`` on (a live batch's)."""
        (size,) = self._db.execute(
            "SELECT COALESCE(SUM(LENGTH(body)), 0) FROM (SELECT body FROM rows WHERE "
            "station = ? AND kind = ? AND batch IS NULL AND id >= ? ORDER BY id LIMIT ?)",
            (station, kind, min_id, limit),
        ).fetchone()
        return size

    def stations(self) -> list[str]:
        # Each half reads one partial index, not the table (a backlog may be millions of rows)
        query = (
            "SELECT DISTINCT station FROM rows WHERE batch IS NULL UNION "
            "SELECT DISTINCT station FROM rows WHERE batch IS NOT NULL"
        )
        return [s for (s,) in self._db.execute(query)]

    def assigned_batches(self) -> list[tuple[str, str, str, int]]:
        """(batch id, station, kind, first id) of batches assigned but not acknowledged: a
        crash came between the assignment and the ack. Oldest first."""
        return [
            tuple(row)
            for row in self._db.execute(
                "SELECT batch, station, kind, MIN(id) FROM rows WHERE batch IS NOT NULL "
                "GROUP BY batch ORDER BY MIN(id)"
            )
        ]

    def batch_rows(self, batch: str) -> list[Spooled]:
        return [
            Spooled(*row)
            for row in self._db.execute(
                "SELECT id, station, kind, ts, body, batch FROM rows WHERE batch = ? ORDER BY id",
                (batch,),
            )
        ]

    def max_id(self) -> int:
        (value,) = self._db.execute("SELECT COALESCE(MAX(id), 0) FROM rows").fetchone()
        return value

    # -- batches -------------------------------------------------------------------------

    def batch_id(self, rows: Sequence[Spooled]) -> str:
        """Deterministic from the rows (their first and last id) and this session."""
        return f"{self.session}-{rows[0].id}-{rows[-1].id}"

    def assign(self, rows: Sequence[Spooled]) -> str:
        """Store the batch id with its rows before the publish: a re-publish after a crash
        carries the same rows under the same id."""
        batch = self.batch_id(rows)
        self._db.execute("BEGIN IMMEDIATE")
        self._db.executemany(
            "UPDATE rows SET batch = ? WHERE id = ?", ((batch, r.id) for r in rows)
        )
        self._db.execute("COMMIT")
        return batch

    def ack(self, batches: Iterable[str]) -> int:
        """The broker acknowledged these batches: delete their rows."""
        removed = freed = 0
        self._db.execute("BEGIN IMMEDIATE")
        for batch in batches:
            (size, count) = self._db.execute(
                "SELECT COALESCE(SUM(LENGTH(body)), 0), COUNT(*) FROM rows WHERE batch = ?",
                (batch,),
            ).fetchone()
            self._db.execute("DELETE FROM rows WHERE batch = ?", (batch,))
            removed += count
            freed += size + ROW_OVERHEAD * count
        self._db.execute("COMMIT")
        self._bytes -= freed
        self._rows -= removed
        return removed

    # -- metrics -------------------------------------------------------------------------

    def stats(self) -> dict[str, int]:
        meta = dict(self._db.execute("SELECT key, value FROM meta"))
        return {
            "spool_rows": self._rows,
            "spool_bytes": self._bytes,
            "spool_max_bytes": self.max_bytes,
            "dropped_readings": meta["dropped_readings"],
            "drop_events": meta["drop_events"],
        }

    def close(self) -> None:
        self._db.close()


def _drop_event(drop: Drop) -> bytes:
    message = (
        f"spool full: dropped the {drop.count} oldest readings of {drop.station} "
        f"from {drop.first_ts} to {drop.last_ts} (epoch ms) to stay within spool_max_bytes"
    )
    payload = {
        "v": 1,
        "ts": drop.last_ts,
        "code": SPOOL_DROPPED_READINGS,
        "severity": "WARNING",
        "message": message,
    }
    return json.dumps(payload, separators=(",", ":")).encode()
