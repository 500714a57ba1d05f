"""ERP and PLM documents: what comes in (orders, master data, BOM, routing, inventory) and what
goes out (production confirmations, order status changes, non-conformance reports).

Every document carries its ``document_id`` and a ``revision`` so the router can be idempotent
and let a newer revision supersede an older one.
"""

from __future__ import annotations

import json
from enum import StrEnum
from typing import Annotated, Any, NamedTuple

from pydantic import Field, FiniteFloat, model_validator

from mes_domain.contracts import (
    Contract,
    Description,
    EpochMillis,
    InspectionResult,
    ScheduledMillis,
    ShortText,
    StrictModel,
)
from mes_domain.ids import Identifier, unique_by

Quantity = Annotated[FiniteFloat, Field(gt=0)]
NonNegativeQuantity = Annotated[FiniteFloat, Field(ge=0)]
UnitOfMeasure = Annotated[str, Field(min_length=1, max_length=8)]


class SourceSystem(StrEnum):
    ERP = "ERP"
    PLM = "PLM"
    MES = "MES"


class EnterpriseDocument(Contract):
    source_system: SourceSystem
    document_id: ShortText
    revision: Annotated[int, Field(ge=0)]
    issued_at: EpochMillis


class OrderStatus(StrEnum):
    RELEASED = "RELEASED"
    ON_HOLD = "ON_HOLD"
    CANCELLED = "CANCELLED"
    COMPLETED = "COMPLETED"


class ProductionOrder(EnterpriseDocument):
    order_id: ShortText
    material_id: ShortText
    quantity: Quantity
    uom: UnitOfMeasure
    site: Identifier
    line: Identifier | None = None
    planned_start: ScheduledMillis
    planned_end: ScheduledMillis
    status: OrderStatus = OrderStatus.RELEASED
    bom_id: ShortText | None = None
    routing_id: ShortText | None = None

    @model_validator(mode="after")
    def _ends_after_start(self) -> ProductionOrder:
        if self.planned_end <= self.planned_start:
            raise ValueError("planned_end must be after planned_start")
        return self


class MaterialType(StrEnum):
    RAW = "RAW"
    SEMI_FINISHED = "SEMI_FINISHED"
    FINISHED = "FINISHED"
    PACKAGING = "PACKAGING"
    SPARE = "SPARE"


class MaterialMaster(EnterpriseDocument):
    material_id: ShortText
    description: Description
    material_type: MaterialType
    base_uom: UnitOfMeasure


class BomItem(StrictModel):
    position: Annotated[int, Field(ge=1)]
    component_id: ShortText
    quantity: Quantity
    uom: UnitOfMeasure


class BillOfMaterials(EnterpriseDocument):
    bom_id: ShortText
    material_id: ShortText
    base_quantity: Quantity = 1.0
    items: Annotated[list[BomItem], Field(min_length=1), unique_by("position", "BOM position")]


class WorkInstruction(StrictModel):
    step: Annotated[int, Field(ge=1)]
    text: Annotated[str, Field(min_length=1, max_length=4000)]
    attachment_uri: Annotated[str, Field(max_length=1024)] | None = None


class Operation(StrictModel):
    operation_no: Annotated[int, Field(ge=1)]
    description: Description
    station_kind: ShortText
    standard_time_s: Annotated[FiniteFloat, Field(gt=0)]
    work_instructions: Annotated[
        list[WorkInstruction], unique_by("step", "work instruction step")
    ] = []


class Routing(EnterpriseDocument):
    """The bill of process: the operations that make a material, with work instructions."""

    routing_id: ShortText
    material_id: ShortText
    operations: Annotated[
        list[Operation], Field(min_length=1), unique_by("operation_no", "operation number")
    ]


class MaterialConsumption(StrictModel):
    material_id: ShortText
    quantity: NonNegativeQuantity
    uom: UnitOfMeasure


class ProductionConfirmation(EnterpriseDocument):
    """Outbound to ERP: what a station produced and consumed against an order."""

    order_id: ShortText
    operation_no: Annotated[int, Field(ge=1)] | None = None
    site: Identifier
    line: Identifier
    station: Identifier
    good_quantity: NonNegativeQuantity
    scrap_quantity: NonNegativeQuantity
    materials_consumed: list[MaterialConsumption] = []
    labour_time_s: NonNegativeQuantity = 0.0
    # Actual start and finish, and the machine's running time (pauses excluded); optional, so
    # confirmations from systems that do not track them stay valid.
    started_at: EpochMillis | None = None
    finished_at: EpochMillis | None = None
    machine_time_s: NonNegativeQuantity | None = None
    final: bool = False

    @model_validator(mode="after")
    def _finishes_after_start(self) -> ProductionConfirmation:
        if (
            self.started_at is not None
            and self.finished_at is not None
            and self.finished_at < self.started_at
        ):
            raise ValueError("finished_at must not be before started_at")
        return self


