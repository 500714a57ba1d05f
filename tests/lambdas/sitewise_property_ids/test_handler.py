"""The property-id custom resource: Given a CloudFormation request, When handled, Then exactly one
response reaches the pre-signed URL (here a loopback server), with the ids or the reason."""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import boto3
import pytest
from botocore.stub import Stubber

from lambdas.common.cfn_response import RESPONSE_ATTEMPTS
from lambdas.sitewise_property_ids import handler
from tests.lambdas.conftest import LambdaContext

MODEL_ID = "0b3c2f7e-1111-4c4c-9d9d-0123456789ab"
IDS = {
    "OEE": "a0000000-0000-4000-8000-000000000001",
    "Availability": "a0000000-0000-4000-8000-000000000002",
    "Good_Parts": "a0000000-0000-4000-8000-000000000003",
}


class ResponseRecorder(BaseHTTPRequestHandler):
    received: list = []

    def do_PUT(self):  # noqa: N802 - the http.server API
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.received.append({"path": self.path, "headers": dict(self.headers), "body": body})
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def response_url():
    """A loopback stand-in for CloudFormation's pre-signed S3 URL; yields (url, responses)."""
    ResponseRecorder.received = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), ResponseRecorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield (
            f"http://127.0.0.1:{server.server_address[1]}/cfn-response?signed=1",
            (ResponseRecorder.received),
        )
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def sitewise(fake_credentials, monkeypatch):
    """moto has no SiteWise: a stubbed client stands in for the handler's cached one."""
    client = boto3.client("iotsitewise", region_name="eu-central-1")
    monkeypatch.setattr(handler, "client", lambda service: client)
    with Stubber(client) as stubber:
        yield stubber
        stubber.assert_no_pending_responses()


def request(url, request_type="Create", **properties):
    return {
        "RequestType": request_type,
        "ResponseURL": url,
        "StackId": "arn:aws:cloudformation:eu-central-1:123456789012:stack/MesDemo-SiteWise/x",
        "RequestId": "req-42",
        "LogicalResourceId": "PropertyIdsStationModel1",
        "ResourceType": "Custom::SiteWisePropertyIds",
        "ResourceProperties": {"ServiceToken": "arn:aws:lambda:...", **properties},
    }


def summary(name, property_id):
    return {"id": property_id, "name": name, "dataType": "DOUBLE", "type": {}}


def expect_pages(stubber, *pages):
    for number, page in enumerate(pages):
        response = {"assetModelPropertySummaries": page}
        params = {"assetModelId": MODEL_ID, "filter": "ALL"}
        if number + 1 < len(pages):
            response["nextToken"] = f"page{number + 2}"
        if number:
            params["nextToken"] = f"page{number + 1}"
        stubber.add_response("list_asset_model_properties", response, params)


def only_response(responses):
    assert len(responses) == 1, responses
    (response,) = responses
    assert response["headers"].get("Content-Type", "") == ""  # what the URL is signed for
    return json.loads(response["body"])


def test_create_returns_each_named_property_id_across_pages(sitewise, response_url):
    url, responses = response_url
    expect_pages(
        sitewise,
        [
            summary("OEE", IDS["OEE"]),
            summary("Equipment_State", "a0000000-0000-4000-8000-0000000000ff"),
        ],
        [summary("Availability", IDS["Availability"]), summary("Good_Parts", IDS["Good_Parts"])],
    )

    handler.lambda_handler(
        request(url, AssetModelId=MODEL_ID, PropertyNames=list(IDS)), LambdaContext()
    )

    body = only_response(responses)
    assert body["Status"] == "SUCCESS"
    assert body["Data"] == IDS
    assert body["PhysicalResourceId"] == MODEL_ID
    assert (body["RequestId"], body["LogicalResourceId"]) == ("req-42", "PropertyIdsStationModel1")


def test_an_unknown_property_fails_the_resource_naming_it(sitewise, response_url):
    url, responses = response_url
    expect_pages(sitewise, [summary("OEE", IDS["OEE"])])

    handler.lambda_handler(
        request(url, "Update", AssetModelId=MODEL_ID, PropertyNames=["OEE", "Scrap_Rate"]),
        LambdaContext(),
    )

    body = only_response(responses)
    assert body["Status"] == "FAILED"
    assert "Scrap_Rate" in body["Reason"] and MODEL_ID in body["Reason"]
    assert body["Data"] == {}


def test_a_sitewise_error_fails_the_resource_instead_of_hanging_the_stack(sitewise, response_url):
    url, responses = response_url
    sitewise.add_client_error(
        "list_asset_model_properties",
        service_error_code="ResourceNotFoundException",
        service_message=f"Asset model {MODEL_ID} not found",
    )

    handler.lambda_handler(
        request(url, AssetModelId=MODEL_ID, PropertyNames=["OEE"]), LambdaContext()
    )

    body = only_response(responses)
    assert body["Status"] == "FAILED" and "ResourceNotFoundException" in body["Reason"]


@pytest.mark.parametrize(
    "properties",
    [{}, {"AssetModelId": MODEL_ID}, {"AssetModelId": MODEL_ID, "PropertyNames": []}],
)
def test_incomplete_properties_fail_with_a_reason(sitewise, response_url, properties):
    url, responses = response_url

    handler.lambda_handler(request(url, **properties), LambdaContext())

    body = only_response(responses)
    assert body["Status"] == "FAILED" and "PropertyNames" in body["Reason"]


def test_delete_succeeds_without_asking_sitewise(sitewise, response_url):
    url, responses = response_url
    event = {**request(url, "Delete", AssetModelId=MODEL_ID), "PhysicalResourceId": MODEL_ID}

    handler.lambda_handler(event, LambdaContext())  # the stubber fails on any call

    body = only_response(responses)
    assert body["Status"] == "SUCCESS" and body["PhysicalResourceId"] == MODEL_ID


def test_an_unreachable_response_url_is_retried_then_raised(sitewise, monkeypatch):
    monkeypatch.setattr("lambdas.common.cfn_response.time.sleep", lambda seconds: None)
    attempts = []

    def refuse(*args, **kwargs):
        attempts.append(args)
        raise ConnectionRefusedError("nobody listens")

    monkeypatch.setattr("lambdas.common.cfn_response.urllib.request.urlopen", refuse)
    event = request("http://127.0.0.1:9/cfn-response", "Delete")

    with pytest.raises(ConnectionRefusedError):
        handler.lambda_handler(event, LambdaContext())
    assert len(attempts) == RESPONSE_ATTEMPTS
