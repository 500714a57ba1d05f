"""Edge-cloud sync: each instance's outbox messages for the other reach the other's inbox, in
order and once, over a ``SyncTransport`` (HTTPS through API Gateway, or Kafka).

- ``SyncWorker`` runs where the link starts (an edge instance; both sides with Kafka): it pushes
  this instance's unsent messages for the peer and pulls the peer's messages after this
  instance's inbox cursor, applying each batch in one transaction. While the peer cannot be
  reached it backs off and the local service goes on working: the outbox just grows.
- ``sync_router`` is what the cloud instance serves for HTTPS: ``POST /sync/inbox`` applies a
  batch, ``GET /sync/outbox`` hands out the messages for an edge instance.

Nothing is lost or doubled: the sender marks messages sent only through the receiver's
acknowledgement, and the receiver's inbox skips what it has applied (``outbox.apply_batch``), so
a lost response costs a resend, never a duplicate.
"""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Protocol

from fastapi import APIRouter, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from sqlalchemy import update
from sqlalchemy.orm import sessionmaker

from mes_domain.ids import Identifier
from mes_domain.production import MAX_SYNC_BATCH, SyncAck, SyncBatch, SyncMessage
from services.common.db import ServiceTables
from services.common.errors import RuleViolation
from services.common.outbox import (
    Handler,
    applied_through,
    apply_batch,
    as_sync_messages,
    mark_sent,
    pending,
    since,
)

log = logging.getLogger("services.sync")

# API Gateway takes at most 10 MB per request or response (API Gateway developer guide, "Quotas
# for configuring and running a REST API": payload size 10 MB, not adjustable). A batch stays
# at half of that, leaving room for headers and for the JSON encoder's output differing from
# the estimate here.
MAX_SYNC_BATCH_BYTES = 5 * 1024 * 1024
_BATCH_ENVELOPE_BYTES = len('{"messages":[]}')


class TransportUnavailable(Exception):
    """The peer could not be reached or asked to wait (refused, timeout, 5xx, 429): try again
    later. ``reason`` names the kind of failure, for logging each kind once."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


class TransportRejected(Exception):
    """The peer refused the request (a 4xx other than 429): resending it unchanged will not
    help. ``detail`` is what the peer said."""

    def __init__(self, status: int, detail: Any) -> None:
        super().__init__(f"HTTP {status}: {detail}")
        self.status = status
        self.detail = detail
        self.reason = f"rejected {status}"


class SyncTransport(Protocol):
    def send(self, batch: SyncBatch) -> SyncAck:
        """Deliver ``batch`` to the peer's inbox; how far the peer has applied this origin."""
        ...

    def fetch(self, origin: str, for_instance: str, after: int, limit: int) -> list[SyncMessage]:
        """The peer's (``origin``'s) messages for ``for_instance`` after sequence ``after``."""
        ...

    def commit(self, ack: SyncAck) -> None:
        """Called after fetched messages were applied through ``ack``: a stream with consumer
        offsets (Kafka) moves them; a transport that fetches by sequence does nothing."""
        ...


def encoded_size(message: SyncMessage) -> int:
    return len(message.model_dump_json().encode())


def fit_in_bytes(messages: Sequence[SyncMessage], max_bytes: int) -> list[SyncMessage]:
    """The longest prefix of ``messages`` whose JSON fits in ``max_bytes``, at least one."""
    kept: list[SyncMessage] = []
    total = _BATCH_ENVELOPE_BYTES
    for message in messages:
        total += encoded_size(message) + 1  # the comma
        if kept and total > max_bytes:
            break
        kept.append(message)
    return kept


def consecutive_after(messages: Iterable[SyncMessage], after: int) -> list[SyncMessage]:
    """The messages after ``after`` in order, each once, up to the first gap: a stream may
    hand out a message twice (a resend) or out of order."""
    by_sequence = {m.sequence: m for m in messages if m.sequence > after}
    run: list[SyncMessage] = []
    expected = after + 1
    while expected in by_sequence and len(run) < MAX_SYNC_BATCH:
        run.append(by_sequence[expected])
        expected += 1
    return run


