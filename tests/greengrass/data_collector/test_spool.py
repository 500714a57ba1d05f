"""The spool: durable before publish, deleted only on ack, atomic with the deriver's memory,
bounded with a counted drop policy, and whole after ``kill -9`` of its writer."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time

import pytest
from data_collector.spool import (
    COUNT,
    EVENT,
    ROW_OVERHEAD,
    SPOOL_DROPPED_READINGS,
    STATE,
    TELEMETRY,
    Row,
    Spool,
)

from mes_domain.contracts import MachineEvent
from tests.greengrass.data_collector.conftest import COLLECTOR_DIR

T0 = 1_700_000_000_000


def reading_row(station: str, i: int, pad: int = 0) -> Row:
    body = {"ts": T0 + i, "tag": "force", "value": i, "quality": "GOOD", "unit": "x" * pad}
    return Row(station, TELEMETRY, T0 + i, json.dumps(body).encode())


def test_rows_and_memory_commit_together_and_ack_deletes_only_that_batch(tmp_path):
    spool = Spool(tmp_path / "spool.db", max_bytes=1 << 20)
    spool.put([reading_row("press-01", i) for i in range(5)], {"press-01": {"raw": {"c": 5}}})
    rows = spool.open_rows("press-01", TELEMETRY)
    first = spool.assign(rows[:3])
    assert first == f"{spool.session}-{rows[0].id}-{rows[2].id}"
    assert spool.ack([first]) == 3
    assert [r.id for r in spool.open_rows("press-01", TELEMETRY)] == [r.id for r in rows[3:]]
    assert spool.memories() == {"press-01": {"raw": {"c": 5}}}
    assert spool.stats()["spool_rows"] == 2


def test_a_failed_put_writes_neither_rows_nor_memory(tmp_path):
    spool = Spool(tmp_path / "spool.db", max_bytes=1 << 20)
    # The rows are inserted, then the memory cannot be written: all of it is rolled back
    with pytest.raises(TypeError):
        spool.put([reading_row("press-01", 1)], {"press-01": {"x": {1, 2}}})
    assert spool.open_rows("press-01", TELEMETRY) == [] and spool.memories() == {}


def test_an_assigned_batch_keeps_its_id_across_a_restart(tmp_path):
    path = tmp_path / "spool.db"
    spool = Spool(path, max_bytes=1 << 20)
    spool.put([reading_row("press-01", i) for i in range(4)])
    batch = spool.assign(spool.open_rows("press-01", TELEMETRY))
    spool.close()  # the process dies between the assignment and the ack
    again = Spool(path, max_bytes=1 << 20)
    assert again.session != spool.session  # new batches can never reuse a published id
    ((stored, station, kind, _),) = again.assigned_batches()
    assert (stored, station, kind) == (batch, "press-01", TELEMETRY)
    assert [json.loads(r.body)["value"] for r in again.batch_rows(batch)] == [0, 1, 2, 3]


def test_wal_mode_and_synchronous_normal(tmp_path):
    spool = Spool(tmp_path / "spool.db", max_bytes=1 << 20)
    assert spool._db.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    assert spool._db.execute("PRAGMA synchronous").fetchone() == (1,)  # NORMAL


# -- a full spool --------------------------------------------------------------------------


def test_a_full_spool_drops_the_oldest_telemetry_never_state_or_counts(tmp_path):
    path = tmp_path / "spool.db"
    spool = Spool(path, max_bytes=200_000)
    spool.put([Row("press-01", STATE, T0, b'{"v":1,"ts":1,"state":"RUNNING"}')])
    spool.put([Row("press-01", COUNT, T0, b'{"v":1,"ts":1,"good":1,"bad":0}')])
    written = 0
    for chunk in range(40):
        rows = [reading_row(s, chunk * 100 + i, pad=100) for s in ("a", "b") for i in range(50)]
        drops = spool.put(rows)
        written += len(rows)
        assert spool.stats()["spool_bytes"] <= spool.max_bytes
        for drop in drops:
            assert drop.count > 0 and drop.first_ts <= drop.last_ts
    stats = spool.stats()
    kept = [json.loads(r.body)["value"] for r in spool.open_rows("a", TELEMETRY, limit=10**6)]
    kept += [json.loads(r.body)["value"] for r in spool.open_rows("b", TELEMETRY, limit=10**6)]
    # Counted exactly: what was written is what is kept plus what was dropped
    assert stats["dropped_readings"] == written - len(kept) > 0
    # The oldest went: what is left of each station is its newest readings, contiguous
    newest = 39 * 100 + 49
    for station in ("a", "b"):
        values = [
            json.loads(r.body)["value"] for r in spool.open_rows(station, TELEMETRY, limit=10**6)
        ]
        assert values[-1] == newest and values == sorted(values)
    # State and count rows are all still there
    assert spool.head("press-01", STATE) is not None and spool.head("press-01", COUNT) is not None
    # Each drop is reported as a MachineEvent of the station, and counted
    events = {s: spool.open_rows(s, EVENT, limit=1000) for s in ("a", "b")}
    reported = 0
    for station, rows in events.items():
        for row in rows:
            event = MachineEvent.model_validate_json(row.body)
            assert event.code == SPOOL_DROPPED_READINGS and station in event.message
            reported += int(event.message.split("dropped the ")[1].split(" ")[0])
    assert reported == stats["dropped_readings"]
    assert stats["drop_events"] == sum(len(rows) for rows in events.values())
    spool.close()
    # The counter survives a restart, and the byte count is recomputed the same
    again = Spool(path, max_bytes=200_000)
    assert again.stats()["dropped_readings"] == stats["dropped_readings"]
    assert again.stats()["spool_bytes"] == stats["spool_bytes"]


def test_the_file_stays_bounded_under_sustained_overflow(tmp_path):
    path = tmp_path / "spool.db"
    spool = Spool(path, max_bytes=1 << 20)
    for chunk in range(60):
        spool.put([reading_row("a", chunk * 500 + i, pad=50) for i in range(500)])
    assert spool.stats()["dropped_readings"] > 0
    spool._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    # SQLite's pages hold the logical bytes with some slack (free pages are reused)
    assert path.stat().st_size <= 2 * spool.max_bytes
    assert ROW_OVERHEAD > 0


# -- kill -9 ---------------------------------------------------------------------------------

WRITER = r"""
import json, sys
sys.path.insert(0, sys.argv[2])
from pathlib import Path
from data_collector.spool import Row, Spool, TELEMETRY

