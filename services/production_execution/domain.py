"""The rules of production execution (ISA-95 Part 3 work management), free of the database and
the web: how an operation moves, how its running time adds up, what status an order has, what
a completion consumes and what its confirmation says. Plain functions over dataclasses and the
``mes_domain`` models; ``service.py`` applies them to the tables."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from enum import StrEnum

from mes_domain.enterprise import (
    BillOfMaterials,
    ExecutionStatus,
    MaterialConsumption,
    ProductionConfirmation,
    Routing,
    SourceSystem,
)
from mes_domain.production import ConfirmationView, MaterialRequirement, OperationStatus
from services.common.errors import RuleViolation

CLOUD = "cloud"  # the instance id of the cloud instance (services.common.settings)

# Operations a station can work on: what the dispatch list shows.
OPEN_STATUSES = (OperationStatus.READY, OperationStatus.RUNNING, OperationStatus.PAUSED)

# Quantities are rounded to this many decimals, so 3 x 0.1 is 0.3 in ERP and inventory.
QUANTITY_DECIMALS = 6


class Action(StrEnum):
    START = "start"  # READY -> RUNNING, or PAUSED -> RUNNING (resume)
    PAUSE = "pause"
    COMPLETE = "complete"
    SCRAP = "report scrap on"
    COUNT = "count parts of"


TRANSITIONS: dict[tuple[OperationStatus, Action], OperationStatus] = {
    (OperationStatus.READY, Action.START): OperationStatus.RUNNING,
    (OperationStatus.PAUSED, Action.START): OperationStatus.RUNNING,
    (OperationStatus.RUNNING, Action.PAUSE): OperationStatus.PAUSED,
    (OperationStatus.RUNNING, Action.COMPLETE): OperationStatus.COMPLETED,
    (OperationStatus.PAUSED, Action.COMPLETE): OperationStatus.COMPLETED,
    (OperationStatus.RUNNING, Action.SCRAP): OperationStatus.RUNNING,
    (OperationStatus.PAUSED, Action.SCRAP): OperationStatus.PAUSED,
    (OperationStatus.RUNNING, Action.COUNT): OperationStatus.RUNNING,
}


def next_status(status: OperationStatus, action: Action) -> OperationStatus:
    """The status after ``action``; a ``RuleViolation`` (field ``status``) when it may not."""
    try:
        return TRANSITIONS[(status, action)]
    except KeyError:
        allowed = " or ".join(sorted(s.value for (s, a) in TRANSITIONS if a is action))
        raise RuleViolation(
            f"cannot {action.value} an operation that is {status.value}, only a {allowed} one",
            field="status",
        ) from None


# ---- running time ------------------------------------------------------------------------------


@dataclass(frozen=True)
class RunTime:
    """An operation's clock: when it first started, since when it runs (None while it does not),
    and the running time before that, pauses excluded."""

    started_at: int | None = None
    running_since: int | None = None
    run_time_s: float = 0.0

    def start(self, now: int) -> RunTime:
        return replace(self, started_at=self.started_at or now, running_since=now)

    def stop(self, now: int) -> RunTime:
        """Pause or completion: the time since the last start adds to the running time."""
        return replace(self, running_since=None, run_time_s=self.at(now))

    def at(self, now: int) -> float:
        """The running time at ``now`` (a clock that went back adds nothing, never less)."""
        if self.running_since is None:
            return self.run_time_s
        return self.run_time_s + max(0, now - self.running_since) / 1000


# ---- sequencing --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Step:
    """An operation as the sequencing rules see it. ``follows``: the operation that must
    complete before this one is READY (the previous routing step, or for a rework operation the
    one it reworks)."""

    operation_no: int
    follows: int | None
    status: OperationStatus
    station_kind: str = ""
    station: str | None = None
    started_at: int | None = None
    rework: bool = False


def routing_steps(routing: Routing) -> list[Step]:
    """The operations of a newly released order: the routing's steps in operation-number order,
    each following the one before; the first is READY."""
    ordered = sorted(routing.operations, key=lambda op: op.operation_no)
    return [
        Step(
            operation_no=op.operation_no,
            follows=None if i == 0 else ordered[i - 1].operation_no,
            status=OperationStatus.READY if i == 0 else OperationStatus.PENDING,
            station_kind=op.station_kind,
        )
        for i, op in enumerate(ordered)
    ]


def ready_after(completed_no: int, steps: Iterable[Step]) -> list[int]:
    """PENDING -> READY: the operations waiting for the one that just completed."""
    return [
        s.operation_no
        for s in steps
        if s.follows == completed_no and s.status is OperationStatus.PENDING
    ]


def consumes_components(step: Step) -> bool:
    """The routing's first operation consumes the bill of materials. ERP's routings do not say
    which step takes which component, and SAP's rule for unallocated components is the same:
    they are allocated to the first operation."""
    return step.follows is None and not step.rework


def order_status(statuses: Iterable[OperationStatus]) -> ExecutionStatus:
    """RELEASED until an operation starts, IN_PROGRESS until all are completed, then COMPLETED.
    Operations never move back, so neither does the order."""
    statuses = list(statuses)
    if statuses and all(s is OperationStatus.COMPLETED for s in statuses):
        return ExecutionStatus.COMPLETED
    if any(s not in (OperationStatus.PENDING, OperationStatus.READY) for s in statuses):
        return ExecutionStatus.IN_PROGRESS
    return ExecutionStatus.RELEASED


def open_quantity(
    status: OperationStatus, planned: float, counted_good: float, scrap: float
) -> float:
    """What is left to make, as the dispatch list shows it: the plan less what the station has
    counted good and what was scrapped."""
    if status == OperationStatus.COMPLETED:  # a StrEnum: the column's string compares too
        return 0.0
    return round(max(0.0, planned - counted_good - scrap), QUANTITY_DECIMALS)


# ---- rework ------------------------------------------------------------------------------------


def operation_at_fault(steps: Sequence[Step], station: str) -> Step:
    """The operation a non-conformance found at ``station`` concerns: the latest that ran at that
    station; else the latest that started anywhere; else the first."""
    started = [s for s in steps if s.started_at is not None]
    at_station = [s for s in started if s.station == station]
    for candidates in (at_station, started):
        if candidates:
            return max(candidates, key=lambda s: (s.started_at, s.operation_no))
    return min(steps, key=lambda s: s.operation_no)


@dataclass(frozen=True)
class ReworkPlan:
    """A REWORK disposition either adds a part to an open rework operation right after the
    faulty one (``reopen``), or adds a new operation (``new``)."""

    reopen: int | None
    new: Step | None


def plan_rework(steps: Sequence[Step], at_fault: Step, station_kind: str) -> ReworkPlan:
    """One more part to rework at ``station_kind`` after ``at_fault``: an open rework operation
    of that kind after it takes it, else a new one follows it (READY at once when ``at_fault`` is
    complete). It does not hold up the rest of the routing: only its own part waits for it."""
    for step in steps:
        if (
            step.rework
            and step.follows == at_fault.operation_no
            and step.station_kind == station_kind
            and step.status is not OperationStatus.COMPLETED
        ):
            return ReworkPlan(reopen=step.operation_no, new=None)
    ready = at_fault.status is OperationStatus.COMPLETED
    return ReworkPlan(
        reopen=None,
        new=Step(
            operation_no=max(s.operation_no for s in steps) + 1,
            follows=at_fault.operation_no,
            status=OperationStatus.READY if ready else OperationStatus.PENDING,
            station_kind=station_kind,
            rework=True,
        ),
    )


# ---- materials ---------------------------------------------------------------------------------


def _per_component(bom: BillOfMaterials, quantity: float) -> list[tuple[str, float, str]]:
    """Each component's quantity for ``quantity`` of the BOM's material (component quantity x
    quantity / base_quantity), one entry per component; a component listed twice with two units
    of measure is a BOM this service cannot add up."""
    totals: dict[str, list] = {}
    for i, item in enumerate(bom.items):
        share = item.quantity * quantity / bom.base_quantity
        if item.component_id in totals:
            total = totals[item.component_id]
            if total[1] != item.uom:
                raise RuleViolation(
                    f"component {item.component_id} is listed in {total[1]} and in {item.uom}",
                    field=f"bom.items[{i}].uom",
                )
            total[0] += share
        else:
            totals[item.component_id] = [share, item.uom]
    return [
        (component, round(total, QUANTITY_DECIMALS), uom)
        for component, (total, uom) in totals.items()
    ]


def backflush(bom: BillOfMaterials | None, good_quantity: float) -> list[MaterialConsumption]:
    """The components a completion consumes: component quantity x good / base_quantity."""
    if bom is None or good_quantity <= 0:
        return []
    return [
        MaterialConsumption(material_id=component, quantity=quantity, uom=uom)
        for component, quantity, uom in _per_component(bom, good_quantity)
        if quantity > 0
    ]


def requirements(bom: BillOfMaterials, order_quantity: float) -> list[MaterialRequirement]:
    """What a released order reserves: the backflush of its whole quantity."""
    return [
        MaterialRequirement(material_id=component, quantity=quantity, uom=uom)
        for component, quantity, uom in _per_component(bom, order_quantity)
        if quantity > 0
    ]


# ---- confirmations -----------------------------------------------------------------------------


def confirmation(
    *,
    order_id: str,
    operation_no: int,
    station: str,
    good_quantity: float,
    scrap_quantity: float,
    run_time: RunTime,
    completed_at: int,
    labour_time_s: float | None,
    materials: list[MaterialConsumption],
    final: bool,
) -> ConfirmationView:
    """A completed operation's confirmation: yield, scrap, actual start and end, machine time
    (its running time) and labour time (the operator's figure, else the machine time), the
    materials it consumed, and ``final`` when it completes the order."""
    machine_time_s = round(run_time.run_time_s, 3)
    return ConfirmationView(
        document_id=document_id("CONF", order_id, str(operation_no)),
        order_id=order_id,
        operation_no=operation_no,
        station=station,
        good_quantity=good_quantity,
        scrap_quantity=round(scrap_quantity, QUANTITY_DECIMALS),
        materials_consumed=materials,
        started_at=run_time.started_at if run_time.started_at is not None else completed_at,
        completed_at=completed_at,
        labour_time_s=machine_time_s if labour_time_s is None else labour_time_s,
        machine_time_s=machine_time_s,
        final=final,
    )


def production_confirmation(
    view: ConfirmationView, *, site: str, line: str, issued_at: int
) -> ProductionConfirmation:
    """The ERP event of a confirmation: yield, scrap, materials, actual times, labour and
    machine time."""
    return ProductionConfirmation(
        v=1,
        source_system=SourceSystem.MES,
        document_id=view.document_id,
        revision=0,
        issued_at=issued_at,
        order_id=view.order_id,
        operation_no=view.operation_no,
        site=site,
        line=line,
        station=view.station,
        good_quantity=view.good_quantity,
        scrap_quantity=view.scrap_quantity,
        materials_consumed=view.materials_consumed,
        labour_time_s=view.labour_time_s,
        started_at=view.started_at,
        finished_at=view.completed_at,
        machine_time_s=view.machine_time_s,
        final=view.final,
    )


# ---- identifiers -------------------------------------------------------------------------------

DOCUMENT_ID_MAX = 128  # ShortText
COMMAND_ID_MAX = 64  # mes_domain.production.CommandId
_COMMAND_ID = re.compile(r"[A-Za-z0-9._:-]+")


def _digest(text: str, length: int) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:length]


def document_id(prefix: str, *parts: str) -> str:
    """A deterministic document id such as ``CONF-<order>-<op>``, so a message sent twice is
    recognisably one; too long ones keep their start and end in a digest."""
    text = "-".join((prefix, *parts))
    if len(text) <= DOCUMENT_ID_MAX:
        return text
    return f"{text[: DOCUMENT_ID_MAX - 33]}~{_digest(text, 32)}"


def derived_command_id(prefix: str, *parts: str) -> str:
    """A deterministic command id for another service (``reserve:<order>``): a redelivery is a
    replay there. Parts that do not fit the command id pattern go in as a digest."""
    text = ":".join((prefix, *parts))
    if len(text) <= COMMAND_ID_MAX and _COMMAND_ID.fullmatch(text):
        return text
    return f"{prefix}:{_digest(text, COMMAND_ID_MAX - len(prefix) - 1)}"
