"""Receipts, issues, transfers, reservations, consumptions and replays in any order, against
the real database: stock never negative, reserved never more than there is, the ledger sums to
the stock of every position, a replay changes nothing, and every command succeeds exactly when
the rules say there is enough."""

from __future__ import annotations

from collections import defaultdict
from decimal import Decimal
from itertools import count

from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    initialize,
    invariant,
    multiple,
    precondition,
    rule,
    run_state_machine_as_test,
)

from mes_domain.production import (
    ConsumedMaterial,
    GoodsIssue,
    GoodsReceipt,
    MaterialRequirement,
    ReportConsumption,
    ReserveForOrder,
    StockKey,
    Transfer,
)
from services.common.db import make_sessions
from services.common.errors import RuleViolation
from services.inventory.service import InventoryService
from tests.services.inventory.conftest import empty, rows

SITE = "plant1"
locations = st.sampled_from(["A", "B"])
materials = st.sampled_from(["M1", "M2"])
lots = st.sampled_from(["L1", "L2"])
orders = st.sampled_from(["O1", "O2"])
# Halves, so the decimal figures stay exact and the model can compare them with ==.
quantities = st.integers(1, 24).map(lambda halves: halves / 2)
smaller = st.integers(1, 8).map(lambda halves: halves / 2)

SNAPSHOT = {
    "stock": "SELECT id, quantity, reserved, version FROM stock ORDER BY id",
    "holds": "SELECT * FROM reservation_hold ORDER BY order_id, material_id, stock_id",
    "reservations": "SELECT * FROM reservation ORDER BY order_id, material_id",
    "availability": "SELECT * FROM availability ORDER BY site, material_id",
    "counts": "SELECT (SELECT count(*) FROM movement) AS movements,"
    " (SELECT count(*) FROM outbox) AS outbox, (SELECT count(*) FROM audit_trail) AS audit,"
    " (SELECT count(*) FROM command_log) AS commands",
}


