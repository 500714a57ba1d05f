"""The outbound relay: delivers the outbox's ``bus`` messages to EventBridge and its
``inventory`` messages to the inventory service's HTTP API, at least once and in order, marking
each sent only once it was accepted.

- ``bus``: the message kind is an ``OUTBOUND_EVENTS`` detail type (``ProductionConfirmation``,
  ``OrderStatusChanged``, ``InventoryAvailability``, ...), the payload the model's JSON (with or
  without ``schema_version``); the entry is ``mes_domain.enterprise.to_event_entry``'s. Up to 10
  entries per ``PutEvents``; entries EventBridge failed are put again, alone and in order, and
  the accepted ones are never resent.
- ``inventory``: ``ReserveForOrder`` -> ``POST /reservations``, ``ReportConsumption`` ->
  ``POST /consumptions``, one at a time in sequence order (a consumption must not overtake its
  reservation). Their command ids are deterministic, so a redelivery is a replay there; a 409
  (the command id seen with another body) counts as delivered.
- A message that can never be delivered (a 400 or 422 from inventory, a payload that is not its
  contract, an entry over 256 KB) is a dead letter: logged with the message, marked sent so it
  is not retried forever, and recorded in the audit trail (action ``DeadLetter``, entity
  ``outbox``, id ``<destination>:<sequence>``, the payload and the reason in the detail).
- Anything else (EventBridge or inventory down, 5xx, 429, 401/403/404 from a misconfiguration)
  stops the destination until the next round; the loop backs off.

One relay per destination at a time: a PostgreSQL advisory lock per destination lets several
replicas run the relay without delivering a message twice or out of order.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import httpx
from pydantic import ValidationError
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, sessionmaker

from mes_domain.enterprise import (
    OUTBOUND_EVENTS,
    EnterpriseDocument,
    EventTooLarge,
    to_event_entry,
)
from services.common.db import ServiceTables, now_ms
from services.common.outbox import pending
from services.common.sync import TransportRejected, TransportUnavailable

log = logging.getLogger("services.relay")

BUS = "bus"
INVENTORY = "inventory"
INVENTORY_PATHS = {"ReserveForOrder": "/reservations", "ReportConsumption": "/consumptions"}
RELAY_ACTOR = "outbox-relay"
DEAD_LETTER = "DeadLetter"
# By detail type, and by class name where it differs (NonConformanceReport -> NonConformance).
BUS_MODELS: dict[str, type[EnterpriseDocument]] = {
    **{model.__name__: model for model in OUTBOUND_EVENTS},
    **{route.detail_type: model for model, route in OUTBOUND_EVENTS.items()},
}

InventoryPost = Callable[[str, dict[str, Any]], tuple[int, Any]]


class BusPublisher(Protocol):
    max_entries: int

    def put(self, entries: Sequence[dict[str, Any]]) -> list[str | None]:
        """Each entry's error code, ``None`` where it was accepted."""
        ...


class Undeliverable(ValueError):
    """The message can never be delivered as it is: a dead letter."""


def bus_entry(kind: str, payload: dict[str, Any], bus_name: str) -> dict[str, Any]:
    model = BUS_MODELS.get(kind)
    if model is None:
        raise Undeliverable(f"kind {kind!r} is no outbound event ({sorted(BUS_MODELS)})")
    fields = {name: value for name, value in payload.items() if name != "schema_version"}
    try:
        return to_event_entry(model.model_validate(fields), bus_name)
    except (ValidationError, EventTooLarge) as exc:
        raise Undeliverable(f"{kind}: {exc}") from exc


