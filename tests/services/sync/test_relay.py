"""The outbound relay on a real PostgreSQL outbox: ``bus`` messages to EventBridge (moto, with a
rule to an SQS queue to see what arrived; and a client stub that fails entries), ``inventory``
messages to the inventory API through an injected ``post``."""

from __future__ import annotations

import json
import threading
from typing import Any

import boto3
import httpx
import pytest
from moto import mock_aws
from sqlalchemy import select

from mes_domain.enterprise import (
    InventoryAvailability,
    ProductionConfirmation,
    event_detail,
)
from services.common.aws import EventBridgePublisher
from services.common.db import now_ms
from services.common.outbox import enqueue
from services.common.relay import (
    BUS,
    DEAD_LETTER,
    INVENTORY,
    InventoryClient,
    OutboxRelay,
    RelayResult,
)
from services.common.sync import TransportRejected, TransportUnavailable
from tests.services.sync.conftest import TABLES, Audit, Instance

BUS_NAME = "mes-events"
REGION = "eu-central-1"


@pytest.fixture
def cloud(make_instance) -> Instance:
    return make_instance("cloud")


@pytest.fixture
def fake_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    """moto needs credentials and a region; never real ones."""
    for key, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": REGION,
    }.items():
        monkeypatch.setenv(key, value)


HEADER = {"v": 1, "source_system": "MES", "revision": 0}


def confirmation(operation: int) -> ProductionConfirmation:
    return ProductionConfirmation(
        **HEADER,
        issued_at=now_ms(),
        document_id=f"CONF-100-{operation}",
        order_id="100",
        operation_no=operation,
        site="berlin",
        line="l1",
        station="s1",
        good_quantity=10 * operation,
        scrap_quantity=0,
    )


def enqueue_all(instance: Instance, destination: str, messages: list[tuple[str, dict]]) -> None:
    with instance.sessions.begin() as session:
        for kind, payload in messages:
            enqueue(session, TABLES, destination, kind, payload)


def confirmations(count: int) -> list[tuple[str, dict]]:
    return [
        ("ProductionConfirmation", confirmation(n).model_dump(mode="json"))
        for n in range(1, count + 1)
    ]


def dead_letters(instance: Instance) -> list[Audit]:
    with instance.sessions() as session:
        return list(session.scalars(select(Audit).where(Audit.action == DEAD_LETTER)))


def test_bus_messages_reach_eventbridge_rules_in_batches_of_ten(
    cloud: Instance, fake_credentials
) -> None:
    availability = InventoryAvailability(
        **HEADER,
        issued_at=now_ms(),
        document_id="AVAIL-berlin-M1",
        material_id="M1",
        site="berlin",
        available_quantity=42,
        uom="PC",
    )
    enqueue_all(
        cloud,
        BUS,
        [
            *confirmations(11),
            # As the inventory service writes it: the EventBridge Detail, schema_version included.
            ("InventoryAvailability", event_detail(availability)),
            ("ProductionConfirmation", {"document_id": "broken"}),
        ],
    )
    with mock_aws():
        events = boto3.client("events", region_name=REGION)
        sqs = boto3.client("sqs", region_name=REGION)
        events.create_event_bus(Name=BUS_NAME)
        queue = sqs.create_queue(QueueName="arrived")["QueueUrl"]
        queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])
        events.put_rule(
            Name="to-erp",
            EventBusName=BUS_NAME,
            EventPattern=json.dumps({"source": ["mes.enterprise"]}),
        )
        events.put_targets(
            Rule="to-erp",
            EventBusName=BUS_NAME,
            Targets=[{"Id": "queue", "Arn": queue_arn["Attributes"]["QueueArn"]}],
        )
        calls: list[int] = []
        publisher = EventBridgePublisher(events)
        put = publisher.put
        publisher.put = lambda entries: calls.append(len(entries)) or put(entries)
        relay = OutboxRelay(cloud.sessions, TABLES, bus_name=BUS_NAME, publisher=publisher)

        result = relay.step()

        arrived = []
        while answer := sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10).get("Messages"):
            arrived += [json.loads(m["Body"]) for m in answer]
            sqs.delete_message_batch(
                QueueUrl=queue,
                Entries=[
                    {"Id": m["MessageId"], "ReceiptHandle": m["ReceiptHandle"]} for m in answer
                ],
            )

    assert result == RelayResult(delivered=12, dead_letters=1)
    assert calls == [10, 2]
    by_id = {event["detail"]["document_id"]: event for event in arrived}
    assert sorted(by_id) == sorted([f"CONF-100-{n}" for n in range(1, 12)] + ["AVAIL-berlin-M1"])
    assert by_id["CONF-100-3"]["detail-type"] == "ProductionConfirmation"
    assert by_id["CONF-100-3"]["detail"]["good_quantity"] == 30
    assert by_id["AVAIL-berlin-M1"]["detail-type"] == "InventoryAvailability"
    assert by_id["AVAIL-berlin-M1"]["detail"]["schema_version"] == 1
    assert cloud.unsent(BUS) == 0
    [dead] = dead_letters(cloud)
    assert dead.entity_id == "bus:13" and dead.detail["payload"] == {"document_id": "broken"}


