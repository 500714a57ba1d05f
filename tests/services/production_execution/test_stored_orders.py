"""Releasing an order from the enterprise interface's store: the documents as the ERP/PLM
router's own code stores them (in moto's DynamoDB), read back, released once."""

from __future__ import annotations

from collections.abc import Iterator

import boto3
import pytest
from fastapi.testclient import TestClient
from moto import mock_aws
from sqlalchemy import select

from lambdas.erp_plm_router.contract import DocType
from lambdas.erp_plm_router.documents import RawDocument, prepare
from services.common.aws import DynamoDbStore
from services.production_execution.app import build_app
from services.production_execution.models import TABLES as TABLES_OF_SERVICE
from tests.services.production_execution.conftest import BODY_LINE, release_command, settings

TABLES = {"orders": "mes-orders", "products": "mes-products", "process_plans": "mes-plans"}
ENV = {
    "MES_ORDERS_TABLE": TABLES["orders"],
    "MES_PRODUCTS_TABLE": TABLES["products"],
    "MES_PROCESS_PLANS_TABLE": TABLES["process_plans"],
}


@pytest.fixture
def dynamodb(monkeypatch) -> Iterator[object]:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-central-1")
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(name, "testing")
    with mock_aws():
        resource = boto3.resource("dynamodb")
        for table in TABLES.values():
            resource.create_table(
                TableName=table,
                KeySchema=[
                    {"AttributeName": "pk", "KeyType": "HASH"},
                    {"AttributeName": "sk", "KeyType": "RANGE"},
                ],
                AttributeDefinitions=[
                    {"AttributeName": "pk", "AttributeType": "S"},
                    {"AttributeName": "sk", "AttributeType": "S"},
                ],
                BillingMode="PAY_PER_REQUEST",
            )
        yield resource


def store(resource, table: str, doc_type: DocType, document) -> None:
    prepared = prepare(doc_type, document, RawDocument(1, None, None), now_ms=1_767_225_600_000)
    resource.Table(table).put_item(Item=prepared.item)


@pytest.fixture
def client(database, clean, clock, dynamodb) -> Iterator[TestClient]:
    app = build_app(settings(database, **ENV), clock=clock, store=DynamoDbStore())
    with TestClient(app) as client:
        yield client


def stored_documents(resource, order_id: str = "PO-9", with_bom: bool = True):
    release = release_command(order_id)
    order = release.order.model_copy(
        update={
            "routing_id": release.routing.routing_id,
            "bom_id": release.bom.bom_id if with_bom else None,
        }
    )
    store(resource, TABLES["orders"], DocType.PRODUCTION_ORDER, order)
    store(resource, TABLES["process_plans"], DocType.ROUTING, release.routing)
    store(resource, TABLES["products"], DocType.BOM, release.bom)
    return release.model_copy(update={"order": order})


def release(client: TestClient, order_id: str, **body):
    command = {"command_id": f"release-stored-{order_id}", "actor": "planner", **body}
    return client.post(f"/orders/{order_id}/release-stored", json=command)


def test_a_stored_order_is_released_with_its_routing_and_bom_once(client, dynamodb):
    documents = stored_documents(dynamodb)
    first = release(client, "PO-9", priority=100)
    assert first.status_code == 201, first.text
    order = first.json()
    assert (order["order_id"], order["line"], order["priority"]) == ("PO-9", BODY_LINE, 100)
    assert [op["operation_no"] for op in order["operations"]] == [
        op.operation_no for op in documents.routing.operations
    ]
    assert order["quantity"] == documents.order.quantity
    with client.app.state.sessions() as session:  # the stored BOM reserved the components
        outbox = TABLES_OF_SERVICE.outbox
        reservation = session.scalars(
            select(outbox.payload).where(outbox.kind == "ReserveForOrder")
        ).one()
    assert {r["material_id"] for r in reservation["requirements"]} == {
        item.component_id for item in documents.bom.items
    }
    # ERP stores a newer revision meanwhile: the replay still answers as the first release
    newer = documents.order.model_copy(update={"revision": 1, "quantity": 99.0})
    store(dynamodb, TABLES["orders"], DocType.PRODUCTION_ORDER, newer)
    again = release(client, "PO-9", priority=100)
    assert again.status_code == 201 and again.json() == order
    assert again.headers["idempotent-replayed"] == "true"
    # Another command id for the same order: released before
    other = client.post(
        "/orders/PO-9/release-stored", json={"command_id": "release-stored-b", "actor": "p"}
    )
    assert other.status_code == 409, other.text
    assert other.json()["detail"][0]["field"] == "order.order_id"


def test_what_is_missing_from_the_store_is_named(client, dynamodb):
    missing = release(client, "PO-404")
    assert missing.status_code == 404
    assert missing.json()["detail"][0] == {
        "message": "the enterprise interface has no order PO-404",
        "field": "order_id",
    }
    documents = release_command("PO-5")
    store(dynamodb, TABLES["orders"], DocType.PRODUCTION_ORDER, documents.order)  # no routing_id
    no_routing = release(client, "PO-5")
    assert no_routing.status_code == 422 and "names no routing" in no_routing.text
    order = documents.order.model_copy(update={"order_id": "PO-6", "routing_id": "RT-GONE"})
    store(dynamodb, TABLES["orders"], DocType.PRODUCTION_ORDER, order)
    gone = release(client, "PO-6")
    assert gone.status_code == 404 and "routing RT-GONE of order PO-6" in gone.text
    assert client.get("/orders/PO-5").status_code == 404  # nothing half-written


def test_the_store_takes_all_three_tables_at_the_cloud(database):
    from services.common.settings import SettingsError

    with pytest.raises(SettingsError, match="needs all three"):
        settings(database, MES_ORDERS_TABLE="mes-orders")
    with pytest.raises(SettingsError, match="read by the cloud instance"):
        settings(database, instance_id="berlin", **ENV)