@dataclass(frozen=True)
class StepResult:
    pushed: int
    applied: int


class SyncWorker:
    """Keeps this instance and ``peer`` in sync over ``transport``; see the module docstring."""

    def __init__(
        self,
        sessions: sessionmaker,
        tables: ServiceTables,
        instance_id: str,
        peer: str,
        transport: SyncTransport,
        handlers: dict[str, Handler],
        *,
        batch_size: int = MAX_SYNC_BATCH,
        max_batch_bytes: int = MAX_SYNC_BATCH_BYTES,
        interval_s: float = 1.0,
        initial_backoff_s: float = 1.0,
        max_backoff_s: float = 60.0,
    ) -> None:
        if not 1 <= batch_size <= MAX_SYNC_BATCH:
            raise ValueError(f"batch_size must be 1..{MAX_SYNC_BATCH}")
        self.sessions = sessions
        self.tables = tables
        self.instance_id = instance_id
        self.peer = peer
        self.transport = transport
        self.handlers = handlers
        self.batch_size = batch_size
        self.max_batch_bytes = max_batch_bytes
        self.interval_s = interval_s
        self.initial_backoff_s = initial_backoff_s
        self.max_backoff_s = max_backoff_s

    # -- one round -------------------------------------------------------------------------

    def step(self) -> StepResult:
        """Push everything unsent, then pull everything new; raises what the transport raises."""
        return StepResult(pushed=self.push(), applied=self.pull())

    def push(self) -> int:
        """Send this instance's unsent messages for the peer, batch by batch; mark each batch
        sent through the peer's acknowledgement. Returns how many the peer acknowledged."""
        pushed = 0
        rewound = False
        while True:
            with self.sessions() as session:
                rows = pending(session, self.tables, self.peer, limit=self.batch_size)
                messages = as_sync_messages(self.instance_id, rows)
            if not messages:
                return pushed
            batch = SyncBatch(messages=fit_in_bytes(messages, self.max_batch_bytes))
            ack = self.transport.send(batch)
            if ack.origin != self.instance_id:
                raise TransportRejected(200, f"acknowledged origin {ack.origin!r}, not ours")
            first = batch.messages[0].sequence
            with self.sessions.begin() as session:
                mark_sent(session, self.tables, self.peer, through=ack.applied_through)
                behind = ack.applied_through < first - 1
                if behind:
                    # The peer lost messages it had acknowledged (restored from a backup): send
                    # them again from where it is.
                    self._unmark_after(session, ack.applied_through)
            if behind and not rewound:
                log.warning(
                    "peer %s is at %d, behind what it acknowledged; sending again from there",
                    self.peer,
                    ack.applied_through,
                )
                rewound = True
                continue
            if ack.applied_through < first:
                return pushed  # no progress: try again next round
            pushed += min(ack.applied_through, batch.messages[-1].sequence) - first + 1

    def _unmark_after(self, session: Any, through: int) -> None:
        outbox = self.tables.outbox
        session.execute(
            update(outbox)
            .where(outbox.destination == self.peer, outbox.sequence > through)
            .values(sent_at=None)
        )

    def pull(self) -> int:
        """Fetch the peer's messages after this instance's cursor for it and apply them, one
        transaction per batch. Returns how many were applied."""
        applied = 0
        while True:
            with self.sessions() as session:
                cursor = applied_through(session, self.tables, self.peer)
            fetched = self.transport.fetch(self.peer, self.instance_id, cursor, self.batch_size)
            run = consecutive_after((m for m in fetched if m.origin == self.peer), cursor)
            if not run:
                if fetched:
                    # Only repeats (or a gap: then the stream keeps what is after it).
                    self.transport.commit(SyncAck(origin=self.peer, applied_through=cursor))
                return applied
            with self.sessions.begin() as session:
                ack = apply_batch(session, self.tables, SyncBatch(messages=run), self.handlers)
            self.transport.commit(ack)
            applied += ack.applied_through - cursor
            if ack.applied_through == cursor or len(fetched) < self.batch_size:
                return applied

    # -- the loop ----------------------------------------------------------------------------

    def run(self, stop: threading.Event, wait: Callable[[float], bool] | None = None) -> None:
        """Step until ``stop`` is set. While a step fails, wait with exponential backoff (full
        jitter) and log each kind of failure once, not every attempt."""
        wait = wait or stop.wait
        delay = self.initial_backoff_s
        failing: str | None = None
        while not stop.is_set():
            try:
                result = self.step()
            except Exception as exc:  # noqa: BLE001 - every failure backs off and is retried
                kind = getattr(exc, "reason", type(exc).__name__)
                if kind != failing:
                    unavailable = isinstance(exc, TransportUnavailable)
                    log.log(
                        logging.WARNING if unavailable else logging.ERROR,
                        "sync with %s failed (%s): %s; retrying with backoff",
                        self.peer,
                        kind,
                        exc,
                        exc_info=not isinstance(exc, (TransportUnavailable, TransportRejected)),
                    )
                    failing = kind
                wait(delay * random.uniform(0.5, 1.0))
                delay = min(delay * 2, self.max_backoff_s)
                continue
            if failing is not None:
                log.info("sync with %s works again (%s)", self.peer, result)
                failing = None
            delay = self.initial_backoff_s
            wait(self.interval_s)