class FlakyEvents:
    """An EventBridge client stub: the entries of ``failing`` document ids fail their first
    ``failures`` puts with an ErrorCode, as PutEvents reports a failed entry."""

    def __init__(self, failing: set[str], failures: int) -> None:
        self.failing = failing
        self.failures = failures
        self.calls: list[list[str]] = []

    def put_events(self, Entries: list[dict[str, Any]]) -> dict[str, Any]:  # noqa: N803
        ids = [json.loads(entry["Detail"])["document_id"] for entry in Entries]
        self.calls.append(ids)
        failed = self.failures > 0
        self.failures -= 1
        results = [
            {"ErrorCode": "InternalFailure", "ErrorMessage": "try again"}
            if failed and document_id in self.failing
            else {"EventId": f"event-{document_id}"}
            for document_id in ids
        ]
        return {"FailedEntryCount": sum("ErrorCode" in r for r in results), "Entries": results}


def test_a_failed_entry_is_put_again_alone_and_the_accepted_ones_are_not_resent(
    cloud: Instance,
) -> None:
    enqueue_all(cloud, BUS, confirmations(3))
    client = FlakyEvents(failing={"CONF-100-2"}, failures=1)
    relay = OutboxRelay(
        cloud.sessions,
        TABLES,
        bus_name=BUS_NAME,
        publisher=EventBridgePublisher(client),
        sleep=lambda _s: None,
    )

    assert relay.step() == RelayResult(delivered=3)
    assert client.calls == [["CONF-100-1", "CONF-100-2", "CONF-100-3"], ["CONF-100-2"]]
    assert cloud.unsent(BUS) == 0


def test_an_entry_still_failing_stays_unsent_and_only_it_goes_next_round(
    cloud: Instance,
) -> None:
    enqueue_all(cloud, BUS, confirmations(3))
    client = FlakyEvents(failing={"CONF-100-2"}, failures=3)
    relay = OutboxRelay(
        cloud.sessions,
        TABLES,
        bus_name=BUS_NAME,
        publisher=EventBridgePublisher(client),
        put_attempts=3,
        sleep=lambda _s: None,
    )

    with pytest.raises(TransportUnavailable, match="InternalFailure"):
        relay.step()
    assert cloud.unsent(BUS) == 1  # 1 and 3 were accepted and marked; 2 was not

    assert relay.step() == RelayResult(delivered=1)
    assert client.calls == [
        ["CONF-100-1", "CONF-100-2", "CONF-100-3"],
        ["CONF-100-2"],
        ["CONF-100-2"],
        ["CONF-100-2"],
    ]
    assert cloud.unsent(BUS) == 0