class InventoryClient:
    """``post(path, body) -> (status, detail)`` against the inventory service's base URL."""

    def __init__(
        self,
        base_url: str,
        timeout_s: float = 10.0,
        auth: httpx.Auth | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self._client = httpx.Client(
            base_url=base_url, timeout=timeout_s, auth=auth, transport=transport
        )

    def __call__(self, path: str, body: dict[str, Any]) -> tuple[int, Any]:
        try:
            response = self._client.post(path, json=body)
        except httpx.TimeoutException as exc:
            raise TransportUnavailable("inventory timeout", str(exc)) from exc
        except httpx.TransportError as exc:
            raise TransportUnavailable("inventory unreachable", str(exc)) from exc
        try:
            detail = response.json()
        except ValueError:
            detail = response.text[:500]
        return response.status_code, detail

    def close(self) -> None:
        self._client.close()


@dataclass(frozen=True)
class RelayResult:
    delivered: int = 0
    dead_letters: int = 0

    def __add__(self, other: RelayResult) -> RelayResult:
        return RelayResult(self.delivered + other.delivered, self.dead_letters + other.dead_letters)


class OutboxRelay:
    def __init__(
        self,
        sessions: sessionmaker,
        tables: ServiceTables,
        *,
        bus_name: str | None = None,
        publisher: BusPublisher | None = None,
        post: InventoryPost | None = None,
        max_messages_per_step: int = 500,
        put_attempts: int = 3,
        retry_delay_s: float = 0.2,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if publisher is not None and not bus_name:
            raise ValueError("a bus publisher needs the event bus name")
        self.sessions = sessions
        self.tables = tables
        self.bus_name = bus_name
        self.publisher = publisher
        self.post = post
        self.max_messages_per_step = max_messages_per_step
        self.put_attempts = put_attempts
        self.retry_delay_s = retry_delay_s
        self._sleep = sleep

    def step(self) -> RelayResult:
        """Deliver what is pending for each configured destination; raises
        ``TransportUnavailable``/``TransportRejected`` when a destination stopped."""
        result = RelayResult()
        if self.publisher is not None:
            result += self.deliver_bus()
        if self.post is not None:
            result += self.deliver_inventory()
        return result

    # -- bus ---------------------------------------------------------------------------------

    def deliver_bus(self) -> RelayResult:
        assert self.publisher is not None and self.bus_name is not None
        result = RelayResult()
        while result.delivered + result.dead_letters < self.max_messages_per_step:
            failure: Exception | None = None
            with self.sessions.begin() as session:
                if not self._lock(session, BUS):
                    return result
                rows = pending(session, self.tables, BUS, limit=self.publisher.max_entries)
                if not rows:
                    return result
                entries = []
                for row in rows:
                    try:
                        entries.append((row, bus_entry(row.kind, row.payload, self.bus_name)))
                    except Undeliverable as exc:
                        self._dead_letter(session, row, str(exc))
                        result += RelayResult(dead_letters=1)
                accepted, failure = self._put(entries)
                self._mark(session, [row.id for row in accepted])
                result += RelayResult(delivered=len(accepted))
            if failure is not None:
                raise failure
        return result

    def _put(self, entries: list[tuple[Any, dict[str, Any]]]) -> tuple[list[Any], Exception | None]:
        """Put the entries; put the failed ones again (only those, in order) a few times.
        Returns the accepted rows, and why the rest were not."""
        accepted: list[Any] = []
        remaining = entries
        errors: list[str | None] = []
        for attempt in range(self.put_attempts):
            if not remaining:
                break
            if attempt:
                self._sleep(self.retry_delay_s * 2 ** (attempt - 1))
            try:
                errors = self.publisher.put([entry for _, entry in remaining])
            except Exception as exc:  # noqa: BLE001 - botocore's errors: retried next round
                return accepted, TransportUnavailable("PutEvents failed", str(exc))
            outcome = list(zip(remaining, errors, strict=True))
            accepted += [row for (row, _), error in outcome if not error]
            remaining = [pair for pair, error in outcome if error]
        if remaining:
            codes = sorted({error for error in errors if error})
            return accepted, TransportUnavailable(
                "PutEvents entries failed", f"{len(remaining)} entries: {', '.join(codes)}"
            )
        return accepted, None

    # -- inventory -----------------------------------------------------------------------------

    def deliver_inventory(self) -> RelayResult:
        assert self.post is not None
        result = RelayResult()
        while result.delivered + result.dead_letters < self.max_messages_per_step:
            with self.sessions.begin() as session:
                if not self._lock(session, INVENTORY):
                    return result
                rows = pending(session, self.tables, INVENTORY, limit=1)
                if not rows:
                    return result
                row = rows[0]
                path = INVENTORY_PATHS.get(row.kind)
                if path is None:
                    self._dead_letter(session, row, f"kind {row.kind!r} has no inventory route")
                    result += RelayResult(dead_letters=1)
                    continue
                status, detail = self.post(path, row.payload)
                if 200 <= status < 300 or status == 409:
                    if status == 409:
                        log.info(
                            "inventory answered 409 to %s %d (a replay): delivered: %s",
                            row.kind,
                            row.sequence,
                            detail,
                        )
                    self._mark(session, [row.id])
                    result += RelayResult(delivered=1)
                elif status in (400, 422):
                    self._dead_letter(session, row, f"inventory answered {status}: {detail}")
                    result += RelayResult(dead_letters=1)
                elif status == 429 or status >= 500:
                    raise TransportUnavailable(f"inventory HTTP {status}", str(detail))
                else:
                    raise TransportRejected(status, detail)
        return result

    # -- shared ------------------------------------------------------------------------------

    @staticmethod
    def _lock(session: Session, destination: str) -> bool:
        """This transaction relays ``destination``, unless another one already does."""
        key = func.hashtext(f"outbox-relay:{destination}")
        return bool(session.scalar(select(func.pg_try_advisory_xact_lock(key))))

    def _mark(self, session: Session, ids: list[int]) -> None:
        if ids:
            outbox = self.tables.outbox
            session.execute(update(outbox).where(outbox.id.in_(ids)).values(sent_at=now_ms()))

    def _dead_letter(self, session: Session, row: Any, reason: str) -> None:
        log.error(
            "dead letter: %s message %d to %s is not deliverable (%s); payload %s",
            row.kind,
            row.sequence,
            row.destination,
            reason,
            row.payload,
        )
        session.add(
            self.tables.audit(
                at=now_ms(),
                actor=RELAY_ACTOR,
                action=DEAD_LETTER,
                entity="outbox",
                entity_id=f"{row.destination}:{row.sequence}",
                command_id=None,
                detail={"kind": row.kind, "reason": reason[:2000], "payload": row.payload},
            )
        )
        self._mark(session, [row.id])

    # -- the loop ----------------------------------------------------------------------------

    def run(
        self,
        stop: threading.Event,
        interval_s: float = 1.0,
        max_backoff_s: float = 60.0,
    ) -> None:
        """Step until ``stop`` is set, backing off while a destination fails; each kind of
        failure is logged once."""
        delay = interval_s
        failing: str | None = None
        while not stop.is_set():
            try:
                self.step()
            except Exception as exc:  # noqa: BLE001 - logged once per kind, retried
                kind = getattr(exc, "reason", type(exc).__name__)
                if kind != failing:
                    log.warning("outbox relay stopped (%s): %s; retrying with backoff", kind, exc)
                    failing = kind
                stop.wait(delay * random.uniform(0.5, 1.0))
                delay = min(delay * 2, max_backoff_s)
                continue
            if failing is not None:
                log.info("outbox relay delivers again")
                failing = None
            delay = interval_s
            stop.wait(interval_s)
