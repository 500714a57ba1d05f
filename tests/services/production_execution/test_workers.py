"""What ``serve`` runs beside the API, per instance: the sync workers and the cloud's outbound
relay, which delivers a completion's confirmation to the bus and its consumption to inventory."""

from __future__ import annotations

import threading

from services.common.sync import SyncWorker
from services.production_execution.app import background_workers
from tests.services.production_execution.conftest import (
    SITE,
    outbox,
    release_body,
    settings,
    start_instance,
)


class FakeTransport:
    def __init__(self, peer: str) -> None:
        self.peer = peer


class Bus:
    """A BusPublisher that accepts everything and stops the relay once it has ``want``."""

    max_entries = 10

    def __init__(self, stop: threading.Event, want: int) -> None:
        self.entries: list[dict] = []
        self.stop, self.want = stop, want

    def put(self, entries):
        self.entries.extend(entries)
        if len(self.entries) >= self.want:
            self.stop.set()
        return [None] * len(entries)


def names(workers) -> list[str]:
    return [worker.name for worker in workers]


def test_each_instance_runs_what_it_needs(database, clock):
    cases = [
        ({}, []),  # a cloud without edge sites, bus or inventory: nothing beside the API
        ({"edge_sites": SITE}, []),  # over https the edge instance syncs with the cloud's API
        ({"instance_id": SITE}, ["sync-cloud"]),
        (
            {
                "edge_sites": SITE,
                "MES_SYNC_TRANSPORT": "kafka",
                "MES_KAFKA_BOOTSTRAP_SERVERS": "boot:9098",
                "MES_AWS_REGION": "eu-central-1",
                "MES_EVENT_BUS_NAME": "mes-bus",
                "MES_INVENTORY_URL": "http://127.0.0.1:9",
            },
            ["sync-berlin", "outbox-relay"],
        ),
        # an edge instance forwards bus and inventory messages to the cloud: no relay of its own
        ({"instance_id": SITE, "MES_EVENT_BUS_NAME": "mes-bus"}, ["sync-cloud"]),
    ]
    for options, expected in cases:
        configured = settings(database, **options)
        instance = start_instance(
            database, clock, configured.instance_id, options.get("edge_sites", "")
        )
        try:
            workers = background_workers(configured, instance.client.app, transport=FakeTransport)
            assert names(workers) == expected, options
            for worker in workers:
                if worker.name.startswith("sync-"):
                    sync: SyncWorker = worker.run.__self__
                    assert sync.transport.peer == worker.name.removeprefix("sync-")
                    assert sync.handlers["OrderReleased"] is not None
        finally:
            instance.stop()


def test_the_relay_delivers_a_confirmation_to_the_bus_and_a_consumption_to_inventory(cloud, clean):
    client = cloud.client
    client.post("/orders/release", json=release_body(order_id="PO-1", kinds=("press",)))
    start = {"command_id": "relay-start", "actor": "op", "station": "press-01"}
    client.post("/orders/PO-1/operations/10/start", json=start)
    complete = {"command_id": "relay-complete", "actor": "op", "good_quantity": 4}
    client.post("/orders/PO-1/operations/10/complete", json=complete)
    expected_bus = outbox(cloud.sessions, "bus")  # RELEASED, IN_PROGRESS, confirmation, COMPLETED

    stop = threading.Event()
    bus = Bus(stop, want=len(expected_bus))
    posted = []

    def post(path, body):
        posted.append((path, body["command_id"]))
        return 201, {}

    configured = settings(
        str(cloud.client.app.state.settings.database_url), MES_EVENT_BUS_NAME="mes-bus"
    )
    (relay,) = background_workers(configured, cloud.client.app, publisher=bus, post=post)
    thread = threading.Thread(target=relay.run, args=(stop,))
    thread.start()
    thread.join(timeout=10)
    stop.set()
    assert not thread.is_alive()

    assert [(e["Source"], e["DetailType"]) for e in bus.entries] == [
        ("mes.enterprise", "OrderStatusChanged"),
        ("mes.enterprise", "OrderStatusChanged"),
        ("mes.enterprise", "ProductionConfirmation"),
        ("mes.enterprise", "OrderStatusChanged"),
    ]
    assert all(e["EventBusName"] == "mes-bus" for e in bus.entries)
    assert posted == [("/reservations", "reserve:PO-1"), ("/consumptions", "consume:PO-1:10")]
