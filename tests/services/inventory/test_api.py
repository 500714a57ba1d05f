"""The inventory's HTTP contract: routes, statuses and bodies; bad input answered 4xx with the
field and nothing written; replays; the InventoryAvailability documents for ERP."""

from __future__ import annotations

import json

import pytest

from mes_domain.enterprise import InventoryAvailability
from services.common.settings import ServiceSettings
from services.inventory.app import bus_relay
from tests.services.inventory.conftest import rows, table_counts

SITE = "berlin"
L1 = {"site": SITE, "location": "A1", "material_id": "M1", "lot": "L1"}
_ids = iter(range(1, 1_000_000))


def cid(prefix: str = "cmd") -> str:
    return f"{prefix}-{next(_ids):06d}"


def receipt(stock=L1, quantity=10.0, uom="pc", command_id=None):
    return {
        "command_id": command_id or cid("rcpt"),
        "actor": "clerk",
        "stock": stock,
        "quantity": quantity,
        "uom": uom,
    }


def issue(stock=L1, quantity=1.0, uom="pc", **extra):
    return {
        "command_id": cid("issue"),
        "actor": "clerk",
        "stock": stock,
        "quantity": quantity,
        "uom": uom,
        **extra,
    }


def transfer(stock=L1, to="B1", quantity=1.0, uom="pc", **extra):
    return {
        "command_id": cid("xfer"),
        "actor": "clerk",
        "stock": stock,
        "to_location": to,
        "quantity": quantity,
        "uom": uom,
        **extra,
    }


def reservation(order="O1", site=SITE, requirements=(("M1", 4.0, "pc"),), command_id=None):
    return {
        "command_id": command_id or f"reserve:{order}:{next(_ids)}",
        "actor": "production-execution",
        "order_id": order,
        "site": site,
        "requirements": [{"material_id": m, "quantity": q, "uom": u} for m, q, u in requirements],
    }


def consumption(order="O1", op=10, materials=(("M1", 2.0, "pc", None),), command_id=None):
    return {
        "command_id": command_id or f"consume:{order}:{op}",
        "actor": "production-execution",
        "order_id": order,
        "operation_no": op,
        "site": SITE,
        "materials": [
            {"material_id": m, "quantity": q, "uom": u, "lot": lot} for m, q, u, lot in materials
        ],
    }


def ok(response, status=200):
    assert response.status_code == status, response.text
    return response.json()


def stock_rows(db):
    return rows(db, "SELECT * FROM stock ORDER BY id")


def test_openapi_lists_every_route_with_the_mes_domain_models(client):
    spec = ok(client.get("/openapi.json"))
    assert {
        "/receipts": {"post"},
        "/issues": {"post"},
        "/transfers": {"post"},
        "/reservations": {"post"},
        "/consumptions": {"post"},
        "/stock": {"get"},
        "/availability/{site}/{material_id}": {"get"},
        "/reservations/{order_id}": {"get"},
    }.items() <= {path: set(methods) for path, methods in spec["paths"].items()}.items()
    bodies = {
        path: spec["paths"][path]["post"]["requestBody"]["content"]["application/json"]["schema"]
        for path in ("/receipts", "/issues", "/transfers", "/reservations", "/consumptions")
    }
    assert {path: schema["$ref"].rsplit("/", 1)[1] for path, schema in bodies.items()} == {
        "/receipts": "GoodsReceipt",
        "/issues": "GoodsIssue",
        "/transfers": "Transfer",
        "/reservations": "ReserveForOrder",
        "/consumptions": "ReportConsumption",
    }
    availability = spec["paths"]["/availability/{site}/{material_id}"]["get"]["responses"]
    assert availability["200"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "/InventoryAvailability"
    )
    assert ok(client.get("/health/live")) == {"status": "ok"}
    assert ok(client.get("/health/ready")) == {"status": "ready"}


