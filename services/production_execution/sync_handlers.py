"""What an instance does with the sync messages of its peer (``SyncMessage.kind``), for the
inbox (``services.common.outbox.apply_batch``): each runs in the inbox's transaction, and the
inbox applies each message once and in order. They are idempotent besides: an order released
twice, or an older view of an operation, changes nothing.

- at an edge instance: ``OrderReleased`` (the cloud released an order of its site) and
  ``NonConformanceReceived`` (a quality event about one of its orders);
- at the cloud: ``OrderChanged``, ``OperationChanged`` and ``SerialRecorded`` (the edge's
  orders, newest version kept) and ``Forward`` (an outbox message for the bus or inventory).
"""

from __future__ import annotations

import logging

from sqlalchemy import delete
from sqlalchemy.orm import Session

from mes_domain.enterprise import NonConformanceReport
from mes_domain.production import (
    GenealogyView,
    OperationView,
    ReleaseOrder,
    SyncMessage,
    WorkOrderView,
)
from services.common.outbox import Handler, enqueue
from services.production_execution.domain import Step
from services.production_execution.models import (
    TABLES,
    GenealogyLink,
    Serial,
    WorkOrder,
)
from services.production_execution.service import (
    BUS,
    FORWARD,
    INVENTORY,
    NONCONFORMANCE_RECEIVED,
    OPERATION_CHANGED,
    ORDER_CHANGED,
    ORDER_RELEASED,
    SERIAL_RECORDED,
    Forwarded,
    create_order,
    new_operation,
    record_nonconformance,
)

log = logging.getLogger(__name__)

FORWARDABLE = frozenset({BUS, INVENTORY})


def apply_order_released(session: Session, message: SyncMessage) -> None:
    """At the edge instance of the order's site: the order, to execute here."""
    command = ReleaseOrder.model_validate(message.payload)
    if session.get(WorkOrder, command.order.order_id) is not None:
        return
    create_order(session, command, where=command.order.site, now=message.created_at)
    session.flush()


def _mirrored_order(session: Session, order_id: str, message: SyncMessage) -> WorkOrder | None:
    order = session.get(WorkOrder, order_id, with_for_update=True)
    if order is None:
        # Orders are released here, so this is a bug elsewhere; holding up every later
        # message of the edge would not mend it.
        log.error(
            "%s from %s about order %s, which was not released here; skipped",
            message.kind,
            message.origin,
            order_id,
            extra={"origin": message.origin, "sequence": message.sequence},
        )
    return order


def _apply_operation(session: Session, order: WorkOrder, view: OperationView) -> None:
    """The edge's view of an operation, if newer than the one here; a rework operation the
    edge added is inserted."""
    op = next((o for o in order.operations if o.operation_no == view.operation_no), None)
    if op is not None and view.version <= op.version:
        return
    if op is None:
        step = Step(
            operation_no=view.operation_no,
            follows=view.follows,
            status=view.status,
            station_kind=view.station_kind,
            rework=view.rework,
        )
        op = new_operation(order, step, view.description, view.planned_quantity)
        order.operations.append(op)
    op.status = view.status.value
    op.station = view.station
    op.planned_quantity = view.planned_quantity
    op.good_quantity = view.good_quantity
    op.scrap_quantity = view.scrap_quantity
    op.counted_good = view.counted_good
    op.started_at = view.started_at
    op.completed_at = view.completed_at
    op.running_since = view.running_since
    op.run_time_s = view.run_time_s
    session.flush()
    if op.version != view.version:
        op.version = view.version  # set, not generated: the mirror carries the edge's version
        session.flush()


def apply_operation_changed(session: Session, message: SyncMessage) -> None:
    view = OperationView.model_validate(message.payload)
    order = _mirrored_order(session, view.order_id, message)
    if order is not None:
        _apply_operation(session, order, view)


def apply_order_changed(session: Session, message: SyncMessage) -> None:
    view = WorkOrderView.model_validate(message.payload)
    order = _mirrored_order(session, view.order_id, message)
    if order is None:
        return
    if view.version > order.version:
        order.status = view.status.value
        order.nonconformance_scrap = view.nonconformance_scrap
        order.updated_at = message.created_at
        order.version = view.version
        session.flush()
    for operation in view.operations:
        _apply_operation(session, order, operation)


def apply_serial_recorded(session: Session, message: SyncMessage) -> None:
    """The edge's genealogy of a serial (or order lot), whole: it replaces the one here."""
    view = GenealogyView.model_validate(message.payload)
    if _mirrored_order(session, view.order_id, message) is None:
        return
    if view.serial is not None and session.get(Serial, view.serial) is None:
        session.add(
            Serial(serial=view.serial, order_id=view.order_id, registered_at=message.created_at)
        )
        session.flush()
    session.execute(
        delete(GenealogyLink).where(
            GenealogyLink.order_id == view.order_id,
            GenealogyLink.serial.is_(None)
            if view.serial is None
            else GenealogyLink.serial == view.serial,
        )
    )
    for usage in view.components:
        session.add(
            GenealogyLink(
                order_id=view.order_id,
                serial=view.serial,
                material_id=usage.material_id,
                lot=usage.lot,
                quantity=usage.quantity,
                uom=usage.uom,
                recorded_at=message.created_at,
            )
        )
    session.flush()


def apply_forward(session: Session, message: SyncMessage) -> None:
    """At the cloud: the edge's message for the bus or inventory, into the outbox with the same
    dedup key, so it leaves once however often the edge sent it."""
    forwarded = Forwarded.model_validate(message.payload)
    if forwarded.destination not in FORWARDABLE:
        log.error(
            "Forward from %s to %s, which the cloud does not deliver; skipped",
            message.origin,
            forwarded.destination,
            extra={"origin": message.origin, "sequence": message.sequence},
        )
        return
    enqueue(
        session,
        TABLES,
        forwarded.destination,
        forwarded.kind,
        forwarded.payload,
        forwarded.dedup_key,
    )


def apply_nonconformance_received(session: Session, message: SyncMessage) -> None:
    """At the edge: a non-conformance of one of its orders, which the cloud received."""
    report = NonConformanceReport.model_validate(message.payload)
    record_nonconformance(session, report, message.created_at, actor=f"sync:{message.origin}")
    session.flush()


SYNC_HANDLERS: dict[str, Handler] = {
    ORDER_RELEASED: apply_order_released,
    ORDER_CHANGED: apply_order_changed,
    OPERATION_CHANGED: apply_operation_changed,
    SERIAL_RECORDED: apply_serial_recorded,
    FORWARD: apply_forward,
    NONCONFORMANCE_RECEIVED: apply_nonconformance_received,
}
