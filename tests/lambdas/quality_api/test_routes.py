"""The quality API under moto: Given a signed-in expert, When they call a route, Then the
right URL, execution, record or error comes back, and nothing changes on a refused call."""

import json
from urllib.parse import parse_qs, urlparse

import boto3
import pytest
from botocore.stub import Stubber
from moto import mock_aws

from lambdas.common import aws
from lambdas.model_pipeline.registry import ModelRecord, ModelRegistry, ModelStatus
from lambdas.quality_api import handler, routes
from tests.lambdas.conftest import LambdaContext
from tests.lambdas.model_pipeline.conftest import MODELS_TABLE, create_models_table

REGION = "eu-central-1"
BUCKET, TABLE = "datasets-bucket", MODELS_TABLE
STATION = "/stations/berlin/body-line-1/vision-01"
KEY = "berlin/body-line-1/vision-01"
VERSION = "1.0.1795169220"
EXPERT = "jane@example.com"
EXPERT_SUB = "5f0c-jane"
APPROVER = "omar@example.com"
APPROVER_SUB = "91d2-omar"
APPROVERS = "approvers-berlin"  # the demo plant's site of the station under test
THING_GROUPS = "arn:aws:iot:eu-central-1:123456789012:thinggroup/"


@pytest.fixture
def api(fake_credentials, monkeypatch, tmp_path, demo_plant):
    plant_file = tmp_path / "plant.json"
    plant_file.write_text(demo_plant.model_dump_json())
    with mock_aws():
        aws.client.cache_clear()
        for cached in (routes.settings, routes.plant, routes.registry):
            cached.cache_clear()
        boto3.client("s3").create_bucket(
            Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION}
        )
        create_models_table(boto3.client("dynamodb"))
        machine = boto3.client("stepfunctions").create_state_machine(
            name="pipeline",
            definition=json.dumps({"StartAt": "Done", "States": {"Done": {"Type": "Succeed"}}}),
            roleArn="arn:aws:iam::123456789012:role/pipeline",
        )["stateMachineArn"]
        for key, value in {
            "DATASET_BUCKET": BUCKET,
            "MODELS_TABLE": TABLE,
            "STATE_MACHINE_ARN": machine,
            "PLANT_FILE": str(plant_file),
        }.items():
            monkeypatch.setenv(key, value)
        yield {"registry": ModelRegistry(TABLE), "machine": machine}
    aws.client.cache_clear()


def _event(method, path, body=None, user=EXPERT, sub=EXPERT_SUB, groups=None):
    claims = {"email": user, "sub": sub} if user else {}
    if user and groups is not None:
        claims["cognito:groups"] = groups  # as API Gateway passes it: one string
    return {
        "resource": path,
        "path": path,
        "httpMethod": method,
        "headers": {"Content-Type": "application/json"},
        "queryStringParameters": None,
        "pathParameters": None,
        "body": None if body is None else (body if isinstance(body, str) else json.dumps(body)),
        "isBase64Encoded": False,
        "requestContext": {
            "stage": "v1",
            "httpMethod": method,
            "path": path,
            "requestId": "r1",
            "authorizer": {"claims": claims},
        },
    }


def call(method, path, body=None, user=EXPERT, sub=EXPERT_SUB, groups=None):
    event = _event(method, path, body, user, sub, groups)
    response = handler.lambda_handler(event, LambdaContext())
    return response["statusCode"], json.loads(response["body"]) if response["body"] else None


def test_upload_urls_are_presigned_puts_under_the_stations_dataset(api):
    status, body = call("POST", f"{STATION}/uploads", {"kind": "defect", "files": ["a.png"] * 2})
    assert status == 200 and body["expires_in"] == 900
    keys = [upload["key"] for upload in body["uploads"]]
    assert len(set(keys)) == 2  # two files of one name never overwrite each other
    for upload in body["uploads"]:
        assert upload["key"].startswith(f"datasets/{KEY}/defect/") and upload["key"].endswith(
            "a.png"
        )
        url = urlparse(upload["url"])
        assert url.path.endswith(upload["key"]) and BUCKET in url.netloc + url.path
        assert "X-Amz-Signature" in parse_qs(url.query)


@pytest.mark.parametrize(
    "path, body, status, says",
    [
        (f"{STATION}/uploads", {"kind": "scratch", "files": ["a.png"]}, 400, "kind"),
        (f"{STATION}/uploads", {"kind": "good", "files": ["../etc/passwd"]}, 400, "PNG or JPEG"),
        (f"{STATION}/uploads", {"kind": "good", "files": []}, 400, "files"),
        (f"{STATION}/uploads", "not json", 400, "JSON"),
        ("/stations/berlin/body-line-1/press-01/uploads", {"kind": "good", "files": ["a.png"]},
         404, "not camera_inspection"),
        ("/stations/berlin/nowhere/vision-01/uploads", {"kind": "good", "files": ["a.png"]},
         404, "no station"),
    ],
)  # fmt: skip
def test_bad_uploads_are_refused_with_the_reason(api, path, body, status, says):
    code, response = call("POST", path, body)
    assert code == status and says in json.dumps(response)


