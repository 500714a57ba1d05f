"""The gateway health function against a moto allow-list table: lifecycle events set each
gateway's connectivity, the latest winning; the census counts provisioned gateways online,
unhealthy and offline with their Greengrass status and writes the three metrics (EMF)."""

from __future__ import annotations

import json

import boto3
import pytest
from botocore.stub import Stubber

from lambdas.gateway_health import handler
from lambdas.gateway_health.adapters import AllowList, core_device_statuses
from lambdas.gateway_health.contract import EnvVar
from mes_domain import fleet
from mes_domain.fleet import AllowListAttribute as A
from mes_domain.fleet import Connectivity, GatewayHealth, GatewayStatus
from tests.lambdas.conftest import ALLOW_LIST_TABLE as TABLE
from tests.lambdas.conftest import LambdaContext

PREFIX = "MesDemo"


@pytest.fixture
def allow_list(allow_list_db):
    return AllowList(TABLE, allow_list_db)


def register(db, serial, status=GatewayStatus.PROVISIONED):
    item = {
        A.SERIAL.value: serial,
        A.SITE.value: "berlin",
        A.LINE.value: "body-line-1",
        A.STATUS.value: status.value,
        A.THING_NAME.value: fleet.gateway_thing_name(PREFIX, serial),
    }
    db.put_item(TableName=TABLE, Item={k: {"S": v} for k, v in item.items()})


def presence(serial, event_type, timestamp, client_id=None):
    return {
        "clientId": client_id or fleet.gateway_thing_name(PREFIX, serial),
        "timestamp": timestamp,
        "eventType": event_type,
        "sessionIdentifier": "00000000-0000-0000-0000-000000000000",
        "principalIdentifier": "a" * 64,
        "versionNumber": 0,
    }


def emf_documents(capsys) -> list[dict]:
    """The EMF documents printed (the logger's lines aside)."""
    lines = capsys.readouterr().out.splitlines()
    return [json.loads(line) for line in lines if '"_aws"' in line]


def connectivity(db, serial):
    item = db.get_item(TableName=TABLE, Key={A.SERIAL.value: {"S": serial}})["Item"]
    return item.get(A.CONNECTIVITY.value, {}).get("S")


def test_connect_and_disconnect_set_the_connectivity_the_latest_event_winning(
    allow_list_db, allow_list
):
    register(allow_list_db, "SN-1")
    assert handler.on_presence(presence("SN-1", "connected", 1000), allow_list, PREFIX)
    assert connectivity(allow_list_db, "SN-1") == Connectivity.CONNECTED
    assert handler.on_presence(presence("SN-1", "disconnected", 2000), allow_list, PREFIX)
    assert connectivity(allow_list_db, "SN-1") == Connectivity.DISCONNECTED
    # Out of order and repeated: an older connect and the same disconnect change nothing.
    assert not handler.on_presence(presence("SN-1", "connected", 1500), allow_list, PREFIX)
    assert not handler.on_presence(presence("SN-1", "disconnected", 2000), allow_list, PREFIX)
    assert connectivity(allow_list_db, "SN-1") == Connectivity.DISCONNECTED
    assert handler.on_presence(presence("SN-1", "connected", 3000), allow_list, PREFIX)
    assert connectivity(allow_list_db, "SN-1") == Connectivity.CONNECTED


def test_clients_that_are_no_gateway_of_ours_write_nothing(allow_list_db, allow_list):
    register(allow_list_db, "SN-1")
    ignored = [
        presence("SN-1", "connected", 1000, client_id="OtherPlant-gateway-SN-1"),
        presence("SN-1", "connected", 1000, client_id="some-sensor"),
        presence("SN-2", "connected", 1000),  # a serial not on the allow-list
        {**presence("SN-1", "connected", 1000), "eventType": "subscribed"},
        {**presence("SN-1", "connected", 1000), "timestamp": "soon"},
    ]
    for event in ignored:
        assert not handler.on_presence(event, allow_list, PREFIX)
    assert connectivity(allow_list_db, "SN-1") is None
    assert allow_list_db.scan(TableName=TABLE)["Count"] == 1