class DefectSource(StrEnum):
    VISION = "VISION"
    MANUAL = "MANUAL"
    TEST = "TEST"


class NonConformanceReport(EnterpriseDocument):
    """Outbound to PLM (and ERP): a part that failed inspection."""

    ncr_id: ShortText
    site: Identifier
    line: Identifier
    station: Identifier
    part_id: ShortText
    order_id: ShortText | None = None
    defect_code: ShortText
    description: Description
    detected_at: EpochMillis
    source: DefectSource
    inspection: InspectionResult | None = None


class InventoryAvailability(EnterpriseDocument):
    """Inbound from ERP: unrestricted stock of a material at a site (and storage location).

    ``revision`` counts the snapshots of one stock position, so a late snapshot never replaces
    a newer one."""

    material_id: ShortText
    site: Identifier
    storage_location: ShortText | None = None
    available_quantity: NonNegativeQuantity
    uom: UnitOfMeasure


class ExecutionStatus(StrEnum):
    """Where MES is with an order; reported back to ERP (``OrderStatus`` is what ERP sends)."""

    RELEASED = "RELEASED"
    IN_PROGRESS = "IN_PROGRESS"
    ON_HOLD = "ON_HOLD"
    COMPLETED = "COMPLETED"
    CANCELLED = "CANCELLED"


class OrderStatusChanged(EnterpriseDocument):
    """Outbound to ERP: an order changed its execution status on the shop floor."""

    order_id: ShortText
    site: Identifier
    line: Identifier | None = None
    previous_status: ExecutionStatus | None = None
    status: ExecutionStatus
    changed_at: EpochMillis
    reason: Description | None = None

    @model_validator(mode="after")
    def _is_a_change(self) -> OrderStatusChanged:
        if self.previous_status == self.status:
            raise ValueError(f"status {self.status.value} is not a change")
        return self


class EventSource(StrEnum):
    """EventBridge ``Source`` of outbound events: rules match on it."""

    ENTERPRISE = "mes.enterprise"
    QUALITY = "mes.quality"


class EventRoute(NamedTuple):
    source: EventSource
    detail_type: str


# Outbound events: the model, its EventBridge source and detail type. The Detail is the model's
# JSON plus ``schema_version`` (the contract version ``v``), as lambdas/quality_results sends.
OUTBOUND_EVENTS: dict[type[EnterpriseDocument], EventRoute] = {
    ProductionConfirmation: EventRoute(EventSource.ENTERPRISE, "ProductionConfirmation"),
    OrderStatusChanged: EventRoute(EventSource.ENTERPRISE, "OrderStatusChanged"),
    NonConformanceReport: EventRoute(EventSource.QUALITY, "NonConformance"),
    # The MES inventory service's availability, back to ERP (issue 16).
    InventoryAvailability: EventRoute(EventSource.ENTERPRISE, "InventoryAvailability"),
}


def event_detail(event: EnterpriseDocument) -> dict[str, Any]:
    """The EventBridge Detail of an outbound event: its fields and ``schema_version``."""
    return {"schema_version": event.v, **event.model_dump(mode="json")}


# PutEvents' limit per entry: "The maximum size for a PutEvents event entry is 256 KB"
# (EventBridge API reference, PutEvents; user guide, "Calculating PutEvents event entry size").
MAX_ENTRY_BYTES = 256 * 1024


class EventTooLarge(ValueError):
    pass


def to_event_entry(event_model: EnterpriseDocument, bus_name: str) -> dict[str, Any]:
    """The PutEvents entry of an outbound event (``OUTBOUND_EVENTS``); ``KeyError`` for a model
    that is not one, ``EventTooLarge`` past the entry limit."""
    route = OUTBOUND_EVENTS[type(event_model)]
    entry = {
        "Source": route.source.value,
        "DetailType": route.detail_type,
        "Detail": json.dumps(event_detail(event_model), sort_keys=True),
        "EventBusName": bus_name,
    }
    size = sum(len(str(value).encode()) for value in entry.values())
    if size > MAX_ENTRY_BYTES:
        raise EventTooLarge(f"{route.detail_type} {event_model.document_id}: {size} bytes")
    return entry


# The enterprise interface's store (lambdas/erp_plm_router writes it, the MES services read it):
# one DynamoDB item per business object with its newest revision, keyed (pk, "DOC"); the item's
# attributes are the document's fields and these bookkeeping attributes.
STORE_SORT_KEY = "DOC"
STORE_ITEM_METADATA = frozenset({"pk", "sk", "doc_type", "content_hash", "stored_at"})


def order_store_key(order_id: str) -> tuple[str, str]:
    return f"ORDER#{order_id}", STORE_SORT_KEY


def routing_store_key(routing_id: str) -> tuple[str, str]:
    return f"ROUTING#{routing_id}", STORE_SORT_KEY


def bom_store_key(bom_id: str) -> tuple[str, str]:
    return f"BOM#{bom_id}", STORE_SORT_KEY
