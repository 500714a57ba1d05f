"""The commands of production execution as functions over a Session, and ``ProductionExecution``,
which runs each through ``CommandRunner``: idempotent by command id, audited, all or nothing.

One instance writes each order: the cloud releases it, and the instance that executes it (the
edge instance of its site if it has one, else the cloud) takes its station commands; any other
answers 409 naming where it runs. What a change sends elsewhere (events for the bus, commands for
inventory, changes for the peer instance) goes into the outbox in the change's transaction."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Float,
    Integer,
    Numeric,
    Select,
    String,
    Text,
    and_,
    bindparam,
    case,
    cast,
    func,
    literal,
    or_,
    select,
    text,
)
from sqlalchemy.dialects.postgresql import aggregate_order_by
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from mes_domain.enterprise import (
    OUTBOUND_EVENTS,
    BillOfMaterials,
    EnterpriseDocument,
    EventSource,
    ExecutionStatus,
    NonConformanceReport,
    OrderStatus,
    OrderStatusChanged,
    SourceSystem,
    event_detail,
)
from mes_domain.production import (
    AuditEntry,
    CompleteOperation,
    ConfirmationView,
    ConsumedMaterial,
    DispatchItem,
    DispatchList,
    DisposeNonConformance,
    Disposition,
    GenealogyView,
    LotUsage,
    NonConformanceReceipt,
    NonConformanceView,
    OperationStatus,
    OperationView,
    PauseOperation,
    RecordComponents,
    RegisterSerial,
    ReleaseOrder,
    ReportConsumption,
    ReportPartCount,
    ReportScrap,
    ReserveForOrder,
    SerialView,
    StartOperation,
    WorkOrderView,
)
from mes_domain.production import Command as BaseCommand
from services.common.commands import Change, CommandRunner, Outcome, check_version
from services.common.db import now_ms
from services.common.errors import Conflict, NotFound, RuleViolation
from services.common.outbox import enqueue
from services.production_execution import domain
from services.production_execution.domain import CLOUD, Action, RunTime, Step
from services.production_execution.models import (
    OPEN_OPERATION,
    TABLES,
    Confirmation,
    GenealogyLink,
    NonConformance,
    Operation,
    ScrapReport,
    Serial,
    WorkOrder,
)
from services.production_execution.settings import PlantLayout, executed_at

# Outbox destinations besides the peer instances (whose destination is their instance id).
BUS = "bus"  # the platform's EventBridge bus: OUTBOUND_EVENTS, kind = the detail type
INVENTORY = "inventory"  # the inventory service's commands, kind = the command's class name

# Sync message kinds (SyncMessage.kind) between the cloud and edge instances.
ORDER_RELEASED = "OrderReleased"  # cloud -> edge: the ReleaseOrder
ORDER_CHANGED = "OrderChanged"  # edge -> cloud: the WorkOrderView
OPERATION_CHANGED = "OperationChanged"  # edge -> cloud: the OperationView
SERIAL_RECORDED = "SerialRecorded"  # edge -> cloud: the GenealogyView of a serial or order lot
FORWARD = "Forward"  # edge -> cloud: an outbox message for the bus or inventory
NONCONFORMANCE_RECEIVED = "NonConformanceReceived"  # cloud -> edge: the NonConformanceReport

MAX_DISPATCH_ITEMS = 500
SCRAP_AT_COMPLETION = "COMPLETION"
SCRAP_COUNTED_BAD = "PART_COUNT"


@dataclass(frozen=True)
class Context:
    """Who this instance is, the plant it serves and its clock (epoch ms)."""

    instance_id: str
    layout: PlantLayout
    edge_sites: frozenset[str] = field(default_factory=frozenset)
    clock: Callable[[], int] = now_ms

    @property
    def is_cloud(self) -> bool:
        return self.instance_id == CLOUD


# ---- views -------------------------------------------------------------------------------------


def operation_view(op: Operation) -> OperationView:
    return OperationView(
        order_id=op.order_id,
        operation_no=op.operation_no,
        description=op.description,
        station_kind=op.station_kind,
        station=op.station,
        status=OperationStatus(op.status),
        planned_quantity=op.planned_quantity,
        good_quantity=op.good_quantity,
        scrap_quantity=op.scrap_quantity,
        counted_good=op.counted_good,
        started_at=op.started_at,
        completed_at=op.completed_at,
        run_time_s=round(op.run_time_s, 3),
        running_since=op.running_since,
        follows=op.follows,
        rework=op.rework,
        version=op.version,
    )


def order_view(order: WorkOrder) -> WorkOrderView:
    return WorkOrderView(
        order_id=order.order_id,
        site=order.site,
        line=order.line,
        material_id=order.material_id,
        quantity=order.quantity,
        uom=order.uom,
        status=ExecutionStatus(order.status),
        priority=order.priority,
        planned_start=order.planned_start,
        planned_end=order.planned_end,
        executed_at=order.executed_at,
        version=order.version,
        operations=[operation_view(op) for op in order.operations],
        nonconformance_scrap=order.nonconformance_scrap,
    )


def nonconformance_view(nc: NonConformance) -> NonConformanceView:
    return NonConformanceView.model_validate(nc, from_attributes=True)


def confirmation_view(row: Confirmation) -> ConfirmationView:
    return ConfirmationView.model_validate(row, from_attributes=True)


def components(session: Session, order_id: str, serial: str | None) -> list[LotUsage]:
    links = select(GenealogyLink).where(GenealogyLink.order_id == order_id)
    links = links.where(
        GenealogyLink.serial.is_(None) if serial is None else GenealogyLink.serial == serial
    )
    return [
        LotUsage(material_id=link.material_id, lot=link.lot, quantity=link.quantity, uom=link.uom)
        for link in session.scalars(links.order_by(GenealogyLink.id))
    ]


def _step(op: Operation) -> Step:
    return Step(
        operation_no=op.operation_no,
        follows=op.follows,
        status=OperationStatus(op.status),
        station_kind=op.station_kind,
        station=op.station,
        started_at=op.started_at,
        rework=op.rework,
    )


def _run_time(op: Operation) -> RunTime:
    return RunTime(op.started_at, op.running_since, op.run_time_s)


def _set_run_time(op: Operation, run_time: RunTime) -> None:
    op.started_at = run_time.started_at
    op.running_since = run_time.running_since
    op.run_time_s = run_time.run_time_s


def _add(total: float, more: float) -> float:
    return round(total + more, domain.QUANTITY_DECIMALS)


def operation_entity(order_id: str, operation_no: int) -> str:
    """An operation's ``entity_id`` in the audit trail."""
    return f"{order_id}/{operation_no}"