def test_receipt_issue_and_transfer_answer_the_positions_they_changed(client, db):
    assert ok(client.post("/receipts", json=receipt(quantity=10))) == {
        **L1,
        "quantity": 10.0,
        "reserved": 0.0,
        "uom": "pc",
        "version": 1,
    }
    after_issue = ok(client.post("/issues", json=issue(quantity=2.5, expected_version=1)))
    assert (after_issue["quantity"], after_issue["version"]) == (7.5, 2)
    moved = ok(client.post("/transfers", json=transfer(quantity=3, to="B1")))
    assert moved["source"] | {"version": None} == {
        **L1,
        "quantity": 4.5,
        "reserved": 0.0,
        "uom": "pc",
        "version": None,
    }
    assert moved["destination"] == {
        **L1,
        "location": "B1",
        "quantity": 3.0,
        "reserved": 0.0,
        "uom": "pc",
        "version": 1,
    }
    listed = ok(client.get("/stock", params={"site": SITE, "material_id": "M1"}))
    assert [(s["location"], s["quantity"]) for s in listed] == [("A1", 4.5), ("B1", 3.0)]
    assert ok(client.get("/stock", params={"site": SITE, "location": "B1"})) == [
        moved["destination"]
    ]
    assert ok(client.get("/stock", params={"site": "elsewhere"})) == []
    ledger = rows(db, "SELECT kind, delta::text AS delta FROM movement ORDER BY id")
    assert ledger == [
        {"kind": "RECEIPT", "delta": "10.000000"},
        {"kind": "ISSUE", "delta": "-2.500000"},
        {"kind": "TRANSFER_OUT", "delta": "-3.000000"},
        {"kind": "TRANSFER_IN", "delta": "3.000000"},
    ]
    audit = rows(db, "SELECT action, actor, entity, entity_id, detail FROM audit_trail ORDER BY id")
    assert [(a["action"], a["entity"], a["entity_id"]) for a in audit] == [
        ("GoodsReceipt", "stock", "1"),
        ("GoodsIssue", "stock", "1"),
        ("Transfer", "stock", "1"),
    ]
    assert audit[0]["actor"] == "clerk"
    assert audit[0]["detail"] == {"stock": L1, "quantity": "10", "uom": "pc"}
    assert audit[2]["detail"]["to_stock_id"] == 2


def test_a_replay_answers_the_same_and_changes_nothing(client, db):
    first = client.post("/receipts", json=receipt(command_id="rcpt-replayed"))
    before = table_counts(db), stock_rows(db)
    again = client.post("/receipts", json=receipt(command_id="rcpt-replayed"))
    assert first.status_code == 200
    assert (again.status_code, again.json()) == (first.status_code, first.json())
    assert (table_counts(db), stock_rows(db)) == before


def test_a_command_id_used_for_another_body_is_409_and_changes_nothing(client, db):
    ok(client.post("/receipts", json=receipt(command_id="rcpt-original")))
    before = table_counts(db), stock_rows(db)
    for path, body in (
        ("/receipts", receipt(command_id="rcpt-original", quantity=11)),
        ("/issues", {**issue(), "command_id": "rcpt-original"}),
    ):
        conflict = client.post(path, json=body)
        assert conflict.status_code == 409, conflict.text
        assert conflict.json()["detail"][0]["field"] == "command_id"
    assert (table_counts(db), stock_rows(db)) == before


def test_a_stale_expected_version_is_409_and_changes_nothing(client, db):
    ok(client.post("/receipts", json=receipt(quantity=10)))
    ok(client.post("/issues", json=issue(quantity=1)))  # now at version 2
    before = table_counts(db), stock_rows(db)
    for path, body in (
        ("/issues", issue(quantity=1, expected_version=1)),
        ("/transfers", transfer(quantity=1, expected_version=1)),
    ):
        stale = client.post(path, json=body)
        assert stale.status_code == 409, stale.text
        assert stale.json()["detail"][0]["field"] == "expected_version"
        assert "version 2" in stale.json()["detail"][0]["message"]
    assert (table_counts(db), stock_rows(db)) == before


