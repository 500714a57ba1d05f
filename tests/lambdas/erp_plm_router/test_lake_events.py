"""Production orders into the data lake: Given orders arriving by file or API, When the router
stores one for the first time (a new order or a newer revision), Then it puts the order's
production_orders row on the platform bus, where the lake's rule takes it; a duplicate, a stale
revision or another document type puts nothing; a failed put stores nothing, and the retry puts
and stores."""

from __future__ import annotations

import json

import pytest

from lambdas.erp_plm_router import adapters
from lambdas.erp_plm_router.lake_events import MAX_ENTRIES_PER_PUT, order_entries, put_batches
from lambdas.erp_plm_router.settings import EnvVar
from mes_domain import lake
from mes_domain.enterprise import EventSource, ProductionOrder
from tests.lambdas.erp_plm_router.conftest import ENV, SAMPLES, create_lake_rule
from tests.lambdas.erp_plm_router.test_api_handler import orders, post
from tests.lambdas.erp_plm_router.test_s3_handler import deliver, order_csv


def test_an_order_event_is_the_orders_lake_row_from_a_source_erp_never_gets():
    order = ProductionOrder.model_validate(orders()[0])
    (entry,) = order_entries([order, "not an order"], "bus")
    assert (entry["Source"], entry["DetailType"], entry["EventBusName"]) == (
        "mes.erp",
        "ProductionOrder",
        "bus",
    )
    assert json.loads(entry["Detail"]) == lake.document_row(lake.PRODUCTION_ORDERS, order)
    # The enterprise rules send these sources to ERP and PLM: an order must not go back.
    assert entry["Source"] not in {source.value for source in EventSource}


def test_puts_go_ten_entries_at_a_time():
    sizes = [len(batch) for batch in put_batches([{"n": i} for i in range(23)])]
    assert sizes == [MAX_ENTRIES_PER_PUT, MAX_ENTRIES_PER_PUT, 3]


def drop_sample(world, name: str, sample: str) -> dict:
    return world.drop(f"inbound/erp/production-order/{name}", (SAMPLES / sample).read_bytes())


def test_each_stored_order_is_one_lake_row_once_whatever_the_format(world):
    deliver(drop_sample(world, "a.json", "production-order.json"))
    deliver(drop_sample(world, "b.csv", "production-order.csv"))
    rows = world.lake_rows()
    assert sorted(r["order_id"] for r in rows) == [
        "1000123",
        "1000124",
        "2000001",
        "2000002",
        "2000003",
    ]
    columns = {c.name for c in lake.PRODUCTION_ORDERS.columns}
    for row in rows:
        assert set(row) == columns | {"site", "dt"}
        assert row["site"] == "berlin" and row["dt"] == lake.day_of(row["issued_at"])
    first = next(r for r in rows if r["order_id"] == "1000123")
    assert first == lake.document_row(
        lake.PRODUCTION_ORDERS, ProductionOrder.model_validate(orders()[0])
    )

    # The same documents again, by file and by API: stored already, so nothing is put.
    deliver(drop_sample(world, "a-again.json", "production-order.json"))
    assert post("erp", "production-order", orders())[0] == 200
    assert world.lake_rows() == []


def test_a_newer_revision_is_put_and_a_late_older_one_is_not(world):
    deliver(world.drop("inbound/erp/production-order/a.csv", order_csv(("7", 2, 200))))
    deliver(world.drop("inbound/erp/production-order/b.csv", order_csv(("7", 3, 300))))
    deliver(world.drop("inbound/erp/production-order/c.csv", order_csv(("7", 1, 100))))

    rows = world.lake_rows()
    assert [(r["order_id"], r["revision"], r["quantity"]) for r in rows] == [
        ("7", 2, 200.0),
        ("7", 3, 300.0),
    ]


def test_an_order_posted_to_the_api_is_put_once(world):
    status, _ = post("erp", "production-order", orders()[:1])
    assert status == 200
    assert [r["order_id"] for r in world.lake_rows()] == ["1000123"]
    assert post("erp", "production-order", orders()[:1])[0] == 200
    assert world.lake_rows() == []