# ---- loading and checks ------------------------------------------------------------------------


def _order_for_update(session: Session, order_id: str) -> WorkOrder:
    """The order, locked until commit: one order's commands run one after the other."""
    order = session.get(WorkOrder, order_id, with_for_update=True)
    if order is None:
        raise NotFound(f"no order {order_id} has been released here", field="order_id")
    return order


def _instance_name(instance_id: str) -> str:
    return "the cloud instance" if instance_id == CLOUD else f"the edge instance of {instance_id}"


def _runs_here(ctx: Context, order: WorkOrder) -> None:
    if order.executed_at != ctx.instance_id:
        raise Conflict(
            f"order {order.order_id} is executed by {_instance_name(order.executed_at)}, "
            f"not {_instance_name(ctx.instance_id)}; send its station commands there",
            field="order_id",
        )


def _operation(order: WorkOrder, operation_no: int) -> Operation:
    for op in order.operations:
        if op.operation_no == operation_no:
            return op
    raise NotFound(f"order {order.order_id} has no operation {operation_no}", field="operation_no")


def _flush(session: Session, conflict: str, field_name: str) -> None:
    """Flush; a unique constraint another transaction won is a 409, not a 500."""
    try:
        session.flush()
    except IntegrityError:
        raise Conflict(conflict, field=field_name) from None


# ---- what a change sends -----------------------------------------------------------------------


class Forwarded(BaseModel):
    """The payload of a ``Forward``: an outbox message an edge instance cannot deliver itself."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    destination: Annotated[str, Field(min_length=1, max_length=64)]
    kind: Annotated[str, Field(min_length=1, max_length=64)]
    payload: dict[str, Any]
    dedup_key: Annotated[str, Field(max_length=300)] | None = None


def send(
    session: Session,
    ctx: Context,
    destination: str,
    kind: str,
    payload: dict[str, Any],
    dedup_key: str | None = None,
) -> bool:
    """Into the outbox for ``destination``. An edge instance reaches only the cloud: anything
    else it sends as a ``Forward`` there, and the cloud enqueues it with the same dedup key, so
    it leaves once."""
    if ctx.is_cloud or destination == CLOUD:
        return enqueue(session, TABLES, destination, kind, payload, dedup_key)
    forward = Forwarded(destination=destination, kind=kind, payload=payload, dedup_key=dedup_key)
    key = None if dedup_key is None else f"{destination}:{dedup_key}"[:300]
    return enqueue(session, TABLES, CLOUD, FORWARD, forward.model_dump(mode="json"), key)


def publish(session: Session, ctx: Context, event: EnterpriseDocument) -> None:
    """An outbound event (``OUTBOUND_EVENTS``) for the bus, once per document id."""
    route = OUTBOUND_EVENTS[type(event)]
    send(session, ctx, BUS, route.detail_type, event_detail(event), dedup_key=event.document_id)


def _update_order_status(session: Session, ctx: Context, order: WorkOrder, now: int) -> bool:
    """The order's status from its operations; a change is published (OrderStatusChanged)."""
    status = domain.order_status(OperationStatus(op.status) for op in order.operations)
    if status.value == order.status:
        return False
    previous = ExecutionStatus(order.status)
    order.status = status.value
    order.updated_at = now
    publish(session, ctx, _status_changed(order, previous, status, now))
    return True


def _status_changed(
    order: WorkOrder, previous: ExecutionStatus | None, status: ExecutionStatus, now: int
) -> OrderStatusChanged:
    return OrderStatusChanged(
        v=1,
        source_system=SourceSystem.MES,
        document_id=domain.document_id("OSC", order.order_id, status.value),
        revision=0,
        issued_at=now,
        order_id=order.order_id,
        site=order.site,
        line=order.line,
        previous_status=previous,
        status=status,
        changed_at=now,
    )


def _replicate(
    session: Session,
    ctx: Context,
    order: WorkOrder,
    operations: Iterable[Operation] = (),
    order_changed: bool = False,
) -> None:
    """At an edge instance, tell the cloud what changed (the full views: it keeps the newest
    version of each, so a replay changes nothing there)."""
    session.flush()  # the versions the views carry
    if ctx.is_cloud:
        return
    for op in sorted(set(operations), key=lambda o: o.operation_no):
        enqueue(
            session, TABLES, CLOUD, OPERATION_CHANGED, operation_view(op).model_dump(mode="json")
        )
    if order_changed:
        enqueue(session, TABLES, CLOUD, ORDER_CHANGED, order_view(order).model_dump(mode="json"))


def _replicate_genealogy(session: Session, ctx: Context, order_id: str, serial: str | None) -> None:
    if ctx.is_cloud:
        return
    session.flush()
    view = GenealogyView(
        order_id=order_id, serial=serial, components=components(session, order_id, serial)
    )
    enqueue(session, TABLES, CLOUD, SERIAL_RECORDED, view.model_dump(mode="json"))


# ---- release -----------------------------------------------------------------------------------


def create_order(session: Session, command: ReleaseOrder, where: str, now: int) -> WorkOrder:
    """The work order and its operations: the routing's first step READY, the others PENDING."""
    document = command.order
    order = WorkOrder(
        order_id=document.order_id,
        site=document.site,
        line=command.line,
        material_id=document.material_id,
        quantity=document.quantity,
        uom=document.uom,
        status=ExecutionStatus.RELEASED.value,
        priority=command.priority,
        planned_start=document.planned_start,
        planned_end=document.planned_end,
        executed_at=where,
        routing=command.routing.model_dump(mode="json"),
        bom=None if command.bom is None else command.bom.model_dump(mode="json"),
        nonconformance_scrap=0.0,
        released_at=now,
        updated_at=now,
    )
    routing = {op.operation_no: op for op in command.routing.operations}
    for step in domain.routing_steps(command.routing):
        order.operations.append(
            new_operation(
                order,
                step,
                description=routing[step.operation_no].description,
                planned_quantity=document.quantity,
            )
        )
    session.add(order)
    return order