BAD = [
    ("/receipts", receipt(quantity=-1), 422, "quantity", "greater than 0"),
    ("/receipts", receipt(stock={**L1, "lot": ""}), 422, "stock.lot", "at least 1"),
    ("/receipts", receipt(stock={**L1, "site": "a/b"}), 422, "stock.site", "MQTT"),
    ("/receipts", receipt(quantity=0.0000001), 422, "quantity", "decimal places"),
    ("/receipts", receipt(stock={**L1, "lot": "L2"}, uom="kg"), 422, "uom", "'pc'"),
    ("/receipts", {**receipt(), "command_id": "short"}, 422, "command_id", "at least 8"),
    ("/receipts", {**receipt(), "extra": 1}, 422, "extra", "not permitted"),
    ("/issues", issue(quantity=7), 422, "quantity", "available 6 pc"),
    ("/issues", issue(stock={**L1, "lot": "L9"}), 404, "stock", "no lot L9"),
    ("/issues", issue(uom="kg"), 422, "uom", "units are not converted"),
    ("/transfers", transfer(quantity=6.5), 422, "quantity", "available 6 pc"),
    ("/transfers", transfer(stock={**L1, "location": "Z9"}), 404, "stock", "no lot L1"),
    ("/reservations", reservation(site="paris"), 409, "site", "at site berlin"),
    # another material of the order: still its site
    (
        "/reservations",
        reservation(site="paris", requirements=(("M3", 1, "pc"),)),
        409,
        "site",
        "at site berlin",
    ),
    ("/consumptions", {**consumption(), "site": "paris"}, 409, "site", "at site berlin"),
    (
        "/reservations",
        reservation(requirements=(("M1", 1, "kg"),)),
        422,
        "requirements[0].uom",
        "'pc'",
    ),
    (
        "/reservations",
        reservation(requirements=(("M1", 1, "pc"), ("M1", 2, "pc"))),
        422,
        "requirements",
        "duplicate material",
    ),
    (
        "/consumptions",
        consumption(materials=(("M2", 1, "pc", None),)),
        422,
        "materials[0].quantity",
        "available 0",
    ),
    (
        "/consumptions",
        consumption(materials=(("M1", 10.5, "pc", None),)),
        422,
        "materials[0].quantity",
        "available 10 pc",
    ),  # 6 unreserved + the order's own 4
    (
        "/consumptions",
        consumption(order="O2", materials=(("M1", 7, "pc", None),)),
        422,
        "materials[0].quantity",
        "available 6 pc",
    ),  # O1's 4 are not O2's
    # The first material alone would pass: all or nothing.
    (
        "/consumptions",
        consumption(materials=(("M1", 2, "pc", None), ("M1", 1, "pc", "L9"))),
        422,
        "materials[1].quantity",
        "lot L9",
    ),
    (
        "/consumptions",
        consumption(materials=(("M1", 1, "kg", None),)),
        422,
        "materials[0].uom",
        "'pc'",
    ),
]


@pytest.mark.parametrize(
    ("path", "body", "status", "field", "reason"),
    BAD,
    ids=[f"{b[0]}-{b[3]}-{i}" for i, b in enumerate(BAD)],
)
def test_bad_input_is_refused_with_the_field_and_nothing_is_written(
    client, db, path, body, status, field, reason
):
    ok(client.post("/receipts", json=receipt(quantity=10)))
    ok(client.post("/reservations", json=reservation(requirements=(("M1", 4, "pc"),))))
    before = table_counts(db), stock_rows(db), rows(db, "SELECT * FROM reservation")
    refused = client.post(path, json=body)
    assert refused.status_code == status, refused.text
    details = refused.json()["detail"]
    assert any(d.get("field") == field and reason in d["message"] for d in details), details
    assert (table_counts(db), stock_rows(db), rows(db, "SELECT * FROM reservation")) == before