def test_other_documents_put_nothing(world):
    for inbox, sample in (
        ("erp/material-master", "material-master.json"),
        ("erp/inventory", "inventory.csv"),
        ("plm/routing", "routing.json"),
    ):
        deliver(world.drop(f"inbound/{inbox}/{sample}", (SAMPLES / sample).read_bytes()))
    assert world.items(EnvVar.PRODUCTS_TABLE) and world.items(EnvVar.INVENTORY_TABLE)
    assert world.lake_rows() == []


def test_an_invalid_request_puts_nothing(world):
    documents = orders()
    documents[1]["quantity"] = -1
    assert post("erp", "production-order", documents)[0] == 400
    assert world.lake_rows() == []


def test_a_failed_put_stores_nothing_and_the_retry_puts_and_stores(world, monkeypatch):
    monkeypatch.setattr(adapters, "_backoff", lambda attempt: None)
    events = adapters.client("events")
    bus = ENV[EnvVar.EVENT_BUS_NAME]
    events.delete_event_bus(Name=bus)  # every put fails now
    record = world.drop("inbound/erp/production-order/a.csv", order_csv(("7", 1, 100)))
    other = world.drop("inbound/erp/inventory/i.csv", (SAMPLES / "inventory.csv").read_bytes())

    response = deliver(record, other)

    assert response == {"batchItemFailures": [{"itemIdentifier": record["messageId"]}]}
    assert world.items(EnvVar.ORDERS_TABLE) == []
    assert len(world.items(EnvVar.INVENTORY_TABLE)) == 2  # no order in it: no put, stored
    create_lake_rule()
    assert deliver(record) == {"batchItemFailures": []}
    assert world.item(EnvVar.ORDERS_TABLE, "ORDER#7")["revision"]["N"] == "1"
    assert [(r["order_id"], r["revision"]) for r in world.lake_rows()] == [("7", 1)]


class PartlyThrottled:
    """PutEvents that rejects the first entry of the first call, as a throttled entry."""

    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    def put_events(self, Entries):  # noqa: N803 (boto3's name)
        self.calls.append([json.loads(e["Detail"])["order_id"] for e in Entries])
        if len(self.calls) > 1:
            return {"FailedEntryCount": 0, "Entries": [{"EventId": "x"} for _ in Entries]}
        results = [{"ErrorCode": "ThrottlingException", "ErrorMessage": "slow down"}]
        return {"FailedEntryCount": 1, "Entries": results + [{"EventId": "x"}] * (len(Entries) - 1)}


def test_rejected_entries_alone_are_put_again(monkeypatch):
    stub = PartlyThrottled()
    monkeypatch.setattr(adapters, "client", lambda service: stub)
    monkeypatch.setattr(adapters, "_backoff", lambda attempt: None)
    documents = [ProductionOrder.model_validate(d) for d in orders()]

    assert adapters.OrderEvents("bus").publish(documents) == 2
    assert stub.calls == [["1000123", "1000124"], ["1000123"]]


def test_entries_still_rejected_after_every_attempt_fail_the_put(monkeypatch):
    class AlwaysThrottled(PartlyThrottled):
        def put_events(self, Entries):  # noqa: N803
            self.calls.append(Entries)
            failed = {"ErrorCode": "ThrottlingException", "ErrorMessage": "slow down"}
            return {"FailedEntryCount": len(Entries), "Entries": [failed] * len(Entries)}

    stub = AlwaysThrottled()
    monkeypatch.setattr(adapters, "client", lambda service: stub)
    monkeypatch.setattr(adapters, "_backoff", lambda attempt: None)
    with pytest.raises(adapters.EventsBusy, match="ThrottlingException"):
        adapters.OrderEvents("bus").publish([ProductionOrder.model_validate(orders()[0])])
    assert len(stub.calls) == adapters.MAX_ATTEMPTS
