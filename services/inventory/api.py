"""The inventory's HTTP API: thin routes over ``InventoryService``. A command answers 200 with
its result; its replay (the same command id and body) answers the same again."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse

from mes_domain.enterprise import InventoryAvailability
from mes_domain.production import (
    ConsumptionView,
    GoodsIssue,
    GoodsReceipt,
    ReportConsumption,
    ReservationView,
    ReserveForOrder,
    StockView,
    Transfer,
    TransferView,
)
from services.common.commands import Outcome
from services.inventory.service import InventoryService

ERRORS = {
    404: {"description": "No such stock position, material or order"},
    409: {"description": "Command id reused with another body, or a stale expected_version"},
    422: {"description": "Invalid input or a rule refused it; detail names the field"},
}
Text = Annotated[str, Query(min_length=1, max_length=128)]


def _answer(outcome: Outcome) -> JSONResponse:
    return JSONResponse(outcome.response, status_code=outcome.status_code)


def inventory_router(service: InventoryService) -> APIRouter:
    router = APIRouter(tags=["inventory"], responses=ERRORS)

    @router.post("/receipts", response_model=StockView)
    def receive(command: GoodsReceipt) -> JSONResponse:
        """Goods receipt: adds to the lot's stock at the location."""
        return _answer(service.receive(command))

    @router.post("/issues", response_model=StockView)
    def issue(command: GoodsIssue) -> JSONResponse:
        """Goods issue: takes at most the position's unreserved quantity."""
        return _answer(service.issue(command))

    @router.post("/transfers", response_model=TransferView)
    def transfer(command: Transfer) -> JSONResponse:
        """Moves unreserved stock of a lot to another location of the site."""
        return _answer(service.transfer(command))

    @router.post("/reservations", response_model=ReservationView)
    def reserve(command: ReserveForOrder) -> JSONResponse:
        """Reserves an order's materials at its site, oldest lots first; as much as there is
        unreserved, the rest reported as ``shortfall``. Again for the same order: its
        requirements are topped up or released to the new quantities."""
        return _answer(service.reserve(command))

    @router.post("/consumptions", response_model=ConsumptionView)
    def consume(command: ReportConsumption) -> JSONResponse:
        """Production execution's backflush: takes the named lot or the oldest lots first, and
        releases the order's reservation by what it consumed."""
        return _answer(service.consume(command))

    @router.get("/stock", response_model=list[StockView])
    def stock(
        site: Text,
        material_id: Text | None = None,
        location: Text | None = None,
        lot: Text | None = None,
        limit: Annotated[int, Query(ge=1, le=5000)] = 500,
    ) -> list[StockView]:
        """Stock positions of a site with stock on hand, by location, material and lot."""
        return service.stock(site, material_id, location, lot, limit)

    @router.get("/availability/{site}/{material_id}", response_model=InventoryAvailability)
    def availability(site: str, material_id: str) -> InventoryAvailability:
        """The unreserved stock of a material at a site, as the ERP contract
        ``InventoryAvailability`` (the same document the bus gets on each change)."""
        return service.availability(site, material_id)

    @router.get("/reservations/{order_id}", response_model=ReservationView)
    def reservation(order_id: str) -> ReservationView:
        return service.reservation(order_id)

    return router
