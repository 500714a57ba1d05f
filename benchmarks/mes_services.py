#!/usr/bin/env python3
"""MES production execution on PostgreSQL: operations per second (start plus complete) and the
dispatch-list latency of a line with 500 open orders, each against a baseline, in one run.

A private PostgreSQL cluster (``tests/postgres.py``: initdb on a loopback port, fsync off as in
the tests) holds one migrated database; the cloud instance's app (``build_app``, the demo
plant, JSON request logs formatted as in production and written to /dev/null) is driven by
``httpx.AsyncClient`` over ``httpx.ASGITransport`` in one event loop: each call goes through the
ASGI app as uvicorn would run it (middleware, routing, request validation, the sync endpoint on
the thread pool, the service, SQLAlchemy and psycopg to PostgreSQL, response validation and
JSON), but through no socket and no HTTP/1.1 parsing. One client, one call at a time.

1. **Dispatch list.** ``--orders`` orders (3 operations each) are released to
   berlin/body-line-1, so its dispatch list holds that many READY operations. Timed ``--calls``
   times each, interleaved: ``GET /dispatch/berlin/body-line-1?limit=500`` (the whole list) and
   the call as a station's screen makes it, without ``limit`` (the API's default page of 50);
   p50 and p99 of each against the goal p99 <= 20 ms. Baseline: the whole list built by
   per-row ORM loads (the line's order ids, then each order loaded and its operations lazily,
   filtered and sorted in Python), served by a route added to the same app and timed the same
   way, every ``--naive-every``-th round. The baseline must return the same list, byte for
   byte (the service's JSON is written by PostgreSQL, the baseline's by pydantic), and the page
   its head, or nothing is timed.
2. **Operations/s.** ``--throughput-orders`` orders on berlin/machining-line-1 (cnc, test,
   packaging), each operation started and completed at its station: one operation is a start
   plus a complete, each its own transaction with its audit entry, command log, outbox messages
   (confirmation, backflush, status) and optimistic version check. Baseline: the same commands
   on the service object directly (no HTTP, no request validation), orders alternating between
   the two paths.

Prints a table, ``figure:`` lines and one JSON line of the figures.

    .venv/bin/python benchmarks/mes_services.py [--orders 500] [--calls 400] [--naive-every 8]
        [--throughput-orders 100] [--quick]

``--quick``: 30 orders, 30 calls of each (10 of the baseline), 6 throughput orders (a smoke run in
seconds, its figures noisy).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
from fastapi import Response  # noqa: E402
from sqlalchemy import func, select  # noqa: E402
from sqlalchemy.orm import Session  # noqa: E402

from benchmarks.figures import figure  # noqa: E402
from mes_domain.enterprise import (  # noqa: E402
    BillOfMaterials,
    BomItem,
    Operation,
    ProductionOrder,
    Routing,
)
from mes_domain.production import (  # noqa: E402
    CompleteOperation,
    DispatchItem,
    DispatchList,
    OperationStatus,
    ReleaseOrder,
    StartOperation,
)
from services.common.logs import configure_logging  # noqa: E402
from services.common.migrations import upgrade_to_head  # noqa: E402
from services.production_execution import domain  # noqa: E402
from services.production_execution.app import MIGRATIONS_DIR, SERVICE, build_app  # noqa: E402
from services.production_execution.models import TABLES, Confirmation, WorkOrder  # noqa: E402
from services.production_execution.settings import ProductionSettings  # noqa: E402
from tests.conftest import DEMO_PLANT  # noqa: E402
from tests.postgres import PostgresServer  # noqa: E402

SITE = "berlin"
DISPATCH_LINE = "body-line-1"
DISPATCH_KINDS = ("press", "welding", "assembly")
THROUGHPUT_LINE = "machining-line-1"
THROUGHPUT_STATIONS = {"cnc": "cnc-01", "test": "test-01", "packaging": "pack-01"}
DISPATCH_LIMIT = 500  # the API's maximum: the whole list of 500 open orders
GOAL_P99_MS = 20.0
WARM_UP_CALLS = 5
OPEN = {s.value for s in domain.OPEN_STATUSES}


def release_command(order_id: str, line: str, kinds: tuple[str, ...], index: int) -> ReleaseOrder:
    """An ERP order with its routing and BOM, released to ``line``: planned starts spread over
    the coming days and a few priorities, so the list's order is not the insertion order."""
    now = int(time.time() * 1000)
    start = now + 3_600_000 + (index * 7919 % 1000) * 60_000
    common = {"v": 1, "source_system": "ERP", "revision": 0, "issued_at": now - 60_000}
    material = f"MAT-{line}"
    order = ProductionOrder(
        **common,
        document_id=f"DOC-{order_id}",
        order_id=order_id,
        material_id=material,
        quantity=10,
        uom="EA",
        site=SITE,
        line=line,
        planned_start=start,
        planned_end=start + 8 * 3_600_000,
    )
    routing = Routing(
        **common,
        document_id=f"RT-{order_id}",
        routing_id=f"RT-{material}",
        material_id=material,
        operations=[
            Operation(
                operation_no=10 * (i + 1),
                description=f"{kind} step",
                station_kind=kind,
                standard_time_s=30,
            )
            for i, kind in enumerate(kinds)
        ],
    )
    bom = BillOfMaterials(
        **common,
        document_id=f"BOM-{order_id}",
        bom_id=f"BOM-{material}",
        material_id=material,
        base_quantity=1,
        items=[BomItem(position=1, component_id="SHEET-1", quantity=2, uom="EA")],
    )
    return ReleaseOrder(
        command_id=f"release-{order_id}",
        actor="planner",
        order=order,
        line=line,
        routing=routing,
        bom=bom,
        priority=100 * (1 + index % 5),
    )