def test_reservations_are_partial_with_the_shortfall_and_top_up_later(client, db):
    ok(client.post("/receipts", json=receipt(quantity=3)))
    partial = ok(
        client.post(
            "/reservations", json=reservation(requirements=(("M1", 5, "pc"), ("M2", 2, "pc")))
        )
    )
    assert partial == {
        "order_id": "O1",
        "site": SITE,
        "materials": [
            {
                "material_id": "M1",
                "uom": "pc",
                "requested": 5.0,
                "consumed": 0.0,
                "reserved": 3.0,
                "shortfall": 2.0,
            },
            {
                "material_id": "M2",
                "uom": "pc",
                "requested": 2.0,
                "consumed": 0.0,
                "reserved": 0.0,
                "shortfall": 2.0,
            },
        ],
    }
    refused = client.post("/issues", json=issue(quantity=0.5))
    assert refused.status_code == 422 and "available 0 pc" in refused.text  # all reserved
    ok(client.post("/receipts", json=receipt(stock={**L1, "lot": "L2"}, quantity=10)))
    topped = ok(client.post("/reservations", json=reservation(requirements=(("M1", 5, "pc"),))))
    assert topped["materials"][0] == {
        "material_id": "M1",
        "uom": "pc",
        "requested": 5.0,
        "consumed": 0.0,
        "reserved": 5.0,
        "shortfall": 0.0,
    }
    lowered = ok(client.post("/reservations", json=reservation(requirements=(("M1", 1, "pc"),))))
    assert lowered["materials"][0]["reserved"] == 1.0
    assert ok(client.get("/reservations/O1")) == lowered
    positions = {s["lot"]: s["reserved"] for s in ok(client.get("/stock", params={"site": SITE}))}
    assert positions == {"L1": 1.0, "L2": 0.0}  # the oldest lot keeps the hold
    missing = client.get("/reservations/O404")
    assert (missing.status_code, missing.json()["detail"][0]["field"]) == (404, "order_id")


def test_consumption_takes_oldest_lots_first_and_releases_the_reservation(client, db):
    ok(client.post("/receipts", json=receipt(stock={**L1, "lot": "OLD"}, quantity=2)))
    ok(client.post("/receipts", json=receipt(stock={**L1, "lot": "NEW"}, quantity=10)))
    ok(client.post("/reservations", json=reservation(requirements=(("M1", 6, "pc"),))))
    body = consumption(op=10, materials=(("M1", 5, "pc", None),))
    consumed = ok(client.post("/consumptions", json=body))
    assert consumed == {
        "order_id": "O1",
        "operation_no": 10,
        "site": SITE,
        "lots": [
            {"material_id": "M1", "location": "A1", "lot": "OLD", "quantity": 2.0, "uom": "pc"},
            {"material_id": "M1", "location": "A1", "lot": "NEW", "quantity": 3.0, "uom": "pc"},
        ],
    }
    account = ok(client.get("/reservations/O1"))["materials"][0]
    assert (account["consumed"], account["reserved"], account["shortfall"]) == (5.0, 1.0, 0.0)
    # production execution redelivers consume:O1:10: the same answer, nothing consumed twice
    before = table_counts(db), stock_rows(db)
    assert ok(client.post("/consumptions", json=body)) == consumed
    assert (table_counts(db), stock_rows(db)) == before
    ledger = rows(
        db,
        "SELECT kind, delta::text AS d, order_id, operation_no FROM movement"
        " WHERE kind = 'CONSUMPTION' ORDER BY id",
    )
    assert ledger == [
        {"kind": "CONSUMPTION", "d": "-2.000000", "order_id": "O1", "operation_no": 10},
        {"kind": "CONSUMPTION", "d": "-3.000000", "order_id": "O1", "operation_no": 10},
    ]


