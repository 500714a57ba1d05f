"""Fixtures of the sync and relay tests: an instance's database (the shared tables from the
mixins on a tiny test-only ``Base``, plus a ``notes`` table the test handler writes), and a real
uvicorn server on a free loopback port."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any

import pytest
import uvicorn
from sqlalchemy import BigInteger, Engine, String, func, select
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker

from mes_domain.production import SyncMessage
from services.common.db import (
    AuditMixin,
    CommandLogMixin,
    InboxCursorMixin,
    OutboxMixin,
    OutboxSequenceMixin,
    ServiceTables,
    make_engine,
    make_sessions,
)
from services.common.outbox import enqueue
from tests.greengrass.broker import accepting, free_port
from tests.postgres import PostgresServer


class Base(DeclarativeBase):
    pass


class CommandLog(CommandLogMixin, Base):
    pass


class Audit(AuditMixin, Base):
    pass


class Outbox(OutboxMixin, Base):
    pass


class OutboxSequence(OutboxSequenceMixin, Base):
    pass


class InboxCursor(InboxCursorMixin, Base):
    pass


class Note(Base):
    """What the test handler writes per applied message; no unique key, so a message applied
    twice shows as two rows."""

    __tablename__ = "notes"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    origin: Mapped[str] = mapped_column(String(64))
    sequence: Mapped[int] = mapped_column(BigInteger)
    text: Mapped[str] = mapped_column(String(200))


TABLES = ServiceTables(
    command_log=CommandLog,
    audit=Audit,
    outbox=Outbox,
    outbox_sequence=OutboxSequence,
    inbox_cursor=InboxCursor,
)
NOTE = "Note"


def write_note(session: Session, message: SyncMessage) -> None:
    session.add(
        Note(origin=message.origin, sequence=message.sequence, text=message.payload["text"])
    )


HANDLERS = {NOTE: write_note}


@dataclass
class Instance:
    """One service instance's database."""

    name: str
    engine: Engine
    sessions: sessionmaker

    def enqueue_notes(self, destination: str, texts: list[str]) -> None:
        with self.sessions.begin() as session:
            for text in texts:
                enqueue(session, TABLES, destination, NOTE, {"text": text})

    def notes(self) -> list[tuple[str, int, str]]:
        with self.sessions() as session:
            rows = session.execute(select(Note.origin, Note.sequence, Note.text).order_by(Note.id))
            return [tuple(row) for row in rows]

    def unsent(self, destination: str) -> int:
        with self.sessions() as session:
            return session.scalar(
                select(func.count())
                .select_from(Outbox)
                .where(Outbox.destination == destination, Outbox.sent_at.is_(None))
            )

    def cursor(self, origin: str) -> int:
        with self.sessions() as session:
            row = session.get(InboxCursor, origin)
            return 0 if row is None else row.applied_through


@pytest.fixture
def make_instance(postgres: PostgresServer) -> Iterator[Callable[[str], Instance]]:
    """``make_instance(name)``: a fresh database with the tables, dropped after the test."""
    with ExitStack() as stack:

        def make(name: str) -> Instance:
            url = stack.enter_context(postgres.temporary_database())
            engine = make_engine(url, pool_size=10)
            stack.callback(engine.dispose)
            Base.metadata.create_all(engine)
            return Instance(name, engine, make_sessions(engine))

        yield make


class UvicornThread:
    """A uvicorn server in a thread on 127.0.0.1:``port``; stop and start it again at will."""

    def __init__(self, app: Any, port: int | None = None) -> None:
        self.app = app
        self.port = port or free_port()
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        config = uvicorn.Config(
            self.app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="off"
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 10
        while not (self._server.started and accepting(self.port)):
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"uvicorn did not start on port {self.port}")
            time.sleep(0.01)

    def stop(self) -> None:
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(timeout=10)
            self._server = self._thread = None
