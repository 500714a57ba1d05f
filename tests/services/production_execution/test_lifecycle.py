"""Orders and operations through their lifecycle as a hypothesis state machine, over HTTP
against PostgreSQL: release, start (at right and wrong stations), pause, scrap, part counts,
complete, stale versions and replays of earlier commands. A model predicts each answer.

Invariants: a replayed command changes nothing; the confirmed yield of an order is the sum of
its operations' yields; exactly one confirmation per completed operation in the outbox;
versions only grow."""

from __future__ import annotations

import itertools
import time
from collections import Counter, defaultdict
from dataclasses import dataclass

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from sqlalchemy import text

from tests.services.production_execution.conftest import (
    BODY_LINE,
    SITE,
    database_snapshot,
    empty,
    outbox,
    release_body,
)

KINDS = ("press", "welding", "assembly", "camera_inspection")
STATIONS = {  # body-line-1's stations and their kinds
    "press-01": "press",
    "weld-01": "welding",
    "assembly-01": "assembly",
    "vision-01": "camera_inspection",
}
MAX_ORDERS = 2


def station_of(kind: str) -> str:
    return next(station for station, its in STATIONS.items() if its == kind)


@dataclass
class ModelOperation:
    number: int
    kind: str
    status: str
    station: str | None = None
    counted: float = 0.0
    scrap: float = 0.0
    good: float = 0.0