def new_operation(
    order: WorkOrder, step: Step, description: str, planned_quantity: float
) -> Operation:
    return Operation(
        order_id=order.order_id,
        operation_no=step.operation_no,
        site=order.site,
        line=order.line,
        material_id=order.material_id,
        priority=order.priority,
        planned_start=order.planned_start,
        description=description,
        station_kind=step.station_kind,
        follows=step.follows,
        rework=step.rework,
        planned_quantity=planned_quantity,
        status=step.status.value,
        good_quantity=0.0,
        scrap_quantity=0.0,
        counted_good=0.0,
        run_time_s=0.0,
    )


def release_order(
    session: Session, ctx: Context, command: ReleaseOrder
) -> tuple[WorkOrderView, Change]:
    document = command.order
    if not ctx.is_cloud:
        raise Conflict(
            f"orders are released by the cloud instance, not {_instance_name(ctx.instance_id)}",
            field="order.order_id",
        )
    if document.status is not OrderStatus.RELEASED:
        raise RuleViolation(
            f"ERP has order {document.order_id} {document.status.value}; only a RELEASED "
            "order goes to a line",
            field="order.status",
        )
    kinds = ctx.layout.line_kinds.get((document.site, command.line))
    if kinds is None:
        raise RuleViolation(
            f"site {document.site} has no line {command.line} in the plant config", field="line"
        )
    for i, op in enumerate(command.routing.operations):
        if op.station_kind not in kinds:
            raise RuleViolation(
                f"line {command.line} has no {op.station_kind} station for operation "
                f"{op.operation_no} (it has {', '.join(sorted(kinds))})",
                field=f"routing.operations.{i}.station_kind",
            )
    reservation = [] if command.bom is None else domain.requirements(command.bom, document.quantity)
    if session.get(WorkOrder, document.order_id) is not None:
        raise Conflict(f"order {document.order_id} was released before", field="order.order_id")

    now = ctx.clock()
    where = executed_at(document.site, ctx.edge_sites)
    order = create_order(session, command, where, now)
    _flush(session, f"order {document.order_id} was released before", "order.order_id")
    publish(session, ctx, _status_changed(order, None, ExecutionStatus.RELEASED, now))
    if reservation:
        reserve = ReserveForOrder(
            command_id=domain.derived_command_id("reserve", document.order_id),
            actor=command.actor,
            order_id=document.order_id,
            site=document.site,
            requirements=reservation,
        )
        send(
            session,
            ctx,
            INVENTORY,
            "ReserveForOrder",
            reserve.model_dump(mode="json"),
            dedup_key=reserve.command_id,
        )
    if where != CLOUD:
        enqueue(
            session,
            TABLES,
            where,
            ORDER_RELEASED,
            command.model_dump(mode="json"),
            dedup_key=domain.document_id("REL", document.order_id),
        )
    session.flush()
    return order_view(order), Change(
        "order",
        order.order_id,
        {"line": order.line, "executed_at": where, "operations": len(order.operations)},
    )


# ---- station commands --------------------------------------------------------------------------


def _operation_for_command(
    session: Session, ctx: Context, order_id: str, operation_no: int, expected: int | None
) -> tuple[WorkOrder, Operation]:
    order = _order_for_update(session, order_id)
    _runs_here(ctx, order)
    op = _operation(order, operation_no)
    check_version(f"operation {operation_no} of order {order_id}", op.version, expected)
    return order, op


def _operation_change(op: Operation, before: str, **detail: Any) -> Change:
    return Change(
        "operation",
        operation_entity(op.order_id, op.operation_no),
        {"from": before, "to": op.status, **detail},
    )


def start_operation(
    session: Session, ctx: Context, order_id: str, operation_no: int, command: StartOperation
) -> tuple[OperationView, Change]:
    """READY -> RUNNING (or a PAUSED one resumes) at a station of the operation's kind on the
    order's line, which runs nothing else."""
    order, op = _operation_for_command(
        session, ctx, order_id, operation_no, command.expected_version
    )
    kind = ctx.layout.station_kind(order.site, order.line, command.station)
    if kind is None:
        raise RuleViolation(
            f"line {order.site}/{order.line} has no station {command.station}", field="station"
        )
    if kind != op.station_kind:
        raise RuleViolation(
            f"station {command.station} is a {kind} station; operation {operation_no} needs a "
            f"{op.station_kind} one",
            field="station",
        )
    before = op.status
    status = domain.next_status(OperationStatus(op.status), Action.START)
    busy = session.scalar(
        select(Operation).where(
            Operation.site == order.site,
            Operation.line == order.line,
            Operation.station == command.station,
            Operation.status == OperationStatus.RUNNING.value,
        )
    )
    if busy is not None:
        raise RuleViolation(
            f"station {command.station} is running operation {busy.operation_no} of order "
            f"{busy.order_id}; pause or complete that first",
            field="station",
        )
    now = ctx.clock()
    _set_run_time(op, _run_time(op).start(now))
    op.status = status.value
    op.station = command.station
    _flush(session, f"station {command.station} started another operation", "station")
    order_changed = _update_order_status(session, ctx, order, now)
    _replicate(session, ctx, order, [op], order_changed)
    return operation_view(op), _operation_change(op, before, station=command.station)


def pause_operation(
    session: Session, ctx: Context, order_id: str, operation_no: int, command: PauseOperation
) -> tuple[OperationView, Change]:
    order, op = _operation_for_command(
        session, ctx, order_id, operation_no, command.expected_version
    )
    before = op.status
    status = domain.next_status(OperationStatus(op.status), Action.PAUSE)
    _set_run_time(op, _run_time(op).stop(ctx.clock()))
    op.status = status.value
    _replicate(session, ctx, order, [op])
    return operation_view(op), _operation_change(op, before, reason=command.reason)