def naive_dispatch_list(session: Session, site: str, line: str, limit: int) -> DispatchList:
    """The baseline: per-row ORM loads, then filtering and sorting in Python."""
    order_ids = session.scalars(
        select(WorkOrder.order_id).where(WorkOrder.site == site, WorkOrder.line == line)
    ).all()
    open_operations = []
    for order_id in order_ids:
        order = session.get(WorkOrder, order_id)  # one query per order
        for op in order.operations:  # and one lazy load of its operations
            if op.status in OPEN:
                open_operations.append(op)
    open_operations.sort(key=lambda o: (o.priority, o.planned_start, o.order_id, o.operation_no))
    items = [
        DispatchItem(
            order_id=op.order_id,
            operation_no=op.operation_no,
            material_id=op.material_id,
            description=op.description,
            station_kind=op.station_kind,
            status=OperationStatus(op.status),
            open_quantity=domain.open_quantity(
                OperationStatus(op.status), op.planned_quantity, op.counted_good, op.scrap_quantity
            ),
            priority=op.priority,
            planned_start=op.planned_start,
            version=op.version,
        )
        for op in open_operations[:limit]
    ]
    return DispatchList(site=site, line=line, station=None, items=items)


def percentile(samples: list[float], q: float) -> float:
    """The q-th percentile, linear between the closest ranks (numpy's default)."""
    ordered = sorted(samples)
    position = (len(ordered) - 1) * q / 100
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


async def timed_get(client: httpx.AsyncClient, url: str) -> tuple[float, dict]:
    started = time.perf_counter()
    response = await client.get(url)
    elapsed_ms = (time.perf_counter() - started) * 1000
    if response.status_code != 200:
        sys.exit(f"GET {url}: {response.status_code} {response.text[:500]}")
    return elapsed_ms, response.json()


def check(response, what: str) -> dict:
    if response.status_code not in (200, 201):
        sys.exit(f"{what}: {response.status_code} {response.text[:500]}")
    return response.json()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=500, help="open orders on the line")
    parser.add_argument("--calls", type=int, default=400, help="timed dispatch-list calls")
    parser.add_argument(
        "--naive-every", type=int, default=8, help="one baseline call per this many calls"
    )
    parser.add_argument("--throughput-orders", type=int, default=100)
    parser.add_argument("--quick", action="store_true", help="30 orders, 30 calls, 6 orders")
    args = parser.parse_args()
    if args.quick:
        args.orders, args.calls, args.naive_every, args.throughput_orders = 30, 30, 3, 6
    if not 1 <= args.orders <= DISPATCH_LIMIT:
        parser.error(f"--orders: 1 to {DISPATCH_LIMIT} (one list holds at most that many)")

    with PostgresServer.start() as postgres, postgres.temporary_database() as url:
        upgrade_to_head(MIGRATIONS_DIR, url)
        settings = ProductionSettings.from_environ(
            {"MES_DATABASE_URL": url, "MES_PLANT_CONFIG": str(DEMO_PLANT)}
        )
        configure_logging(SERVICE, "INFO")  # each request's JSON log line, as in production
        devnull = open(os.devnull, "w")  # noqa: SIM115 - open for the whole run
        logging.getLogger().handlers[0].setStream(devnull)
        app = build_app(settings)
        service = app.state.service

        @app.get("/naive-dispatch/{site}/{line}")
        def naive_dispatch(site: str, line: str, limit: int = 50) -> Response:
            # Serialised once, as the service's dispatch route does: only the loading differs.
            view = service.read(lambda s: naive_dispatch_list(s, site, line, limit))
            return Response(view.model_dump_json(), media_type="application/json")

        results = asyncio.run(run(app, args))
        devnull.close()
        app.state.engine.dispose()
    report(results)


