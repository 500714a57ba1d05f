"""The production execution database: work orders and their operations, serials and
genealogy, scrap reports, non-conformances and confirmations, beside the shared tables
(command log, audit trail, outbox, inbox cursors). Migrations: ``migrations/versions``."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Float,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    MetaData,
    String,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from mes_domain.enterprise import ExecutionStatus
from mes_domain.production import Disposition, OperationStatus
from services.common.db import (
    AuditMixin,
    CommandLogMixin,
    InboxCursorMixin,
    Json,
    OutboxMixin,
    OutboxSequenceMixin,
    ServiceTables,
)
from services.production_execution.domain import OPEN_STATUSES

# Named constraints, so a migration can refer to each by a name that does not depend on the server.
NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_N_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

ID = String(128)  # ShortText: order, material, serial, lot and document ids
SITE = String(64)  # Identifier: site, line, station and instance ids


def _one_of(column: str, values) -> str:
    return f"{column} IN ({', '.join(repr(str(v)) for v in values)})"


# The dispatch list's filter, word for word in its partial indexes and in its query: PostgreSQL
# uses a partial index only for a query whose condition implies the index's, and a constant list
# (not bound parameters) keeps that provable in psycopg's prepared statements too.
OPEN_OPERATION = _one_of("status", OPEN_STATUSES)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class CommandLog(CommandLogMixin, Base):
    pass


class AuditTrail(AuditMixin, Base):
    pass


class Outbox(OutboxMixin, Base):
    pass


class OutboxSequence(OutboxSequenceMixin, Base):
    pass


class InboxCursor(InboxCursorMixin, Base):
    pass


TABLES = ServiceTables(
    command_log=CommandLog,
    audit=AuditTrail,
    outbox=Outbox,
    outbox_sequence=OutboxSequence,
    inbox_cursor=InboxCursor,
)


class WorkOrder(Base):
    """A released ERP production order, with the routing and BOM as they were at release."""

    __tablename__ = "work_order"
    __table_args__ = (CheckConstraint(_one_of("status", ExecutionStatus), name="status"),)

    order_id: Mapped[str] = mapped_column(ID, primary_key=True)
    site: Mapped[str] = mapped_column(SITE)
    line: Mapped[str] = mapped_column(SITE)
    material_id: Mapped[str] = mapped_column(ID)
    quantity: Mapped[float] = mapped_column(Float)
    uom: Mapped[str] = mapped_column(String(8))
    status: Mapped[str] = mapped_column(String(16))
    priority: Mapped[int] = mapped_column(Integer)
    planned_start: Mapped[int] = mapped_column(BigInteger)
    planned_end: Mapped[int] = mapped_column(BigInteger)
    executed_at: Mapped[str] = mapped_column(SITE)  # "cloud" or the edge site's id
    routing: Mapped[dict] = mapped_column(Json)
    bom: Mapped[dict | None] = mapped_column(Json)
    nonconformance_scrap: Mapped[float] = mapped_column(Float, default=0.0)
    released_at: Mapped[int] = mapped_column(BigInteger)
    updated_at: Mapped[int] = mapped_column(BigInteger)
    version: Mapped[int] = mapped_column(Integer)

    operations: Mapped[list[Operation]] = relationship(
        back_populates="order", order_by="Operation.operation_no"
    )

    __mapper_args__ = {"version_id_col": version}


class Operation(Base):
    """One step of an order's routing (or a rework step), as its station works it."""

    __tablename__ = "operation"
    __table_args__ = (
        CheckConstraint(_one_of("status", OperationStatus), name="status"),
        # The dispatch list of a line, and of a station (its kind), each an index scan in order.
        Index(
            "ix_operation_dispatch",
            "site",
            "line",
            "priority",
            "planned_start",
            "order_id",
            "operation_no",
            postgresql_where=text(OPEN_OPERATION),
        ),
        Index(
            "ix_operation_dispatch_kind",
            "site",
            "line",
            "station_kind",
            "priority",
            "planned_start",
            "order_id",
            "operation_no",
            postgresql_where=text(OPEN_OPERATION),
        ),
        # A station runs one operation at a time: its part counts go to that one.
        Index(
            "uq_operation_running_station",
            "site",
            "line",
            "station",
            unique=True,
            postgresql_where=text("status = 'RUNNING'"),
        ),
    )

    order_id: Mapped[str] = mapped_column(
        ID, ForeignKey("work_order.order_id", ondelete="CASCADE"), primary_key=True
    )
    operation_no: Mapped[int] = mapped_column(Integer, primary_key=True)
    # Copied from the order (they do not change), so the dispatch list reads one table.
    site: Mapped[str] = mapped_column(SITE)
    line: Mapped[str] = mapped_column(SITE)
    material_id: Mapped[str] = mapped_column(ID)
    priority: Mapped[int] = mapped_column(Integer)
    planned_start: Mapped[int] = mapped_column(BigInteger)

    description: Mapped[str] = mapped_column(String(1024))
    station_kind: Mapped[str] = mapped_column(ID)
    follows: Mapped[int | None] = mapped_column(Integer)
    rework: Mapped[bool] = mapped_column(Boolean, default=False)
    planned_quantity: Mapped[float] = mapped_column(Float)
    status: Mapped[str] = mapped_column(String(16))
    station: Mapped[str | None] = mapped_column(SITE)
    good_quantity: Mapped[float] = mapped_column(Float, default=0.0)
    scrap_quantity: Mapped[float] = mapped_column(Float, default=0.0)
    counted_good: Mapped[float] = mapped_column(Float, default=0.0)
    started_at: Mapped[int | None] = mapped_column(BigInteger)
    completed_at: Mapped[int | None] = mapped_column(BigInteger)
    running_since: Mapped[int | None] = mapped_column(BigInteger)
    run_time_s: Mapped[float] = mapped_column(Float, default=0.0)
    labour_time_s: Mapped[float | None] = mapped_column(Float)
    version: Mapped[int] = mapped_column(Integer)

    order: Mapped[WorkOrder] = relationship(back_populates="operations")

    __mapper_args__ = {"version_id_col": version}