def test_availability_is_the_erp_contract_with_a_growing_revision_sent_to_the_bus(client, db):
    missing = client.get(f"/availability/{SITE}/M1")
    assert (missing.status_code, missing.json()["detail"][0]["field"]) == (404, "material_id")
    ok(client.post("/receipts", json=receipt(quantity=10)))
    ok(client.post("/reservations", json=reservation(requirements=(("M1", 4, "pc"),))))
    ok(client.post("/transfers", json=transfer(quantity=1)))  # within the site: no change
    ok(client.post("/issues", json=issue(quantity=2)))
    document = ok(client.get(f"/availability/{SITE}/M1"))
    InventoryAvailability.model_validate(document)
    assert {k: v for k, v in document.items() if k != "issued_at"} == {
        "v": 1,
        "source_system": "MES",
        "document_id": "AVAIL-berlin-M1",
        "revision": 3,  # receipt, reservation, issue
        "material_id": "M1",
        "site": SITE,
        "storage_location": None,
        "available_quantity": 4.0,
        "uom": "pc",
    }
    sent = rows(
        db, "SELECT destination, sequence, kind, dedup_key, payload FROM outbox ORDER BY sequence"
    )
    assert [(m["destination"], m["sequence"], m["kind"], m["dedup_key"]) for m in sent] == [
        ("bus", n, "InventoryAvailability", f"AVAIL-berlin-M1@{n}") for n in (1, 2, 3)
    ]
    assert [m["payload"]["available_quantity"] for m in sent] == [10.0, 6.0, 4.0]
    assert sent[-1]["payload"] == {"schema_version": 1, **document}


def test_metrics_count_the_requests_by_route(client):
    client.post("/receipts", json=receipt())
    text = client.get("/metrics").text
    assert 'http_requests_total{method="POST",route="/receipts",status="200"}' in text


def test_consuming_another_lot_still_releases_the_orders_reservation(client):
    ok(client.post("/receipts", json=receipt(stock={**L1, "lot": "L1"}, quantity=5)))
    ok(client.post("/receipts", json=receipt(stock={**L1, "lot": "L2"}, quantity=5)))
    ok(client.post("/reservations", json=reservation(requirements=(("M1", 4, "pc"),))))
    ok(client.post("/consumptions", json=consumption(materials=(("M1", 3, "pc", "L2"),))))
    account = ok(client.get("/reservations/O1"))["materials"][0]
    assert (account["consumed"], account["reserved"], account["shortfall"]) == (3.0, 1.0, 0.0)
    positions = ok(client.get("/stock", params={"site": SITE}))
    assert [(p["lot"], p["quantity"], p["reserved"]) for p in positions] == [
        ("L1", 5.0, 1.0),
        ("L2", 2.0, 0.0),
    ]


class Bus:
    """A ``BusPublisher`` that accepts everything and keeps it."""

    max_entries = 10

    def __init__(self) -> None:
        self.entries: list[dict] = []

    def put(self, entries):
        self.entries += entries
        return [None] * len(entries)


def test_the_relay_puts_each_availability_on_the_bus_once_for_erp(client, db):
    sessions = client.app.state.service.sessions
    settings = ServiceSettings(database_url="postgresql+psycopg://unused")
    assert bus_relay(settings, sessions) is None  # no bus configured
    bus = Bus()
    relay = bus_relay(settings.model_copy(update={"event_bus_name": "mes-bus"}), sessions, bus)
    ok(client.post("/receipts", json=receipt(quantity=10)))
    ok(client.post("/issues", json=issue(quantity=4)))
    assert relay.step().delivered == 2
    assert relay.step().delivered == 0  # marked sent: never again
    assert [(e["Source"], e["DetailType"], e["EventBusName"]) for e in bus.entries] == [
        ("mes.enterprise", "InventoryAvailability", "mes-bus")
    ] * 2
    latest = json.loads(bus.entries[-1]["Detail"])
    assert latest == {"schema_version": 1, **ok(client.get(f"/availability/{SITE}/M1"))}
    assert latest["available_quantity"] == 6.0
    assert rows(db, "SELECT count(*) AS n FROM outbox WHERE sent_at IS NULL") == [{"n": 0}]
