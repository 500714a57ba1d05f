"""Release an order as the enterprise interface stored it: ERP sent the order, PLM or ERP the
routing and the bill of materials it names; the ERP/PLM router keeps each document's newest
revision in DynamoDB. ``POST /orders/{order_id}/release-stored`` reads them (at the cloud
instance, where the store is) and releases them as ``POST /orders/release`` would."""

from __future__ import annotations

from typing import Annotated, Any, Protocol

from fastapi import APIRouter, Path
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ValidationError

from mes_domain.enterprise import (
    STORE_ITEM_METADATA,
    BillOfMaterials,
    ProductionOrder,
    Routing,
    bom_store_key,
    order_store_key,
    routing_store_key,
)
from mes_domain.production import ReleaseOrder, ReleaseStoredOrder, WorkOrderView
from services.common.commands import Outcome
from services.common.errors import NotFound, RuleViolation
from services.production_execution.api import respond
from services.production_execution.service import (
    ProductionExecution,
    addressed,
    release_order,
)


class DocumentStore(Protocol):
    def get(self, table: str, key: tuple[str, str]) -> dict[str, Any] | None: ...


class StoreTables(BaseModel):
    orders: str
    products: str  # material masters and BOMs
    process_plans: str  # routings


def _document(store: DocumentStore, table: str, key: tuple[str, str], model, what: str, field):
    item = store.get(table, key)
    if item is None:
        raise NotFound(f"the enterprise interface has no {what}", field=field)
    fields = {k: v for k, v in item.items() if k not in STORE_ITEM_METADATA}
    try:
        return model.model_validate(fields)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise RuleViolation(
            f"the stored {what} is not valid any more ({where}: {first['msg']})", field=field
        ) from None


def release_of(
    store: DocumentStore, tables: StoreTables, order_id: str, command: ReleaseStoredOrder
) -> ReleaseOrder:
    """The ``ReleaseOrder`` of a stored order with its routing and BOM."""
    order = _document(
        store, tables.orders, order_store_key(order_id), ProductionOrder, f"order {order_id}",
        "order_id",
    )  # fmt: skip
    if order.routing_id is None:
        raise RuleViolation(
            f"order {order_id} names no routing; release it with its routing through "
            "POST /orders/release",
            field="order_id",
        )
    routing = _document(
        store, tables.process_plans, routing_store_key(order.routing_id), Routing,
        f"routing {order.routing_id} of order {order_id}", "order_id",
    )  # fmt: skip
    bom = None
    if order.bom_id is not None:
        bom = _document(
            store, tables.products, bom_store_key(order.bom_id), BillOfMaterials,
            f"bill of materials {order.bom_id} of order {order_id}", "order_id",
        )  # fmt: skip
    line = command.line or order.line
    if line is None:
        raise RuleViolation(f"ERP planned order {order_id} for no line: name one", field="line")
    try:
        return ReleaseOrder(
            command_id=command.command_id,
            actor=command.actor,
            order=order,
            line=line,
            routing=routing,
            bom=bom,
            priority=command.priority,
        )
    except ValidationError as exc:
        raise RuleViolation(
            f"the stored documents of order {order_id} do not fit together: "
            f"{exc.errors()[0]['msg']}",
            field="order_id",
        ) from None


def release_stored(
    service: ProductionExecution,
    store: DocumentStore,
    tables: StoreTables,
    order_id: str,
    command: ReleaseStoredOrder,
) -> Outcome:
    """Idempotent by the command id: a replay answers from the command log without reading the
    store again, so a newer revision stored meanwhile does not turn it into a conflict."""
    return service.runner.run(
        "ReleaseStoredOrder",
        addressed(f"orders/{order_id}", command),
        lambda session: release_order(
            session, service.context, release_of(store, tables, order_id, command)
        ),
        status_code=201,
    )


def stored_orders_router(
    service: ProductionExecution, store: DocumentStore, tables: StoreTables
) -> APIRouter:
    router = APIRouter(tags=["orders"])

    @router.post("/orders/{order_id}/release-stored", status_code=201, response_model=WorkOrderView)
    def release(
        order_id: Annotated[str, Path(min_length=1, max_length=128)], command: ReleaseStoredOrder
    ) -> JSONResponse:
        """Release an ERP order from the enterprise interface's store, with the routing and the
        bill of materials it names."""
        return respond(release_stored(service, store, tables, order_id, command))

    return router