def test_a_training_starts_an_execution_for_the_signed_in_expert(api):
    status, body = call("POST", f"{STATION}/trainings")
    assert status == 202
    execution = boto3.client("stepfunctions").describe_execution(executionArn=body["execution_arn"])
    assert json.loads(execution["input"]) == {
        "site": "berlin",
        "line": "body-line-1",
        "station": "vision-01",
        "requested_by": EXPERT,
        "requested_by_sub": EXPERT_SUB,  # so the requester can be told from an approver
    }


def test_a_call_without_a_signed_in_user_starts_nothing(api):
    status, body = call("POST", f"{STATION}/trainings", user=None)
    assert status == 400 and "signed-in user" in body["message"]
    executions = boto3.client("stepfunctions").list_executions(stateMachineArn=api["machine"])
    assert executions["executions"] == []


def test_models_are_listed_with_their_cards_and_never_their_task_token(api):
    registry = api["registry"]
    registry.register(
        ModelRecord(station=KEY, model_version=VERSION, status=ModelStatus.TRAINED,
                    card={"threshold": 0.42})
    )  # fmt: skip
    registry.store_approval_token(KEY, VERSION, "secret-task-token")

    status, listed = call("GET", f"{STATION}/models")
    assert status == 200
    (model,) = listed["models"]
    assert model["card"] == {"threshold": 0.42} and model["approval_token"] is None
    status, one = call("GET", f"{STATION}/models/{VERSION}")
    assert status == 200 and one["approval_token"] is None and "secret" not in json.dumps(one)
    assert call("GET", f"{STATION}/models/1.0.1")[0] == 404


TRAINED = ModelRecord(
    station=KEY,
    model_version=VERSION,
    status=ModelStatus.TRAINED,
    requested_by=EXPERT,
    requested_by_sub=EXPERT_SUB,
)


def decide(body, user=APPROVER, sub=APPROVER_SUB, groups=APPROVERS):
    """A decision on VERSION, by default from an approver of the site who did not request it."""
    return call("POST", f"{STATION}/models/{VERSION}/decision", body, user, sub, groups)


def test_an_approval_releases_the_pipeline_and_a_second_decision_conflicts(api, monkeypatch):
    registry = api["registry"]
    registry.register(TRAINED)
    registry.store_approval_token(KEY, VERSION, "task-token-1")
    sfn = boto3.client("stepfunctions")
    monkeypatch.setattr(routes, "client", lambda service: sfn)
    with Stubber(sfn) as stubber:
        stubber.add_response(
            "send_task_success",
            {},
            {"taskToken": "task-token-1", "output": json.dumps({"approved_by": APPROVER})},
        )
        status, body = decide({"decision": "approve", "comment": "scratches caught"})
        assert status == 200 and body["status"] == "APPROVED" and body["approved_by"] == APPROVER

        again = decide({"decision": "reject", "comment": "changed my mind"})
        assert again[0] == 409
        stubber.assert_no_pending_responses()  # the second decision sent nothing
    assert registry.get(KEY, VERSION).status is ModelStatus.APPROVED


def test_a_rejection_needs_a_reason(api):
    api["registry"].register(TRAINED)
    status, body = decide({"decision": "reject"})
    assert status == 400 and "comment" in body["message"]
    assert api["registry"].get(KEY, VERSION).status is ModelStatus.TRAINED


def test_deployment_status_follows_the_recorded_deployment(api, monkeypatch):
    registry = api["registry"]
    registry.register(ModelRecord(station=KEY, model_version=VERSION, status=ModelStatus.TRAINED))
    assert call("GET", f"{STATION}/models/{VERSION}/deployment")[1]["deployment"] is None

    registry.transition(KEY, VERSION, ModelStatus.APPROVED)
    registry.transition(KEY, VERSION, ModelStatus.DEPLOYED, deployment_id="dep-1")
    greengrass = boto3.client("greengrassv2")
    monkeypatch.setattr(routes, "client", lambda service: greengrass)
    with Stubber(greengrass) as stubber:
        stubber.add_response(
            "get_deployment",
            {"deploymentId": "dep-1", "deploymentStatus": "COMPLETED", "revisionId": "3",
             "targetArn": f"{THING_GROUPS}MesDemo-berlin-body-line-1"},
            {"deploymentId": "dep-1"},
        )  # fmt: skip
        status, body = call("GET", f"{STATION}/models/{VERSION}/deployment")
    assert status == 200 and body["status"] == "DEPLOYED"
    assert body["deployment"]["status"] == "COMPLETED" and body["deployment"]["revision_id"] == "3"