def test_the_census_counts_provisioned_gateways_and_writes_three_metrics(
    allow_list_db, allow_list, capsys
):
    for serial in ("ON-1", "ON-2", "SICK-1", "OFF-1", "NEVER-1"):
        register(allow_list_db, serial)
    register(allow_list_db, "NEW-1", GatewayStatus.REGISTERED)
    register(allow_list_db, "OLD-1", GatewayStatus.RETIRED)
    for serial in ("ON-1", "ON-2", "SICK-1", "OFF-1", "NEW-1", "OLD-1"):
        handler.on_presence(presence(serial, "connected", 1000), allow_list, PREFIX)
    handler.on_presence(presence("OFF-1", "disconnected", 2000), allow_list, PREFIX)
    statuses = {
        fleet.gateway_thing_name(PREFIX, "ON-1"): "HEALTHY",
        fleet.gateway_thing_name(PREFIX, "SICK-1"): "UNHEALTHY",
        fleet.gateway_thing_name(PREFIX, "OFF-1"): "UNHEALTHY",  # offline wins
    }
    counts = handler.on_schedule(allow_list, statuses, PREFIX)
    assert counts == {"ONLINE": 2, "UNHEALTHY": 1, "OFFLINE": 2}
    (document,) = emf_documents(capsys)
    (directive,) = document["_aws"]["CloudWatchMetrics"]
    assert directive["Namespace"] == fleet.FLEET_METRICS_NAMESPACE
    assert directive["Dimensions"] == [[fleet.FLEET_METRICS_DIMENSION]]
    assert document[fleet.FLEET_METRICS_DIMENSION] == PREFIX
    assert {m["Name"] for m in directive["Metrics"]} == set(fleet.HEALTH_METRIC.values())
    for health, name in fleet.HEALTH_METRIC.items():
        assert document[name] == [counts[health.value]]  # EMF: a list of values


def test_an_empty_fleet_reports_zeros_not_nothing(allow_list_db, allow_list, capsys):
    assert handler.on_schedule(allow_list, {}, PREFIX) == dict.fromkeys(
        (h.value for h in GatewayHealth), 0
    )
    (document,) = emf_documents(capsys)
    assert [document[name] for name in fleet.HEALTH_METRIC.values()] == [[0], [0], [0]]


def test_core_device_statuses_read_every_page():
    client = boto3.client("greengrassv2", region_name="eu-central-1")
    stubber = Stubber(client)
    device = {"lastStatusUpdateTimestamp": 0}
    stubber.add_response(
        "list_core_devices",
        {
            "coreDevices": [{"coreDeviceThingName": "a", "status": "HEALTHY", **device}],
            "nextToken": "t",
        },
        {},
    )
    stubber.add_response(
        "list_core_devices",
        {"coreDevices": [{"coreDeviceThingName": "b", "status": "UNHEALTHY", **device}]},
        {"nextToken": "t"},
    )
    with stubber:
        assert core_device_statuses(client) == {"a": "HEALTHY", "b": "UNHEALTHY"}
    stubber.assert_no_pending_responses()


def test_the_handler_routes_presence_events_and_schedules(allow_list_db, monkeypatch):
    monkeypatch.setenv(EnvVar.ALLOW_LIST_TABLE.value, TABLE)
    monkeypatch.setenv(EnvVar.STACK_PREFIX.value, PREFIX)
    monkeypatch.setattr(handler, "AllowList", lambda table: AllowList(table, allow_list_db))
    monkeypatch.setattr(handler, "core_device_statuses", lambda: {})
    register(allow_list_db, "SN-1")
    context = LambdaContext()
    assert handler.lambda_handler(presence("SN-1", "connected", 5), context) == {"recorded": True}
    scheduled = {"source": "aws.events", "detail-type": "Scheduled Event", "detail": {}}
    assert handler.lambda_handler(scheduled, context) == {
        "ONLINE": 1,
        "UNHEALTHY": 0,
        "OFFLINE": 0,
    }
