"""The transactional outbox and the inbox.

A change writes its messages to the outbox in its own transaction; a relay delivers them later
(at least once) and marks them sent. Messages are numbered per destination from 1 without gaps,
so the receiver's inbox can apply each origin's messages in order and exactly once: it keeps the
highest sequence applied, skips what it has seen and stops at a gap."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.orm import Session

from mes_domain.production import SyncAck, SyncBatch, SyncMessage
from services.common.db import ServiceTables, now_ms
from services.common.errors import RuleViolation


def enqueue(
    session: Session,
    tables: ServiceTables,
    destination: str,
    kind: str,
    payload: dict[str, Any],
    dedup_key: str | None = None,
) -> bool:
    """Add a message for ``destination`` in the caller's transaction. A message whose
    ``dedup_key`` the destination already has is not added again (False)."""
    if dedup_key is not None:
        seen = session.scalar(
            select(tables.outbox.id).where(
                tables.outbox.destination == destination, tables.outbox.dedup_key == dedup_key
            )
        )
        if seen is not None:
            return False
    sequences = tables.outbox_sequence.__table__
    # One row per destination, locked by the upsert until commit: sequences without gaps.
    sequence = session.execute(
        pg_insert(sequences)
        .values(destination=destination, last_sequence=1)
        .on_conflict_do_update(
            index_elements=[sequences.c.destination],
            set_={"last_sequence": sequences.c.last_sequence + 1},
        )
        .returning(sequences.c.last_sequence)
    ).scalar_one()
    session.add(
        tables.outbox(
            destination=destination,
            sequence=sequence,
            kind=kind,
            dedup_key=dedup_key,
            payload=payload,
            created_at=now_ms(),
        )
    )
    return True


def pending(
    session: Session, tables: ServiceTables, destination: str, after: int = 0, limit: int = 100
) -> list[Any]:
    """Unsent messages for ``destination`` after sequence ``after``, oldest first."""
    outbox = tables.outbox
    return list(
        session.scalars(
            select(outbox)
            .where(
                outbox.destination == destination,
                outbox.sent_at.is_(None),
                outbox.sequence > after,
            )
            .order_by(outbox.sequence)
            .limit(limit)
        )
    )


def since(
    session: Session, tables: ServiceTables, destination: str, after: int, limit: int = 100
) -> list[Any]:
    """Messages for ``destination`` after ``after``, sent or not: what a peer that pulls asks
    for (it says how far it got, so a lost response costs a repeat, never a gap)."""
    outbox = tables.outbox
    return list(
        session.scalars(
            select(outbox)
            .where(outbox.destination == destination, outbox.sequence > after)
            .order_by(outbox.sequence)
            .limit(limit)
        )
    )


def mark_sent(session: Session, tables: ServiceTables, destination: str, through: int) -> None:
    outbox = tables.outbox
    session.execute(
        update(outbox)
        .where(
            outbox.destination == destination,
            outbox.sequence <= through,
            outbox.sent_at.is_(None),
        )
        .values(sent_at=now_ms())
    )


def as_sync_messages(origin: str, rows: Sequence[Any]) -> list[SyncMessage]:
    return [
        SyncMessage(
            origin=origin,
            sequence=row.sequence,
            kind=row.kind,
            payload=row.payload,
            created_at=row.created_at,
        )
        for row in rows
    ]


Handler = Callable[[Session, SyncMessage], None]


def applied_through(session: Session, tables: ServiceTables, origin: str) -> int:
    cursor = session.get(tables.inbox_cursor, origin)
    return 0 if cursor is None else cursor.applied_through


def apply_batch(
    session: Session, tables: ServiceTables, batch: SyncBatch, handlers: dict[str, Handler]
) -> SyncAck:
    """Apply the batch's new messages in order, in the caller's transaction; seen ones are
    skipped and a gap stops the batch (the sender resends from the acknowledged sequence)."""
    origin = batch.messages[0].origin
    cursors = tables.inbox_cursor.__table__
    session.execute(
        pg_insert(cursors).values(origin=origin, applied_through=0).on_conflict_do_nothing()
    )
    # Locked until commit: two deliveries of one batch apply it once, one after the other.
    cursor = session.get(tables.inbox_cursor, origin, with_for_update=True, populate_existing=True)
    for message in batch.messages:
        if message.sequence <= cursor.applied_through:
            continue  # a duplicate: applied before
        if message.sequence != cursor.applied_through + 1:
            break  # a gap: what came before it has not arrived
        handler = handlers.get(message.kind)
        if handler is None:
            raise RuleViolation(f"message kind {message.kind!r} is unknown here", field="kind")
        handler(session, message)
        cursor.applied_through = message.sequence
    session.flush()
    return SyncAck(origin=origin, applied_through=cursor.applied_through)
