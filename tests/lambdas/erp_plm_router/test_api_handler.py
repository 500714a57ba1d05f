"""The API handler under moto: Given documents POSTed to /documents/{source}/{type}, When
handled, Then they take the same path as files: stored once, newest revision wins, and the
status says what happened (200 stored, 400 invalid and nothing stored, 404 no inbox, 409 a
newer or conflicting revision is stored)."""

import base64
import json
import time

import jsonschema
import pytest

from lambdas.erp_plm_router import api_handler, s3_handler
from lambdas.erp_plm_router.request_body import MAX_BODY_BYTES
from lambdas.erp_plm_router.settings import EnvVar
from tests.lambdas.conftest import LambdaContext
from tests.lambdas.erp_plm_router.conftest import SAMPLES


def post(source, doc_type, body, *, base64_encoded=False):
    event = {
        "resource": "/documents/{source}/{type}",
        "path": f"/documents/{source}/{doc_type}",
        "httpMethod": "POST",
        "headers": {"Content-Type": "application/json"},
        "pathParameters": {"source": source, "type": doc_type},
        "queryStringParameters": None,
        "body": body if isinstance(body, str) else json.dumps(body),
        "isBase64Encoded": base64_encoded,
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


@pytest.mark.parametrize(
    ("body", "base64_encoded", "reason"),
    [
        # API Gateway passes a binary body base64-encoded: here, Latin-1 bytes
        (base64.b64encode('{"site": "Düsseldorf"}'.encode("latin-1")).decode(), True,
         "not UTF-8 text: invalid start byte at byte 11"),
        ("not base64!", True, "marked base64-encoded but is not base64"),
        ('{"site": "\udc80"}', False, "not UTF-8 text: surrogates not allowed"),
        ("", False, "the body is empty"),
        ("  \n", False, "the body is empty"),
        (base64.b64encode(b"").decode(), True, "the body is empty"),
    ],
)  # fmt: skip
def test_a_body_that_is_not_text_is_a_400_with_its_reason(world, body, base64_encoded, reason):
    status, report = post("erp", "inventory", body, base64_encoded=base64_encoded)

    assert status == 400
    assert reason in report["message"]
    [error] = report["errors"]
    assert error["field"] == "(body)" and reason in error["reason"]
    assert world.items(EnvVar.INVENTORY_TABLE) == []


def test_a_base64_encoded_utf8_body_is_read_like_any_other(world):
    body = base64.b64encode(json.dumps(orders()).encode()).decode()

    status, report = post("erp", "production-order", body, base64_encoded=True)

    assert status == 200 and report["stored"] == 2


def test_a_body_over_lambdas_payload_limit_is_a_413(world):
    body = base64.b64encode(b" " * (MAX_BODY_BYTES + 1)).decode()

    status, report = post("erp", "inventory", body, base64_encoded=True)

    assert status == 413 and "at most 6291456" in report["message"]


def test_a_huge_body_of_invalid_documents_lists_the_first_errors_only(world):
    body = "[" + ",".join(["{}"] * 200_000) + "]"  # 600 KB: ten errors each, 2 million in all

    started = time.perf_counter()
    status, report = post("erp", "inventory", body)

    assert status == 400 and report["rejected"] == 200_000
    assert len(report["errors"]) == api_handler.LISTED_ERRORS
    assert len(report["errors"]) + report["errors_not_listed"] > 1_000_000
    assert time.perf_counter() - started < 60
    assert world.items(EnvVar.INVENTORY_TABLE) == []


def test_an_unknown_inbox_is_a_404_whatever_the_body(world):
    status, report = post("plm", "inventory", "", base64_encoded=True)

    assert status == 404