def _name_batch_rule(error: dict[str, Any]) -> dict[str, Any]:
    if tuple(error.get("loc", ())) == ("body",) and error.get("type") == "value_error":
        return {**error, "loc": ("body", "messages")}
    return error


class _BatchFieldRoute(APIRoute):
    """Names the field of a batch-wide rule (one origin, consecutive sequences): pydantic puts
    a model validator's error at the body itself, which would leave the field empty."""

    def get_route_handler(self) -> Callable:
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            try:
                return await handler(request)
            except RequestValidationError as exc:
                errors = [_name_batch_rule(error) for error in exc.errors()]
                raise RequestValidationError(errors, body=exc.body) from None

        return route


def sync_router(
    sessions: sessionmaker,
    tables: ServiceTables,
    instance_id: str,
    handlers: dict[str, Handler],
    peers: Iterable[str] | None = None,
    max_response_bytes: int = MAX_SYNC_BATCH_BYTES,
) -> APIRouter:
    """The cloud instance's side of HTTPS sync (behind API Gateway's IAM authorization).
    ``peers``: the instances allowed to sync (the edge sites); any other is refused."""
    router = APIRouter(prefix="/sync", tags=["sync"], route_class=_BatchFieldRoute)
    allowed = None if peers is None else frozenset(peers)

    def check_peer(instance: str, field: str) -> None:
        if allowed is not None and instance not in allowed:
            raise RuleViolation(
                f"{instance} is not an instance {instance_id} syncs with ({sorted(allowed)})",
                field=field,
            )

    @router.post("/inbox", response_model=SyncAck)
    def inbox(batch: SyncBatch) -> SyncAck:
        """Apply a batch from another instance: new messages in order, repeats skipped, up to
        a gap; the answer says how far this instance has applied the batch's origin."""
        if batch.messages[0].origin == instance_id:
            raise RuleViolation(f"a batch from {instance_id} to itself", field="messages.0.origin")
        check_peer(batch.messages[0].origin, "messages.0.origin")
        with sessions.begin() as session:
            return apply_batch(session, tables, batch, handlers)

    @router.get("/outbox", response_model=list[SyncMessage])
    def outbox(
        for_instance: Annotated[Identifier, Query(alias="for")],
        after: Annotated[int, Query(ge=0)] = 0,
        limit: Annotated[int, Query(ge=1, le=MAX_SYNC_BATCH)] = MAX_SYNC_BATCH,
    ) -> list[SyncMessage]:
        """This instance's messages for ``for`` after sequence ``after``, sent or not (the
        caller says how far it got, so a lost response costs a repeat, never a gap). ``after``
        is also the caller's acknowledgement: what it has applied is marked sent."""
        check_peer(for_instance, "for")
        with sessions.begin() as session:
            if after:
                mark_sent(session, tables, for_instance, through=after)
            rows = since(session, tables, for_instance, after, limit)
            messages = as_sync_messages(instance_id, rows)
        return fit_in_bytes(messages, max_response_bytes) if messages else []

    return router