HUGE = 9_500_000  # characters: a body API Gateway accepts (10 MB), far over a response's 6 MB
SMALL_RESPONSE = 16_384


@pytest.mark.parametrize(
    "body, says",
    [
        ({"kind": "x" * HUGE, "files": ["a.png"]}, "literal_error"),  # one huge bad value
        ({"kind": "good", "files": ["a.png"] * (HUGE // 9)}, "too_long"),  # a huge list
        ({"kind": "good", "files": [7] * 99, "extra": "y" * HUGE}, "string_type"),
    ],
)
def test_a_huge_invalid_body_gets_a_small_400_that_says_what_is_wrong(api, body, says):
    text = json.dumps(body)
    assert len(text) >= HUGE
    response = handler.lambda_handler(_event("POST", f"{STATION}/uploads", text), LambdaContext())
    assert response["statusCode"] == 400
    assert len(response["body"]) < SMALL_RESPONSE
    details = json.loads(response["body"])["message"]
    assert says in {error["type"] for error in details["errors"]}
    assert len(details["errors"]) <= 10 and details["error_count"] >= len(details["errors"])
    for error in details["errors"]:
        assert len(error["input"]) < 200  # an excerpt, with the full length said
    if says == "string_type":  # 99 wrong file types and one unknown key: 100, 10 shown
        assert details["error_count"] == 100


def test_huge_file_names_are_named_by_excerpt(api):
    names = ["n" * (HUGE // 100) + ".exe"] * 100
    status, body = call("POST", f"{STATION}/uploads", {"kind": "good", "files": names})
    assert status == 400 and "not PNG or JPEG file names" in body["message"]
    assert len(json.dumps(body)) < SMALL_RESPONSE and "and 90 more" in body["message"]


@pytest.mark.parametrize(
    "caller, decision, reason",
    [
        # The requester, even as an approver of the site, may not approve their own model.
        ({"user": EXPERT, "sub": EXPERT_SUB}, "approve", "requested a model's training"),
        # A user of the pool outside every approvers group decides nothing.
        ({"groups": None}, "approve", APPROVERS),
        ({"groups": None}, "reject", APPROVERS),
        # An approver of another site decides nothing here; groups arrive comma-separated.
        ({"groups": "approvers-hamburg,auditors"}, "approve", APPROVERS),
        ({"groups": "[approvers-hamburg auditors]"}, "reject", APPROVERS),
    ],
)
def test_a_decision_outside_the_rules_is_forbidden_and_changes_nothing(
    api, monkeypatch, caller, decision, reason
):
    registry = api["registry"]
    registry.register(TRAINED)
    registry.store_approval_token(KEY, VERSION, "task-token-1")
    sfn = boto3.client("stepfunctions")
    monkeypatch.setattr(routes, "client", lambda service: sfn)
    with Stubber(sfn) as stubber:  # no response queued: any call to Step Functions fails
        status, body = decide({"decision": decision, "comment": "looks fine"}, **caller)
        stubber.assert_no_pending_responses()
    assert status == 403 and reason in body["message"]
    record = registry.get(KEY, VERSION)
    assert record.status is ModelStatus.TRAINED and record.approval_token == "task-token-1"


def test_the_requester_may_reject_their_own_model(api, monkeypatch):
    registry = api["registry"]
    registry.register(TRAINED)
    registry.store_approval_token(KEY, VERSION, "task-token-1")
    sfn = boto3.client("stepfunctions")
    monkeypatch.setattr(routes, "client", lambda service: sfn)
    with Stubber(sfn) as stubber:
        stubber.add_response("send_task_failure", {})
        status, body = decide({"decision": "reject", "comment": "misses scratches"},
                              user=EXPERT, sub=EXPERT_SUB)  # fmt: skip
    assert status == 200 and body["status"] == "REJECTED"


def test_a_model_without_its_requesters_id_cannot_be_approved(api):
    api["registry"].register(TRAINED.model_copy(update={"requested_by_sub": None}))
    status, body = decide({"decision": "approve"})
    assert status == 403 and "does not record who requested it" in body["message"]
    assert api["registry"].get(KEY, VERSION).status is ModelStatus.TRAINED


def test_a_training_needs_the_requesters_id(api):
    status, body = call("POST", f"{STATION}/trainings", sub=None)
    assert status == 400 and "sub" in body["message"]
