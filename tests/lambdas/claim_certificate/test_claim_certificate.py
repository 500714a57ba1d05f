"""The claim certificate custom resource against moto IoT and Secrets Manager: Create makes an
active certificate with the claim policy and puts the PEM and private key into the secret only;
the response carries no key; Update with the same properties keeps the certificate; Delete
deactivates and deletes it; failures are answered and leave no certificate behind."""

from __future__ import annotations

import json

import boto3
import pytest
from moto import mock_aws

from lambdas.claim_certificate import handler
from lambdas.claim_certificate.contract import (
    CERTIFICATE_ARN,
    CERTIFICATE_ID,
    POLICY_NAME,
    SECRET_ARN,
)
from mes_domain.fleet import ClaimSecretField
from tests.lambdas.conftest import LambdaContext
from tests.lambdas.sitewise_property_ids.test_handler import response_url  # noqa: F401

REGION = "eu-central-1"
POLICY = "MesDemo-gateway-claim"


@pytest.fixture
def aws(fake_credentials, monkeypatch):
    with mock_aws():
        iot = boto3.client("iot", region_name=REGION)
        secrets = boto3.client("secretsmanager", region_name=REGION)
        clients = {"iot": iot, "secretsmanager": secrets}
        monkeypatch.setattr(handler, "client", clients.__getitem__)
        iot.create_policy(policyName=POLICY, policyDocument=json.dumps({"Statement": []}))
        secret_arn = secrets.create_secret(Name="MesDemo/edge-fleet/claim-certificate")["ARN"]
        yield iot, secrets, secret_arn


def request(url, request_type, secret_arn, physical_id=None, old=None, **properties):
    event = {
        "RequestType": request_type,
        "ResponseURL": url,
        "StackId": "arn:aws:cloudformation:eu-central-1:123456789012:stack/MesDemo-EdgeFleet/1",
        "RequestId": "r-1",
        "LogicalResourceId": "ClaimCertificate",
        "ResourceProperties": {POLICY_NAME: POLICY, SECRET_ARN: secret_arn, **properties},
    }
    if physical_id:
        event["PhysicalResourceId"] = physical_id
    if old is not None:
        event["OldResourceProperties"] = old
    return event


def answer(responses):
    (response,) = responses
    responses.clear()
    return json.loads(response["body"])


def certificates(iot):
    return {c["certificateId"]: c["status"] for c in iot.list_certificates()["certificates"]}


def test_create_stores_the_key_in_the_secret_and_never_in_the_response(aws, response_url):  # noqa: F811
    iot, secrets, secret_arn = aws
    url, responses = response_url
    handler.lambda_handler(request(url, "Create", secret_arn), LambdaContext())
    body = answer(responses)
    assert body["Status"] == "SUCCESS"
    certificate_id = body["PhysicalResourceId"]
    assert certificates(iot) == {certificate_id: "ACTIVE"}
    assert body["Data"][CERTIFICATE_ID] == certificate_id
    arn = body["Data"][CERTIFICATE_ARN]
    assert [p["policyName"] for p in iot.list_attached_policies(target=arn)["policies"]] == [POLICY]
    stored = json.loads(secrets.get_secret_value(SecretId=secret_arn)["SecretString"])
    assert "PRIVATE KEY" in stored[ClaimSecretField.PRIVATE_KEY.value]
    assert stored[ClaimSecretField.CERTIFICATE_PEM.value].startswith("-----BEGIN CERTIFICATE")
    assert stored[ClaimSecretField.CERTIFICATE_ID.value] == certificate_id
    assert "PRIVATE KEY" not in json.dumps(body)


def test_update_with_the_same_properties_keeps_the_certificate(aws, response_url):  # noqa: F811
    iot, _, secret_arn = aws
    url, responses = response_url
    handler.lambda_handler(request(url, "Create", secret_arn), LambdaContext())
    certificate_id = answer(responses)["PhysicalResourceId"]
    old = {POLICY_NAME: POLICY, SECRET_ARN: secret_arn}
    handler.lambda_handler(
        request(url, "Update", secret_arn, physical_id=certificate_id, old=old), LambdaContext()
    )
    body = answer(responses)
    assert body["Status"] == "SUCCESS" and body["PhysicalResourceId"] == certificate_id
    assert certificates(iot) == {certificate_id: "ACTIVE"}


def test_update_to_another_policy_makes_a_new_certificate(aws, response_url):  # noqa: F811
    """A new physical id: CloudFormation then sends Delete for the old certificate."""
    iot, _, secret_arn = aws
    url, responses = response_url
    iot.create_policy(policyName="other", policyDocument=json.dumps({"Statement": []}))
    handler.lambda_handler(request(url, "Create", secret_arn), LambdaContext())
    first = answer(responses)["PhysicalResourceId"]
    old = {POLICY_NAME: POLICY, SECRET_ARN: secret_arn}
    event = request(url, "Update", secret_arn, physical_id=first, old=old, PolicyName="other")
    handler.lambda_handler(event, LambdaContext())
    second = answer(responses)["PhysicalResourceId"]
    assert second != first and set(certificates(iot)) == {first, second}


def test_delete_deactivates_detaches_and_deletes_the_certificate(aws, response_url):  # noqa: F811
    iot, _, secret_arn = aws
    url, responses = response_url
    handler.lambda_handler(request(url, "Create", secret_arn), LambdaContext())
    certificate_id = answer(responses)["PhysicalResourceId"]
    event = request(url, "Delete", secret_arn, physical_id=certificate_id)
    handler.lambda_handler(event, LambdaContext())
    assert answer(responses)["Status"] == "SUCCESS"
    assert certificates(iot) == {}
    handler.lambda_handler(event, LambdaContext())  # a repeated delete still succeeds
    assert answer(responses)["Status"] == "SUCCESS"


def test_a_failed_store_is_answered_and_leaves_no_certificate(aws, response_url):  # noqa: F811
    iot, _, _ = aws
    url, responses = response_url
    missing = "arn:aws:secretsmanager:eu-central-1:123456789012:secret:missing-AbCdEf"
    handler.lambda_handler(request(url, "Create", missing), LambdaContext())
    body = answer(responses)
    assert body["Status"] == "FAILED" and "ResourceNotFoundException" in body["Reason"]
    assert certificates(iot) == {}
    assert "PRIVATE KEY" not in json.dumps(body)


def test_missing_properties_are_a_failure_with_a_reason(aws, response_url):  # noqa: F811
    iot, _, secret_arn = aws
    url, responses = response_url
    event = request(url, "Create", secret_arn)
    del event["ResourceProperties"][POLICY_NAME]
    handler.lambda_handler(event, LambdaContext())
    body = answer(responses)
    assert body["Status"] == "FAILED" and POLICY_NAME in body["Reason"]
    assert certificates(iot) == {}