class Lifecycle(RuleBasedStateMachine):
    cloud = None  # set by the test: the Instance
    engine = None
    clock = None

    @initialize(
        kinds=st.lists(st.sampled_from(KINDS), min_size=1, max_size=3),
        quantity=st.integers(1, 50),
    )
    def fresh_database_with_an_order(self, kinds, quantity):
        """Every run starts with one order, so its steps go to its lifecycle."""
        empty(self.engine)
        self.clock.reset()
        self.client = self.cloud.client
        self.ids = itertools.count(1)
        self.orders: dict[str, list[ModelOperation]] = {}
        self.sent: list[tuple[str, dict, int, dict]] = []  # (path, body, status, response)
        self.versions: dict[tuple, tuple] = {}  # what was seen, and its version
        self.release(kinds, quantity, priority=500)

    # ---- helpers ---------------------------------------------------------------------------

    def body(self, **fields) -> dict:
        return {"command_id": f"sm-{next(self.ids):06d}", "actor": "machine", **fields}

    def post(self, path: str, body: dict, expected: int) -> dict:
        response = self.client.post(path, json=body)
        assert response.status_code == expected, (path, body, response.text)
        payload = response.json()
        if response.status_code < 300:
            self.sent.append((path, body, response.status_code, payload))
        else:
            assert payload["detail"][0]["message"]  # says why
        return payload

    def operations(self, *statuses: str) -> list[tuple[str, ModelOperation]]:
        return [
            (order_id, op)
            for order_id, operations in sorted(self.orders.items())
            for op in operations
            if not statuses or op.status in statuses
        ]

    def startable(self) -> list[tuple[str, ModelOperation]]:
        return [
            (o, op)
            for o, op in self.operations("READY", "PAUSED")
            if self.running_at(station_of(op.kind)) is None
        ]

    def running_at(self, station: str) -> ModelOperation | None:
        for operations in self.orders.values():
            for op in operations:
                if op.status == "RUNNING" and op.station == station:
                    return op
        return None

    def snapshot(self) -> dict:
        return database_snapshot(self.engine)

    def url(self, order_id: str, op: ModelOperation, action: str) -> str:
        return f"/orders/{order_id}/operations/{op.number}/{action}"

    # ---- rules -----------------------------------------------------------------------------

    @precondition(lambda self: len(self.orders) < MAX_ORDERS)
    @rule(
        kinds=st.lists(st.sampled_from(KINDS), min_size=1, max_size=3),
        quantity=st.integers(1, 50),
        priority=st.integers(0, 999),
    )
    def release(self, kinds, quantity, priority):
        order_id = f"PO-{len(self.orders) + 1}"
        body = release_body(
            order_id=order_id,
            quantity=quantity,
            kinds=tuple(kinds),
            priority=priority,
            command_id=f"sm-release-{order_id}",
        )
        self.post("/orders/release", body, 201)
        self.orders[order_id] = [
            ModelOperation(10 * (i + 1), kind, "READY" if i == 0 else "PENDING")
            for i, kind in enumerate(kinds)
        ]

    # Each command where the model says it is allowed...

    @precondition(lambda self: self.startable())
    @rule(data=st.data())
    def start(self, data):
        order_id, op = data.draw(st.sampled_from(self.startable()), label="operation")
        station = station_of(op.kind)
        self.post(self.url(order_id, op, "start"), self.body(station=station), 200)
        op.status, op.station = "RUNNING", station

    @precondition(lambda self: self.operations("RUNNING"))
    @rule(data=st.data())
    def pause(self, data):
        order_id, op = data.draw(st.sampled_from(self.operations("RUNNING")), label="operation")
        self.post(self.url(order_id, op, "pause"), self.body(), 200)
        op.status = "PAUSED"

    @precondition(lambda self: self.operations("RUNNING", "PAUSED"))
    @rule(data=st.data(), quantity=st.integers(1, 3))
    def scrap(self, data, quantity):
        order_id, op = data.draw(st.sampled_from(self.operations("RUNNING", "PAUSED")))
        body = self.body(quantity=quantity, reason_code="DENT")
        self.post(self.url(order_id, op, "scrap"), body, 200)
        op.scrap += quantity

    @precondition(lambda self: self.operations("RUNNING"))
    @rule(data=st.data(), good=st.integers(0, 5), bad=st.integers(0, 2))
    def counts(self, data, good, bad):
        _, op = data.draw(st.sampled_from(self.operations("RUNNING")), label="operation")
        body = self.body(ts=int(time.time() * 1000), good=good, bad=bad)
        self.post(f"/stations/{SITE}/{BODY_LINE}/{op.station}/counts", body, 200)
        op.counted += good
        op.scrap += bad

    @precondition(lambda self: self.operations("RUNNING", "PAUSED"))
    @rule(data=st.data(), good=st.none() | st.integers(0, 50), scrap=st.integers(0, 2))
    def complete(self, data, good, scrap):
        order_id, op = data.draw(st.sampled_from(self.operations("RUNNING", "PAUSED")))
        body = self.body(good_quantity=good, scrap_quantity=scrap)
        response = self.post(self.url(order_id, op, "complete"), body, 200)
        op.status = "COMPLETED"
        op.good = op.counted if good is None else good  # none: the counted good
        op.scrap += scrap
        assert response["good_quantity"] == op.good
        operations = self.orders[order_id]
        following = operations.index(op) + 1
        if following < len(operations):
            operations[following].status = "READY"

    # ... and any command on any operation or station, where the model says it is refused,
    # or with a stale version

    @precondition(lambda self: self.orders)
    @rule(
        data=st.data(),
        action=st.sampled_from(["start", "pause", "scrap", "complete", "counts", "stale"]),
        station=st.sampled_from(sorted(STATIONS)),
    )
    def anything(self, data, action, station):
        order_id, op = data.draw(st.sampled_from(self.operations()), label="operation")
        busy = self.running_at(station)
        if action == "stale":  # any command with a version the operation is not at: 409
            current = self.client.get(f"/orders/{order_id}").json()["operations"]
            version = next(o["version"] for o in current if o["operation_no"] == op.number)
            stale = version + 1 if version == 1 else version - 1
            before = self.snapshot()
            body = self.body(station=station, expected_version=stale)
            self.post(self.url(order_id, op, "start"), body, 409)
            assert self.snapshot() == before
            return
        if action == "counts":
            body = self.body(ts=int(time.time() * 1000), good=1, bad=0)
            path, allowed = f"/stations/{SITE}/{BODY_LINE}/{station}/counts", busy is not None
        else:
            fields = {
                "start": {"station": station},
                "scrap": {"quantity": 1, "reason_code": "DENT"},
                "complete": {"good_quantity": 1},
            }.get(action, {})
            path, body = self.url(order_id, op, action), self.body(**fields)
            allowed = {
                "start": op.status in ("READY", "PAUSED")
                and STATIONS[station] == op.kind
                and busy is None,
                "pause": op.status == "RUNNING",
                "scrap": op.status in ("RUNNING", "PAUSED"),
                "complete": op.status in ("RUNNING", "PAUSED"),
            }[action]
        if allowed:
            return  # the rules above do those
        before = self.snapshot()
        self.post(path, body, 422)
        assert self.snapshot() == before  # a refused command writes nothing

    @precondition(lambda self: self.orders)
    @rule(seconds=st.integers(1, 60))
    def time_passes(self, seconds):
        self.clock.advance(seconds)

    @precondition(lambda self: self.sent)
    @rule(data=st.data())
    def replay(self, data):
        path, body, status, payload = data.draw(st.sampled_from(self.sent), label="earlier")
        before = self.snapshot()
        response = self.client.post(path, json=body)
        assert (response.status_code, response.json()) == (status, payload)
        assert self.snapshot() == before

    # ---- invariants ------------------------------------------------------------------------

    @invariant()
    def model_agrees_and_versions_only_grow(self):
        with self.engine.connect() as connection:
            rows = connection.execute(
                text(
                    "SELECT o.order_id, o.operation_no, o.status, o.counted_good, "
                    "o.scrap_quantity, o.good_quantity, o.version, w.status, w.version "
                    "FROM operation o JOIN work_order w USING (order_id)"
                )
            ).all()
        actual = {(row[0], row[1]): row for row in rows}
        assert len(actual) == sum(len(ops) for ops in self.orders.values())
        for order_id, operations in self.orders.items():
            for op in operations:
                _, _, status, counted, scrap, good, version, order_status, order_version = actual[
                    (order_id, op.number)
                ]
                content = (status, counted, scrap, good)
                assert content == (op.status, op.counted, op.scrap, op.good)
                for key, state, now in (
                    ((order_id, op.number), content, version),
                    ((order_id,), order_status, order_version),
                ):
                    before, then = self.versions.get(key, (state, 1))
                    # versions only grow, and every change makes a new one
                    assert now > then if state != before else now >= then, key
                    self.versions[key] = (state, now)
            statuses = {op.status for op in operations}
            expected = (
                "COMPLETED"
                if statuses == {"COMPLETED"}
                else "RELEASED"
                if statuses <= {"READY", "PENDING"}
                else "IN_PROGRESS"
            )
            assert order_status == expected

    @invariant()
    def one_confirmation_per_completed_operation_and_yield_adds_up(self):
        if not self.orders:
            return
        confirmations = [
            p for *_, p, _ in outbox(self.cloud.sessions, "bus", "ProductionConfirmation")
        ]
        per_operation = Counter((p["order_id"], p["operation_no"]) for p in confirmations)
        completed = {
            (order_id, op.number)
            for order_id, operations in self.orders.items()
            for op in operations
            if op.status == "COMPLETED"
        }
        assert set(per_operation) == completed
        assert all(n == 1 for n in per_operation.values())
        confirmed_yield: dict[str, float] = defaultdict(float)
        for p in confirmations:
            confirmed_yield[p["order_id"]] += p["good_quantity"]
        for order_id, operations in self.orders.items():
            yields = sum(op.good for op in operations if op.status == "COMPLETED")
            assert confirmed_yield.get(order_id, 0.0) == yields
            finals = [p for p in confirmations if p["order_id"] == order_id and p["final"]]
            all_done = all(op.status == "COMPLETED" for op in operations)
            assert len(finals) == (1 if all_done else 0)


def test_order_lifecycle(cloud, engine, clock):
    class Machine(Lifecycle):
        pass

    Machine.cloud, Machine.engine, Machine.clock = cloud, engine, clock
    run_state_machine_as_test(
        Machine,
        settings=settings(
            max_examples=25,
            stateful_step_count=15,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow],
        ),
    )
