"""The HTTP contract of production execution against a real PostgreSQL: every route's status
codes and bodies, errors that name the field, and nothing written by a refused command."""

from __future__ import annotations

import itertools
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import text

from mes_domain.enterprise import (
    OUTBOUND_EVENTS,
    DefectSource,
    NonConformanceReport,
    ProductionConfirmation,
    SourceSystem,
    event_detail,
)
from mes_domain.production import DispatchList, StartOperation
from services.common.errors import ServiceError
from services.production_execution import service as ops
from services.production_execution.api import REPLAYED_HEADER
from services.production_execution.service import dispatch_json_query, dispatch_query
from tests.services.production_execution.conftest import (
    BODY_LINE,
    MACHINING_LINE,
    SITE,
    outbox,
    release_body,
    row_counts,
    start_instance,
)

_ids = itertools.count(1)


def cloud_now() -> int:
    return int(time.time() * 1000)


def command(**fields) -> dict:
    """A command body with a fresh command id."""
    return {"command_id": f"cmd-{next(_ids):06d}", "actor": "operator-7", **fields}


def problem(response, status: int) -> tuple[str | None, str]:
    """The first (field, message) of an error response, after checking its status."""
    assert response.status_code == status, response.text
    first = response.json()["detail"][0]
    return first.get("field"), first["message"]


@pytest.fixture
def client(cloud, clean):
    return cloud.client


def release(client, **options) -> dict:
    response = client.post("/orders/release", json=release_body(**options))
    assert response.status_code == 201, response.text
    return response.json()


def op(client, order_id: str, number: int, action: str, expect: int = 200, **fields) -> dict:
    response = client.post(
        f"/orders/{order_id}/operations/{number}/{action}", json=command(**fields)
    )
    assert response.status_code == expect, response.text
    return response.json()


# ---- release -----------------------------------------------------------------------------------


def test_release_creates_the_order_with_its_first_operation_ready(client, cloud):
    body = release_body(order_id="PO-1", quantity=10)
    response = client.post("/orders/release", json=body)
    assert response.status_code == 201
    assert response.headers[REPLAYED_HEADER] == "false"
    order = response.json()
    assert (order["order_id"], order["status"], order["executed_at"], order["version"]) == (
        "PO-1",
        "RELEASED",
        "cloud",
        1,
    )
    assert [(o["operation_no"], o["status"], o["follows"]) for o in order["operations"]] == [
        (10, "READY", None),
        (20, "PENDING", 10),
        (30, "PENDING", 20),
    ]
    assert client.get("/orders/PO-1").json() == order

    # the release is announced on the bus, and the BOM for the whole quantity reserved
    (status_event,) = outbox(cloud.sessions, "bus")
    assert status_event[1:] == (
        "OrderStatusChanged",
        status_event[2],
        "OSC-PO-1-RELEASED",
    )
    assert status_event[2]["status"] == "RELEASED"
    (reservation,) = outbox(cloud.sessions, "inventory")
    assert reservation[1] == "ReserveForOrder"
    assert reservation[2]["command_id"] == "reserve:PO-1"  # a redelivery is a replay there
    assert {r["material_id"]: r["quantity"] for r in reservation[2]["requirements"]} == {
        "SHEET-1": 20.0,  # 4 per 2 (base quantity) x 10
        "BOLT-M8": 5.0,
    }

    replay = client.post("/orders/release", json=body)
    assert (replay.status_code, replay.json()) == (201, order)
    assert replay.headers[REPLAYED_HEADER] == "true"
    assert len(outbox(cloud.sessions)) == 2  # the replay sent nothing


def test_a_command_id_reused_for_another_body_is_a_conflict(client, clean):
    release(client, order_id="PO-1", command_id="release-same")
    other = release_body(order_id="PO-2", command_id="release-same")
    assert problem(client.post("/orders/release", json=other), 409)[0] == "command_id"
    assert client.get("/orders/PO-2").status_code == 404


def test_an_order_is_released_once(client, clean):
    release(client, order_id="PO-1")
    again = release_body(order_id="PO-1", command_id="release-again")
    field, message = problem(client.post("/orders/release", json=again), 409)
    assert field == "order.order_id" and "PO-1" in message


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (lambda b: b["order"].update(quantity=-1), "order.quantity"),
        (lambda b: b.update(line="no-such-line", order={**b["order"], "line": None}), "line"),
        (lambda b: b["order"].update(status="ON_HOLD"), "order.status"),
        (lambda b: b["routing"]["operations"][1].update(station_kind="cnc"), None),
        (lambda b: b.pop("routing"), "routing"),
        (lambda b: b.update(command_id="short"), "command_id"),
        (lambda b: b.update(priority=1000), "priority"),
    ],
)
def test_bad_release_is_refused_with_its_field_and_writes_nothing(client, clean, change, field):
    body = release_body(order_id="PO-9")
    change(body)
    before = row_counts(clean)
    response = client.post("/orders/release", json=body)
    got, message = problem(response, 422)
    expected = "routing.operations.1.station_kind" if field is None else field
    assert got == expected, message
    assert message
    assert row_counts(clean) == before  # no order, no command log, no audit, no outbox


