"""What a source hands the collector: one value of one point of one station, as read.

Sources (``sources/``) only read and convert; deriving ``StateChange`` and ``PartCount``,
batching, spooling and publishing happen behind the ``Sink``.
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass

from mes_domain.collection import Address
from mes_domain.contracts import ReadingQuality

Value = float | int | bool | str | None

# A point is a tag name, or one of these roles of the station's state and counters.
STATE = "state"  # a code, mapped through CodeStateSource.codes
STATE_RUNNING, STATE_FAULT, STATE_SETUP = "state.running", "state.fault", "state.setup"
COUNTER_GOOD, COUNTER_BAD = "counter.good", "counter.bad"
COUNTER_TOTAL, COUNTER_REJECT = "counter.total", "counter.reject"


@dataclass(frozen=True, slots=True)
class Binding:
    """Where a point of a station is read."""

    station: str
    point: str
    address: Address


@dataclass(frozen=True, slots=True)
class Reading:
    station: str
    point: str
    ts_ms: int  # epoch milliseconds UTC: the source's timestamp where it has one
    value: Value
    quality: ReadingQuality = ReadingQuality.GOOD


# Called from the source's thread or event loop: thread-safe, fast, never blocks on the network.
Sink = Callable[[Reading], None]


class SourceError(RuntimeError):
    """A misconfigured or failing point: the message names the connection, station and point."""


class Source(ABC):
    """One connection of the line (an OPC UA server, a Modbus device, a plant broker) and the
    points read over it."""

    def __init__(self, connection, bindings: list[Binding]) -> None:
        self.connection = connection
        self.bindings = bindings

    @property
    def name(self) -> str:
        return self.connection.name

    @abstractmethod
    async def run(self, sink: Sink) -> None:
        """Read until cancelled. Reconnects by itself (with backoff) and restores what it read
        (subscriptions); logs a ``SourceError`` naming station and point for a point it cannot
        read and carries on with the others; raises only ``asyncio.CancelledError``."""


SourceFactory = Callable[[object, list[Binding]], Source]


async def set_within(event: asyncio.Event, seconds: float) -> bool:
    """Wait up to ``seconds`` for ``event``; whether it is set (a timed loop's tick)."""
    try:
        await asyncio.wait_for(event.wait(), seconds)
    except TimeoutError:
        return False
    return True
