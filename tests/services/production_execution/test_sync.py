"""The cloud and an edge instance kept in sync by their outboxes and inboxes (the handlers of
``sync_handlers``; the transport is ``services.common.sync``'s, here a direct hand-over): the
cloud releases, the edge executes, the cloud mirrors it and sends its messages on once."""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator

import httpx
import pytest
from sqlalchemy import func, select

from mes_domain.production import SyncBatch, SyncMessage
from services.common.outbox import applied_through, apply_batch, as_sync_messages, since
from services.common.sync import StepResult, SyncWorker, TransportUnavailable
from services.common.transports.https import HttpsTransport
from services.production_execution.models import TABLES
from services.production_execution.sync_handlers import SYNC_HANDLERS
from tests.services.production_execution.conftest import (
    SITE,
    Instance,
    empty,
    migrated_database,
    outbox,
    release_body,
    start_instance,
)
from tests.services.production_execution.test_api import nonconformance_event

_ids = itertools.count(1)


def command(**fields) -> dict:
    return {"command_id": f"sync-{next(_ids):06d}", "actor": "operator-3", **fields}


@pytest.fixture(scope="module")
def edge_database(postgres) -> Iterator[str]:
    yield from migrated_database(postgres)


@pytest.fixture(scope="module")
def instances(database, edge_database, clock) -> Iterator[tuple[Instance, Instance]]:
    cloud = start_instance(database, clock, edge_sites=SITE)
    edge = start_instance(edge_database, clock, instance_id=SITE)
    yield cloud, edge
    for instance in (cloud, edge):
        instance.stop()


@pytest.fixture
def pair(instances, engine):
    cloud, edge = instances
    empty(engine)
    empty(edge.client.app.state.engine)
    return cloud, edge


def messages(source: Instance, origin: str, destination: str, after: int = 0, limit: int = 100):
    with source.sessions() as session:
        return as_sync_messages(origin, since(session, TABLES, destination, after, limit))


def deliver(source: Instance, origin: str, target: Instance, destination: str, limit=100) -> int:
    """Hand the target what it has not applied yet, in batches of ``limit``, as a transport
    would; the number of messages applied."""
    applied = 0
    while True:
        with target.sessions() as session:
            after = applied_through(session, TABLES, origin)
        batch = messages(source, origin, destination, after, limit)
        if not batch:
            return applied
        with target.sessions.begin() as session:
            ack = apply_batch(session, TABLES, SyncBatch(messages=batch), SYNC_HANDLERS)
        applied += ack.applied_through - after


def apply_again(target: Instance, batch: list[SyncMessage]) -> None:
    """The handlers once more on messages already applied (as after a lost inbox cursor)."""
    with target.sessions.begin() as session:
        for message in batch:
            SYNC_HANDLERS[message.kind](session, message)


def snapshot(instance: Instance, order_id: str) -> dict:
    client = instance.client
    with instance.sessions() as session:
        by_kind = dict(
            session.execute(
                select(TABLES.outbox.kind, func.count()).group_by(TABLES.outbox.kind)
            ).all()
        )
    return {
        "order": client.get(f"/orders/{order_id}").json(),
        "components": client.get(f"/orders/{order_id}/components").json(),
        "outbox": by_kind,
    }