class Serial(Base):
    __tablename__ = "serial"

    serial: Mapped[str] = mapped_column(ID, primary_key=True)
    order_id: Mapped[str] = mapped_column(
        ID, ForeignKey("work_order.order_id", ondelete="CASCADE"), index=True
    )
    registered_at: Mapped[int] = mapped_column(BigInteger)


class GenealogyLink(Base):
    """A material lot that went into a serial, or into the order's lot (``serial`` NULL)."""

    __tablename__ = "genealogy"
    __table_args__ = (
        Index("ix_genealogy_order_serial", "order_id", "serial"),
        Index("ix_genealogy_lot", "material_id", "lot"),  # where-used: what a lot went into
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    order_id: Mapped[str] = mapped_column(ID, ForeignKey("work_order.order_id", ondelete="CASCADE"))
    serial: Mapped[str | None] = mapped_column(ID, ForeignKey("serial.serial", ondelete="CASCADE"))
    material_id: Mapped[str] = mapped_column(ID)
    lot: Mapped[str] = mapped_column(ID)
    quantity: Mapped[float] = mapped_column(Float)
    uom: Mapped[str] = mapped_column(String(8))
    recorded_at: Mapped[int] = mapped_column(BigInteger)


class ScrapReport(Base):
    __tablename__ = "scrap_report"
    __table_args__ = (
        ForeignKeyConstraint(
            ["order_id", "operation_no"],
            ["operation.order_id", "operation.operation_no"],
            ondelete="CASCADE",
        ),
        Index("ix_scrap_report_operation", "order_id", "operation_no"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    order_id: Mapped[str] = mapped_column(ID)
    operation_no: Mapped[int] = mapped_column(Integer)
    station: Mapped[str | None] = mapped_column(SITE)
    quantity: Mapped[float] = mapped_column(Float)
    reason_code: Mapped[str] = mapped_column(ID)
    command_id: Mapped[str] = mapped_column(String(64))
    reported_at: Mapped[int] = mapped_column(BigInteger)


class NonConformance(Base):
    """A quality non-conformance, linked to its order (and serial) when this instance runs it;
    its disposition says what becomes of the part."""

    __tablename__ = "nonconformance"
    __table_args__ = (
        CheckConstraint(
            f"disposition IS NULL OR {_one_of('disposition', Disposition)}", name="disposition"
        ),
    )

    ncr_id: Mapped[str] = mapped_column(ID, primary_key=True)
    # The report's order, which may not be released here: no foreign key.
    order_id: Mapped[str | None] = mapped_column(ID, index=True)
    serial: Mapped[str | None] = mapped_column(ID)
    site: Mapped[str] = mapped_column(SITE)
    line: Mapped[str] = mapped_column(SITE)
    station: Mapped[str] = mapped_column(SITE)
    part_id: Mapped[str] = mapped_column(ID)
    defect_code: Mapped[str] = mapped_column(ID)
    detected_at: Mapped[int] = mapped_column(BigInteger)
    report: Mapped[dict] = mapped_column(Json)
    recorded_at: Mapped[int] = mapped_column(BigInteger)
    disposition: Mapped[str | None] = mapped_column(String(16))
    note: Mapped[str | None] = mapped_column(String(1024))
    disposed_by: Mapped[str | None] = mapped_column(String(128))
    disposed_at: Mapped[int | None] = mapped_column(BigInteger)
    rework_operation_no: Mapped[int | None] = mapped_column(Integer)
    version: Mapped[int] = mapped_column(Integer)

    __mapper_args__ = {"version_id_col": version}


class Confirmation(Base):
    """One production confirmation per operation: the primary key is the guarantee."""

    __tablename__ = "confirmation"
    __table_args__ = (
        ForeignKeyConstraint(
            ["order_id", "operation_no"],
            ["operation.order_id", "operation.operation_no"],
            ondelete="CASCADE",
        ),
    )

    order_id: Mapped[str] = mapped_column(ID, primary_key=True)
    operation_no: Mapped[int] = mapped_column(Integer, primary_key=True)
    document_id: Mapped[str] = mapped_column(ID, unique=True)
    station: Mapped[str] = mapped_column(SITE)
    good_quantity: Mapped[float] = mapped_column(Float)
    scrap_quantity: Mapped[float] = mapped_column(Float)
    materials_consumed: Mapped[list] = mapped_column(Json)
    started_at: Mapped[int] = mapped_column(BigInteger)
    completed_at: Mapped[int] = mapped_column(BigInteger)
    labour_time_s: Mapped[float] = mapped_column(Float)
    machine_time_s: Mapped[float] = mapped_column(Float)
    final: Mapped[bool] = mapped_column(Boolean)