# ---- dispatch ----------------------------------------------------------------------------------


def test_dispatch_lists_open_operations_by_priority_then_planned_start_then_order(client, clock):
    soon, later = clock.now + 3_600_000, clock.now + 7_200_000
    release(client, order_id="PO-C", priority=500, planned_start=soon)
    release(client, order_id="PO-B", priority=100, planned_start=later)
    release(client, order_id="PO-A", priority=500, planned_start=soon)
    release(client, order_id="PO-D", priority=100, planned_start=soon, kinds=("welding",))
    release(client, order_id="PO-M", line=MACHINING_LINE, kinds=("cnc",))

    line = client.get(f"/dispatch/{SITE}/{BODY_LINE}").json()
    assert (line["site"], line["line"], line["station"]) == (SITE, BODY_LINE, None)
    assert [(i["order_id"], i["operation_no"]) for i in line["items"]] == [
        ("PO-D", 10),  # priority 100, earlier start
        ("PO-B", 10),  # priority 100
        ("PO-A", 10),  # priority 500, same start as PO-C: by order id
        ("PO-C", 10),
    ]
    first = line["items"][1]
    assert first == {
        "order_id": "PO-B",
        "operation_no": 10,
        "material_id": "BODY-1",
        "description": "press step",
        "station_kind": "press",
        "status": "READY",
        "open_quantity": 10.0,
        "priority": 100,
        "planned_start": later,
        "version": 1,
    }
    press = client.get(f"/dispatch/{SITE}/{BODY_LINE}/press-01").json()
    assert [i["order_id"] for i in press["items"]] == ["PO-B", "PO-A", "PO-C"]
    assert client.get(f"/dispatch/{SITE}/{BODY_LINE}/weld-01").json()["items"][0]["order_id"] == (
        "PO-D"
    )
    limited = client.get(f"/dispatch/{SITE}/{BODY_LINE}", params={"limit": 2}).json()
    assert [i["order_id"] for i in limited["items"]] == ["PO-D", "PO-B"]

    # running, paused and completed operations
    op(client, "PO-B", 10, "start", station="press-01")
    op(client, "PO-A", 10, "start", station="press-01", expect=422)  # the press is busy
    op(client, "PO-D", 10, "start", station="weld-01")
    op(client, "PO-D", 10, "complete", good_quantity=10)
    after = client.get(f"/dispatch/{SITE}/{BODY_LINE}").json()["items"]
    assert [(i["order_id"], i["status"]) for i in after] == [
        ("PO-B", "RUNNING"),
        ("PO-A", "READY"),
        ("PO-C", "READY"),
    ]


@pytest.mark.parametrize(
    ("path", "status", "field"),
    [
        (f"/dispatch/{SITE}/no-line", 404, "line"),
        (f"/dispatch/paris/{BODY_LINE}", 404, "line"),
        (f"/dispatch/{SITE}/{BODY_LINE}/cnc-01", 404, "station"),  # another line's station
        (f"/dispatch/{SITE}/{BODY_LINE}?limit=0", 422, "limit"),
        (f"/dispatch/{SITE}/{BODY_LINE}?limit=501", 422, "limit"),
    ],
)
def test_dispatch_of_an_unknown_line_or_station(client, path, status, field):
    assert problem(client.get(path), status)[0] == field


def test_the_dispatch_list_is_one_scan_of_its_partial_index(client, clean):
    for i in range(3):
        release(client, order_id=f"PO-{i}")
    queries = [
        ("ix_operation_dispatch", dispatch_query(SITE, BODY_LINE, None, 50)),
        ("ix_operation_dispatch_kind", dispatch_query(SITE, BODY_LINE, "press", 50)),
        # the JSON the API answers with: the same scan under its string_agg
        (
            "ix_operation_dispatch",
            dispatch_json_query(False).params(site=SITE, line=BODY_LINE, limit=9),
        ),
        (
            "ix_operation_dispatch_kind",
            dispatch_json_query(True).params(
                site=SITE, line=BODY_LINE, station_kind="press", limit=9
            ),
        ),
    ]
    with clean.connect() as connection:
        connection.execute(text("SET enable_seqscan = off"))  # a 9-row table: force the choice
        for index, query in queries:
            sql = query.compile(dialect=clean.dialect, compile_kwargs={"literal_binds": True})
            plan = "\n".join(row[0] for row in connection.execute(text(f"EXPLAIN {sql}")))
            assert re.search(rf"Index (Only )?Scan using {index} on operation", plan), plan
            assert "Sort" not in plan, plan  # the index gives the order
            assert "Filter" not in plan, plan  # and the partial index the status


