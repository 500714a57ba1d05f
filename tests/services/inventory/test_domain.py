"""The inventory's rules without a database."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.common.errors import RuleViolation
from services.inventory.domain import (
    Lot,
    amount,
    check_take,
    check_uom,
    fifo,
    hold_after_consumption,
    hold_target,
    plan_consumption,
    plan_hold,
    shortfall,
)

D = Decimal


def lot(name: str, received: int, quantity: str, reserved: str = "0", held: str = "0", at="A"):
    return Lot(at, name, received, D(quantity), D(reserved), D(held))


def test_amount_is_the_exact_decimal_of_the_shortest_repr():
    assert amount(0.1, "quantity") == D("0.1")
    assert amount(0.1, "quantity") + amount(0.2, "quantity") == D("0.3")  # unlike floats
    assert amount(12.000001, "quantity") == D("12.000001")


@pytest.mark.parametrize(
    ("value", "reason"),
    [(0.0000001, "decimal places"), (1.5e-7, "decimal places"), (1e12, "large")],
)
def test_amount_refuses_what_the_database_cannot_keep_exactly(value, reason):
    with pytest.raises(RuleViolation, match=reason) as refused:
        amount(value, "materials[2].quantity")
    assert refused.value.field == "materials[2].quantity"


def test_another_unit_is_refused_not_converted():
    check_uom("kg", "kg", "uom", "M1")
    with pytest.raises(RuleViolation, match="'g' is not the unit of M1, 'kg'") as refused:
        check_uom("kg", "g", "requirements[0].uom", "M1")
    assert refused.value.field == "requirements[0].uom"


def test_an_issue_takes_at_most_the_unreserved_quantity_and_says_how_much_that_is():
    check_take(D("4"), D("4"), "pc", "lot L1", "quantity")
    with pytest.raises(RuleViolation, match="available 3.5 pc") as refused:
        check_take(D("3.5"), D("3.500001"), "pc", "lot L1", "quantity")
    assert refused.value.field == "quantity"


def test_fifo_is_oldest_receipt_first_then_location_and_lot():
    lots = [lot("L3", 7, "1"), lot("L1", 2, "1", at="B"), lot("L2", 2, "1", at="A")]
    assert fifo(lots) == [2, 1, 0]


def test_consumption_without_a_lot_takes_the_oldest_receipts_first():
    lots = [lot("new", 9, "5"), lot("old", 1, "3"), lot("middle", 4, "5")]
    plan = plan_consumption(lots, D("6"), None, "pc", "M1", "materials[0].quantity")
    assert [(lots[t.index].lot, t.quantity) for t in plan] == [("old", D(3)), ("middle", D(3))]


def test_consumption_of_a_named_lot_takes_only_that_lot_at_any_location():
    lots = [lot("L1", 1, "5"), lot("L2", 2, "2", at="A"), lot("L2", 2, "2", at="B")]
    plan = plan_consumption(lots, D("3"), "L2", "pc", "M1", "materials[0].quantity")
    assert [(lots[t.index].location, t.quantity) for t in plan] == [("A", D(2)), ("B", D(1))]
    with pytest.raises(RuleViolation, match="lot L2 of M1 .* available 4 pc") as refused:
        plan_consumption(lots, D("5"), "L2", "pc", "M1", "materials[0].quantity")
    assert refused.value.field == "materials[0].quantity"


def test_consumption_uses_the_orders_own_reservation_but_never_another_orders():
    # 10 on hand: 6 reserved, of which 2 for this order; so 4 + 2 are for it.
    lots = [lot("L1", 1, "10", reserved="6", held="2")]
    (take,) = plan_consumption(lots, D("6"), None, "pc", "M1", "f")
    assert (take.quantity, take.from_held) == (D(6), D(2))
    with pytest.raises(RuleViolation, match="available 6 pc"):
        plan_consumption(lots, D("6.5"), None, "pc", "M1", "f")


def test_a_reservation_takes_unreserved_stock_oldest_first_and_reports_what_is_missing():
    lots = [lot("new", 5, "4"), lot("old", 1, "3", reserved="1")]
    changes, held = plan_hold(lots, D("10"))
    assert changes == [D(4), D(2)]  # old: 2 unreserved; new: 4
    assert held == D(6)
    assert shortfall(D("10"), D("0"), held) == D(4)


def test_a_smaller_requirement_releases_the_newest_holds_first():
    lots = [lot("new", 5, "4", reserved="4", held="4"), lot("old", 1, "3", reserved="3", held="3")]
    changes, held = plan_hold(lots, D("5"))
    assert changes == [D(-2), D(0)]
    assert held == D(5)


def test_consumption_releases_the_reservation_by_what_it_consumed():
    assert hold_target(D("10"), D("4")) == D(6)
    assert hold_target(D("10"), D("12")) == D(0)
    assert hold_after_consumption(D("6"), D("4")) == D(2)
    assert hold_after_consumption(D("3"), D("4")) == D(0)  # never below nothing


quantities = st.decimals(min_value=0, max_value=50, places=2)


@given(
    st.lists(st.tuples(quantities, quantities, st.integers(0, 5)), min_size=0, max_size=5),
    quantities,
    st.sampled_from([None, "L0", "L1"]),
)
def test_a_consumption_plan_takes_exactly_what_was_asked_from_what_the_order_may_use(
    stock, wanted, which
):
    lots = []
    for i, (quantity, reserved_share, received) in enumerate(stock):
        reserved = min(quantity, reserved_share)
        lots.append(Lot("A", f"L{i % 2}", received, quantity, reserved, min(reserved, D(1))))
    candidates = [x for x in lots if which is None or x.lot == which]
    available = sum((x.for_order for x in candidates), D(0))
    if wanted > available:
        with pytest.raises(RuleViolation):
            plan_consumption(lots, wanted, which, "pc", "M", "f")
        return
    plan = plan_consumption(lots, wanted, which, "pc", "M", "f")
    assert sum((t.quantity for t in plan), D(0)) == wanted
    for take in plan:
        chosen = lots[take.index]
        assert which is None or chosen.lot == which
        assert D(0) < take.quantity <= chosen.for_order
        assert take.from_held == min(take.quantity, chosen.held)


@given(st.lists(st.tuples(quantities, quantities, quantities), max_size=5), quantities)
def test_a_hold_plan_never_reserves_more_than_there_is(stock, target):
    lots = []
    for i, (quantity, reserved_share, held_share) in enumerate(stock):
        reserved = min(quantity, reserved_share)
        lots.append(Lot("A", f"L{i}", i, quantity, reserved, min(reserved, held_share)))
    changes, held = plan_hold(lots, target)
    assert held == sum((x.held + c for x, c in zip(lots, changes, strict=True)), D(0))
    for x, change in zip(lots, changes, strict=True):
        assert D(0) <= x.reserved + change <= x.quantity
        assert x.held + change >= 0
    if held != target:  # short: everything unreserved is now held
        assert held < target
        assert all(x.reserved + c == x.quantity for x, c in zip(lots, changes, strict=True))