def _scrap(
    session: Session, op: Operation, quantity: float, reason: str, command_id: str, now: int
) -> None:
    op.scrap_quantity = _add(op.scrap_quantity, quantity)
    session.add(
        ScrapReport(
            order_id=op.order_id,
            operation_no=op.operation_no,
            station=op.station,
            quantity=quantity,
            reason_code=reason,
            command_id=command_id,
            reported_at=now,
        )
    )


def report_scrap(
    session: Session, ctx: Context, order_id: str, operation_no: int, command: ReportScrap
) -> tuple[OperationView, Change]:
    order, op = _operation_for_command(
        session, ctx, order_id, operation_no, command.expected_version
    )
    before = op.status
    domain.next_status(OperationStatus(op.status), Action.SCRAP)
    _scrap(session, op, command.quantity, command.reason_code, command.command_id, ctx.clock())
    _replicate(session, ctx, order, [op])
    return operation_view(op), _operation_change(
        op, before, scrap=command.quantity, reason_code=command.reason_code
    )


def complete_operation(
    session: Session, ctx: Context, order_id: str, operation_no: int, command: CompleteOperation
) -> tuple[OperationView, Change]:
    """RUNNING/PAUSED -> COMPLETED with its yield (the counted good when the command gives
    none) and scrap; the operations waiting for it become READY; its confirmation, and for the
    routing's first operation the backflush of the BOM, leave through the outbox, once."""
    order, op = _operation_for_command(
        session, ctx, order_id, operation_no, command.expected_version
    )
    before = op.status
    status = domain.next_status(OperationStatus(op.status), Action.COMPLETE)
    now = ctx.clock()
    run_time = _run_time(op).stop(now)
    _set_run_time(op, run_time)
    good = op.counted_good if command.good_quantity is None else command.good_quantity
    op.good_quantity = round(good, domain.QUANTITY_DECIMALS)
    if command.scrap_quantity > 0:
        _scrap(session, op, command.scrap_quantity, SCRAP_AT_COMPLETION, command.command_id, now)
    op.status = status.value
    op.completed_at = now

    promoted = []
    steps = [_step(o) for o in order.operations]
    for number in domain.ready_after(operation_no, steps):
        waiting = _operation(order, number)
        waiting.status = OperationStatus.READY.value
        promoted.append(waiting)

    final = domain.order_status(_step(o).status for o in order.operations) is (
        ExecutionStatus.COMPLETED
    )
    materials = []
    if order.bom is not None and domain.consumes_components(_step(op)):
        materials = domain.backflush(_bom(order), op.good_quantity)
    confirmation = domain.confirmation(
        order_id=order.order_id,
        operation_no=operation_no,
        station=op.station or "",
        good_quantity=op.good_quantity,
        scrap_quantity=op.scrap_quantity,
        run_time=run_time,
        completed_at=now,
        labour_time_s=command.labour_time_s,
        materials=materials,
        final=final,
    )
    op.labour_time_s = confirmation.labour_time_s
    session.add(
        Confirmation(
            order_id=order.order_id,
            operation_no=operation_no,
            document_id=confirmation.document_id,
            station=confirmation.station,
            good_quantity=confirmation.good_quantity,
            scrap_quantity=confirmation.scrap_quantity,
            materials_consumed=[m.model_dump(mode="json") for m in materials],
            started_at=confirmation.started_at,
            completed_at=confirmation.completed_at,
            labour_time_s=confirmation.labour_time_s,
            machine_time_s=confirmation.machine_time_s,
            final=final,
        )
    )
    _flush(session, f"operation {operation_no} of order {order_id} was confirmed", "operation_no")
    publish(
        session,
        ctx,
        domain.production_confirmation(
            confirmation, site=order.site, line=order.line, issued_at=now
        ),
    )
    if materials:
        consume = ReportConsumption(
            command_id=domain.derived_command_id("consume", order.order_id, str(operation_no)),
            actor=command.actor,
            order_id=order.order_id,
            operation_no=operation_no,
            site=order.site,
            materials=[
                ConsumedMaterial(material_id=m.material_id, quantity=m.quantity, uom=m.uom)
                for m in materials
            ],
        )
        send(
            session,
            ctx,
            INVENTORY,
            "ReportConsumption",
            consume.model_dump(mode="json"),
            dedup_key=consume.command_id,
        )
    order_changed = _update_order_status(session, ctx, order, now)
    _replicate(session, ctx, order, [op, *promoted], order_changed)
    return operation_view(op), _operation_change(
        op,
        before,
        good=op.good_quantity,
        scrap=op.scrap_quantity,
        confirmation=confirmation.document_id,
        ready=[o.operation_no for o in promoted],
    )


def _bom(order: WorkOrder) -> BillOfMaterials:
    return BillOfMaterials.model_validate(order.bom)


def count_parts(
    session: Session, ctx: Context, site: str, line: str, station: str, command: ReportPartCount
) -> tuple[OperationView, Change]:
    """A station's part counts: good ones add to the counted good of the operation running at
    it, bad ones to its scrap."""
    if ctx.layout.station_kind(site, line, station) is None:
        raise NotFound(f"no station {site}/{line}/{station} in the plant config", field="station")
    running = session.execute(
        select(Operation.order_id, Operation.operation_no).where(
            Operation.site == site,
            Operation.line == line,
            Operation.station == station,
            Operation.status == OperationStatus.RUNNING.value,
        )
    ).first()
    if running is None:
        raise RuleViolation(f"no operation is running at station {station}", field="station")
    if command.order_id is not None and command.order_id != running.order_id:
        raise RuleViolation(
            f"station {station} is running order {running.order_id}, not {command.order_id}",
            field="order_id",
        )
    order = _order_for_update(session, running.order_id)
    _runs_here(ctx, order)
    op = _operation(order, running.operation_no)
    if op.status != OperationStatus.RUNNING.value or op.station != station:
        raise Conflict(
            f"operation {op.operation_no} of order {op.order_id} stopped at station {station} "
            "while the counts came; send them again",
            field="station",
        )
    domain.next_status(OperationStatus(op.status), Action.COUNT)
    op.counted_good = _add(op.counted_good, command.good)
    if command.bad:
        _scrap(session, op, command.bad, SCRAP_COUNTED_BAD, command.command_id, ctx.clock())
    _replicate(session, ctx, order, [op])
    return operation_view(op), Change(
        "operation",
        operation_entity(op.order_id, op.operation_no),
        {"station": station, "good": command.good, "bad": command.bad, "ts": command.ts},
    )


