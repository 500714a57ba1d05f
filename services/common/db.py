"""The database side both services share: the engine, and the tables every service has (the
command log, the audit trail, the outbox and the inbox cursors) as mixins on its own ``Base``,
so each service keeps its own metadata and migrations."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import JSON, BigInteger, Index, Integer, String, create_engine, event, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.orm import Mapped, declared_attr, mapped_column, sessionmaker

if TYPE_CHECKING:
    from services.common.settings import ServiceSettings

# (host, port, user) -> the password of one new connection, e.g. an RDS IAM token.
PasswordProvider = Callable[[str, int, str], str]
POSTGRESQL_PORT = 5432

# JSONB on PostgreSQL; JSON elsewhere keeps the models importable without a server.
Json = JSON().with_variant(JSONB(), "postgresql")


def now_ms() -> int:
    return int(time.time() * 1000)


def make_engine(
    database_url: str, *, password: PasswordProvider | None = None, **options: Any
) -> Engine:
    """With ``password``, each new connection asks it for its password when it opens; the
    pooled ones keep theirs (an RDS IAM token is checked at login only, so the pool needs no
    recycling for it)."""
    # pool_pre_ping: a PostgreSQL restart or failover costs one retry, not a 500 per pooled conn.
    engine = create_engine(database_url, pool_pre_ping=True, **options)
    if password is not None:
        url = make_url(database_url)
        host, port, user = url.host or "", url.port or POSTGRESQL_PORT, url.username or ""

        @event.listens_for(engine, "do_connect")
        def _fresh_password(_dialect, _record, _cargs, cparams: dict[str, Any]) -> None:
            cparams["password"] = password(host, port, user)

    return engine


def engine_for(settings: ServiceSettings, **options: Any) -> Engine:
    """The service's engine: with ``MES_DATABASE_IAM_AUTH`` every new connection logs in with a
    fresh RDS IAM token signed by the pod's credentials (Pod Identity), so no password is kept."""
    password = None
    if settings.database_iam_auth:
        from services.common.aws import RdsAuthTokens

        password = RdsAuthTokens(settings.aws_region)
    return make_engine(settings.database_url, password=password, **options)


def make_sessions(engine: Engine) -> sessionmaker:
    return sessionmaker(engine, expire_on_commit=False)


def database_ready(engine: Engine) -> bool:
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        return True
    except Exception:  # noqa: BLE001 - readiness answers no, whatever the reason
        return False


class CommandLogMixin:
    """Each command id once: the response a replay gets, and a hash of the body it came with."""

    __tablename__ = "command_log"

    command_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    kind: Mapped[str] = mapped_column(String(64))
    request_hash: Mapped[str] = mapped_column(String(64))
    response: Mapped[dict] = mapped_column(Json)
    status_code: Mapped[int] = mapped_column(Integer)
    actor: Mapped[str] = mapped_column(String(128))
    at: Mapped[int] = mapped_column(BigInteger)


class AuditMixin:
    """Who did what to which record, when; written in the transaction of the change."""

    __tablename__ = "audit_trail"

    # Made per class: one Index object can belong to one table only, and each service has its
    # own audit_trail table (both services in one process would clash on a shared one).
    @declared_attr.directive
    def __table_args__(cls) -> tuple:
        return (Index("ix_audit_entity", "entity", "entity_id"),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    at: Mapped[int] = mapped_column(BigInteger)
    actor: Mapped[str] = mapped_column(String(128))
    action: Mapped[str] = mapped_column(String(64))
    entity: Mapped[str] = mapped_column(String(32))
    entity_id: Mapped[str] = mapped_column(String(300))
    command_id: Mapped[str | None] = mapped_column(String(64))
    detail: Mapped[dict] = mapped_column(Json)


class OutboxMixin:
    """Messages written in the transaction of the change that caused them, numbered per
    destination from 1 without gaps; a relay delivers them and marks them sent."""

    __tablename__ = "outbox"

    @declared_attr.directive
    def __table_args__(cls) -> tuple:  # per class, as AuditMixin's
        return (
            Index("uq_outbox_destination_sequence", "destination", "sequence", unique=True),
            Index(
                "uq_outbox_dedup",
                "destination",
                "dedup_key",
                unique=True,
                postgresql_where=text("dedup_key IS NOT NULL"),
            ),
            Index(
                "ix_outbox_unsent",
                "destination",
                "sequence",
                postgresql_where=text("sent_at IS NULL"),
            ),
        )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    destination: Mapped[str] = mapped_column(String(64))
    sequence: Mapped[int] = mapped_column(BigInteger)
    kind: Mapped[str] = mapped_column(String(64))
    # Unique per destination when set: a message that must leave once (a confirmation) has one.
    dedup_key: Mapped[str | None] = mapped_column(String(300))
    payload: Mapped[dict] = mapped_column(Json)
    created_at: Mapped[int] = mapped_column(BigInteger)
    sent_at: Mapped[int | None] = mapped_column(BigInteger)


class OutboxSequenceMixin:
    """The last sequence given out per destination (a row lock serialises writers)."""

    __tablename__ = "outbox_sequence"

    destination: Mapped[str] = mapped_column(String(64), primary_key=True)
    last_sequence: Mapped[int] = mapped_column(BigInteger)


class InboxCursorMixin:
    """The highest sequence of each origin applied here, all before it included."""

    __tablename__ = "inbox_cursor"

    origin: Mapped[str] = mapped_column(String(64), primary_key=True)
    applied_through: Mapped[int] = mapped_column(BigInteger)


@dataclass(frozen=True)
class ServiceTables:
    """A service's concrete classes of the shared tables."""

    command_log: type[CommandLogMixin]
    audit: type[AuditMixin]
    outbox: type[OutboxMixin]
    outbox_sequence: type[OutboxSequenceMixin]
    inbox_cursor: type[InboxCursorMixin]
