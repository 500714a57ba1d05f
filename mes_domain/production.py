"""ISA-95 Part 3 work management and inventory: the commands and views of the production
execution and inventory services (``services/``), and the messages their instances exchange.

Every command carries the client's ``command_id``: the same id again returns the first result and
changes nothing; the same id with another body is refused. Commands that change one record may
carry the ``expected_version`` the client last saw, for optimistic concurrency. ``actor`` says who
did it, for the audit trail.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any

from pydantic import Field, model_validator

from mes_domain.contracts import (
    Description,
    EpochMillis,
    ScheduledMillis,
    ShortText,
    StrictModel,
)
from mes_domain.enterprise import (
    BillOfMaterials,
    ExecutionStatus,
    MaterialConsumption,
    NonNegativeQuantity,
    ProductionOrder,
    Quantity,
    Routing,
    UnitOfMeasure,
)
from mes_domain.ids import Identifier, unique_by

# A client-chosen idempotency key, e.g. a UUID; printable, so it can appear in logs and URLs.
CommandId = Annotated[str, Field(min_length=8, max_length=64, pattern=r"^[A-Za-z0-9._:-]+$")]
Version = Annotated[int, Field(ge=1)]
Priority = Annotated[int, Field(ge=0, le=999)]  # lower runs first


class Command(StrictModel):
    command_id: CommandId
    actor: ShortText


class VersionedCommand(Command):
    expected_version: Version | None = None  # None: whatever the current version is


# ---- production execution ----------------------------------------------------------------------


class OperationStatus(StrEnum):
    PENDING = "PENDING"  # an earlier operation of the routing is not complete yet
    READY = "READY"  # on the dispatch list of the stations of its kind
    RUNNING = "RUNNING"
    PAUSED = "PAUSED"
    COMPLETED = "COMPLETED"


class ReleaseOrder(Command):
    """Release an ERP production order to a line, with its routing and bill of materials as the
    enterprise interface stored them."""

    order: ProductionOrder
    line: Identifier
    routing: Routing
    bom: BillOfMaterials | None = None
    priority: Priority = 500

    @model_validator(mode="after")
    def _documents_belong_to_the_order(self) -> ReleaseOrder:
        order = self.order
        if order.line is not None and order.line != self.line:
            raise ValueError(f"order {order.order_id} is planned for line {order.line}")
        if order.routing_id is not None and self.routing.routing_id != order.routing_id:
            raise ValueError(
                f"routing {self.routing.routing_id} is not the order's routing {order.routing_id}"
            )
        if self.routing.material_id != order.material_id:
            raise ValueError(
                f"routing {self.routing.routing_id} makes {self.routing.material_id}, "
                f"the order makes {order.material_id}"
            )
        if self.bom is not None:
            if order.bom_id is not None and self.bom.bom_id != order.bom_id:
                raise ValueError(f"bom {self.bom.bom_id} is not the order's bom {order.bom_id}")
            if self.bom.material_id != order.material_id:
                raise ValueError(
                    f"bom {self.bom.bom_id} is for {self.bom.material_id}, "
                    f"the order makes {order.material_id}"
                )
        return self


class ReleaseStoredOrder(Command):
    """Release an order as the enterprise interface stored it: the order, and the routing and
    bill of materials it names, are read from the store (``ReleaseOrder`` carries them)."""

    line: Identifier | None = None  # None: the line ERP planned it for
    priority: Priority = 500


class StartOperation(VersionedCommand):
    station: Identifier


class PauseOperation(VersionedCommand):
    reason: Description | None = None


class ReportScrap(VersionedCommand):
    quantity: Quantity
    reason_code: ShortText


class CompleteOperation(VersionedCommand):
    """Finish a running or paused operation. ``good_quantity`` None takes the good parts the
    station's counters reported while it ran (completion by part counts)."""

    good_quantity: NonNegativeQuantity | None = None
    scrap_quantity: NonNegativeQuantity = 0.0
    labour_time_s: NonNegativeQuantity | None = None  # None: the operation's running time


class LotUsage(StrictModel):
    material_id: ShortText
    lot: ShortText
    quantity: Quantity
    uom: UnitOfMeasure