# ---- serials and genealogy ---------------------------------------------------------------------


def register_serial(
    session: Session, ctx: Context, order_id: str, command: RegisterSerial
) -> tuple[SerialView, Change]:
    order = _order_for_update(session, order_id)
    _runs_here(ctx, order)
    seen = session.get(Serial, command.serial)
    if seen is not None:
        raise Conflict(
            f"serial {command.serial} is registered to order {seen.order_id} already",
            field="serial",
        )
    session.add(Serial(serial=command.serial, order_id=order_id, registered_at=ctx.clock()))
    _flush(session, f"serial {command.serial} was registered meanwhile", "serial")
    _replicate_genealogy(session, ctx, order_id, command.serial)
    view = SerialView(serial=command.serial, order_id=order_id, components=[])
    return view, Change("serial", command.serial, {"order_id": order_id})


def record_components(
    session: Session, ctx: Context, order_id: str, serial: str | None, command: RecordComponents
) -> tuple[SerialView | GenealogyView, Change]:
    """Genealogy: these lots went into ``serial`` (or the order's lot, ``serial`` None). A
    material the order's BOM does not list is refused."""
    order = _order_for_update(session, order_id)
    _runs_here(ctx, order)
    if serial is not None:
        known = session.get(Serial, serial)
        if known is None or known.order_id != order_id:
            raise NotFound(f"order {order_id} has no serial {serial}", field="serial")
    if order.bom is not None:
        listed = {item["component_id"] for item in order.bom["items"]}
        for i, usage in enumerate(command.components):
            if usage.material_id not in listed:
                raise RuleViolation(
                    f"{usage.material_id} is not a component in the BOM of order {order_id}",
                    field=f"components.{i}.material_id",
                )
    now = ctx.clock()
    for usage in command.components:
        session.add(
            GenealogyLink(
                order_id=order_id,
                serial=serial,
                material_id=usage.material_id,
                lot=usage.lot,
                quantity=usage.quantity,
                uom=usage.uom,
                recorded_at=now,
            )
        )
    session.flush()
    _replicate_genealogy(session, ctx, order_id, serial)
    used = components(session, order_id, serial)
    change = Change(
        "serial" if serial is not None else "order",
        serial if serial is not None else order_id,
        {"components": [u.model_dump(mode="json") for u in command.components]},
    )
    if serial is None:
        return GenealogyView(order_id=order_id, serial=None, components=used), change
    return SerialView(serial=serial, order_id=order_id, components=used), change


# ---- non-conformances --------------------------------------------------------------------------


class InboundEvent(BaseModel):
    """An EventBridge event as a rule's target receives it (other keys, such as id and time,
    are accepted and not used)."""

    model_config = ConfigDict(populate_by_name=True, extra="ignore")

    source: Annotated[str, Field(min_length=1, max_length=256)]
    detail_type: Annotated[str, Field(alias="detail-type", min_length=1, max_length=128)]
    detail: dict[str, Any]


NONCONFORMANCE_ROUTE = OUTBOUND_EVENTS[NonConformanceReport]


def nonconformance_report(event: InboundEvent) -> NonConformanceReport:
    """The report in a ``NonConformance`` event (its Detail: the report and schema_version)."""
    if (event.source, event.detail_type) != (
        NONCONFORMANCE_ROUTE.source.value,
        NONCONFORMANCE_ROUTE.detail_type,
    ):
        raise RuleViolation(
            f"{event.source} {event.detail_type} is not an event this service takes (only "
            f"{EventSource.QUALITY.value} {NONCONFORMANCE_ROUTE.detail_type})",
            field="detail-type",
        )
    detail = dict(event.detail)
    version = detail.pop("schema_version", None)
    detail.setdefault("v", version)
    try:
        return NonConformanceReport.model_validate(detail)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in ("detail", *first["loc"]))
        raise RuleViolation(f"{first['msg']}", field=where) from None


def record_nonconformance(
    session: Session, report: NonConformanceReport, now: int, actor: str
) -> bool:
    """Record ``report`` here, linked to its order (and the serial its part is, if registered);
    False when its ncr_id was recorded before."""
    serial = session.get(Serial, report.part_id)
    order_id = report.order_id
    if serial is not None and order_id is None:
        order_id = serial.order_id
    linked_serial = serial.serial if serial is not None and serial.order_id == order_id else None
    inserted = session.execute(
        pg_insert(NonConformance)
        .values(
            ncr_id=report.ncr_id,
            order_id=order_id,
            serial=linked_serial,
            site=report.site,
            line=report.line,
            station=report.station,
            part_id=report.part_id,
            defect_code=report.defect_code,
            detected_at=report.detected_at,
            report=report.model_dump(mode="json"),
            recorded_at=now,
            version=1,
        )
        .on_conflict_do_nothing(index_elements=[NonConformance.ncr_id])
        .returning(NonConformance.ncr_id)
    ).first()
    if inserted is None:
        return False
    session.add(
        TABLES.audit(
            at=now,
            actor=actor,
            action="RecordNonConformance",
            entity="nonconformance",
            entity_id=report.ncr_id,
            command_id=None,
            detail={"order_id": order_id, "serial": linked_serial, "station": report.station},
        )
    )
    return True