def test_one_relay_at_a_time_delivers_a_destination(cloud: Instance) -> None:
    enqueue_all(cloud, BUS, confirmations(2))
    inside, release = threading.Event(), threading.Event()
    client = FlakyEvents(failing=set(), failures=0)
    put_events = client.put_events

    def slow_put(Entries):  # noqa: N803
        inside.set()
        release.wait(timeout=10)
        return put_events(Entries)

    client.put_events = slow_put
    first = OutboxRelay(
        cloud.sessions, TABLES, bus_name=BUS_NAME, publisher=EventBridgePublisher(client)
    )
    second = OutboxRelay(
        cloud.sessions, TABLES, bus_name=BUS_NAME, publisher=EventBridgePublisher(client)
    )
    results: list[RelayResult] = []
    running = threading.Thread(target=lambda: results.append(first.step()))
    running.start()
    assert inside.wait(timeout=10)

    assert second.step() == RelayResult()  # the first holds the bus
    release.set()
    running.join(timeout=10)

    assert results == [RelayResult(delivered=2)]
    assert client.calls == [["CONF-100-1", "CONF-100-2"]]


def inventory_command(kind: str, command_id: str) -> tuple[str, dict]:
    return kind, {"command_id": command_id, "actor": "production-execution", "order_id": "100"}


def test_inventory_commands_go_in_order_a_409_is_delivered_and_a_422_a_dead_letter(
    cloud: Instance,
) -> None:
    enqueue_all(
        cloud,
        INVENTORY,
        [
            inventory_command("ReserveForOrder", "reserve:100"),
            inventory_command("ReportConsumption", "consume:100:1"),
            inventory_command("ReportConsumption", "consume:100:2"),
            inventory_command("ReportConsumption", "consume:100:3"),
            inventory_command("ReportConsumption", "consume:100:4"),
        ],
    )
    answers = {
        "reserve:100": [201],
        "consume:100:1": [409],  # seen before with another body: it was delivered
        "consume:100:2": [422],
        "consume:100:3": [503, 201],
        "consume:100:4": [201],
    }
    posted: list[tuple[str, str]] = []

    def post(path: str, body: dict) -> tuple[int, Any]:
        posted.append((path, body["command_id"]))
        status = answers[body["command_id"]].pop(0)
        return status, {"detail": [{"field": "quantity", "message": "more than reserved"}]}

    relay = OutboxRelay(cloud.sessions, TABLES, post=post)

    with pytest.raises(TransportUnavailable, match="503"):
        relay.step()
    assert cloud.unsent(INVENTORY) == 2  # 3 and 4 wait; 4 did not overtake 3

    assert relay.step() == RelayResult(delivered=2)
    assert posted == [
        ("/reservations", "reserve:100"),
        ("/consumptions", "consume:100:1"),
        ("/consumptions", "consume:100:2"),
        ("/consumptions", "consume:100:3"),
        ("/consumptions", "consume:100:3"),
        ("/consumptions", "consume:100:4"),
    ]
    [dead] = dead_letters(cloud)
    assert dead.entity_id == "inventory:3"
    assert "422" in dead.detail["reason"] and "more than reserved" in dead.detail["reason"]
    assert dead.detail["payload"]["command_id"] == "consume:100:2"
    assert cloud.unsent(INVENTORY) == 0


def test_a_misconfigured_inventory_url_stops_without_dead_letters(cloud: Instance) -> None:
    enqueue_all(cloud, INVENTORY, [inventory_command("ReserveForOrder", "reserve:100")])
    client = InventoryClient(
        "http://inventory.example",
        transport=httpx.MockTransport(lambda request: httpx.Response(404, json={"detail": "?"})),
    )

    with pytest.raises(TransportRejected):
        OutboxRelay(cloud.sessions, TABLES, post=client).step()

    assert cloud.unsent(INVENTORY) == 1 and dead_letters(cloud) == []