def test_the_dispatch_json_from_postgresql_is_byte_for_byte_what_pydantic_writes(client, cloud):
    """The routes answer with JSON that PostgreSQL writes (``dispatch_list_json``): it must be
    the bytes ``DispatchList.model_dump_json()`` gives for the same rows, floats and escapes
    included; a quantity PostgreSQL cannot write as Python would takes the pydantic path."""
    for i, (priority, kinds) in enumerate(
        [(100, ("press", "welding")), (500, ("welding",)), (300, ("assembly", "press"))] * 3
    ):
        release(client, order_id=f"PO-{i}", priority=priority, kinds=kinds, quantity=7.5 + i)
    op(client, "PO-0", 10, "start", station="press-01")
    op(client, "PO-1", 10, "start", station="weld-01")
    op(client, "PO-1", 10, "pause", reason="material")
    quantities = [  # (planned, counted good, scrap): pydantic writes 10.0, 0.25, 0.00001, 1e-6
        (10.0, 0.0, 0.0),
        (0.3, 0.1, 0.0),  # 0.19999999999999998 -> 0.2
        (12.345678, 2.0, 0.3),
        (1.00001, 1.0, 0.0),
        (1e-06, 0.0, 0.0),
        (5.0, 5.0, 0.0),
        (3.0, 5.0, 0.0),  # over-counted: 0.0
        (999999999.999999, 0.0, 0.0),
        (3e12, 0.0, 0.0),
    ]
    strings = ['quote " back \\ slash', "new\nline\ttab\x01\x1f del\x7f", "é ☃ 😀 \u2028", "/"]
    with cloud.sessions.begin() as session:
        keys = session.execute(
            text(
                "SELECT order_id, operation_no FROM operation "
                "WHERE status IN ('READY', 'RUNNING', 'PAUSED') ORDER BY order_id, operation_no"
            )
        ).all()
        for n, (order_id, operation_no) in enumerate(keys):
            planned, good, scrap = quantities[n % len(quantities)]
            session.execute(
                text(
                    "UPDATE operation SET planned_quantity = :planned, counted_good = :good, "
                    "scrap_quantity = :scrap, description = :description "
                    "WHERE order_id = :order_id AND operation_no = :operation_no"
                ),
                {
                    "planned": planned,
                    "good": good,
                    "scrap": scrap,
                    "description": strings[n % len(strings)],
                    "order_id": order_id,
                    "operation_no": operation_no,
                },
            )
    layout = client.app.state.service.context.layout

    def assert_as_pydantic_writes(station: str | None, fast: bool) -> DispatchList:
        url = f"/dispatch/{SITE}/{BODY_LINE}" + (f"/{station}" if station else "")
        response = client.get(url, params={"limit": 500})
        assert response.status_code == 200, response.text
        assert response.headers["content-type"] == "application/json"
        with cloud.sessions() as session:
            expected = ops.dispatch_list(session, layout, SITE, BODY_LINE, station, 500)
            kind = layout.station_kind(SITE, BODY_LINE, station) if station else None
            params = {"site": SITE, "line": BODY_LINE, "station_kind": kind, "limit": 500}
            _, exact = session.execute(dispatch_json_query(kind is not None), params).one()
        assert response.content == expected.model_dump_json().encode()
        assert exact is fast  # PostgreSQL wrote it, or the pydantic path did
        assert DispatchList.model_validate_json(response.content) == expected
        return expected

    line = assert_as_pydantic_writes(None, fast=True)
    assert {i.status for i in line.items} == {"READY", "RUNNING", "PAUSED"}
    assert len({i.priority for i in line.items}) == 3
    assert len({i.station_kind for i in line.items}) == 3
    assert len({i.open_quantity for i in line.items}) == len(quantities) - 1  # two 0.0
    assert {i.description for i in line.items} == set(strings)
    press = assert_as_pydantic_writes("press-01", fast=True)
    assert [(i.order_id, i.status) for i in press.items] == [
        ("PO-0", "RUNNING"),
        ("PO-3", "READY"),
        ("PO-6", "READY"),
    ]
    assert_as_pydantic_writes("weld-01", fast=True)

    # 5e-7: PostgreSQL's numeric would round the tie up to 1e-6, Python rounds the float (a
    # hair below) to 0.0; 2e9 + 0.5 has more digits than float8 -> numeric keeps. Both take
    # the pydantic path (a whole 2e9 does not: bigint keeps it).
    for planned in (5e-07, 2e9 + 0.5):
        with cloud.sessions.begin() as session:
            session.execute(
                text(
                    "UPDATE operation SET planned_quantity = :planned, counted_good = 0, "
                    "scrap_quantity = 0 WHERE order_id = 'PO-2' AND operation_no = 10"
                ),
                {"planned": planned},
            )
        odd = assert_as_pydantic_writes(None, fast=False)
        assert [i.open_quantity for i in odd.items if i.order_id == "PO-2"] == [round(planned, 6)]