def receive_event(
    session: Session, ctx: Context, event: InboundEvent
) -> tuple[NonConformanceReceipt, int]:
    """A NonConformance event: recorded here once per ncr_id (201, then 200), or, at the cloud,
    sent on to the edge instance that executes its order (202)."""
    report = nonconformance_report(event)
    if session.get(NonConformance, report.ncr_id) is not None:
        return NonConformanceReceipt(
            ncr_id=report.ncr_id, handled_by=ctx.instance_id, duplicate=True
        ), 200
    order = None if report.order_id is None else session.get(WorkOrder, report.order_id)
    if order is not None and order.executed_at != ctx.instance_id and ctx.is_cloud:
        sent = enqueue(
            session,
            TABLES,
            order.executed_at,
            NONCONFORMANCE_RECEIVED,
            report.model_dump(mode="json"),
            dedup_key=domain.document_id("NCR", report.ncr_id),
        )
        return NonConformanceReceipt(
            ncr_id=report.ncr_id, handled_by=order.executed_at, duplicate=not sent
        ), 202
    recorded = record_nonconformance(session, report, ctx.clock(), actor=event.source)
    receipt = NonConformanceReceipt(
        ncr_id=report.ncr_id, handled_by=ctx.instance_id, duplicate=not recorded
    )
    return receipt, 201 if recorded else 200


def dispose_nonconformance(
    session: Session, ctx: Context, ncr_id: str, command: DisposeNonConformance
) -> tuple[NonConformanceView, Change]:
    """REWORK adds a rework operation at the kind of the station that found the defect, after
    the operation at fault (or one more part to an open one there); SCRAP adds the part to the
    order's scrap; USE_AS_IS closes the non-conformance."""
    nc = session.get(NonConformance, ncr_id, with_for_update=True)
    if nc is None:
        raise NotFound(f"no non-conformance {ncr_id} is recorded here", field="ncr_id")
    order = None
    if nc.order_id is not None:
        order = session.get(WorkOrder, nc.order_id, with_for_update=True)
        if order is not None:
            _runs_here(ctx, order)
    check_version(f"non-conformance {ncr_id}", nc.version, command.expected_version)
    if nc.disposition is not None:
        raise RuleViolation(
            f"non-conformance {ncr_id} was disposed already ({nc.disposition})",
            field="disposition",
        )
    disposition = command.disposition
    if disposition is not Disposition.USE_AS_IS and order is None:
        raise RuleViolation(
            f"{disposition.value} needs the order, and non-conformance {ncr_id} names none "
            "released here",
            field="disposition",
        )
    now = ctx.clock()
    touched: list[Operation] = []
    order_changed = False
    if disposition is Disposition.REWORK:
        touched.append(_add_rework(session, ctx, order, nc))
        nc.rework_operation_no = touched[0].operation_no
        order_changed = _update_order_status(session, ctx, order, now)
    elif disposition is Disposition.SCRAP:
        order.nonconformance_scrap = _add(order.nonconformance_scrap, 1)
        order.updated_at = now
        order_changed = True
    nc.disposition = disposition.value
    nc.note = command.note
    nc.disposed_by = command.actor
    nc.disposed_at = now
    if order is not None:
        _replicate(session, ctx, order, touched, order_changed)
    session.flush()
    return nonconformance_view(nc), Change(
        "nonconformance",
        ncr_id,
        {"disposition": disposition.value, "rework_operation_no": nc.rework_operation_no},
    )


def _add_rework(session: Session, ctx: Context, order: WorkOrder, nc: NonConformance) -> Operation:
    if order.status == ExecutionStatus.COMPLETED.value:
        raise RuleViolation(
            f"order {order.order_id} is completed; its parts are reworked on a new order",
            field="disposition",
        )
    kind = ctx.layout.station_kind(nc.site, nc.line, nc.station)
    if kind is None:
        raise RuleViolation(
            f"station {nc.site}/{nc.line}/{nc.station} is not in the plant config, so its kind "
            "(where to rework) is unknown",
            field="disposition",
        )
    steps = [_step(op) for op in order.operations]
    at_fault = domain.operation_at_fault(steps, nc.station)
    plan = domain.plan_rework(steps, at_fault, kind)
    if plan.reopen is not None:
        op = _operation(order, plan.reopen)
        op.planned_quantity = _add(op.planned_quantity, 1)
        return op
    op = new_operation(
        order,
        plan.new,
        description=f"Rework after operation {at_fault.operation_no}: {nc.defect_code}"[:1024],
        planned_quantity=1.0,
    )
    order.operations.append(op)
    session.flush()
    return op


# ---- queries -----------------------------------------------------------------------------------


def get_order(session: Session, order_id: str) -> WorkOrderView:
    order = session.get(WorkOrder, order_id)
    if order is None:
        raise NotFound(f"no order {order_id} has been released here", field="order_id")
    return order_view(order)


def dispatch_query(
    site: str | ColumnElement[str],
    line: str | ColumnElement[str],
    station_kind: str | ColumnElement[str] | None,
    limit: int | ColumnElement[int],
) -> Select:
    """READY, RUNNING and PAUSED operations of a line (of one station kind), by priority, then
    planned start, then order: one scan of a partial index, already in that order."""
    query = (
        select(
            Operation.order_id,
            Operation.operation_no,
            Operation.material_id,
            Operation.description,
            Operation.station_kind,
            Operation.status,
            Operation.planned_quantity,
            Operation.counted_good,
            Operation.scrap_quantity,
            Operation.priority,
            Operation.planned_start,
            Operation.version,
        )
        .where(Operation.site == site, Operation.line == line, text(OPEN_OPERATION))
        .order_by(
            Operation.priority,
            Operation.planned_start,
            Operation.order_id,
            Operation.operation_no,
        )
        .limit(limit)
    )
    if station_kind is not None:
        query = query.where(Operation.station_kind == station_kind)
    return query


def _dispatch_kind(layout: PlantLayout, site: str, line: str, station: str | None) -> str | None:
    """The station kind a station's list shows (None: the whole line); 404 for what the plant
    config does not have."""
    if not layout.has_line(site, line):
        raise NotFound(f"no line {site}/{line} in the plant config", field="line")
    if station is None:
        return None
    kind = layout.station_kind(site, line, station)
    if kind is None:
        raise NotFound(f"no station {site}/{line}/{station} in the plant config", "station")
    return kind


