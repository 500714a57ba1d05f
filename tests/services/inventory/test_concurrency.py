"""Commands at the same time on the same stock: no oversell, no deadlock, no double apply."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

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
from services.common.errors import ServiceError
from tests.services.inventory.conftest import rows

SITE = "plant1"


def at_once(*calls: Callable[[], object]) -> list[object]:
    """Run the calls in threads released together; each result is its value or its error."""
    start = threading.Barrier(len(calls))

    def run(call):
        start.wait()
        try:
            return call()
        except ServiceError as error:
            return error

    with ThreadPoolExecutor(len(calls)) as pool:
        return list(pool.map(run, calls))


def key(lot: str, location: str = "A", material: str = "M1") -> StockKey:
    return StockKey(site=SITE, location=location, material_id=material, lot=lot)


def receive(service, stock: StockKey, quantity: float, command_id: str) -> None:
    service.receive(
        GoodsReceipt(command_id=command_id, actor="t", stock=stock, quantity=quantity, uom="pc")
    )


def ledger_matches_stock(db) -> bool:
    return not rows(
        db,
        "SELECT s.id FROM stock s LEFT JOIN (SELECT stock_id, sum(delta) AS total FROM movement"
        " GROUP BY stock_id) m ON m.stock_id = s.id WHERE coalesce(m.total, 0) <> s.quantity",
    )


def issue_of(service, n: int, thread: int) -> Callable[[], object]:
    """Thread ``thread``'s issue of 6 of the 10 in lot L<n>."""
    command = GoodsIssue(
        command_id=f"issue-{n}-{thread}",
        actor=f"clerk{thread}",
        stock=key(f"L{n}"),
        quantity=6,
        uom="pc",
    )
    return lambda: service.issue(command)


def test_two_issues_overselling_one_lot_at_once_exactly_one_succeeds(service, db):
    rounds = 8
    for n in range(rounds):
        receive(service, key(f"L{n}"), 10, f"rcpt-{n:04d}")
    for n in range(rounds):
        results = at_once(issue_of(service, n, 1), issue_of(service, n, 2))
        failures = [r for r in results if isinstance(r, ServiceError)]
        assert len(failures) == 1, results
        assert failures[0].field == "quantity"  # refused by the rule, after the other committed
        assert "available 4 pc" in failures[0].message
    quantities = {r["lot"]: r["quantity"] for r in rows(db, "SELECT lot, quantity FROM stock")}
    assert quantities == {f"L{n}": Decimal(4) for n in range(rounds)}
    assert ledger_matches_stock(db)


def test_crossing_transfers_reservations_and_consumptions_never_deadlock(service, db):
    for material in ("M1", "M2"):
        for location in ("A", "B"):
            receive(service, key("L1", location, material), 100, f"rcpt-{material}-{location}")
    steps = 12

    def transfers(source: str, target: str) -> Callable[[], None]:
        def run() -> None:
            for i in range(steps):
                service.transfer(
                    Transfer(
                        command_id=f"xfer-{source}-{i:03d}",
                        actor="t",
                        stock=key("L1", source, "M1"),
                        to_location=target,
                        quantity=1,
                        uom="pc",
                    )
                )

        return run

    def reserve_and_consume(order: str, materials: list[str]) -> Callable[[], None]:
        def run() -> None:
            for i in range(steps // 2):
                service.reserve(
                    ReserveForOrder(
                        command_id=f"reserve:{order}:{i}",
                        actor="t",
                        order_id=order,
                        site=SITE,
                        requirements=[
                            MaterialRequirement(material_id=m, quantity=10 + i, uom="pc")
                            for m in materials
                        ],
                    )
                )
                service.consume(
                    ReportConsumption(
                        command_id=f"consume:{order}:{i}",
                        actor="t",
                        order_id=order,
                        operation_no=i + 1,
                        site=SITE,
                        materials=[
                            ConsumedMaterial(material_id=m, quantity=1, uom="pc") for m in materials
                        ],
                    )
                )

        return run

    results = at_once(
        transfers("A", "B"),
        transfers("B", "A"),
        reserve_and_consume("O1", ["M1", "M2"]),
        reserve_and_consume("O2", ["M2", "M1"]),  # the other order of materials
    )
    assert results == [None] * 4
    totals = rows(db, "SELECT material_id, sum(quantity) AS q FROM stock GROUP BY 1 ORDER BY 1")
    consumed = 2 * (steps // 2)  # two orders, one of each material per step
    assert [(t["material_id"], t["q"]) for t in totals] == [
        ("M1", Decimal(200 - consumed)),
        ("M2", Decimal(200 - consumed)),
    ]
    assert ledger_matches_stock(db)
    assert not rows(db, "SELECT id FROM stock WHERE quantity < 0 OR reserved > quantity")


def test_one_command_delivered_twice_at_once_is_applied_once(service, db):
    receive(service, key("L1"), 10, "rcpt-0001")
    command = ReportConsumption(
        command_id="consume:O1:10",
        actor="production-execution",
        order_id="O1",
        operation_no=10,
        site=SITE,
        materials=[ConsumedMaterial(material_id="M1", quantity=7, uom="pc")],
    )
    first, second = at_once(lambda: service.consume(command), lambda: service.consume(command))
    assert first.response == second.response  # the later one answers as the replay
    assert sorted([first.replayed, second.replayed]) == [False, True]
    assert rows(db, "SELECT quantity FROM stock") == [{"quantity": Decimal(3)}]
    assert len(rows(db, "SELECT id FROM movement WHERE kind = 'CONSUMPTION'")) == 1