# ---- station commands --------------------------------------------------------------------------


def test_start_pause_resume_complete_accounts_running_time_and_confirms_once(client, cloud, clock):
    release(client, order_id="PO-1", quantity=10)
    started = op(client, "PO-1", 10, "start", station="press-01", expected_version=1)
    assert (started["status"], started["station"], started["version"]) == (
        "RUNNING",
        "press-01",
        2,
    )
    assert started["started_at"] == started["running_since"] == clock.now
    assert client.get("/orders/PO-1").json()["status"] == "IN_PROGRESS"

    clock.advance(5)
    paused = op(client, "PO-1", 10, "pause", reason="die change")
    assert (paused["status"], paused["run_time_s"], paused["running_since"]) == (
        "PAUSED",
        5.0,
        None,
    )
    clock.advance(100)  # paused: does not count
    op(client, "PO-1", 10, "start", station="press-01")
    clock.advance(10)
    scrapped = op(client, "PO-1", 10, "scrap", quantity=1, reason_code="CRACK")
    assert scrapped["scrap_quantity"] == 1.0
    clock.advance(2.5)
    done = op(client, "PO-1", 10, "complete", good_quantity=8, scrap_quantity=1)
    assert (done["status"], done["good_quantity"], done["scrap_quantity"]) == (
        "COMPLETED",
        8.0,
        2.0,
    )
    assert done["run_time_s"] == 17.5
    order = client.get("/orders/PO-1").json()
    assert [o["status"] for o in order["operations"]] == ["COMPLETED", "READY", "PENDING"]

    (confirmation,) = client.get("/orders/PO-1/confirmations").json()
    assert confirmation == {
        "document_id": "CONF-PO-1-10",
        "order_id": "PO-1",
        "operation_no": 10,
        "station": "press-01",
        "good_quantity": 8.0,
        "scrap_quantity": 2.0,
        "materials_consumed": [
            {"material_id": "SHEET-1", "quantity": 16.0, "uom": "EA"},
            {"material_id": "BOLT-M8", "quantity": 4.0, "uom": "EA"},
        ],
        "started_at": started["started_at"],
        "completed_at": clock.now,
        "labour_time_s": 17.5,
        "machine_time_s": 17.5,
        "final": False,
    }
    events = outbox(cloud.sessions, "bus", "ProductionConfirmation")
    assert len(events) == 1
    event = ProductionConfirmation.model_validate(
        {k: v for k, v in events[0][2].items() if k != "schema_version"}
    )
    assert events[0][2] == event_detail(event)  # the bus gets the ERP contract's Detail
    assert (event.document_id, event.good_quantity, event.scrap_quantity, event.final) == (
        "CONF-PO-1-10",
        8.0,
        2.0,
        False,
    )
    assert OUTBOUND_EVENTS[ProductionConfirmation].detail_type == events[0][1]
    (consumption,) = outbox(cloud.sessions, "inventory", "ReportConsumption")
    assert consumption[2]["command_id"] == "consume:PO-1:10"
    assert consumption[3] == "consume:PO-1:10"

    # the later operations consume nothing; the last one's confirmation is final
    for number, station in ((20, "weld-01"), (30, "assembly-01")):
        op(client, "PO-1", number, "start", station=station)
        clock.advance(1)
        op(client, "PO-1", number, "complete", good_quantity=8, labour_time_s=3)
    confirmations = client.get("/orders/PO-1/confirmations").json()
    assert [(c["operation_no"], c["final"], c["materials_consumed"]) for c in confirmations] == [
        (10, False, confirmation["materials_consumed"]),
        (20, False, []),
        (30, True, []),
    ]
    assert confirmations[2]["labour_time_s"] == 3.0
    assert confirmations[2]["machine_time_s"] == 1.0
    assert len(outbox(cloud.sessions, "inventory", "ReportConsumption")) == 1
    statuses = [p["status"] for _, _, p, _ in outbox(cloud.sessions, "bus", "OrderStatusChanged")]
    assert statuses == ["RELEASED", "IN_PROGRESS", "COMPLETED"]
    assert client.get("/orders/PO-1").json()["status"] == "COMPLETED"
    # the completed order is off the dispatch list
    assert client.get(f"/dispatch/{SITE}/{BODY_LINE}").json()["items"] == []