def dispatch_list(
    session: Session,
    layout: PlantLayout,
    site: str,
    line: str,
    station: str | None,
    limit: int,
) -> DispatchList:
    """The dispatch list of a line, or of a station (the operations of its kind)."""
    kind = _dispatch_kind(layout, site, line, station)
    rows = session.connection().execute(dispatch_query(site, line, kind, limit)).all()
    # Plain dicts validated as one list (in pydantic's Rust core): a 500-item list costs a
    # third of building each item as a model.
    items = [
        {
            "order_id": order_id,
            "operation_no": operation_no,
            "material_id": material_id,
            "description": description,
            "station_kind": station_kind,
            "status": status,
            "open_quantity": domain.open_quantity(status, planned, counted_good, scrap),
            "priority": priority,
            "planned_start": planned_start,
            "version": version,
        }
        for (
            order_id,
            operation_no,
            material_id,
            description,
            station_kind,
            status,
            planned,
            counted_good,
            scrap,
            priority,
            planned_start,
            version,
        ) in rows
    ]
    return DispatchList.model_validate(
        {"site": site, "line": line, "station": station, "items": items}
    )


# Below 1e9 an open quantity of QUANTITY_DECIMALS (6) decimals has at most 15 significant
# digits: float8 -> numeric (15 digits) loses none, and they are the float's shortest repr.
_EXACT_QUANTITY_BELOW = 1e9
_WHOLE_QUANTITY_BELOW = 1e15  # a whole float8 below it: bigint exactly, pydantic writes "<n>.0"


def _open_quantity(
    planned: ColumnElement[float],
    counted_good: ColumnElement[float],
    scrap: ColumnElement[float],
    status: ColumnElement[str],
) -> tuple[ColumnElement[str | None], ColumnElement[Decimal | None], ColumnElement[bool]]:
    """``domain.open_quantity`` for PostgreSQL to write as pydantic writes the float: the same
    float subtraction, then either the JSON at once (0.0 and whole numbers, the usual case,
    without numeric arithmetic) or the value rounded in numeric for ``_float_json``; and
    whether that is exactly Python's. Not exact: 1e9 or more and not whole, not finite, or a
    tie at the 7th decimal (numeric rounds it away from zero, Python rounds the binary value)."""
    remaining = planned - counted_good - scrap
    nothing = or_(status == OperationStatus.COMPLETED.value, remaining <= literal(0.0, Float))
    whole = and_(
        remaining < literal(_WHOLE_QUANTITY_BELOW, Float), remaining == func.trunc(remaining)
    )
    at_once = case(
        (nothing, "0.0"),
        (whole, func.concat(cast(remaining, BigInteger), ".0")),
    )
    in_range = remaining < literal(_EXACT_QUANTITY_BELOW, Float)  # false for NaN and infinity
    left = case((or_(nothing, whole), None), (in_range, cast(remaining, Numeric)))
    tie = func.mod(left * 10**domain.QUANTITY_DECIMALS, 1) == literal(Decimal("0.5"), Numeric)
    exact = or_(nothing, whole, and_(in_range, ~tie))
    return at_once, func.round(left, domain.QUANTITY_DECIMALS), exact


def _float_json(rounded: ColumnElement[Decimal]) -> ColumnElement[str]:
    """A positive numeric of QUANTITY_DECIMALS decimals as pydantic writes the float:
    ``10.0``, ``0.25``, ``0.00001``, but ``1e-6``."""
    positional_from = literal(Decimal("0.00001"), Numeric)
    scale = 10**domain.QUANTITY_DECIMALS
    return case(
        (rounded == 0, "0.0"),
        (rounded < positional_from, func.concat(cast(rounded * scale, Integer), "e-6")),
        (rounded == func.trunc(rounded), func.concat(func.trunc(rounded), ".0")),
        else_=func.rtrim(cast(rounded, Text), "0"),
    )


@functools.cache
def dispatch_json_query(by_station_kind: bool) -> Select:
    """``dispatch_query``'s rows as the JSON of their ``DispatchItem`` list in one text value,
    written by PostgreSQL byte for byte as pydantic writes it (keys in the model's order, no
    spaces, strings escaped by ``to_json``), and whether every open quantity is exact.
    Parameters: site, line, limit and (``by_station_kind``) station_kind. Built once: building
    it costs more than PostgreSQL's run of it."""
    at_once, rounded, exact = _open_quantity(
        Operation.planned_quantity,
        Operation.counted_good,
        Operation.scrap_quantity,
        Operation.status,
    )
    op = (
        dispatch_query(
            bindparam("site", type_=String),
            bindparam("line", type_=String),
            bindparam("station_kind", type_=String) if by_station_kind else None,
            bindparam("limit", type_=Integer),
        )
        .add_columns(at_once.label("quantity_json"), rounded.label("rounded"), exact.label("exact"))
        .subquery("op")
    )  # under the LIMIT: computed once per row
    fields = {
        "order_id": func.to_json(op.c.order_id),
        "operation_no": op.c.operation_no,
        "material_id": func.to_json(op.c.material_id),
        "description": func.to_json(op.c.description),
        "station_kind": func.to_json(op.c.station_kind),
        "status": func.concat('"', op.c.status, '"'),  # an OperationStatus: nothing to escape
        "open_quantity": func.coalesce(op.c.quantity_json, _float_json(op.c.rounded)),
        "priority": op.c.priority,
        "planned_start": op.c.planned_start,
        "version": op.c.version,
    }
    assert list(fields) == list(DispatchItem.model_fields), "the JSON must follow DispatchItem"
    template = "{" + ",".join(f'"{name}":%s' for name in fields) + "}"
    item = func.format(literal(template, Text), *fields.values())
    in_order = (op.c.priority, op.c.planned_start, op.c.order_id, op.c.operation_no)
    return select(
        func.coalesce(func.string_agg(item, aggregate_order_by(literal(","), *in_order)), ""),
        func.coalesce(func.bool_and(op.c.exact), True),
    )


