"""The inventory's tables: stock positions, the availability per material and site, the orders'
reservations and their holds on positions, and the movement ledger; plus the shared tables
(command log, audit trail, outbox, inbox cursors) from ``services.common.db``.

The database itself refuses what must never happen, whatever the code does: negative stock,
more reserved than there is, a hold of nothing; and ``0001_initial`` adds a trigger that refuses
to change or delete a movement (the ledger is append-only)."""

from __future__ import annotations

from decimal import Decimal

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    MetaData,
    Numeric,
    String,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from services.common.db import (
    AuditMixin,
    CommandLogMixin,
    InboxCursorMixin,
    OutboxMixin,
    OutboxSequenceMixin,
    ServiceTables,
)

# Stable constraint names, so migrations can name what they create and drop.
NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# Six decimal places, as services.inventory.domain computes; 12 digits before the point.
Quantity = Numeric(18, 6)
MOVEMENT_KINDS = ("RECEIPT", "ISSUE", "TRANSFER_OUT", "TRANSFER_IN", "CONSUMPTION")


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class Stock(Base):
    """One lot of one material at one location of a site."""

    __tablename__ = "stock"
    __table_args__ = (
        UniqueConstraint("site", "location", "material_id", "lot", name="uq_stock_position"),
        Index("ix_stock_site_material", "site", "material_id"),
        CheckConstraint("quantity >= 0", name="quantity_not_negative"),
        CheckConstraint("reserved >= 0", name="reserved_not_negative"),
        CheckConstraint("reserved <= quantity", name="reserved_within_quantity"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    site: Mapped[str] = mapped_column(String(64))
    location: Mapped[str] = mapped_column(String(128))
    material_id: Mapped[str] = mapped_column(String(128))
    lot: Mapped[str] = mapped_column(String(128))
    uom: Mapped[str] = mapped_column(String(8))
    quantity: Mapped[Decimal] = mapped_column(Quantity)
    reserved: Mapped[Decimal] = mapped_column(Quantity)
    # FIFO rank: the ledger id of the receipt that brought this lot here (a transfer keeps it).
    received: Mapped[int] = mapped_column(BigInteger)
    version: Mapped[int] = mapped_column(Integer)

    __mapper_args__ = {"version_id_col": version}


class Availability(Base):
    """A material at a site: its one unit of measure, the unreserved quantity over its
    positions, and ``revision``, which grows by one whenever that quantity changes (the
    ``InventoryAvailability`` snapshots ERP gets). Every command locks the rows of the
    materials it touches first, in key order: one writer per material and site at a time."""

    __tablename__ = "availability"
    __table_args__ = (
        CheckConstraint("available >= 0", name="available_not_negative"),
        CheckConstraint("revision >= 0", name="revision_not_negative"),
    )

    site: Mapped[str] = mapped_column(String(64), primary_key=True)
    material_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    uom: Mapped[str] = mapped_column(String(8))
    available: Mapped[Decimal] = mapped_column(Quantity)
    revision: Mapped[int] = mapped_column(BigInteger)
    changed_at: Mapped[int] = mapped_column(BigInteger)


class Reservation(Base):
    """An order's account of one material at its site: what it requires, what it consumed,
    and what is held for it now (the sum of its holds)."""

    __tablename__ = "reservation"
    __table_args__ = (
        CheckConstraint("requested >= 0", name="requested_not_negative"),
        CheckConstraint("consumed >= 0", name="consumed_not_negative"),
        CheckConstraint("reserved >= 0", name="reserved_not_negative"),
    )

    order_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    material_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    site: Mapped[str] = mapped_column(String(64))
    uom: Mapped[str] = mapped_column(String(8))
    requested: Mapped[Decimal] = mapped_column(Quantity)
    consumed: Mapped[Decimal] = mapped_column(Quantity)
    reserved: Mapped[Decimal] = mapped_column(Quantity)


class Hold(Base):
    """The part of a position's ``reserved`` that belongs to one order's reservation."""

    __tablename__ = "reservation_hold"
    __table_args__ = (
        ForeignKeyConstraint(
            ["order_id", "material_id"],
            ["reservation.order_id", "reservation.material_id"],
            name="fk_reservation_hold_reservation",
        ),
        CheckConstraint("quantity > 0", name="quantity_positive"),
        Index("ix_reservation_hold_stock_id", "stock_id"),
    )

    order_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    material_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    stock_id: Mapped[int] = mapped_column(ForeignKey("stock.id"), primary_key=True)
    quantity: Mapped[Decimal] = mapped_column(Quantity)


class Movement(Base):
    """The ledger: every change of a position's quantity, signed, with the command that made
    it. Append-only (a trigger refuses UPDATE and DELETE); per position it sums to the stock."""

    __tablename__ = "movement"
    __table_args__ = (
        CheckConstraint(
            "kind IN (" + ", ".join(f"'{kind}'" for kind in MOVEMENT_KINDS) + ")", name="kind"
        ),
        CheckConstraint("delta <> 0", name="delta_not_zero"),
        Index("ix_movement_stock_id", "stock_id"),
        Index("ix_movement_command_id", "command_id"),
        Index("ix_movement_order_id", "order_id", postgresql_where=text("order_id IS NOT NULL")),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    at: Mapped[int] = mapped_column(BigInteger)
    command_id: Mapped[str] = mapped_column(String(64))
    actor: Mapped[str] = mapped_column(String(128))
    kind: Mapped[str] = mapped_column(String(16))
    stock_id: Mapped[int] = mapped_column(ForeignKey("stock.id"))
    delta: Mapped[Decimal] = mapped_column(Quantity)
    uom: Mapped[str] = mapped_column(String(8))
    order_id: Mapped[str | None] = mapped_column(String(128))
    operation_no: Mapped[int | None] = mapped_column(Integer)

    # Through the relationship a new position is inserted before its first movement.
    stock: Mapped[Stock] = relationship()


class CommandLog(Base, CommandLogMixin):
    pass


class Audit(Base, AuditMixin):
    pass


class Outbox(Base, OutboxMixin):
    pass


class OutboxSequence(Base, OutboxSequenceMixin):
    pass


class InboxCursor(Base, InboxCursorMixin):
    pass


TABLES = ServiceTables(
    command_log=CommandLog,
    audit=Audit,
    outbox=Outbox,
    outbox_sequence=OutboxSequence,
    inbox_cursor=InboxCursor,
)