class InventoryMachine(RuleBasedStateMachine):
    engine = None  # set by the test: the module's migrated database

    positions = Bundle("positions")  # the stock keys received so far

    def __init__(self) -> None:
        super().__init__()
        empty(self.engine)
        self.service = InventoryService(make_sessions(self.engine))
        self.ids = count()
        self.on_hand: dict[str, Decimal] = defaultdict(Decimal)  # per material, the model's
        self.consumed: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
        self.revisions: dict[str, int] = {}
        self.history: list[tuple[str, object, dict]] = []  # successful commands, to replay

    def command_id(self, kind: str) -> str:
        return f"{kind}-{next(self.ids):06d}"

    def one(self, sql: str, **params):
        return rows(self.engine, sql, **params)

    def unreserved(self, material: str, location: str | None = None, lot: str | None = None):
        found = self.one(
            "SELECT coalesce(sum(quantity - reserved), 0) AS q FROM stock WHERE site = :site"
            " AND material_id = :m AND (CAST(:loc AS text) IS NULL OR location = :loc)"
            " AND (CAST(:lot AS text) IS NULL OR lot = :lot)",
            site=SITE,
            m=material,
            loc=location,
            lot=lot,
        )
        return found[0]["q"]

    def held(self, order: str, material: str, lot: str | None = None) -> Decimal:
        return self.one(
            "SELECT coalesce(sum(h.quantity), 0) AS q FROM reservation_hold h"
            " JOIN stock s ON s.id = h.stock_id WHERE h.order_id = :o AND h.material_id = :m"
            " AND (CAST(:lot AS text) IS NULL OR s.lot = :lot)",
            o=order,
            m=material,
            lot=lot,
        )[0]["q"]

    def uom_of(self, material: str) -> str:
        return "kg" if material == "M2" else "pc"

    # -- commands --------------------------------------------------------------------------

    @initialize(target=positions, material=materials, lot=lots, quantity=quantities)
    def opening_stock(self, material, lot, quantity):
        return self.receive("A", material, lot, quantity)

    @rule(target=positions, location=locations, material=materials, lot=lots, quantity=quantities)
    def receive(self, location, material, lot, quantity):
        key = StockKey(site=SITE, location=location, material_id=material, lot=lot)
        command = GoodsReceipt(
            command_id=self.command_id("rcpt"),
            actor="t",
            stock=key,
            quantity=quantity,
            uom=self.uom_of(material),
        )
        outcome = self.service.receive(command)
        self.on_hand[material] += Decimal(str(quantity))
        self.history.append(("receive", command, outcome.response))
        return key

    @rule(key=positions, quantity=smaller)
    def issue(self, key, quantity):
        location, material, lot = key.location, key.material_id, key.lot
        command = GoodsIssue(
            command_id=self.command_id("issue"),
            actor="t",
            stock=key,
            quantity=quantity,
            uom=self.uom_of(material),
        )
        available = self.unreserved(material, location, lot)
        try:
            outcome = self.service.issue(command)
        except RuleViolation as refused:
            assert refused.field == "quantity"
            assert Decimal(str(quantity)) > available
            event("issue: refused")
            return
        assert Decimal(str(quantity)) <= available
        self.on_hand[material] -= Decimal(str(quantity))
        event("issue: done")
        self.history.append(("issue", command, outcome.response))

    @rule(target=positions, key=positions, quantity=smaller)
    def transfer(self, key, quantity):
        location, material, lot = key.location, key.material_id, key.lot
        to = "B" if location == "A" else "A"
        command = Transfer(
            command_id=self.command_id("xfer"),
            actor="t",
            stock=key,
            to_location=to,
            quantity=quantity,
            uom=self.uom_of(material),
        )
        available = self.unreserved(material, location, lot)
        try:
            outcome = self.service.transfer(command)
        except RuleViolation as refused:
            assert refused.field == "quantity" and Decimal(str(quantity)) > available
            event("transfer: refused")
            return multiple()
        assert Decimal(str(quantity)) <= available
        event("transfer: done")
        self.history.append(("transfer", command, outcome.response))
        return key.model_copy(update={"location": to})

    @rule(
        order=orders,
        wanted=st.dictionaries(materials, smaller, min_size=1, max_size=2),
    )
    def reserve(self, order, wanted):
        command = ReserveForOrder(
            command_id=self.command_id("reserve"),
            actor="t",
            order_id=order,
            site=SITE,
            requirements=[
                MaterialRequirement(material_id=m, quantity=q, uom=self.uom_of(m))
                for m, q in sorted(wanted.items())
            ],
        )
        outcome = self.service.reserve(command)
        for entry in outcome.response["materials"]:
            if entry["material_id"] not in wanted:
                continue
            event(f"reserve: {'short' if entry['shortfall'] else 'whole'}")
            if entry["shortfall"] > 0:  # short only when nothing unreserved is left
                assert self.unreserved(entry["material_id"]) == 0
            target = max(0.0, wanted[entry["material_id"]] - entry["consumed"])
            assert entry["reserved"] + entry["shortfall"] == target
        self.history.append(("reserve", command, outcome.response))

    @rule(
        order=orders,
        operation=st.integers(1, 3),
        key=positions,
        quantity=smaller,
        of_the_lot=st.booleans(),
    )
    def consume(self, order, operation, key, quantity, of_the_lot):
        material, lot = key.material_id, key.lot if of_the_lot else None
        command = ReportConsumption(
            command_id=self.command_id("consume"),
            actor="t",
            order_id=order,
            operation_no=operation * 10,
            site=SITE,
            materials=[
                ConsumedMaterial(
                    material_id=material, quantity=quantity, uom=self.uom_of(material), lot=lot
                )
            ],
        )
        for_order = self.unreserved(material, lot=lot) + self.held(order, material, lot)
        held_before = self.held(order, material)
        wanted = Decimal(str(quantity))
        try:
            outcome = self.service.consume(command)
        except RuleViolation as refused:
            assert refused.field == "materials[0].quantity"
            assert wanted > for_order
            event("consume: refused")
            return
        assert wanted <= for_order
        assert sum(Decimal(str(x["quantity"])) for x in outcome.response["lots"]) == wanted
        assert all(lot is None or x["lot"] == lot for x in outcome.response["lots"])
        # the order's reservation shrinks by what it consumed
        assert self.held(order, material) == max(Decimal(0), held_before - wanted)
        self.on_hand[material] -= wanted
        self.consumed[(order, material)] += wanted
        event(f"consume: done, {'from its reservation' if held_before else 'unreserved'}")
        self.history.append(("consume", command, outcome.response))

    @precondition(lambda self: self.history)
    @rule(data=st.data())
    def replay(self, data):
        method, command, response = data.draw(st.sampled_from(self.history))
        before = {name: self.one(sql) for name, sql in SNAPSHOT.items()}
        outcome = getattr(self.service, method)(command)
        assert outcome.replayed
        event(f"replay: {method}")
        assert outcome.response == response
        assert {name: self.one(sql) for name, sql in SNAPSHOT.items()} == before

    # -- what always holds -----------------------------------------------------------------

    @invariant()
    def stock_is_never_negative_nor_over_reserved(self):
        assert (
            self.one(
                "SELECT id FROM stock WHERE quantity < 0 OR reserved < 0 OR reserved > quantity"
            )
            == []
        )

    @invariant()
    def the_ledger_sums_to_the_stock_of_every_position(self):
        assert (
            self.one(
                "SELECT s.id FROM stock s LEFT JOIN (SELECT stock_id, sum(delta) AS total"
                " FROM movement GROUP BY stock_id) m ON m.stock_id = s.id"
                " WHERE coalesce(m.total, 0) <> s.quantity"
            )
            == []
        )
        totals = self.one("SELECT material_id, sum(quantity) AS q FROM stock GROUP BY material_id")
        assert {t["material_id"]: t["q"] for t in totals} == {
            m: q for m, q in self.on_hand.items() if m in {t["material_id"] for t in totals}
        }

    @invariant()
    def holds_add_up_to_what_is_reserved(self):
        assert (
            self.one(
                "SELECT s.id FROM stock s LEFT JOIN (SELECT stock_id, sum(quantity) AS q"
                " FROM reservation_hold GROUP BY stock_id) h ON h.stock_id = s.id"
                " WHERE coalesce(h.q, 0) <> s.reserved"
            )
            == []
        )
        accounts = self.one(
            "SELECT r.order_id, r.material_id, r.requested, r.consumed, r.reserved,"
            " coalesce(sum(h.quantity), 0) AS held FROM reservation r LEFT JOIN reservation_hold h"
            " USING (order_id, material_id) GROUP BY r.order_id, r.material_id"
        )
        for a in accounts:
            assert a["reserved"] == a["held"]
            assert a["reserved"] <= max(Decimal(0), a["requested"] - a["consumed"])
            assert a["consumed"] == self.consumed[(a["order_id"], a["material_id"])]

    @invariant()
    def availability_is_the_unreserved_stock_and_its_revision_only_grows(self):
        for row in self.one(
            "SELECT a.material_id, a.available, a.revision, sum(s.quantity - s.reserved) AS q"
            " FROM availability a JOIN stock s USING (site, material_id) GROUP BY 1, 2, 3"
        ):
            assert row["available"] == row["q"]
            previous = self.revisions.get(row["material_id"], 0)
            assert row["revision"] >= previous
            self.revisions[row["material_id"]] = row["revision"]
        sent = self.one(
            "SELECT payload->>'material_id' AS m, max((payload->>'revision')::int) AS r,"
            " count(*) AS n FROM outbox WHERE destination = 'bus' GROUP BY 1"
        )
        assert {s["m"]: (s["r"], s["n"]) for s in sent} == {
            m: (r, r) for m, r in self.revisions.items() if r > 0
        }


def test_inventory_lifecycle(engine):
    class Machine(InventoryMachine):
        pass

    Machine.engine = engine
    run_state_machine_as_test(
        Machine,
        settings=settings(
            max_examples=20,
            stateful_step_count=15,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
        ),
    )