spool = Spool(Path(sys.argv[1]), max_bytes=1 << 30)
log = open(sys.argv[3], "a", buffering=1)
seq = spool.memories().get("s", {"seq": -1})["seq"] + 1  # a restart resumes after its memory
while True:
    rows = [Row("s", TELEMETRY, seq + i, json.dumps({"seq": seq + i}).encode()) for i in range(50)]
    spool.put(rows, {"s": {"seq": seq + 49}})
    log.write(f"committed {seq + 49}\n")
    seq += 50
    batch = spool.open_rows("s", TELEMETRY, limit=30)
    if seq % 200 == 0 and batch:
        batch_id = spool.assign(batch)
        log.write("acking " + " ".join(str(json.loads(r.body)["seq"]) for r in batch) + "\n")
        spool.ack([batch_id])
"""


def test_kill_9_of_a_writer_loses_nothing_committed(tmp_path):
    db, log = tmp_path / "spool.db", tmp_path / "writer.log"
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    for round_ in range(3):  # kill it three times, restarting on the same spool
        proc = subprocess.Popen(
            [sys.executable, str(script), str(db), str(COLLECTOR_DIR / "src"), str(log)],
            env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
        )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if log.exists() and log.read_text().count("committed") >= 40 * (round_ + 1):
                break
            time.sleep(0.02)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
    connection = sqlite3.connect(db)
    assert connection.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    in_spool = {json.loads(b)["seq"] for (b,) in connection.execute("SELECT body FROM rows")}
    committed: set[int] = set()
    acked: set[int] = set()
    for line in log.read_text().splitlines():
        word, _, rest = line.partition(" ")
        if word == "committed":
            committed |= set(range(int(rest) - 49, int(rest) + 1))
        elif word == "acking":
            acked |= {int(x) for x in rest.split()}
    assert len(committed) >= 40 * 3 * 50
    # Every committed reading is still spooled, or was in a batch being acknowledged
    assert committed - in_spool - acked == set()
    # The memory was committed with its rows: it names the last row of the last commit
    (memory,) = connection.execute("SELECT value FROM memory").fetchone()
    last = json.loads(memory)["seq"]
    assert last >= max(committed) and last in in_spool | acked
    assert not any(s > last for s in in_spool)  # no row without its memory
