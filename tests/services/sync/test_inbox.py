"""The inbox (``outbox.apply_batch``) on a real PostgreSQL: repeats skipped, a gap stops the
batch, order kept, and two deliveries of one batch at once apply it once."""

from __future__ import annotations

import threading
import time

import pytest

from mes_domain.production import SyncAck, SyncBatch, SyncMessage
from services.common.db import now_ms
from services.common.errors import RuleViolation
from services.common.outbox import apply_batch
from tests.services.sync.conftest import HANDLERS, NOTE, TABLES, Instance, write_note


def messages(origin: str, first: int, last: int, kind: str = NOTE) -> list[SyncMessage]:
    return [
        SyncMessage(
            origin=origin,
            sequence=sequence,
            kind=kind,
            payload={"text": f"{origin}-{sequence}"},
            created_at=now_ms(),
        )
        for sequence in range(first, last + 1)
    ]


def apply(instance: Instance, batch: list[SyncMessage], handlers=HANDLERS) -> SyncAck:
    with instance.sessions.begin() as session:
        return apply_batch(session, TABLES, SyncBatch(messages=batch), handlers)


def test_repeats_are_skipped_a_gap_stops_and_the_order_is_kept(make_instance) -> None:
    cloud = make_instance("cloud")

    assert apply(cloud, messages("berlin", 1, 3)).applied_through == 3
    assert apply(cloud, messages("berlin", 2, 5)).applied_through == 5  # 2, 3 seen before
    assert apply(cloud, messages("berlin", 7, 8)).applied_through == 5  # 6 has not arrived
    assert apply(cloud, messages("berlin", 6, 8)).applied_through == 8
    assert apply(cloud, messages("munich", 1, 2)).applied_through == 2  # a cursor per origin

    berlin = [(seq, text) for origin, seq, text in cloud.notes() if origin == "berlin"]
    assert berlin == [(n, f"berlin-{n}") for n in range(1, 9)]
    assert (cloud.cursor("berlin"), cloud.cursor("munich")) == (8, 2)


def test_an_unknown_kind_rolls_the_batch_back(make_instance) -> None:
    cloud = make_instance("cloud")
    batch = messages("berlin", 1, 2) + messages("berlin", 3, 3, kind="Unheard")

    with pytest.raises(RuleViolation) as refused:
        apply(cloud, batch)

    assert refused.value.field == "kind"
    assert cloud.notes() == [] and cloud.cursor("berlin") == 0


def test_two_deliveries_of_one_batch_at_once_apply_it_once(make_instance) -> None:
    cloud = make_instance("cloud")
    # The cursor row exists already: its row lock, not the insert of a new one, serialises.
    apply(cloud, messages("berlin", 1, 1))
    batch = messages("berlin", 2, 21)
    both_ready = threading.Barrier(2)
    acks: list[SyncAck] = []
    failures: list[BaseException] = []

    def slow_note(session, message) -> None:
        time.sleep(0.002)  # widens the window in which the other delivery runs
        write_note(session, message)

    def deliver() -> None:
        try:
            both_ready.wait(timeout=5)
            acks.append(apply(cloud, batch, {NOTE: slow_note}))
        except BaseException as exc:  # noqa: BLE001 - reported below
            failures.append(exc)

    threads = [threading.Thread(target=deliver) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert failures == []
    assert [ack.applied_through for ack in acks] == [21, 21]
    assert [seq for _, seq, _ in cloud.notes()] == list(range(1, 22))
