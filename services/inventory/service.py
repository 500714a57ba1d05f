"""The inventory's commands and queries over the database.

Each command runs through ``CommandRunner``: once per command id, audited, all or nothing. Inside
its transaction a command first locks the ``availability`` rows of the materials it touches, in
(site, material) order, then the stock positions in key order (``SELECT ... FOR UPDATE``): two
commands on one material at one site run one after the other, so neither can take stock the
other already took, and the fixed order means two transfers can never wait on each other.
Changed availabilities go to the outbox for the ``bus`` in the same transaction.

The audit trail names a stock position by its row id (a key can be longer than ``entity_id``
allows) with the key in the entry's detail, and a reservation by its order id."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from decimal import Decimal

from pydantic import BaseModel
from sqlalchemy import func, select, text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.orm import Session, sessionmaker

from mes_domain.contracts import SCHEMA_VERSION
from mes_domain.enterprise import InventoryAvailability, SourceSystem, event_detail
from mes_domain.production import (
    Command,
    ConsumptionView,
    GoodsIssue,
    GoodsReceipt,
    LotConsumption,
    ReportConsumption,
    ReservationView,
    ReservedMaterial,
    ReserveForOrder,
    StockKey,
    StockView,
    Transfer,
    TransferView,
)
from services.common.commands import Change, CommandRunner, Outcome, check_version
from services.common.db import now_ms
from services.common.errors import Conflict, NotFound, RuleViolation
from services.common.outbox import enqueue
from services.inventory import domain
from services.inventory.domain import ZERO, amount, figure
from services.inventory.models import (
    TABLES,
    Availability,
    Hold,
    Movement,
    Reservation,
    Stock,
)

BUS = "bus"  # the outbox destination the relay sends to EventBridge
AVAILABILITY_KIND = "InventoryAvailability"
DOCUMENT_ID_LIMIT = 128  # ShortText


def availability_document_id(site: str, material_id: str) -> str:
    """One document per material and site, whatever its revision: ERP keeps the newest."""
    plain = f"AVAIL-{site}-{material_id}"
    if len(plain) <= DOCUMENT_ID_LIMIT:
        return plain
    return "AVAIL-" + hashlib.sha256(f"{site}\n{material_id}".encode()).hexdigest()


def availability_document(row: Availability) -> InventoryAvailability:
    return InventoryAvailability(
        v=SCHEMA_VERSION,
        source_system=SourceSystem.MES,
        document_id=availability_document_id(row.site, row.material_id),
        revision=row.revision,
        issued_at=row.changed_at,
        material_id=row.material_id,
        site=row.site,
        available_quantity=float(row.available),
        uom=row.uom,
    )


def stock_view(row: Stock) -> StockView:
    return StockView(
        site=row.site,
        location=row.location,
        material_id=row.material_id,
        lot=row.lot,
        quantity=float(row.quantity),
        reserved=float(row.reserved),
        uom=row.uom,
        version=row.version,
    )


def describe(key: StockKey | Stock) -> str:
    return f"lot {key.lot} of {key.material_id} at {key.site}/{key.location}"


class _Work:
    """One command's transaction: its locks, its ledger entries, its availability updates."""

    def __init__(self, session: Session, command: Command, at: int) -> None:
        self.session = session
        self.command = command
        self.at = at
        self.materials: dict[tuple[str, str], Availability] = {}

    # -- locks, in one order for every command -----------------------------------------------

    def lock_materials(self, keys: Iterable[tuple[str, str]], new_uom: str | None = None) -> None:
        """Lock each (site, material)'s availability row, in key order; with ``new_uom`` a
        missing row is created first (a receipt of a material new at the site)."""
        for site, material_id in sorted(set(keys)):
            row = self.session.get(
                Availability, (site, material_id), with_for_update=True, populate_existing=True
            )
            if row is None and new_uom is not None:
                self.session.execute(
                    pg_insert(Availability)
                    .values(
                        site=site,
                        material_id=material_id,
                        uom=new_uom,
                        available=ZERO,
                        revision=0,
                        changed_at=self.at,
                    )
                    .on_conflict_do_nothing()
                )
                row = self.session.get(
                    Availability, (site, material_id), with_for_update=True, populate_existing=True
                )
            if row is not None:
                self.materials[(site, material_id)] = row

    def position(self, site: str, location: str, material_id: str, lot: str) -> Stock | None:
        return self.session.scalar(
            select(Stock)
            .where(
                Stock.site == site,
                Stock.location == location,
                Stock.material_id == material_id,
                Stock.lot == lot,
            )
            .with_for_update()
            .execution_options(populate_existing=True)
        )

    def positions(self, site: str, material_id: str) -> list[Stock]:
        return list(
            self.session.scalars(
                select(Stock)
                .where(Stock.site == site, Stock.material_id == material_id)
                .order_by(Stock.location, Stock.lot)
                .with_for_update()
                .execution_options(populate_existing=True)
            )
        )

    def locked_positions(self, *keys: StockKey) -> list[Stock | None]:
        """The positions of ``keys`` locked in key order, returned in the order asked."""
        found: dict[tuple[str, str, str, str], Stock | None] = {}
        for key in sorted({(k.site, k.location, k.material_id, k.lot) for k in keys}):
            found[key] = self.position(*key)
        return [found[(k.site, k.location, k.material_id, k.lot)] for k in keys]

    # -- changes -----------------------------------------------------------------------------

    def next_movement_id(self) -> int:
        return self.session.scalar(text("SELECT nextval(pg_get_serial_sequence('movement', 'id'))"))

    def move(
        self,
        kind: str,
        stock: Stock,
        delta: Decimal,
        movement_id: int | None = None,
        order_id: str | None = None,
        operation_no: int | None = None,
    ) -> None:
        stock.quantity += delta
        self.session.add(
            Movement(
                id=movement_id,
                at=self.at,
                command_id=self.command.command_id,
                actor=self.command.actor,
                kind=kind,
                stock=stock,
                delta=delta,
                uom=stock.uom,
                order_id=order_id,
                operation_no=operation_no,
            )
        )

    def new_position(self, key: StockKey, location: str, uom: str, received: int) -> Stock:
        stock = Stock(
            site=key.site,
            location=location,
            material_id=key.material_id,
            lot=key.lot,
            uom=uom,
            quantity=ZERO,
            reserved=ZERO,
            received=received,
        )
        self.session.add(stock)
        return stock

    def holds(self, order_id: str, material_id: str) -> dict[int, Hold]:
        return {
            hold.stock_id: hold
            for hold in self.session.scalars(
                select(Hold).where(Hold.order_id == order_id, Hold.material_id == material_id)
            )
        }

    def change_hold(
        self, order_id: str, material_id: str, stock: Stock, holds: dict[int, Hold], by: Decimal
    ) -> None:
        if by == ZERO:
            return
        stock.reserved += by
        hold = holds.get(stock.id)
        if hold is None:
            hold = Hold(order_id=order_id, material_id=material_id, stock_id=stock.id, quantity=by)
            self.session.add(hold)
            holds[stock.id] = hold
        else:
            hold.quantity += by
        if hold.quantity == ZERO:
            self.session.delete(hold)
            del holds[stock.id]

    def publish_availability(self) -> None:
        """Recount each locked material's unreserved stock; a changed one gets the next
        revision and goes to the bus with this transaction."""
        self.session.flush()
        for (site, material_id), row in sorted(self.materials.items()):
            available = self.session.scalar(
                select(func.coalesce(func.sum(Stock.quantity - Stock.reserved), 0)).where(
                    Stock.site == site, Stock.material_id == material_id
                )
            )
            if available == row.available:
                continue
            row.available = available
            row.revision += 1
            row.changed_at = self.at
            document = availability_document(row)
            enqueue(
                self.session,
                TABLES,
                BUS,
                AVAILABILITY_KIND,
                event_detail(document),
                dedup_key=f"{document.document_id}@{document.revision}",
            )

    def material(self, site: str, material_id: str) -> Availability | None:
        return self.materials.get((site, material_id))