class RegisterSerial(Command):
    serial: ShortText


class RecordComponents(Command):
    """Genealogy: these material lots went into this serial (or into the order's lot)."""

    components: Annotated[list[LotUsage], Field(min_length=1, max_length=200)]


class Disposition(StrEnum):
    REWORK = "REWORK"
    SCRAP = "SCRAP"
    USE_AS_IS = "USE_AS_IS"


class DisposeNonConformance(VersionedCommand):
    disposition: Disposition
    note: Description | None = None


class OperationView(StrictModel):
    order_id: ShortText
    operation_no: int
    description: str
    station_kind: str
    station: Identifier | None
    status: OperationStatus
    planned_quantity: float  # the order's quantity; a rework operation's: the parts to rework
    good_quantity: float
    scrap_quantity: float
    counted_good: float  # from the station's part counts while the operation ran
    started_at: EpochMillis | None
    completed_at: EpochMillis | None
    # Running time up to the last pause or completion (pauses excluded); while RUNNING, add the
    # time since running_since. So a view does not change while nothing happens.
    run_time_s: float
    running_since: EpochMillis | None = None
    follows: int | None = None  # the operation that must complete before this one is READY
    rework: bool = False  # added by a REWORK disposition, not a step of the routing
    version: Version


class WorkOrderView(StrictModel):
    order_id: ShortText
    site: Identifier
    line: Identifier
    material_id: ShortText
    quantity: float
    uom: str
    status: ExecutionStatus
    priority: Priority
    planned_start: int
    planned_end: int
    executed_at: Identifier  # the instance that runs it: "cloud" or an edge site's id
    version: Version
    operations: list[OperationView]
    nonconformance_scrap: float = 0.0  # parts scrapped by non-conformance dispositions


class DispatchItem(StrictModel):
    order_id: ShortText
    operation_no: int
    material_id: ShortText
    description: str
    station_kind: str
    status: OperationStatus
    open_quantity: float
    priority: Priority
    planned_start: int
    version: Version


class DispatchList(StrictModel):
    site: Identifier
    line: Identifier
    station: Identifier | None
    items: list[DispatchItem]


class SerialView(StrictModel):
    serial: ShortText
    order_id: ShortText
    components: list[LotUsage]


class NonConformanceView(StrictModel):
    ncr_id: ShortText
    order_id: ShortText | None
    station: Identifier
    part_id: ShortText
    defect_code: ShortText
    disposition: Disposition | None
    version: Version
    serial: ShortText | None = None  # the part_id, when it is a serial registered to the order
    rework_operation_no: int | None = None  # the operation a REWORK disposition added


class ReportPartCount(Command):
    """A station's part counts (``mes_domain.contracts.PartCount`` with a command id): good parts
    add to the counted good of the operation running at the station, bad ones to its scrap."""

    ts: EpochMillis
    good: Annotated[int, Field(ge=0)]
    bad: Annotated[int, Field(ge=0)]
    order_id: ShortText | None = None  # when the station knows it: must be the running order


class GenealogyView(StrictModel):
    """The material lots recorded into a serial, or into the order's lot (``serial`` None)."""

    order_id: ShortText
    serial: ShortText | None
    components: list[LotUsage]


class ConfirmationView(StrictModel):
    """One operation's production confirmation, with what the ERP event does not carry."""

    document_id: ShortText
    order_id: ShortText
    operation_no: int
    station: Identifier
    good_quantity: float
    scrap_quantity: float
    materials_consumed: list[MaterialConsumption]
    started_at: EpochMillis
    completed_at: EpochMillis
    labour_time_s: float
    machine_time_s: float  # the operation's running time, pauses excluded
    final: bool


class NonConformanceReceipt(StrictModel):
    """``POST /events``: where a non-conformance went. ``handled_by`` is the instance that
    records it (the one that runs its order); ``duplicate``: that ncr_id was recorded before."""

    ncr_id: ShortText
    handled_by: Identifier
    duplicate: bool


class AuditEntry(StrictModel):
    at: EpochMillis
    actor: str
    action: str
    entity: str
    entity_id: str
    command_id: str | None
    detail: dict[str, Any]