def dispatch_list_json(
    session: Session,
    layout: PlantLayout,
    site: str,
    line: str,
    station: str | None,
    limit: int,
) -> str:
    """``dispatch_list(...).model_dump_json()``, byte for byte, with PostgreSQL writing the
    items: rows, pydantic models and their JSON cost Python about 8 ms for 500 items, the
    JSON text from PostgreSQL a few. An open quantity PostgreSQL cannot write as Python would
    (see ``_open_quantity``) takes the pydantic path instead."""
    kind = _dispatch_kind(layout, site, line, station)
    params = {"site": site, "line": line, "limit": limit, "station_kind": kind}
    query = dispatch_json_query(kind is not None)
    items, exact = session.connection().execute(query, params).one()
    if not exact:
        return dispatch_list(session, layout, site, line, station, limit).model_dump_json()
    # The envelope from the model itself: site, line and station validated and written as before.
    empty = DispatchList(site=site, line=line, station=station, items=[]).model_dump_json()
    assert empty.endswith('"items":[]}')
    return f"{empty[:-2]}{items}]}}"


def get_serial(session: Session, order_id: str, serial: str) -> SerialView:
    known = session.get(Serial, serial)
    if known is None or known.order_id != order_id:
        raise NotFound(f"order {order_id} has no serial {serial}", field="serial")
    return SerialView(
        serial=serial, order_id=order_id, components=components(session, order_id, serial)
    )


def get_order_components(session: Session, order_id: str) -> GenealogyView:
    if session.get(WorkOrder, order_id) is None:
        raise NotFound(f"no order {order_id} has been released here", field="order_id")
    return GenealogyView(
        order_id=order_id, serial=None, components=components(session, order_id, None)
    )


def get_confirmations(session: Session, order_id: str) -> list[ConfirmationView]:
    if session.get(WorkOrder, order_id) is None:
        raise NotFound(f"no order {order_id} has been released here", field="order_id")
    rows = session.scalars(
        select(Confirmation)
        .where(Confirmation.order_id == order_id)
        .order_by(Confirmation.completed_at, Confirmation.operation_no)
    )
    return [confirmation_view(row) for row in rows]


def get_nonconformance(session: Session, ncr_id: str) -> NonConformanceView:
    nc = session.get(NonConformance, ncr_id)
    if nc is None:
        raise NotFound(f"no non-conformance {ncr_id} is recorded here", field="ncr_id")
    return nonconformance_view(nc)


def audit_entries(session: Session, entity: str, entity_id: str, limit: int) -> list[AuditEntry]:
    audit = TABLES.audit
    rows = session.scalars(
        select(audit)
        .where(audit.entity == entity, audit.entity_id == entity_id)
        .order_by(audit.id)
        .limit(limit)
    )
    return [
        AuditEntry(
            at=row.at,
            actor=row.actor,
            action=row.action,
            entity=row.entity,
            entity_id=row.entity_id,
            command_id=row.command_id,
            detail=row.detail,
        )
        for row in rows
    ]


# ---- the service -------------------------------------------------------------------------------


class _Addressed(BaseCommand):
    """A command with the resource it was sent to, for the command log: the same id and body
    sent to another order or station is another command, not a replay of the first."""

    target: str
    body: dict[str, Any]


def addressed(target: str, command: BaseCommand) -> _Addressed:
    return _Addressed(
        command_id=command.command_id,
        actor=command.actor,
        target=target,
        body=command.model_dump(mode="json"),
    )


class ProductionExecution:
    """The commands (each through the ``CommandRunner``: an ``Outcome`` with the response and
    status, the first one's again for a replay) and the queries."""

    def __init__(self, sessions: sessionmaker, context: Context) -> None:
        self.sessions = sessions
        self.context = context
        self.runner = CommandRunner(sessions, TABLES)

    def release(self, command: ReleaseOrder) -> Outcome:
        return self.runner.run(
            "ReleaseOrder",
            command,
            lambda s: release_order(s, self.context, command),
            status_code=201,
        )

    def _on_operation(self, kind, action, order_id: str, operation_no: int, command) -> Outcome:
        return self.runner.run(
            kind,
            addressed(f"orders/{order_id}/operations/{operation_no}", command),
            lambda s: action(s, self.context, order_id, operation_no, command),
        )

    def start(self, order_id: str, operation_no: int, command: StartOperation) -> Outcome:
        return self._on_operation(
            "StartOperation", start_operation, order_id, operation_no, command
        )

    def pause(self, order_id: str, operation_no: int, command: PauseOperation) -> Outcome:
        return self._on_operation(
            "PauseOperation", pause_operation, order_id, operation_no, command
        )

    def scrap(self, order_id: str, operation_no: int, command: ReportScrap) -> Outcome:
        return self._on_operation("ReportScrap", report_scrap, order_id, operation_no, command)

    def complete(self, order_id: str, operation_no: int, command: CompleteOperation) -> Outcome:
        return self._on_operation(
            "CompleteOperation", complete_operation, order_id, operation_no, command
        )

    def count(self, site: str, line: str, station: str, command: ReportPartCount) -> Outcome:
        return self.runner.run(
            "ReportPartCount",
            addressed(f"stations/{site}/{line}/{station}", command),
            lambda s: count_parts(s, self.context, site, line, station, command),
        )

    def register_serial(self, order_id: str, command: RegisterSerial) -> Outcome:
        return self.runner.run(
            "RegisterSerial",
            addressed(f"orders/{order_id}", command),
            lambda s: register_serial(s, self.context, order_id, command),
            status_code=201,
        )

    def record_components(
        self, order_id: str, serial: str | None, command: RecordComponents
    ) -> Outcome:
        target = f"orders/{order_id}" + ("" if serial is None else f"/serials/{serial}")
        return self.runner.run(
            "RecordComponents",
            addressed(target, command),
            lambda s: record_components(s, self.context, order_id, serial, command),
        )

    def dispose(self, ncr_id: str, command: DisposeNonConformance) -> Outcome:
        return self.runner.run(
            "DisposeNonConformance",
            addressed(f"nonconformances/{ncr_id}", command),
            lambda s: dispose_nonconformance(s, self.context, ncr_id, command),
        )

    def receive_event(self, event: InboundEvent) -> tuple[NonConformanceReceipt, int]:
        try:
            with self.sessions.begin() as session:
                return receive_event(session, self.context, event)
        except IntegrityError:
            # The same event forwarded concurrently: the dedup key kept it to one message.
            with self.sessions.begin() as session:
                return receive_event(session, self.context, event)

    def read(self, query: Callable[[Session], Any]) -> Any:
        with self.sessions() as session:
            return query(session)
