"""The HTTP API: thin routers over ``ProductionExecution``. A command's response is its
``Outcome``: a replayed command id gets the first response and status again."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query
from fastapi.responses import JSONResponse, Response

from mes_domain.production import (
    AuditEntry,
    CompleteOperation,
    ConfirmationView,
    DispatchList,
    DisposeNonConformance,
    GenealogyView,
    NonConformanceReceipt,
    NonConformanceView,
    OperationView,
    PauseOperation,
    RecordComponents,
    RegisterSerial,
    ReleaseOrder,
    ReportPartCount,
    ReportScrap,
    SerialView,
    StartOperation,
    WorkOrderView,
)
from services.common.commands import Outcome
from services.production_execution import service as ops
from services.production_execution.service import (
    MAX_DISPATCH_ITEMS,
    InboundEvent,
    ProductionExecution,
)

REPLAYED_HEADER = "Idempotent-Replayed"  # "true" when the response is a replay's

OrderId = Annotated[str, Path(min_length=1, max_length=128)]
OperationNo = Annotated[int, Path(ge=1)]
Name = Annotated[str, Path(min_length=1, max_length=128)]
Limit = Annotated[int, Query(ge=1, le=MAX_DISPATCH_ITEMS)]
ERRORS = {
    404: {"description": "No such order, operation, station, serial or non-conformance"},
    409: {
        "description": "A stale expected_version, a command id used for another command, or "
        "another instance executes the order"
    },
    422: {"description": "Invalid input, or a rule forbids it; detail: field and reason"},
}


def respond(outcome: Outcome) -> JSONResponse:
    return JSONResponse(
        outcome.response,
        status_code=outcome.status_code,
        headers={REPLAYED_HEADER: "true" if outcome.replayed else "false"},
    )


def _dispatch(body: str) -> Response:
    """The dispatch list's JSON as PostgreSQL wrote it (``ops.dispatch_list_json``): the hot
    path, so neither built as a model here nor validated against response_model by FastAPI
    (the OpenAPI document still declares ``DispatchList``)."""
    return Response(body, media_type="application/json")


def routers(service: ProductionExecution) -> list[APIRouter]:
    orders = APIRouter(tags=["orders"], responses=ERRORS)
    stations = APIRouter(tags=["stations"], responses=ERRORS)
    quality = APIRouter(tags=["quality"], responses=ERRORS)
    audit = APIRouter(tags=["audit"], responses=ERRORS)
    layout = service.context.layout

    @orders.post("/orders/release", status_code=201, response_model=WorkOrderView)
    def release(command: ReleaseOrder) -> JSONResponse:
        """Release an ERP production order to a line (at the cloud instance)."""
        return respond(service.release(command))

    @orders.get("/orders/{order_id}", response_model=WorkOrderView)
    def get_order(order_id: OrderId) -> WorkOrderView:
        return service.read(lambda s: ops.get_order(s, order_id))

    @orders.post("/orders/{order_id}/operations/{operation_no}/start", response_model=OperationView)
    def start(order_id: OrderId, operation_no: OperationNo, command: StartOperation):
        return respond(service.start(order_id, operation_no, command))

    @orders.post("/orders/{order_id}/operations/{operation_no}/pause", response_model=OperationView)
    def pause(order_id: OrderId, operation_no: OperationNo, command: PauseOperation):
        return respond(service.pause(order_id, operation_no, command))

    @orders.post("/orders/{order_id}/operations/{operation_no}/scrap", response_model=OperationView)
    def scrap(order_id: OrderId, operation_no: OperationNo, command: ReportScrap):
        return respond(service.scrap(order_id, operation_no, command))

    @orders.post(
        "/orders/{order_id}/operations/{operation_no}/complete", response_model=OperationView
    )
    def complete(order_id: OrderId, operation_no: OperationNo, command: CompleteOperation):
        """Complete the operation; ``good_quantity`` null takes the station's counted good."""
        return respond(service.complete(order_id, operation_no, command))

    @orders.get("/orders/{order_id}/confirmations", response_model=list[ConfirmationView])
    def confirmations(order_id: OrderId) -> list[ConfirmationView]:
        return service.read(lambda s: ops.get_confirmations(s, order_id))

    @orders.post("/orders/{order_id}/serials", status_code=201, response_model=SerialView)
    def register_serial(order_id: OrderId, command: RegisterSerial):
        return respond(service.register_serial(order_id, command))

    @orders.get("/orders/{order_id}/serials/{serial}", response_model=SerialView)
    def get_serial(order_id: OrderId, serial: Name) -> SerialView:
        return service.read(lambda s: ops.get_serial(s, order_id, serial))

    @orders.post("/orders/{order_id}/serials/{serial}/components", response_model=SerialView)
    def serial_components(order_id: OrderId, serial: Name, command: RecordComponents):
        """Genealogy: these material lots went into the serial."""
        return respond(service.record_components(order_id, serial, command))

    @orders.post("/orders/{order_id}/components", response_model=GenealogyView)
    def order_components(order_id: OrderId, command: RecordComponents):
        """Genealogy: these material lots went into the order's lot."""
        return respond(service.record_components(order_id, None, command))

    @orders.get("/orders/{order_id}/components", response_model=GenealogyView)
    def get_order_components(order_id: OrderId) -> GenealogyView:
        return service.read(lambda s: ops.get_order_components(s, order_id))

    @stations.get("/dispatch/{site}/{line}", response_model=DispatchList)
    def line_dispatch(site: Name, line: Name, limit: Limit = 50) -> Response:
        """READY, RUNNING and PAUSED operations of the line: priority, planned start, order."""
        return _dispatch(
            service.read(lambda s: ops.dispatch_list_json(s, layout, site, line, None, limit))
        )

    @stations.get("/dispatch/{site}/{line}/{station}", response_model=DispatchList)
    def station_dispatch(site: Name, line: Name, station: Name, limit: Limit = 50) -> Response:
        """The line's dispatch list, operations of the station's kind only."""
        return _dispatch(
            service.read(lambda s: ops.dispatch_list_json(s, layout, site, line, station, limit))
        )

    @stations.post("/stations/{site}/{line}/{station}/counts", response_model=OperationView)
    def counts(site: Name, line: Name, station: Name, command: ReportPartCount):
        """Part counts of the station: to the operation running there."""
        return respond(service.count(site, line, station, command))

    @quality.post(
        "/events",
        status_code=201,
        response_model=NonConformanceReceipt,
        responses={
            200: {"description": "That ncr_id was recorded before", "model": NonConformanceReceipt},
            202: {"description": "Sent on to the instance that executes the order"},
        },
    )
    def events(event: InboundEvent) -> JSONResponse:
        """EventBridge events: a ``mes.quality`` ``NonConformance`` is recorded once per ncr_id
        and linked to its order and serial."""
        receipt, status = service.receive_event(event)
        return JSONResponse(receipt.model_dump(mode="json"), status_code=status)

    @quality.get("/nonconformances/{ncr_id}", response_model=NonConformanceView)
    def get_nonconformance(ncr_id: Name) -> NonConformanceView:
        return service.read(lambda s: ops.get_nonconformance(s, ncr_id))

    @quality.post("/nonconformances/{ncr_id}/disposition", response_model=NonConformanceView)
    def dispose(ncr_id: Name, command: DisposeNonConformance):
        return respond(service.dispose(ncr_id, command))

    @audit.get("/audit", response_model=list[AuditEntry])
    def audit_trail(
        entity: Annotated[str, Query(min_length=1, max_length=32)],
        entity_id: Annotated[str, Query(min_length=1, max_length=300)],
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    ) -> list[AuditEntry]:
        """Who did what to a record, oldest first (entity: order, operation as
        ``<order>/<operation_no>``, serial, nonconformance)."""
        return service.read(lambda s: ops.audit_entries(s, entity, entity_id, limit))

    return [orders, stations, quality, audit]