def test_a_replayed_completion_returns_its_first_response_and_confirms_nothing_more(client, cloud):
    release(client, order_id="PO-1")
    op(client, "PO-1", 10, "start", station="press-01")
    body = command(good_quantity=10)
    first = client.post("/orders/PO-1/operations/10/complete", json=body)
    replay = client.post("/orders/PO-1/operations/10/complete", json=body)
    assert (replay.status_code, replay.json()) == (first.status_code, first.json())
    assert replay.headers[REPLAYED_HEADER] == "true"
    assert len(outbox(cloud.sessions, "bus", "ProductionConfirmation")) == 1
    # the same command id and body at another operation is another command: refused
    other = client.post("/orders/PO-1/operations/20/complete", json=body)
    assert problem(other, 409)[0] == "command_id"
    # a new command id to complete it again: the operation is completed
    assert problem(client.post("/orders/PO-1/operations/10/complete", json=command()), 422)[0] == (
        "status"
    )


def test_station_commands_refused(client, clean):
    release(client, order_id="PO-1")
    release(client, order_id="PO-2")
    cases = [
        (("PO-1", 10, "start"), {"station": "weld-01"}, 422, "station"),  # wrong kind
        (("PO-1", 10, "start"), {"station": "cnc-01"}, 422, "station"),  # another line's
        (("PO-1", 20, "start"), {"station": "weld-01"}, 422, "status"),  # PENDING
        (("PO-1", 10, "pause"), {}, 422, "status"),  # not running
        (("PO-1", 10, "complete"), {}, 422, "status"),
        (("PO-1", 10, "scrap"), {"quantity": 1, "reason_code": "X"}, 422, "status"),
        (("PO-1", 10, "start"), {"station": "press-01", "expected_version": 7}, 409, None),
        (("PO-1", 99, "start"), {"station": "press-01"}, 404, "operation_no"),
        (("PO-X", 10, "start"), {"station": "press-01"}, 404, "order_id"),
        (("PO-1", 10, "start"), {}, 422, "station"),  # missing
        (("PO-1", 10, "start"), {"station": "press-01", "extra": 1}, 422, "extra"),
    ]
    before = row_counts(clean)
    for (order_id, number, action), fields, status, field in cases:
        response = client.post(
            f"/orders/{order_id}/operations/{number}/{action}", json=command(**fields)
        )
        got, message = problem(response, status)
        assert got == (field or "expected_version"), (order_id, number, action, message)
    assert row_counts(clean) == before

    op(client, "PO-1", 10, "start", station="press-01")
    busy = client.post("/orders/PO-2/operations/10/start", json=command(station="press-01"))
    field, message = problem(busy, 422)
    assert field == "station" and "PO-1" in message
    scrap = client.post(
        "/orders/PO-1/operations/10/scrap", json=command(quantity=0, reason_code="X")
    )
    assert problem(scrap, 422)[0] == "quantity"


def test_stale_version_is_a_conflict_and_changes_nothing(client, clean):
    release(client, order_id="PO-1")
    op(client, "PO-1", 10, "start", station="press-01", expected_version=1)
    before = row_counts(clean)
    stale = client.post("/orders/PO-1/operations/10/pause", json=command(expected_version=1))
    field, message = problem(stale, 409)
    assert field == "expected_version" and "version 2" in message
    assert row_counts(clean) == before
    assert op(client, "PO-1", 10, "pause", expected_version=2)["version"] == 3


def test_completion_by_part_counts(client, cloud):
    release(client, order_id="PO-1")
    counts_url = f"/stations/{SITE}/{BODY_LINE}/press-01/counts"
    idle = client.post(counts_url, json=command(ts=cloud_now(), good=1, bad=0))
    assert problem(idle, 422)[0] == "station"  # nothing runs there
    op(client, "PO-1", 10, "start", station="press-01")
    body = command(ts=cloud_now(), good=4, bad=1, order_id="PO-1")
    counted = client.post(counts_url, json=body)
    assert counted.status_code == 200
    assert (counted.json()["counted_good"], counted.json()["scrap_quantity"]) == (4.0, 1.0)
    replay = client.post(counts_url, json=body)
    assert replay.json() == counted.json()  # counted once
    client.post(counts_url, json=command(ts=cloud_now(), good=3, bad=0))
    wrong_order = client.post(counts_url, json=command(ts=cloud_now(), good=1, bad=0, order_id="X"))
    assert problem(wrong_order, 422)[0] == "order_id"
    unknown = client.post(
        f"/stations/{SITE}/{BODY_LINE}/nope/counts", json=command(ts=1, good=1, bad=0)
    )
    assert problem(unknown, 422)[0] == "ts"  # the body is checked first
    unknown = client.post(
        f"/stations/{SITE}/{BODY_LINE}/nope/counts", json=command(ts=cloud_now(), good=1, bad=0)
    )
    assert problem(unknown, 404)[0] == "station"
    negative = client.post(counts_url, json=command(ts=cloud_now(), good=-1, bad=0))
    assert problem(negative, 422)[0] == "good"

    done = op(client, "PO-1", 10, "complete")  # good_quantity null: the counted good
    assert (done["good_quantity"], done["counted_good"], done["scrap_quantity"]) == (7.0, 7.0, 1.0)
    (confirmation,) = client.get("/orders/PO-1/confirmations").json()
    assert (confirmation["good_quantity"], confirmation["scrap_quantity"]) == (7.0, 1.0)
    assert client.get(f"/dispatch/{SITE}/{BODY_LINE}").json()["items"][0]["open_quantity"] == 10


