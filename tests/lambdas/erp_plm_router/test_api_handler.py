"""The API handler under moto: Given documents POSTed to /documents/{source}/{type}, When
handled, Then they take the same path as files: stored once, newest revision wins, and the
status says what happened (200 stored, 400 invalid and nothing stored, 404 no inbox, 409 a
newer or conflicting revision is stored)."""

import json

import jsonschema
import pytest

from lambdas.erp_plm_router import api_handler, s3_handler
from lambdas.erp_plm_router.settings import EnvVar
from tests.lambdas.conftest import LambdaContext
from tests.lambdas.erp_plm_router.conftest import SAMPLES


def post(source, doc_type, body):
    event = {
        "resource": "/documents/{source}/{type}",
        "path": f"/documents/{source}/{doc_type}",
        "httpMethod": "POST",
        "headers": {"Content-Type": "application/json"},
        "pathParameters": {"source": source, "type": doc_type},
        "queryStringParameters": None,
        "body": body if isinstance(body, str) else json.dumps(body),
        "isBase64Encoded": False,
        "requestContext": {"httpMethod": "POST", "resourcePath": "/documents/{source}/{type}"},
    }
    response = api_handler.lambda_handler(event, LambdaContext())
    return response["statusCode"], json.loads(response["body"])


def orders():
    return json.loads((SAMPLES / "production-order.json").read_text())


def test_valid_documents_are_stored_with_a_200_report(world):
    status, report = post("erp", "production-order", orders())

    assert status == 200
    assert (report["received"], report["stored"], report["rejected"]) == (2, 2, 0)
    keys = sorted(item["pk"]["S"] for item in world.items(EnvVar.ORDERS_TABLE))
    assert keys == ["ORDER#1000123", "ORDER#1000124"]


def test_one_document_is_a_body_too(world):
    routing = json.loads((SAMPLES / "routing.json").read_text())

    status, report = post("plm", "routing", routing)

    assert status == 200 and report["stored"] == 1
    assert world.item(EnvVar.PROCESS_PLANS_TABLE, "ROUTING#RT-DOOR-L") is not None


def test_an_invalid_document_is_a_400_with_its_errors_and_nothing_is_stored(world):
    documents = orders()
    documents[1]["quantity"] = -5

    status, report = post("erp", "production-order", documents)

    assert status == 400
    assert report["withheld"] == 1 and report["stored"] == 0
    [error] = report["errors"]
    assert (error["index"], error["field"], error["document_id"]) == (2, "quantity", "1000124")
    assert world.items(EnvVar.ORDERS_TABLE) == []


@pytest.mark.parametrize("body", ["", "{not json", "[1, 2]"])
def test_a_body_that_is_not_documents_is_a_400(world, body):
    status, report = post("erp", "inventory", body)

    assert status == 400 and report["errors"]
    assert world.items(EnvVar.INVENTORY_TABLE) == []


def test_no_inbox_is_a_404(world):
    status, report = post("plm", "inventory", orders())

    assert status == 404 and "plm sends no 'inventory'" in report["message"]


def test_the_same_documents_twice_change_nothing(world):
    post("erp", "production-order", orders())
    first = world.items(EnvVar.ORDERS_TABLE)

    status, report = post("erp", "production-order", orders())

    assert status == 200 and (report["stored"], report["duplicates"]) == (0, 2)
    assert world.items(EnvVar.ORDERS_TABLE) == first


def test_documents_sent_by_file_then_by_api_are_duplicates(world):
    body = (SAMPLES / "production-order.json").read_bytes()
    record = world.drop("inbound/erp/production-order/orders.json", body)
    s3_handler.lambda_handler({"Records": [record]}, LambdaContext())
    first = world.items(EnvVar.ORDERS_TABLE)

    status, report = post("erp", "production-order", orders())

    assert status == 200 and report["duplicates"] == 2
    assert world.items(EnvVar.ORDERS_TABLE) == first


def test_an_older_revision_is_a_409_and_the_newer_one_stays(world):
    newer = orders()[0] | {"revision": 3, "quantity": 300}
    older = orders()[0] | {"revision": 2, "quantity": 200}
    post("erp", "production-order", newer)

    status, report = post("erp", "production-order", [older, orders()[1]])

    assert status == 409
    assert report["superseded_ids"] == ["1000123"] and report["stored"] == 1
    assert world.item(EnvVar.ORDERS_TABLE, "ORDER#1000123")["quantity"]["N"] == "300.0"


def test_the_request_schema_of_each_type_is_draft04_and_matches_the_samples():
    for doc_type in ("production-order", "material-master", "bom", "inventory", "routing"):
        schema = api_handler.request_schema(doc_type)
        jsonschema.Draft4Validator.check_schema(schema)
        sample = json.loads((SAMPLES / f"{doc_type}.json").read_text())
        assert jsonschema.Draft4Validator(schema).is_valid(sample), doc_type