# ---- inventory ----------------------------------------------------------------------------------


class StockKey(StrictModel):
    site: Identifier
    location: ShortText
    material_id: ShortText
    lot: ShortText


class GoodsReceipt(Command):
    stock: StockKey
    quantity: Quantity
    uom: UnitOfMeasure


class GoodsIssue(VersionedCommand):  # expected_version: the stock position's
    stock: StockKey
    quantity: Quantity
    uom: UnitOfMeasure
    reason: Description | None = None


class Transfer(VersionedCommand):  # expected_version: the source position's
    stock: StockKey
    to_location: ShortText
    quantity: Quantity
    uom: UnitOfMeasure

    @model_validator(mode="after")
    def _moves_somewhere(self) -> Transfer:
        if self.to_location == self.stock.location:
            raise ValueError(f"to_location {self.to_location} is where the stock already is")
        return self


class MaterialRequirement(StrictModel):
    material_id: ShortText
    quantity: Quantity
    uom: UnitOfMeasure


class ReserveForOrder(Command):
    order_id: ShortText
    site: Identifier
    requirements: Annotated[
        list[MaterialRequirement],
        Field(min_length=1, max_length=500),
        unique_by("material_id", "material"),
    ]


class ConsumedMaterial(StrictModel):
    material_id: ShortText
    quantity: Quantity
    uom: UnitOfMeasure
    lot: ShortText | None = None  # None: first in, first out over the site's lots


class ReportConsumption(Command):
    """Production execution's backflush of one completed operation (or one serial)."""

    order_id: ShortText
    operation_no: int
    site: Identifier
    materials: Annotated[list[ConsumedMaterial], Field(min_length=1, max_length=500)]


class StockView(StrictModel):
    site: Identifier
    location: ShortText
    material_id: ShortText
    lot: ShortText
    quantity: float
    reserved: float
    uom: str
    version: Version


class TransferView(StrictModel):
    source: StockView
    destination: StockView


class ReservedMaterial(StrictModel):
    """One material of an order's reservation. ``reserved`` is held for the order now;
    ``shortfall`` is what the site could not reserve (requested - consumed - reserved)."""

    material_id: ShortText
    uom: str
    requested: float
    consumed: float
    reserved: float
    shortfall: float


class ReservationView(StrictModel):
    order_id: ShortText
    site: Identifier
    materials: list[ReservedMaterial]


class LotConsumption(StrictModel):
    """Where a consumption took its material from: a lot at a location."""

    material_id: ShortText
    location: ShortText
    lot: ShortText
    quantity: float
    uom: str


class ConsumptionView(StrictModel):
    order_id: ShortText
    operation_no: int
    site: Identifier
    lots: list[LotConsumption]


# ---- between instances: the edge and the cloud, production execution and inventory ------------


class SyncMessage(StrictModel):
    """One change an instance makes, from its outbox to the other instance's inbox. ``sequence``
    counts the origin's messages from 1 without gaps: the inbox applies them in order, once."""

    origin: Identifier
    sequence: Annotated[int, Field(ge=1)]
    kind: ShortText
    payload: dict[str, Any]
    # The origin's clock: no future check here, so an edge clock running ahead never stalls sync.
    created_at: ScheduledMillis


MAX_SYNC_BATCH = 100


class SyncBatch(StrictModel):
    messages: Annotated[list[SyncMessage], Field(min_length=1, max_length=MAX_SYNC_BATCH)]

    @model_validator(mode="after")
    def _one_origin_in_order(self) -> SyncBatch:
        origins = {m.origin for m in self.messages}
        if len(origins) != 1:
            raise ValueError(f"a batch comes from one origin, not {sorted(origins)}")
        sequences = [m.sequence for m in self.messages]
        if sequences != list(range(sequences[0], sequences[0] + len(sequences))):
            raise ValueError("a batch's sequences are consecutive and ascending")
        return self


class SyncAck(StrictModel):
    """The highest sequence of ``origin`` the receiver has applied, all before it included."""

    origin: Identifier
    applied_through: Annotated[int, Field(ge=0)]