def test_released_in_the_cloud_executed_at_the_edge_mirrored_back(pair, clock):
    cloud, edge = pair
    assert cloud.client.post("/orders/release", json=release_body(order_id="PO-E")).status_code == (
        201
    )
    assert edge.client.get("/orders/PO-E").status_code == 404
    assert deliver(cloud, "cloud", edge, SITE) == 1
    at_edge = edge.client.get("/orders/PO-E").json()
    assert at_edge == cloud.client.get("/orders/PO-E").json()
    assert at_edge["executed_at"] == SITE

    # the edge works the order, the link down: nothing reaches the cloud meanwhile
    client = edge.client
    ok = [
        client.post("/orders/PO-E/operations/10/start", json=command(station="press-01")),
        client.post(
            f"/stations/{SITE}/body-line-1/press-01/counts",
            json=command(ts=int(time.time() * 1000), good=9, bad=1),
        ),
        client.post("/orders/PO-E/operations/10/complete", json=command()),
        client.post("/orders/PO-E/serials", json=command(serial="SN-1")),
        client.post(
            "/orders/PO-E/serials/SN-1/components",
            json=command(
                components=[{"material_id": "SHEET-1", "lot": "L1", "quantity": 2, "uom": "EA"}]
            ),
        ),
        client.post("/orders/PO-E/operations/20/start", json=command(station="weld-01")),
    ]
    assert [r.status_code for r in ok] == [200, 200, 200, 201, 200, 200]
    assert cloud.client.get("/orders/PO-E").json()["status"] == "RELEASED"
    # the edge delivers nothing to the bus or inventory itself: all of it goes to the cloud
    assert {destination for destination, *_ in outbox(edge.sessions)} == {"cloud"}

    # back online, in small batches
    assert deliver(edge, SITE, cloud, "cloud", limit=3) > 0
    edge_state = snapshot(edge, "PO-E")
    mirrored = cloud.client.get("/orders/PO-E").json()
    assert mirrored == edge_state["order"]  # versions included
    assert mirrored["status"] == "IN_PROGRESS"
    assert cloud.client.get("/orders/PO-E/serials/SN-1").json() == (
        edge.client.get("/orders/PO-E/serials/SN-1").json()
    )
    confirmations = outbox(cloud.sessions, "bus", "ProductionConfirmation")
    assert [(p["document_id"], p["good_quantity"]) for _, _, p, _ in confirmations] == [
        ("CONF-PO-E-10", 9.0)
    ]
    assert [key for *_, key in outbox(cloud.sessions, "inventory", "ReportConsumption")] == [
        "consume:PO-E:10"
    ]
    statuses = [p["status"] for _, _, p, _ in outbox(cloud.sessions, "bus", "OrderStatusChanged")]
    assert statuses == ["RELEASED", "IN_PROGRESS"]

    # the cloud refuses station commands for it
    refused = cloud.client.post("/orders/PO-E/operations/20/pause", json=command())
    assert refused.status_code == 409

    # everything again: nothing changes, nothing leaves twice
    before = snapshot(cloud, "PO-E")
    assert deliver(edge, SITE, cloud, "cloud") == 0  # the inbox has them all
    apply_again(cloud, messages(edge, SITE, "cloud"))  # and the handlers are idempotent too
    assert snapshot(cloud, "PO-E") == before


def test_an_older_view_does_not_overwrite_a_newer_one(pair):
    cloud, edge = pair
    cloud.client.post("/orders/release", json=release_body(order_id="PO-E"))
    deliver(cloud, "cloud", edge, SITE)
    edge.client.post("/orders/PO-E/operations/10/start", json=command(station="press-01"))
    edge.client.post("/orders/PO-E/operations/10/pause", json=command())
    changes = [m for m in messages(edge, SITE, "cloud") if m.kind == "OperationChanged"]
    assert [m.payload["status"] for m in changes] == ["RUNNING", "PAUSED"]
    apply_again(cloud, [changes[1]])
    apply_again(cloud, [changes[0]])  # late and older: ignored
    operation = cloud.client.get("/orders/PO-E").json()["operations"][0]
    assert (operation["status"], operation["version"]) == ("PAUSED", changes[1].payload["version"])


def test_nonconformance_goes_to_the_edge_and_its_rework_comes_back(pair):
    cloud, edge = pair
    cloud.client.post(
        "/orders/release",
        json=release_body(order_id="PO-E", kinds=("press", "camera_inspection")),
    )
    deliver(cloud, "cloud", edge, SITE)
    edge.client.post("/orders/PO-E/operations/10/start", json=command(station="press-01"))

    event = nonconformance_event("NCR-E", "PO-E")
    first = cloud.client.post("/events", json=event)
    assert (first.status_code, first.json()) == (
        202,
        {"ncr_id": "NCR-E", "handled_by": SITE, "duplicate": False},
    )
    assert cloud.client.post("/events", json=event).json()["duplicate"] is True
    assert cloud.client.get("/nonconformances/NCR-E").status_code == 404  # not kept there
    assert deliver(cloud, "cloud", edge, SITE) == 1  # the release was applied before
    assert edge.client.get("/nonconformances/NCR-E").json()["order_id"] == "PO-E"

    disposed = edge.client.post(
        "/nonconformances/NCR-E/disposition", json=command(disposition="REWORK")
    )
    assert disposed.json()["rework_operation_no"] == 21
    deliver(edge, SITE, cloud, "cloud")
    mirrored = cloud.client.get("/orders/PO-E").json()
    assert mirrored == edge.client.get("/orders/PO-E").json()
    assert mirrored["operations"][-1]["rework"] is True