def _lots(positions: list[Stock], holds: dict[int, Hold]) -> list[domain.Lot]:
    return [
        domain.Lot(
            location=p.location,
            lot=p.lot,
            received=p.received,
            quantity=p.quantity,
            reserved=p.reserved,
            held=holds[p.id].quantity if p.id in holds else ZERO,
        )
        for p in positions
    ]


def _reservation_view(session: Session, order_id: str) -> ReservationView | None:
    rows = list(
        session.scalars(
            select(Reservation)
            .where(Reservation.order_id == order_id)
            .order_by(Reservation.material_id)
        )
    )
    if not rows:
        return None
    return ReservationView(
        order_id=order_id,
        site=rows[0].site,
        materials=[
            ReservedMaterial(
                material_id=row.material_id,
                uom=row.uom,
                requested=float(row.requested),
                consumed=float(row.consumed),
                reserved=float(row.reserved),
                shortfall=float(domain.shortfall(row.requested, row.consumed, row.reserved)),
            )
            for row in rows
        ],
    )


def _check_order_site(session: Session, order_id: str, site: str) -> None:
    """An order is reserved and consumes at one site: the first command's."""
    known = session.scalar(
        select(Reservation.site).where(Reservation.order_id == order_id).limit(1)
    )
    if known is not None and known != site:
        raise Conflict(f"order {order_id} has its reservation at site {known}, not {site}", "site")