# ---- serials and genealogy ---------------------------------------------------------------------


def test_serials_and_genealogy(client, clean):
    release(client, order_id="PO-1")
    registered = client.post("/orders/PO-1/serials", json=command(serial="SN-0001"))
    assert registered.status_code == 201
    assert registered.json() == {"serial": "SN-0001", "order_id": "PO-1", "components": []}
    again = client.post("/orders/PO-1/serials", json=command(serial="SN-0001"))
    assert problem(again, 409)[0] == "serial"

    lots = [
        {"material_id": "SHEET-1", "lot": "L-17", "quantity": 2, "uom": "EA"},
        {"material_id": "BOLT-M8", "lot": "L-3", "quantity": 4, "uom": "EA"},
    ]
    into_serial = client.post(
        "/orders/PO-1/serials/SN-0001/components", json=command(components=lots)
    )
    assert into_serial.status_code == 200
    assert [c["lot"] for c in into_serial.json()["components"]] == ["L-17", "L-3"]
    assert client.get("/orders/PO-1/serials/SN-0001").json() == into_serial.json()

    into_lot = client.post("/orders/PO-1/components", json=command(components=lots[:1]))
    assert into_lot.json() == {
        "order_id": "PO-1",
        "serial": None,
        "components": [{**lots[0], "quantity": 2.0}],
    }
    assert client.get("/orders/PO-1/components").json() == into_lot.json()

    before = row_counts(clean)
    not_in_bom = [*lots, {"material_id": "GLUE", "lot": "G-1", "quantity": 1, "uom": "L"}]
    refused = client.post("/orders/PO-1/components", json=command(components=not_in_bom))
    assert problem(refused, 422)[0] == "components.2.material_id"
    empty = client.post("/orders/PO-1/components", json=command(components=[]))
    assert problem(empty, 422)[0] == "components"
    unknown = client.post("/orders/PO-1/serials/SN-9/components", json=command(components=lots))
    assert problem(unknown, 404)[0] == "serial"
    assert row_counts(clean) == before
    assert problem(client.get("/orders/PO-1/serials/SN-9"), 404)[0] == "serial"
    assert problem(client.get("/orders/PO-9/components"), 404)[0] == "order_id"


# ---- non-conformances --------------------------------------------------------------------------


def nonconformance_event(ncr_id: str, order_id: str | None, part_id: str = "P-1") -> dict:
    report = NonConformanceReport(
        v=1,
        source_system=SourceSystem.MES,
        document_id=ncr_id,
        revision=0,
        issued_at=cloud_now() - 1000,
        ncr_id=ncr_id,
        site=SITE,
        line=BODY_LINE,
        station="vision-01",
        part_id=part_id,
        order_id=order_id,
        defect_code="SCRATCH",
        description="scratch on the door panel",
        detected_at=cloud_now() - 2000,
        source=DefectSource.VISION,
    )
    route = OUTBOUND_EVENTS[NonConformanceReport]
    return {
        "version": "0",
        "id": "6a7e8feb-b491-4cf7-a9f1-bf3703467718",
        "source": route.source.value,
        "detail-type": route.detail_type,
        "time": "2026-01-01T00:00:00Z",
        "detail": event_detail(report),
    }


def test_nonconformance_events_are_recorded_once_and_linked(client, clean):
    release(client, order_id="PO-1", kinds=("press", "camera_inspection", "assembly"))
    client.post("/orders/PO-1/serials", json=command(serial="SN-7"))
    event = nonconformance_event("NCR-1", order_id=None, part_id="SN-7")
    first = client.post("/events", json=event)
    assert (first.status_code, first.json()) == (
        201,
        {"ncr_id": "NCR-1", "handled_by": "cloud", "duplicate": False},
    )
    again = client.post("/events", json=event)
    assert (again.status_code, again.json()["duplicate"]) == (200, True)
    nc = client.get("/nonconformances/NCR-1").json()
    assert (nc["order_id"], nc["serial"], nc["station"], nc["disposition"], nc["version"]) == (
        "PO-1",  # from the serial
        "SN-7",
        "vision-01",
        None,
        1,
    )
    audit = client.get("/audit", params={"entity": "nonconformance", "entity_id": "NCR-1"})
    assert [e["action"] for e in audit.json()] == ["RecordNonConformance"]

    other = {**event, "detail-type": "PartCount"}
    assert problem(client.post("/events", json=other), 422)[0] == "detail-type"
    broken = nonconformance_event("NCR-2", "PO-1")
    broken["detail"]["defect_code"] = ""
    assert problem(client.post("/events", json=broken), 422)[0] == "detail.defect_code"
    assert problem(client.post("/events", json={"source": "x"}), 422)[0] == "detail-type"
    assert client.get("/nonconformances/NCR-2").status_code == 404


