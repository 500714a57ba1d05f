"""Step 5 and the approval API: the token is parked, then released exactly once.

moto accepts SendTaskSuccess/Failure without recording them, so the Step Functions calls are
checked with botocore's Stubber; the registry runs under moto.
"""

import json

import boto3
import pytest
from botocore.stub import Stubber

from lambdas.model_pipeline import request_approval
from lambdas.model_pipeline.approval import decide
from lambdas.model_pipeline.registry import (
    ApprovalNotPending,
    InvalidTransition,
    ModelRecord,
    ModelStatus,
)
from tests.lambdas.conftest import LambdaContext
from tests.lambdas.model_pipeline.conftest import REGION, SITE, STATION_KEY

VERSION = "1.0.1795169220"
TOKEN = "AAAAKgAAAAIAAAAAAAAAAf-task-token"


@pytest.fixture(scope="module")
def stepfunctions():
    return boto3.client("stepfunctions", region_name=REGION)


@pytest.fixture
def sfn(stepfunctions):
    with Stubber(stepfunctions) as stubber:
        yield stepfunctions, stubber
        stubber.assert_no_pending_responses()


@pytest.fixture
def waiting(registry):
    """A TRAINED model whose execution waits: the step stored its task token."""
    registry.register(ModelRecord(station=STATION_KEY, model_version=VERSION, status="TRAINED"))
    event = {
        "task_token": TOKEN,
        "site": SITE,
        "line": "body-line-1",
        "station": "vision-01",
        "model_version": VERSION,
    }
    request_approval.lambda_handler(event, LambdaContext())
    return registry


def test_the_step_parks_the_token_on_the_trained_model(waiting):
    record = waiting.get(STATION_KEY, VERSION)

    assert record.approval_token == TOKEN and record.approval_requested_at


def test_the_step_refuses_a_model_that_is_not_trained(registry):
    registry.register(ModelRecord(station=STATION_KEY, model_version=VERSION, status="REJECTED"))
    event = {"task_token": TOKEN, "site": SITE, "line": "body-line-1", "station": "vision-01"}

    with pytest.raises(ApprovalNotPending, match="is REJECTED"):
        request_approval.lambda_handler(event | {"model_version": VERSION}, LambdaContext())


def test_approval_releases_the_execution_with_the_reviewer(waiting, sfn):
    client, stubber = sfn
    stubber.add_response(
        "send_task_success", {}, {"taskToken": TOKEN, "output": json.dumps({"approved_by": "jane"})}
    )

    updated = decide(waiting, client, STATION_KEY, VERSION, "approve", "jane", "good enough")

    stored = waiting.get(STATION_KEY, VERSION)
    assert stored == updated
    assert (stored.status, stored.approved_by) == (ModelStatus.APPROVED, "jane")
    assert stored.decision_comment == "good enough"
    assert stored.approval_token is None  # used up


def test_rejection_fails_the_execution_with_the_reason(waiting, sfn):
    client, stubber = sfn
    expected = {"taskToken": TOKEN, "error": "ModelRejected", "cause": "misses hairline cracks"}
    stubber.add_response("send_task_failure", {}, expected)

    decide(waiting, client, STATION_KEY, VERSION, "reject", "joe", "misses hairline cracks")

    stored = waiting.get(STATION_KEY, VERSION)
    assert (stored.status, stored.rejected_by) == (ModelStatus.REJECTED, "joe")
    assert stored.rejection_reasons == ["misses hairline cracks"]


def test_a_second_decision_is_refused_and_sends_nothing(waiting, sfn):
    client, stubber = sfn
    stubber.add_response("send_task_success", {})
    decide(waiting, client, STATION_KEY, VERSION, "approve", "jane")

    # The Stubber has no more responses: any further Step Functions call would fail the test.
    with pytest.raises(InvalidTransition, match="from APPROVED to REJECTED"):
        decide(waiting, client, STATION_KEY, VERSION, "reject", "joe", "too late")
    with pytest.raises(InvalidTransition, match="from APPROVED to APPROVED"):
        decide(waiting, client, STATION_KEY, VERSION, "approve", "joe")

    assert waiting.get(STATION_KEY, VERSION).approved_by == "jane"


def test_without_a_waiting_execution_nothing_changes(registry, sfn):
    client, _ = sfn
    registry.register(ModelRecord(station=STATION_KEY, model_version=VERSION, status="TRAINED"))

    with pytest.raises(ApprovalNotPending, match="no approval task token"):
        decide(registry, client, STATION_KEY, VERSION, "approve", "jane")

    assert registry.get(STATION_KEY, VERSION).status is ModelStatus.TRAINED


@pytest.mark.parametrize(
    ("decision", "reviewer", "comment", "message"),
    [
        ("reject", "joe", "  ", "a rejection needs a comment"),
        ("approve", "", "", "needs the reviewer"),
        ("maybe", "joe", "", "'maybe' is not a valid Decision"),
    ],
)
def test_an_incomplete_decision_is_refused_before_anything_changes(
    waiting, sfn, decision, reviewer, comment, message
):
    client, _ = sfn

    with pytest.raises(ValueError, match=message):
        decide(waiting, client, STATION_KEY, VERSION, decision, reviewer, comment)

    record = waiting.get(STATION_KEY, VERSION)
    assert record.status is ModelStatus.TRAINED and record.approval_token == TOKEN


def test_an_execution_that_stopped_waiting_is_reported_after_the_decision(waiting, sfn):
    client, stubber = sfn
    stubber.add_client_error("send_task_success", service_error_code="TaskTimedOut")

    with pytest.raises(ApprovalNotPending, match=r"is recorded, but .* \(TaskTimedOut\)"):
        decide(waiting, client, STATION_KEY, VERSION, "approve", "jane")

    assert waiting.get(STATION_KEY, VERSION).status is ModelStatus.APPROVED
