"""The durable queue: FIFO with acks, bounds with a counted drop policy, and kill -9."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time

import pytest

from greengrass_components.common.durable_queue import DurableQueue, QueueFull
from tests.conftest import PROJECT_ROOT


def test_items_come_out_oldest_first_and_stay_until_acked(tmp_path):
    queue = DurableQueue(tmp_path / "q.sqlite3")
    first = queue.put({"image_path": "a.png", "part_id": "P1"})
    second = queue.put(b"\x00raw bytes")
    third = queue.put(["any", "json", 3])
    assert queue.count() == 3 and first < second < third
    batch = queue.peek(2)
    assert [e.id for e in batch] == [first, second]
    assert batch[0].json() == {"image_path": "a.png", "part_id": "P1"}
    assert batch[1].data == b"\x00raw bytes"
    assert queue.peek(2) == batch  # peeking does not consume
    assert queue.ack([first, second, 999_999]) == 2
    assert [e.json() for e in queue.peek(10)] == [["any", "json", 3]]
    assert queue.count() == 1


def test_the_queue_and_its_drop_count_survive_a_reopen(tmp_path):
    path = tmp_path / "q.sqlite3"
    queue = DurableQueue(path, max_items=3)
    ids = [queue.put({"n": i}) for i in range(5)]
    assert queue.dropped == 2
    queue.close()
    reopened = DurableQueue(path, max_items=3)
    assert [e.json()["n"] for e in reopened.peek(10)] == [2, 3, 4]
    assert reopened.dropped == 2 and reopened.count() == 3
    # ids keep growing after a reopen, so a stale ack can never remove a newer item
    reopened.ack(ids[2:])
    assert reopened.put({"n": 5}) > ids[-1]


def test_when_full_the_oldest_unprotected_items_go_and_are_counted(tmp_path):
    queue = DurableQueue(tmp_path / "q.sqlite3", max_items=4)
    queue.put({"kind": "state"}, protected=True)
    for i in range(3):
        queue.put({"kind": "telemetry", "n": i})
    queue.put({"kind": "count"}, protected=True)  # drops telemetry 0
    queue.put({"kind": "telemetry", "n": 3})  # drops telemetry 1
    kinds = [(e.json()["kind"], e.json().get("n")) for e in queue.peek(10)]
    assert kinds == [("state", None), ("telemetry", 2), ("count", None), ("telemetry", 3)]
    assert queue.dropped == 2
    # Only protected items left to drop: the put is refused, nothing is lost silently
    full = DurableQueue(tmp_path / "p.sqlite3", max_items=2)
    full.put_many([{"s": 1}, {"s": 2}], protected=True)
    with pytest.raises(QueueFull):
        full.put({"s": 3})
    assert full.count() == 2 and full.dropped == 0


def test_a_byte_bound_drops_by_size(tmp_path):
    queue = DurableQueue(tmp_path / "q.sqlite3", max_bytes=250)
    for i in range(5):
        queue.put(bytes([i]) * 100)
    assert queue.size_bytes <= 250
    assert [e.data[0] for e in queue.peek(10)] == [3, 4]
    assert queue.dropped == 3
    with pytest.raises(QueueFull):
        queue.put(b"x" * 251)


def test_concurrent_puts_and_acks_keep_every_item(tmp_path):
    queue = DurableQueue(tmp_path / "q.sqlite3", synchronous="NORMAL")
    seen: list[int] = []

    def produce(worker: int) -> None:
        for i in range(50):
            queue.put({"w": worker, "i": i})

    threads = [threading.Thread(target=produce, args=(w,)) for w in range(4)]
    for t in threads:
        t.start()
    while any(t.is_alive() for t in threads) or queue.count():
        batch = queue.peek(7)
        seen += [e.json()["w"] * 1000 + e.json()["i"] for e in batch]
        queue.ack([e.id for e in batch])
    assert sorted(seen) == sorted(w * 1000 + i for w in range(4) for i in range(50))


PRODUCER = """
import sys
from pathlib import Path
sys.path.insert(0, {root!r})
from greengrass_components.common.durable_queue import DurableQueue
queue = DurableQueue(Path({path!r}))
i = 0
while True:
    queue.put({{"n": i}})
    print(i, flush=True)  # reported only after the put returned
    i += 1
"""


def test_every_item_put_before_a_kill_9_is_there_after_it(tmp_path):
    # Given a process that reports each item once its put returned
    path = tmp_path / "q.sqlite3"
    code = PRODUCER.format(root=str(PROJECT_ROOT), path=str(path))
    process = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    reported = []
    deadline = time.monotonic() + 20
    while len(reported) < 200 and time.monotonic() < deadline:
        reported.append(int(process.stdout.readline()))
    # When it is killed with SIGKILL in the middle of writing
    process.send_signal(signal.SIGKILL)
    process.wait(10)
    # Then every reported item is in the queue, in order, and nothing is half-written
    items = [e.json()["n"] for e in DurableQueue(path).peek(1_000_000)]
    assert len(reported) == 200
    assert items[: len(reported)] == reported
    assert items == list(range(len(items)))