def test_dispositions(client, clean, clock):
    release(client, order_id="PO-1", kinds=("press", "camera_inspection", "assembly"))
    op(client, "PO-1", 10, "start", station="press-01")
    op(client, "PO-1", 10, "complete", good_quantity=10)
    op(client, "PO-1", 20, "start", station="vision-01")
    for ncr in ("NCR-R", "NCR-R2", "NCR-S", "NCR-U"):
        assert client.post("/events", json=nonconformance_event(ncr, "PO-1")).status_code == 201

    rework = client.post(
        "/nonconformances/NCR-R/disposition",
        json=command(disposition="REWORK", note="polish", expected_version=1),
    )
    assert rework.status_code == 200
    assert (rework.json()["disposition"], rework.json()["rework_operation_no"]) == ("REWORK", 31)
    assert rework.json()["version"] == 2
    order = client.get("/orders/PO-1").json()
    added = order["operations"][-1]
    assert (added["operation_no"], added["follows"], added["rework"], added["status"]) == (
        31,
        20,  # the operation running at the station that found it
        True,
        "PENDING",
    )
    assert (added["station_kind"], added["planned_quantity"]) == ("camera_inspection", 1.0)
    # a second part to rework there joins the open rework operation
    second = client.post("/nonconformances/NCR-R2/disposition", json=command(disposition="REWORK"))
    assert second.json()["rework_operation_no"] == 31
    assert client.get("/orders/PO-1").json()["operations"][-1]["planned_quantity"] == 2.0

    # completing 20 makes both 30 and the rework READY; the order completes only with it
    op(client, "PO-1", 20, "complete", good_quantity=9)
    statuses = {
        o["operation_no"]: o["status"] for o in client.get("/orders/PO-1").json()["operations"]
    }
    assert statuses == {10: "COMPLETED", 20: "COMPLETED", 30: "READY", 31: "READY"}

    scrap = client.post("/nonconformances/NCR-S/disposition", json=command(disposition="SCRAP"))
    assert scrap.json()["disposition"] == "SCRAP"
    assert client.get("/orders/PO-1").json()["nonconformance_scrap"] == 1.0
    use = client.post("/nonconformances/NCR-U/disposition", json=command(disposition="USE_AS_IS"))
    assert (use.json()["disposition"], use.json()["rework_operation_no"]) == ("USE_AS_IS", None)

    twice = client.post("/nonconformances/NCR-U/disposition", json=command(disposition="SCRAP"))
    assert problem(twice, 422)[0] == "disposition"
    stale = client.post(
        "/nonconformances/NCR-S/disposition",
        json=command(disposition="SCRAP", expected_version=1),
    )
    assert problem(stale, 409)[0] == "expected_version"
    unknown = client.post("/nonconformances/NCR-X/disposition", json=command(disposition="SCRAP"))
    assert problem(unknown, 404)[0] == "ncr_id"
    bad = client.post("/nonconformances/NCR-X/disposition", json=command(disposition="BURN"))
    assert problem(bad, 422)[0] == "disposition"

    # an order without an order: only USE_AS_IS
    client.post("/events", json=nonconformance_event("NCR-N", None, part_id="P-unknown"))
    orphan = client.post("/nonconformances/NCR-N/disposition", json=command(disposition="REWORK"))
    assert problem(orphan, 422)[0] == "disposition"


# ---- instances ---------------------------------------------------------------------------------


def test_only_the_instance_that_executes_an_order_takes_its_station_commands(
    database, clock, clean
):
    cloud = start_instance(database, clock, edge_sites=SITE)
    edge = start_instance(database, clock, instance_id=SITE)
    try:
        released = cloud.client.post("/orders/release", json=release_body(order_id="PO-E"))
        assert released.json()["executed_at"] == SITE
        (message,) = outbox(cloud.sessions, SITE)
        assert message[1] == "OrderReleased"
        assert message[2]["order"]["order_id"] == "PO-E"

        before = row_counts(clean)
        refused = cloud.client.post(
            "/orders/PO-E/operations/10/start", json=command(station="press-01")
        )
        field, text_ = problem(refused, 409)
        assert field == "order_id" and f"edge instance of {SITE}" in text_
        at_edge = edge.client.post("/orders/release", json=release_body(order_id="PO-F"))
        field, text_ = problem(at_edge, 409)
        assert field == "order.order_id" and "cloud" in text_
        assert row_counts(clean) == before
    finally:
        for instance in (cloud, edge):
            instance.stop()