async def run(app, args) -> dict:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://mes") as client:
        return await measure(client, app.state.service, app.state.sessions, args)


async def measure(client: httpx.AsyncClient, service, sessions, args) -> dict:
    # -- 1. the dispatch list of a line with --orders open orders ---------------------------
    started = time.perf_counter()
    for i in range(args.orders):
        command = release_command(f"PO-D{i:04d}", DISPATCH_LINE, DISPATCH_KINDS, i)
        check(await client.post("/orders/release", json=command.model_dump(mode="json")), "release")
    release_s = time.perf_counter() - started

    indexed_url = f"/dispatch/{SITE}/{DISPATCH_LINE}?limit={DISPATCH_LIMIT}"
    page_url = f"/dispatch/{SITE}/{DISPATCH_LINE}"
    naive_url = f"/naive-dispatch/{SITE}/{DISPATCH_LINE}?limit={DISPATCH_LIMIT}"
    _, indexed_list = await timed_get(client, indexed_url)
    _, page = await timed_get(client, page_url)
    _, naive_list = await timed_get(client, naive_url)
    indexed_body = (await client.get(indexed_url)).content
    if indexed_list != naive_list or indexed_body != (await client.get(naive_url)).content:
        sys.exit("the indexed and the per-row dispatch lists differ; not timing")
    if len(indexed_list["items"]) != args.orders:
        sys.exit(f"{len(indexed_list['items'])} items for {args.orders} open orders")
    if not page["items"] or page["items"] != indexed_list["items"][: len(page["items"])]:
        sys.exit("the default page is not the head of the whole list; not timing")
    for _ in range(WARM_UP_CALLS):
        await timed_get(client, indexed_url)
        await timed_get(client, page_url)
        await timed_get(client, naive_url)
    indexed_ms, page_ms, naive_ms = [], [], []
    for i in range(args.calls):
        indexed_ms.append((await timed_get(client, indexed_url))[0])
        page_ms.append((await timed_get(client, page_url))[0])
        if i % args.naive_every == 0:
            naive_ms.append((await timed_get(client, naive_url))[0])

    # -- 2. start + complete, through the API and on the service directly -------------------
    kinds = tuple(THROUGHPUT_STATIONS)
    api_s = direct_s = 0.0
    api_ops = direct_ops = 0
    for i in range(args.throughput_orders):
        order_id = f"PO-T{i:04d}"
        check(
            await client.post(
                "/orders/release",
                json=release_command(order_id, THROUGHPUT_LINE, kinds, i).model_dump(mode="json"),
            ),
            "release",
        )
        through_api = i % 2 == 0
        started = time.perf_counter()
        for n, kind in enumerate(kinds):
            operation_no = 10 * (n + 1)
            start = StartOperation(
                command_id=f"start-{order_id}-{operation_no}",
                actor="operator",
                station=THROUGHPUT_STATIONS[kind],
            )
            complete = CompleteOperation(
                command_id=f"complete-{order_id}-{operation_no}",
                actor="operator",
                good_quantity=10,
            )
            if through_api:
                path = f"/orders/{order_id}/operations/{operation_no}"
                check(
                    await client.post(f"{path}/start", json=start.model_dump(mode="json")), "start"
                )
                check(
                    await client.post(f"{path}/complete", json=complete.model_dump(mode="json")),
                    "complete",
                )
            else:
                service.start(order_id, operation_no, start)
                service.complete(order_id, operation_no, complete)
        elapsed = time.perf_counter() - started
        if through_api:
            api_s, api_ops = api_s + elapsed, api_ops + len(kinds)
        else:
            direct_s, direct_ops = direct_s + elapsed, direct_ops + len(kinds)

    with sessions() as session:
        confirmations = session.scalar(select(func.count()).select_from(Confirmation))
        confirmation_messages = session.scalar(
            select(func.count())
            .select_from(TABLES.outbox)
            .where(
                TABLES.outbox.destination == "bus", TABLES.outbox.kind == "ProductionConfirmation"
            )
        )
    return {
        "open_orders": args.orders,
        "dispatch_items": len(indexed_list["items"]),
        "same_dispatch_list": indexed_list == naive_list,  # and the same bytes, or no timing
        "release_per_s": args.orders / release_s,
        "dispatch_p50_ms": percentile(indexed_ms, 50),
        "dispatch_p99_ms": percentile(indexed_ms, 99),
        "dispatch_calls": len(indexed_ms),
        "page_items": len(page["items"]),
        "page_p50_ms": percentile(page_ms, 50),
        "page_p99_ms": percentile(page_ms, 99),
        "page_goal_met": percentile(page_ms, 99) <= GOAL_P99_MS,
        "naive_p50_ms": percentile(naive_ms, 50),
        "naive_p99_ms": percentile(naive_ms, 99),
        "naive_calls": len(naive_ms),
        "naive_queries_per_call": 1 + 2 * args.orders,
        "goal_p99_ms": GOAL_P99_MS,
        "goal_met": percentile(indexed_ms, 99) <= GOAL_P99_MS,
        "api_operations_per_s": api_ops / api_s,
        "direct_operations_per_s": direct_ops / direct_s,
        "api_operations": api_ops,
        "direct_operations": direct_ops,
        "operations_completed": api_ops + direct_ops,
        "confirmations": confirmations,
        "confirmation_messages": confirmation_messages,
    }


