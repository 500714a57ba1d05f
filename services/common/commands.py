"""Commands run once: a command id seen before returns its first response and changes nothing;
the same id with another body is a conflict. The change, its audit entry, its outbox messages
and the command log commit in one transaction, so nothing is half-written."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.orm.exc import StaleDataError

from mes_domain.production import Command
from services.common.db import ServiceTables, now_ms
from services.common.errors import Conflict


@dataclass(frozen=True)
class Outcome:
    response: dict[str, Any]
    status_code: int
    replayed: bool


@dataclass
class Change:
    """What a command did, for its audit entry."""

    entity: str
    entity_id: str
    detail: dict[str, Any]


def request_hash(kind: str, command: BaseModel) -> str:
    return hashlib.sha256(f"{kind}\n{command.model_dump_json()}".encode()).hexdigest()


class _RanMeanwhile(Exception):
    """The command id is in the command log: this delivery is a replay."""


class CommandRunner:
    def __init__(self, sessions: sessionmaker, tables: ServiceTables) -> None:
        self.sessions = sessions
        self.tables = tables

    def run(
        self,
        kind: str,
        command: Command,
        action: Callable[[Session], tuple[BaseModel, Change]],
        status_code: int = 200,
    ) -> Outcome:
        """Run ``action`` in a transaction unless the command ran before. ``action`` returns the
        response and what changed; a ``ServiceError`` it raises rolls everything back."""
        digest = request_hash(kind, command)
        try:
            with self.sessions.begin() as session:
                # The command log is read under a lock on the command id, in this transaction:
                # two deliveries at once run one after the other, the second as a replay.
                session.execute(
                    text("SELECT pg_advisory_xact_lock(hashtextextended(:id, 0))"),
                    {"id": command.command_id},
                )
                if session.get(self.tables.command_log, command.command_id) is not None:
                    raise _RanMeanwhile
                response, change = action(session)
                body = response.model_dump(mode="json")
                at = now_ms()
                session.add(
                    self.tables.command_log(
                        command_id=command.command_id,
                        kind=kind,
                        request_hash=digest,
                        response=body,
                        status_code=status_code,
                        actor=command.actor,
                        at=at,
                    )
                )
                session.add(
                    self.tables.audit(
                        at=at,
                        actor=command.actor,
                        action=kind,
                        entity=change.entity,
                        entity_id=change.entity_id,
                        command_id=command.command_id,
                        detail=change.detail,
                    )
                )
            return Outcome(body, status_code, replayed=False)
        except StaleDataError:
            raise Conflict(
                f"{kind}: the record changed while the command ran; read it again and retry"
            ) from None
        except _RanMeanwhile:
            replay = self._replay(kind, command, digest)
            assert replay is not None  # the command log row that stopped us is committed
            return replay
        except IntegrityError:
            # The same command id committed concurrently: answer as its replay.
            replay = self._replay(kind, command, digest)
            if replay is None:
                raise
            return replay

    def _replay(self, kind: str, command: Command, digest: str) -> Outcome | None:
        with self.sessions() as session:
            seen = session.get(self.tables.command_log, command.command_id)
            if seen is None:
                return None
            if seen.kind != kind or seen.request_hash != digest:
                raise Conflict(
                    f"command_id {command.command_id} was already used for another command "
                    f"({seen.kind}); every command needs its own id",
                    field="command_id",
                )
            return Outcome(seen.response, seen.status_code, replayed=True)


def check_version(entity: str, current: int, expected: int | None) -> None:
    """Optimistic concurrency: refuse a command made against a version that is no longer it."""
    if expected is not None and expected != current:
        raise Conflict(
            f"{entity} is at version {current}, the command expected {expected}; "
            "read it again and retry",
            field="expected_version",
        )