def test_forward_leaves_the_cloud_once(pair):
    cloud, _edge = pair
    payload = {"destination": "bus", "kind": "OrderStatusChanged", "payload": {"x": 1}}
    forwards = [
        SyncMessage(
            origin=SITE,
            sequence=n,
            kind="Forward",
            payload={**payload, "dedup_key": "OSC-1"},
            created_at=int(time.time() * 1000),
        )
        for n in (1, 2)
    ]
    stray = forwards[0].model_copy(
        update={"payload": {**payload, "destination": "paris", "dedup_key": "k"}}
    )
    apply_again(cloud, [*forwards, stray])
    assert outbox(cloud.sessions) == [("bus", "OrderStatusChanged", {"x": 1}, "OSC-1")]


# ---- over the sync API and SyncWorker, as serve runs it ----------------------------------------


class Link(httpx.BaseTransport):
    """The edge's HTTPS link to the cloud app: up or down, and able to lose a response after the
    cloud handled the request (the worst case for doubling)."""

    def __init__(self, cloud: Instance) -> None:
        self.cloud = cloud
        self.up = True
        self.lose_next_response = False

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if not self.up:
            raise httpx.ConnectError("link down", request=request)
        response = self.cloud.client.request(
            request.method,
            request.url.path,
            params=request.url.params,
            content=request.read(),
            headers={"content-type": request.headers.get("content-type", "application/json")},
        )
        if self.lose_next_response:
            self.lose_next_response = False
            raise httpx.ReadTimeout("response lost", request=request)
        return httpx.Response(response.status_code, content=response.content)


def sync_until_quiet(worker: SyncWorker) -> None:
    for _ in range(20):
        result = worker.step()
        if (result.pushed, result.applied) == (0, 0):
            return
    raise AssertionError("sync did not settle")


def test_an_edge_offline_keeps_working_and_catches_up_nothing_lost_or_doubled(pair):
    cloud, edge = pair
    link = Link(cloud)
    worker = SyncWorker(
        edge.sessions,
        TABLES,
        SITE,
        "cloud",
        HttpsTransport("http://cloud.test", transport=link),
        SYNC_HANDLERS,
        batch_size=4,
    )
    for order_id in ("PO-1", "PO-2"):
        cloud.client.post("/orders/release", json=release_body(order_id=order_id))
    sync_until_quiet(worker)
    assert edge.client.get("/orders/PO-2").json()["executed_at"] == SITE

    link.up = False
    with pytest.raises(TransportUnavailable):
        worker.step()
    done = []
    for number, station in ((10, "press-01"), (20, "weld-01"), (30, "assembly-01")):
        start = command(station=station)
        done.append(edge.client.post(f"/orders/PO-1/operations/{number}/start", json=start))
        complete = command(good_quantity=10 - number // 10)
        done.append(edge.client.post(f"/orders/PO-1/operations/{number}/complete", json=complete))
    done.append(
        edge.client.post("/orders/PO-2/operations/10/start", json=command(station="press-01"))
    )
    assert [r.status_code for r in done] == [200] * 7  # the edge works on while offline

    link.up = True
    link.lose_next_response = True  # the cloud applies the first batch, the edge never hears
    with pytest.raises(TransportUnavailable):
        worker.step()
    sync_until_quiet(worker)

    for order_id in ("PO-1", "PO-2"):
        assert cloud.client.get(f"/orders/{order_id}").json() == (
            edge.client.get(f"/orders/{order_id}").json()
        )
    confirmations = outbox(cloud.sessions, "bus", "ProductionConfirmation")
    assert sorted(
        (p["operation_no"], p["good_quantity"], p["final"]) for _, _, p, _ in confirmations
    ) == [
        (10, 9.0, False),
        (20, 8.0, False),
        (30, 7.0, True),
    ]
    statuses = sorted(
        (p["order_id"], p["status"])
        for _, _, p, _ in outbox(cloud.sessions, "bus", "OrderStatusChanged")
    )
    assert statuses == [
        ("PO-1", "COMPLETED"),
        ("PO-1", "IN_PROGRESS"),
        ("PO-1", "RELEASED"),
        ("PO-2", "IN_PROGRESS"),
        ("PO-2", "RELEASED"),
    ]
    with edge.sessions() as session:
        unsent = session.scalar(
            select(func.count()).select_from(TABLES.outbox).where(TABLES.outbox.sent_at.is_(None))
        )
    assert unsent == 0  # the cloud acknowledged all of it
    assert worker.step() == StepResult(pushed=0, applied=0)
