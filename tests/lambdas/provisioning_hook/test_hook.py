"""The pre-provisioning hook against a moto allow-list table: allow-listed serials provision
once, with their thing name, site and line attributes and thing groups; unknown, reused,
retired and malformed requests are refused."""

from __future__ import annotations

import pytest

from lambdas.provisioning_hook import handler
from lambdas.provisioning_hook.adapters import AllowList
from lambdas.provisioning_hook.contract import EnvVar
from mes_domain import fleet
from mes_domain.fleet import AllowListAttribute as A
from mes_domain.fleet import GatewayStatus, TemplateParameter
from tests.lambdas.conftest import ALLOW_LIST_TABLE as TABLE
from tests.lambdas.conftest import LambdaContext

PREFIX = "MesDemo"
CERT = "a" * 64
OTHER_CERT = "b" * 64
TEMPLATE_ARN = "arn:aws:iot:eu-central-1:123456789012:provisioningtemplate/MesDemo-gateways"


def register(db, serial, status=GatewayStatus.REGISTERED, **extra):
    item = {
        A.SERIAL.value: serial,
        A.SITE.value: "berlin",
        A.LINE.value: "body-line-1",
        A.STATUS.value: status.value,
        A.REGISTERED_AT.value: "2025-01-01T00:00:00+00:00",
        **extra,
    }
    db.put_item(TableName=TABLE, Item={k: {"S": v} for k, v in item.items()})


def hook_input(serial="SN-0001", certificate_id=CERT, **parameters):
    return {
        "claimCertificateId": "c" * 64,
        "certificateId": certificate_id,
        "certificatePem": "-----BEGIN CERTIFICATE-----\n...",
        "templateArn": TEMPLATE_ARN,
        "clientId": "221a6d10-9c7f-42f1-9153-e52e6fc869c1",
        "parameters": {TemplateParameter.SERIAL_NUMBER.value: serial, **parameters},
    }


def call(db, event):
    return handler.handle(event, AllowList(TABLE, db), PREFIX)


def record(db, serial):
    return AllowList(TABLE, db).get(serial)


def test_an_allow_listed_line_gateway_gets_its_thing_attributes_and_groups(allow_list_db):
    register(allow_list_db, "SN-0001")
    response = call(allow_list_db, hook_input())
    assert response == {
        "allowProvisioning": True,
        "parameterOverrides": {
            "ThingName": "MesDemo-gateway-SN-0001",
            "Site": "berlin",
            "Line": "body-line-1",
            "ThingGroup": "MesDemo-berlin-body-line-1",
            "SecondThingGroup": "MesDemo-berlin",
        },
    }
    stored = record(allow_list_db, "SN-0001")
    assert stored[A.STATUS.value] == GatewayStatus.PROVISIONED.value
    assert stored[A.CERTIFICATE_ID.value] == CERT
    assert stored[A.THING_NAME.value] == "MesDemo-gateway-SN-0001"
    assert stored[A.PROVISIONED_AT.value]


def test_a_camera_gateway_joins_its_station_group_and_the_station_model_group(allow_list_db):
    register(allow_list_db, "CAM-7", **{A.STATION.value: "vision-01"})
    overrides = call(allow_list_db, hook_input("CAM-7"))["parameterOverrides"]
    assert overrides["ThingGroup"] == "MesDemo-berlin-body-line-1:vision-01"
    assert overrides["SecondThingGroup"] == "MesDemo-berlin-body-line-1:vision-01:models"


def test_an_unknown_serial_is_refused(allow_list_db):
    register(allow_list_db, "SN-0001")
    assert call(allow_list_db, hook_input("SN-9999")) == {"allowProvisioning": False}
    assert record(allow_list_db, "SN-9999") is None


def test_a_used_serial_is_refused_for_another_certificate(allow_list_db):
    register(allow_list_db, "SN-0001")
    assert call(allow_list_db, hook_input())["allowProvisioning"] is True
    assert call(allow_list_db, hook_input(certificate_id=OTHER_CERT)) == {
        "allowProvisioning": False
    }
    assert record(allow_list_db, "SN-0001")[A.CERTIFICATE_ID.value] == CERT


def test_the_same_device_retrying_with_its_certificate_is_allowed_again(allow_list_db):
    """RegisterThing may be retried after a lost response; the device's new certificate is the
    same, so the serial is not spent twice."""
    register(allow_list_db, "SN-0001")
    first = call(allow_list_db, hook_input())
    assert call(allow_list_db, hook_input()) == first


def test_a_retired_serial_is_refused(allow_list_db):
    register(allow_list_db, "SN-0001", status=GatewayStatus.RETIRED)
    assert call(allow_list_db, hook_input()) == {"allowProvisioning": False}


def test_a_serial_claimed_between_read_and_write_is_refused(allow_list_db, monkeypatch):
    """Two devices with one serial: the second's conditional write fails, so it is refused."""
    register(allow_list_db, "SN-0001")
    allow_list = AllowList(TABLE, allow_list_db)
    stale = allow_list.get("SN-0001")
    assert allow_list.claim("SN-0001", OTHER_CERT, "MesDemo-gateway-SN-0001")
    monkeypatch.setattr(allow_list, "get", lambda serial: stale)
    assert handler.handle(hook_input(), allow_list, PREFIX) == {"allowProvisioning": False}


@pytest.mark.parametrize(
    "event",
    [
        None,
        "SN-0001",
        {},
        {"certificateId": CERT},
        {"certificateId": CERT, "parameters": "SerialNumber=SN-0001"},
        hook_input(serial=""),
        hook_input(serial="SN 0001"),
        hook_input(serial="x" * 49),
        hook_input(serial=12),
        hook_input(certificate_id="not-a-certificate-id"),
        # the device may not pick its own thing name, site, line or groups
        hook_input(**{TemplateParameter.THING_GROUP.value: "MesDemo-berlin-machining-line-1"}),
        hook_input(**{TemplateParameter.SITE.value: "berlin"}),
    ],
    ids=lambda e: repr(e)[:40],
)
def test_malformed_requests_are_refused(allow_list_db, event):
    register(allow_list_db, "SN-0001")
    assert call(allow_list_db, event) == {"allowProvisioning": False}
    assert record(allow_list_db, "SN-0001")[A.STATUS.value] == GatewayStatus.REGISTERED.value


def test_a_record_naming_no_valid_line_is_refused(allow_list_db):
    register(allow_list_db, "SN-0001", **{A.LINE.value: "Body Line"})
    assert call(allow_list_db, hook_input()) == {"allowProvisioning": False}


def test_the_lambda_handler_reads_its_table_and_prefix_from_the_environment(
    allow_list_db, monkeypatch
):
    register(allow_list_db, "SN-0001")
    monkeypatch.setenv(EnvVar.ALLOW_LIST_TABLE.value, TABLE)
    monkeypatch.setenv(EnvVar.STACK_PREFIX.value, "Other")
    monkeypatch.setenv("POWERTOOLS_SERVICE_NAME", "provisioning_hook")
    response = handler.lambda_handler(hook_input(), LambdaContext())
    assert response["parameterOverrides"]["ThingName"] == fleet.gateway_thing_name(
        "Other", "SN-0001"
    )