def _order_account(
    work: _Work, order_id: str, material_id: str, site: str, uom: str, uom_field: str
) -> Reservation:
    """The order's reservation of the material, checked against the command's unit; a new,
    empty one if the order has none yet (consumption without a reservation keeps one too)."""
    account = work.session.get(Reservation, (order_id, material_id), populate_existing=True)
    if account is not None:
        domain.check_uom(account.uom, uom, uom_field, f"the reservation of {material_id}")
        return account
    account = Reservation(
        order_id=order_id,
        material_id=material_id,
        site=site,
        uom=uom,
        requested=ZERO,
        consumed=ZERO,
        reserved=ZERO,
    )
    work.session.add(account)
    work.session.flush()
    return account


class InventoryService:
    def __init__(self, sessions: sessionmaker, clock: Callable[[], int] = now_ms) -> None:
        self.sessions = sessions
        self.runner = CommandRunner(sessions, TABLES)
        self.clock = clock

    def _run(
        self, kind: str, command: Command, action: Callable[[_Work], tuple[BaseModel, Change]]
    ) -> Outcome:
        def in_transaction(session: Session) -> tuple[BaseModel, Change]:
            return action(_Work(session, command, self.clock()))

        return self.runner.run(kind, command, in_transaction)

    # -- commands ----------------------------------------------------------------------------

    def receive(self, command: GoodsReceipt) -> Outcome:
        def action(work: _Work) -> tuple[BaseModel, Change]:
            key = command.stock
            quantity = amount(command.quantity, "quantity")
            work.lock_materials([(key.site, key.material_id)], new_uom=command.uom)
            material = work.material(key.site, key.material_id)
            domain.check_uom(
                material.uom, command.uom, "uom", f"{key.material_id} at site {key.site}"
            )
            (stock,) = work.locked_positions(key)
            movement_id = None
            if stock is None:  # its FIFO rank is the id of the receipt that brings it
                movement_id = work.next_movement_id()
                stock = work.new_position(key, key.location, command.uom, received=movement_id)
            work.move("RECEIPT", stock, quantity, movement_id=movement_id)
            work.publish_availability()
            detail = {"stock": key.model_dump(), "quantity": figure(quantity), "uom": command.uom}
            return stock_view(stock), Change("stock", str(stock.id), detail)

        return self._run("GoodsReceipt", command, action)

    def issue(self, command: GoodsIssue) -> Outcome:
        def action(work: _Work) -> tuple[BaseModel, Change]:
            key = command.stock
            quantity = amount(command.quantity, "quantity")
            work.lock_materials([(key.site, key.material_id)])
            (stock,) = work.locked_positions(key)
            if stock is None:
                raise NotFound(f"there is no {describe(key)}", field="stock")
            check_version("stock", stock.version, command.expected_version)
            domain.check_uom(stock.uom, command.uom, "uom", describe(key))
            domain.check_take(
                stock.quantity - stock.reserved, quantity, stock.uom, describe(key), "quantity"
            )
            work.move("ISSUE", stock, -quantity)
            work.publish_availability()
            detail = {
                "stock": key.model_dump(),
                "quantity": figure(quantity),
                "uom": command.uom,
                "reason": command.reason,
            }
            return stock_view(stock), Change("stock", str(stock.id), detail)

        return self._run("GoodsIssue", command, action)

    def transfer(self, command: Transfer) -> Outcome:
        def action(work: _Work) -> tuple[BaseModel, Change]:
            key = command.stock
            to_key = key.model_copy(update={"location": command.to_location})
            quantity = amount(command.quantity, "quantity")
            work.lock_materials([(key.site, key.material_id)])
            source, destination = work.locked_positions(key, to_key)
            if source is None:
                raise NotFound(f"there is no {describe(key)}", field="stock")
            check_version("stock", source.version, command.expected_version)
            domain.check_uom(source.uom, command.uom, "uom", describe(key))
            domain.check_take(
                source.quantity - source.reserved, quantity, source.uom, describe(key), "quantity"
            )
            if destination is None:
                destination = work.new_position(
                    key, command.to_location, source.uom, received=source.received
                )
            else:  # the lot is as old as its oldest receipt
                destination.received = min(destination.received, source.received)
            work.move("TRANSFER_OUT", source, -quantity)
            work.move("TRANSFER_IN", destination, quantity)
            work.publish_availability()
            detail = {
                "stock": key.model_dump(),
                "to_location": command.to_location,
                "to_stock_id": destination.id,
                "quantity": figure(quantity),
                "uom": command.uom,
            }
            view = TransferView(source=stock_view(source), destination=stock_view(destination))
            return view, Change("stock", str(source.id), detail)

        return self._run("Transfer", command, action)

    def reserve(self, command: ReserveForOrder) -> Outcome:
        def action(work: _Work) -> tuple[BaseModel, Change]:
            site, order_id = command.site, command.order_id
            work.lock_materials((site, r.material_id) for r in command.requirements)
            _check_order_site(work.session, order_id, site)
            detail: dict[str, dict[str, str]] = {}
            for i, requirement in enumerate(command.requirements):
                material_id = requirement.material_id
                uom_field = f"requirements[{i}].uom"
                requested = amount(requirement.quantity, f"requirements[{i}].quantity")
                material = work.material(site, material_id)
                if material is not None:
                    domain.check_uom(
                        material.uom, requirement.uom, uom_field, f"{material_id} at site {site}"
                    )
                account = _order_account(
                    work, order_id, material_id, site, requirement.uom, uom_field
                )
                positions = work.positions(site, material_id)
                holds = work.holds(order_id, material_id)
                changes, held = domain.plan_hold(
                    _lots(positions, holds), domain.hold_target(requested, account.consumed)
                )
                for stock, change in zip(positions, changes, strict=True):
                    work.change_hold(order_id, material_id, stock, holds, change)
                account.requested = requested
                account.reserved = held
                detail[material_id] = {"requested": figure(requested), "reserved": figure(held)}
            work.publish_availability()
            view = _reservation_view(work.session, order_id)
            return view, Change("reservation", order_id, detail)

        return self._run("ReserveForOrder", command, action)

    def consume(self, command: ReportConsumption) -> Outcome:
        def action(work: _Work) -> tuple[BaseModel, Change]:
            site, order_id = command.site, command.order_id
            work.lock_materials((site, m.material_id) for m in command.materials)
            _check_order_site(work.session, order_id, site)
            lots_used: list[LotConsumption] = []
            for i, used in enumerate(command.materials):
                material_id = used.material_id
                quantity_field, uom_field = f"materials[{i}].quantity", f"materials[{i}].uom"
                wanted = amount(used.quantity, quantity_field)
                what = f"{material_id} at site {site}"
                material = work.material(site, material_id)
                if material is None:
                    raise RuleViolation(
                        f"{quantity_field} {figure(wanted)} {used.uom} exceeds the stock of "
                        f"{what}: there has been none (available 0)",
                        quantity_field,
                    )
                domain.check_uom(material.uom, used.uom, uom_field, what)
                account = _order_account(work, order_id, material_id, site, used.uom, uom_field)
                positions = work.positions(site, material_id)
                holds = work.holds(order_id, material_id)
                held_before = account.reserved
                plan = domain.plan_consumption(
                    _lots(positions, holds), wanted, used.lot, used.uom, what, quantity_field
                )
                for take in plan:
                    stock = positions[take.index]
                    work.change_hold(order_id, material_id, stock, holds, -take.from_held)
                    work.move(
                        "CONSUMPTION",
                        stock,
                        -take.quantity,
                        order_id=order_id,
                        operation_no=command.operation_no,
                    )
                    lots_used.append(
                        LotConsumption(
                            material_id=material_id,
                            location=stock.location,
                            lot=stock.lot,
                            quantity=float(take.quantity),
                            uom=stock.uom,
                        )
                    )
                # Release the rest of what this consumption used up of the reservation.
                target = domain.hold_after_consumption(held_before, wanted)
                changes, held = domain.plan_hold(_lots(positions, holds), target)
                for stock, change in zip(positions, changes, strict=True):
                    work.change_hold(order_id, material_id, stock, holds, change)
                account.consumed += wanted
                account.reserved = held
            work.publish_availability()
            view = ConsumptionView(
                order_id=order_id, operation_no=command.operation_no, site=site, lots=lots_used
            )
            detail = {
                "operation_no": command.operation_no,
                "lots": [lot.model_dump(mode="json") for lot in lots_used],
            }
            return view, Change("reservation", order_id, detail)

        return self._run("ReportConsumption", command, action)

    # -- queries -----------------------------------------------------------------------------

    def stock(
        self,
        site: str,
        material_id: str | None = None,
        location: str | None = None,
        lot: str | None = None,
        limit: int = 500,
    ) -> list[StockView]:
        """The positions with stock, by location, material and lot (emptied ones are left out)."""
        query = select(Stock).where(Stock.site == site, Stock.quantity > 0)
        if material_id is not None:
            query = query.where(Stock.material_id == material_id)
        if location is not None:
            query = query.where(Stock.location == location)
        if lot is not None:
            query = query.where(Stock.lot == lot)
        query = query.order_by(Stock.location, Stock.material_id, Stock.lot).limit(limit)
        with self.sessions() as session:
            return [stock_view(row) for row in session.scalars(query)]

    def availability(self, site: str, material_id: str) -> InventoryAvailability:
        with self.sessions() as session:
            row = session.get(Availability, (site, material_id))
            if row is None:
                raise NotFound(
                    f"material {material_id} has never been in stock at site {site}",
                    field="material_id",
                )
            return availability_document(row)

    def reservation(self, order_id: str) -> ReservationView:
        with self.sessions() as session:
            view = _reservation_view(session, order_id)
        if view is None:
            raise NotFound(f"order {order_id} has no reservation", field="order_id")
        return view