def report(r: dict) -> None:
    print(
        f"production execution on PostgreSQL, one client on httpx's ASGI transport (no socket); "
        f"{r['open_orders']} open orders on {SITE}/{DISPATCH_LINE}"
    )
    print(f"{'dispatch list':<44}{'items':>7}{'calls':>7}{'p50 ms':>10}{'p99 ms':>10}")
    rows = [
        (
            "the service, whole list (limit=500)",
            r["dispatch_items"],
            r["dispatch_calls"],
            "dispatch",
        ),
        ("the service, default page (no limit)", r["page_items"], r["dispatch_calls"], "page"),
        (
            f"per-row ORM loads ({r['naive_queries_per_call']} queries)",
            r["dispatch_items"],
            r["naive_calls"],
            "naive",
        ),
    ]
    for name, items, calls, key in rows:
        p50, p99 = r[f"{key}_p50_ms"], r[f"{key}_p99_ms"]
        print(f"{name:<44}{items:>7}{calls:>7}{p50:>10.2f}{p99:>10.2f}")
    for what, key in [("the whole list", "goal_met"), ("the default page", "page_goal_met")]:
        verdict = "met" if r[key] else "NOT met"
        print(
            f"goal p99 <= {GOAL_P99_MS:.0f} ms, {r['open_orders']} open orders, {what}: {verdict}"
        )
    print(f"{'start + complete':<44}{'ops':>7}{'ops/s':>10}")
    for name, key in [("through the API", "api"), ("on the service object", "direct")]:
        print(f"{name:<44}{r[f'{key}_operations']:>7}{r[f'{key}_operations_per_s']:>10.1f}")
    print(
        f"releases through the API: {r['release_per_s']:.0f}/s; confirmations: "
        f"{r['confirmations']} rows, {r['confirmation_messages']} bus messages for "
        f"{r['operations_completed']} operations"
    )
    figure(
        "start+complete through the API",
        r["api_operations_per_s"],
        "operations/s",
        "the same on the service object",
        r["direct_operations_per_s"],
    )
    figure(
        f"dispatch list p50, {r['open_orders']} open orders",
        r["dispatch_p50_ms"],
        "ms",
        "per-row ORM loads p50",
        r["naive_p50_ms"],
    )
    figure(
        f"dispatch list p99, {r['open_orders']} open orders",
        r["dispatch_p99_ms"],
        "ms",
        "per-row ORM loads p99",
        r["naive_p99_ms"],
    )
    print(
        "mes_services: "
        + json.dumps(
            {k: round(v, 3) if isinstance(v, float) else v for k, v in r.items()}, sort_keys=True
        )
    )


if __name__ == "__main__":
    main()
