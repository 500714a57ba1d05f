"""Inventory's rules, without a database.

Quantities are exact decimals with six places (``Decimal``), as the database keeps them, so the
movement ledger sums to the stock exactly. A stock position is one lot of one material at one
location of a site; its ``reserved`` part is held for released orders, the rest is unreserved.

- A receipt adds. An issue or a transfer takes at most the position's unreserved quantity.
- Units are never converted: a material has one unit of measure per site, and a command in
  another unit is refused, naming the field.
- Reservations are partial, never refused for lack of stock: an order is reserved what the site
  has unreserved (oldest lots first) and the response reports the shortfall. Production
  execution sends ``ReserveForOrder`` from its outbox after the order is already released, so a
  refusal would only strand the message; a later ``ReserveForOrder`` for the order (a new command
  id) tops the reservation up to its requirement, or releases what is no longer required.
- Consumption takes the named lot, or without a lot the oldest receipts first (FIFO), from what
  is unreserved plus what is reserved for its own order; it then releases the order's
  reservation by the quantity consumed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from services.common.errors import RuleViolation

PLACES = 6
QUANTUM = Decimal(1).scaleb(-PLACES)  # 0.000001
# Numeric(18, 6) keeps up to 10**12 - 1 with six places.
LIMIT = Decimal(10) ** 12
ZERO = Decimal(0)


def amount(value: float, field: str) -> Decimal:
    """The exact decimal of a quantity from a request (its shortest repr: 0.1 is 0.1, not
    0.1000000000000000055...); more than six places or too large is refused."""
    try:
        exact = Decimal(repr(value))
        if exact.copy_abs() >= LIMIT:
            raise InvalidOperation
        kept = exact.quantize(QUANTUM)
    except InvalidOperation:
        raise RuleViolation(
            f"{field} {value} is too large; stock quantities are below {LIMIT:,.0f}", field
        ) from None
    if kept != exact:
        raise RuleViolation(
            f"{field} {value} has more than {PLACES} decimal places; stock is kept to {QUANTUM}",
            field,
        )
    return kept


def figure(value: Decimal) -> str:
    """A quantity for a message: 12.5, not 12.500000."""
    return format(value.normalize(), "f")


def check_uom(expected: str, given: str, field: str, what: str) -> None:
    if given != expected:
        raise RuleViolation(
            f"{field} {given!r} is not the unit of {what}, {expected!r}; units are not converted",
            field,
        )


def check_take(unreserved: Decimal, wanted: Decimal, uom: str, what: str, field: str) -> None:
    """An issue or a transfer: at most what is not reserved for orders."""
    if wanted > unreserved:
        raise RuleViolation(
            f"{field} {figure(wanted)} {uom} exceeds the unreserved quantity of {what}: "
            f"available {figure(unreserved)} {uom}",
            field,
        )


@dataclass(frozen=True)
class Lot:
    """A stock position as the rules see it. ``received`` orders the receipts (smaller is
    older); ``held`` is the part of ``reserved`` that belongs to the order at hand."""

    location: str
    lot: str
    received: int
    quantity: Decimal
    reserved: Decimal
    held: Decimal = ZERO

    @property
    def unreserved(self) -> Decimal:
        return self.quantity - self.reserved

    @property
    def for_order(self) -> Decimal:
        """What the order at hand may take: the unreserved part and its own reservation."""
        return self.unreserved + self.held


def fifo(lots: Sequence[Lot]) -> list[int]:
    """The indexes of ``lots``, oldest receipt first (ties: location, then lot)."""
    return sorted(range(len(lots)), key=lambda i: (lots[i].received, lots[i].location, lots[i].lot))


@dataclass(frozen=True)
class Take:
    index: int  # into the lots the plan was made from
    quantity: Decimal
    from_held: Decimal  # of it, what was reserved for the order


def plan_consumption(
    lots: Sequence[Lot], wanted: Decimal, lot: str | None, uom: str, what: str, field: str
) -> list[Take]:
    """Where ``wanted`` comes from: the named lot (any location), else oldest receipts first;
    each position gives its unreserved part and the order's own reservation on it, the order's
    reservation first."""
    candidates = [i for i in fifo(lots) if lot is None or lots[i].lot == lot]
    available = sum((lots[i].for_order for i in candidates), ZERO)
    if wanted > available:
        source = f"lot {lot} of {what}" if lot is not None else what
        raise RuleViolation(
            f"{field} {figure(wanted)} {uom} exceeds what {source} has for the order: "
            f"available {figure(available)} {uom}",
            field,
        )
    plan: list[Take] = []
    remaining = wanted
    for i in candidates:
        if remaining == ZERO:
            break
        take = min(remaining, lots[i].for_order)
        if take > ZERO:
            plan.append(Take(i, take, min(take, lots[i].held)))
            remaining -= take
    return plan


def plan_hold(lots: Sequence[Lot], target: Decimal) -> tuple[list[Decimal], Decimal]:
    """Change the order's holds towards ``target`` in total: more is taken from unreserved
    stock oldest receipt first, as far as there is some; less is released newest first.
    Returns each lot's change of ``held`` (and of its ``reserved``) and the new total."""
    held = sum((lot.held for lot in lots), ZERO)
    changes = [ZERO] * len(lots)
    order = fifo(lots)
    if target > held:
        missing = target - held
        for i in order:
            if missing == ZERO:
                break
            more = min(missing, lots[i].unreserved)
            if more > ZERO:
                changes[i] = more
                missing -= more
        return changes, target - missing
    surplus = held - target
    for i in reversed(order):
        if surplus == ZERO:
            break
        less = min(surplus, lots[i].held)
        if less > ZERO:
            changes[i] = -less
            surplus -= less
    return changes, target


def hold_target(requested: Decimal, consumed: Decimal) -> Decimal:
    """What an order still needs held: its requirement less what it consumed."""
    return max(ZERO, requested - consumed)


def hold_after_consumption(held: Decimal, consumed_now: Decimal) -> Decimal:
    """Consumption releases the order's reservation by the quantity consumed."""
    return max(ZERO, held - consumed_now)


def shortfall(requested: Decimal, consumed: Decimal, held: Decimal) -> Decimal:
    return max(ZERO, requested - consumed - held)