@pytest.mark.parametrize(
    ("path", "field"),
    [
        ("/orders/PO-X", "order_id"),
        ("/orders/PO-X/confirmations", "order_id"),
        ("/orders/PO-X/components", "order_id"),
        ("/orders/PO-X/serials/SN-1", "serial"),
        ("/nonconformances/NCR-X", "ncr_id"),
    ],
)
def test_reading_what_is_not_there_is_404_with_the_field(client, path, field):
    assert problem(client.get(path), 404)[0] == field


def test_concurrent_starts_at_one_station_run_one_and_refuse_the_rest(cloud, clean):
    """Orders lock one at a time, so two orders can race for a station: the unique index on
    running operations per station decides, and the loser gets a 409 or 422, never a 500."""
    service = cloud.client.app.state.service
    racers = 4
    for round_ in range(5):
        orders = [f"PO-{round_}-{i}" for i in range(racers)]
        for order_id in orders:
            release(cloud.client, order_id=order_id)
        barrier = threading.Barrier(racers)

        def start(order_id: str, barrier=barrier):
            barrier.wait()
            try:
                return service.start(
                    order_id, 10, StartOperation(**command(station="press-01"))
                ).status_code
            except ServiceError as refused:
                return refused.status

        with ThreadPoolExecutor(racers) as pool:
            outcomes = sorted(pool.map(start, orders))
        assert outcomes.count(200) == 1, outcomes
        assert set(outcomes) - {200} <= {409, 422}, outcomes
        running = [
            o for o in orders if cloud.client.get(f"/orders/{o}").json()["status"] == "IN_PROGRESS"
        ]
        assert len(running) == 1
        op(cloud.client, running[0], 10, "complete", good_quantity=1)


# ---- audit, health, OpenAPI --------------------------------------------------------------------


def test_audit_trail_says_who_did_what_when(client):
    before = cloud_now()
    release(client, order_id="PO-1")
    op(client, "PO-1", 10, "start", station="press-01")
    op(client, "PO-1", 10, "pause", reason="lunch")
    trail = client.get("/audit", params={"entity": "operation", "entity_id": "PO-1/10"}).json()
    assert [(e["action"], e["actor"], e["detail"]["to"]) for e in trail] == [
        ("StartOperation", "operator-7", "RUNNING"),
        ("PauseOperation", "operator-7", "PAUSED"),
    ]
    assert trail[1]["detail"]["reason"] == "lunch"
    assert before <= trail[0]["at"] <= cloud_now()  # when it was done, not the plant's clock
    assert trail[0]["command_id"].startswith("cmd-")
    order = client.get("/audit", params={"entity": "order", "entity_id": "PO-1"}).json()
    assert [(e["action"], e["actor"]) for e in order] == [("ReleaseOrder", "planner")]
    assert problem(client.get("/audit", params={"entity_id": "PO-1"}), 422)[0] == "entity"


def test_health_and_readiness(client):
    assert client.get("/health/live").json() == {"status": "ok"}
    assert client.get("/health/ready").status_code == 200
    assert "http_requests" in client.get("/metrics").text


def test_openapi_lists_every_route(client):
    paths = client.get("/openapi.json").json()["paths"]
    expected = {
        "/orders/release": {"post"},
        "/orders/{order_id}": {"get"},
        "/orders/{order_id}/operations/{operation_no}/start": {"post"},
        "/orders/{order_id}/operations/{operation_no}/pause": {"post"},
        "/orders/{order_id}/operations/{operation_no}/scrap": {"post"},
        "/orders/{order_id}/operations/{operation_no}/complete": {"post"},
        "/orders/{order_id}/confirmations": {"get"},
        "/orders/{order_id}/serials": {"post"},
        "/orders/{order_id}/serials/{serial}": {"get"},
        "/orders/{order_id}/serials/{serial}/components": {"post"},
        "/orders/{order_id}/components": {"get", "post"},
        "/dispatch/{site}/{line}": {"get"},
        "/dispatch/{site}/{line}/{station}": {"get"},
        "/stations/{site}/{line}/{station}/counts": {"post"},
        "/events": {"post"},
        "/nonconformances/{ncr_id}": {"get"},
        "/nonconformances/{ncr_id}/disposition": {"post"},
        "/audit": {"get"},
        "/health/live": {"get"},
        "/health/ready": {"get"},
    }
    assert {path: set(methods) for path, methods in paths.items()} == expected
    release_doc = paths["/orders/release"]["post"]
    assert {"201", "404", "409", "422"} <= set(release_doc["responses"])
    schema = release_doc["responses"]["201"]["content"]["application/json"]["schema"]
    assert schema["$ref"].endswith("/WorkOrderView")
