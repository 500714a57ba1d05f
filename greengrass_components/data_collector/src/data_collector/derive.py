"""What a station's state and counter readings mean in the product's contracts (pure).

**State.** A code (``CodeStateSource``) is looked up in ``codes`` (the key is the code as text,
an integral float ``6.0`` is ``"6"``); an unmapped code is taken as ``unknown_state`` and
reported as an ``UNKNOWN_STATE_CODE`` event. Booleans (``BooleanStateSource``) give
fault > setup > running > IDLE, once every configured bit has been read. A ``StateChange`` is
emitted only when the state differs from the last one emitted.

**Counters.** A PLC counter is cumulative and wraps at ``2**bits``. For a GOOD reading ``v``
(taken modulo ``2**bits``, so a signed register read as negative lands in range) after the
last counted value ``l``:

* the first value ever seen is the baseline: nothing is counted (what the PLC counted before
  the collector first saw it is not knowable);
* ``v >= l``: ``v - l`` parts;
* ``v < l`` and the forward distance ``2**bits - l + v`` is at most ``2**bits / 16``: a
  rollover, that distance is counted;
* any other drop is a reset (the PLC restarted and counts from zero): ``v`` is counted, the
  parts made since the reset, and a ``COUNTER_RESET`` event is reported.

Two resets cannot be told apart from counting, and are counted as what they look like: one
from the top 1/16 of the range looks like a rollover; one after which the PLC counted past
its old value before the next read looks like an increase (the parts before the old value
are then not counted).

A reading older than the last one of the same point, or of BAD or UNCERTAIN quality, is
ignored: the counter is cumulative, so the next GOOD reading carries those parts and nothing
is lost; a stale or glitching value could otherwise look like a reset and count parts twice.

With total and reject counters, reject deltas are ``bad``; good is ``total - reject``. A
reject read after its part was already counted good becomes a debt that the next good parts
pay back before any is counted, so no delta is ever negative and the sum of good equals
total minus reject as soon as production continues.

Each ``PartCount`` of a station has its own ``ts``: the cloud keys counts by station and time, so
a count read in the same millisecond as the last one (good and bad in one poll) is stamped 1 ms
after it.

The memory (last values, last state) is a JSON-able dict the spool persists in the same
transaction as the events derived from it, so a gateway restart neither loses nor repeats a
part.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from data_collector.readings import (
    COUNTER_BAD,
    COUNTER_GOOD,
    COUNTER_REJECT,
    COUNTER_TOTAL,
    STATE,
    STATE_FAULT,
    STATE_RUNNING,
    STATE_SETUP,
    Reading,
)
from mes_domain.collection import BooleanStateSource, CodeStateSource, CounterSource
from mes_domain.contracts import (
    EPOCH_2000_MS,
    NOW_MS_CONTEXT_KEY,
    SCHEMA_VERSION,
    EquipmentState,
    MachineEvent,
    PartCount,
    ReadingQuality,
    Severity,
    StateChange,
)

UNKNOWN_STATE_CODE = "UNKNOWN_STATE_CODE"
COUNTER_RESET = "COUNTER_RESET"
ROLLOVER_SHARE = 16  # a wrap of at most 1/16 of the range is a rollover, a larger drop a reset

Derived = StateChange | PartCount | MachineEvent


def counter_delta(last: int | None, value: int, bits: int) -> tuple[int, str]:
    """Parts counted between ``last`` and ``value`` of a ``bits``-wide counter, and why:
    ``baseline``, ``increase``, ``rollover`` or ``reset`` (see the module doc)."""
    modulus = 1 << bits
    value %= modulus
    if last is None:
        return 0, "baseline"
    if value >= last:
        return value - last, "increase"
    wrapped = modulus - last + value
    if wrapped <= modulus // ROLLOVER_SHARE:
        return wrapped, "rollover"
    return value, "reset"


def _as_count(value: Any) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return int(round(value))


def code_key(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _validate(model: type, data: dict[str, Any]) -> Any:
    # The gateway's clock is the reference for its own readings: no future-skew check here.
    return model.model_validate(
        {"v": SCHEMA_VERSION, **data}, context={NOW_MS_CONTEXT_KEY: data["ts"]}
    )


@dataclass
class StationDeriver:
    """Derives one station's ``StateChange``, ``PartCount`` and events from its readings."""

    station: str
    state: CodeStateSource | BooleanStateSource | None = None
    counters: CounterSource | None = None
    memory: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.memory.setdefault("last_ts", {})
        self.memory.setdefault("raw", {})
        self.memory.setdefault("bits", {})
        self.memory.setdefault("pending", 0)
        self.memory.setdefault("state", None)

    def points(self) -> set[str]:
        """The points this deriver consumes."""
        points: set[str] = set()
        if isinstance(self.state, CodeStateSource):
            points.add(STATE)
        elif isinstance(self.state, BooleanStateSource):
            points |= self._bit_points()
        if self.counters is not None:
            names = {
                COUNTER_GOOD: self.counters.good,
                COUNTER_BAD: self.counters.bad,
                COUNTER_TOTAL: self.counters.total,
                COUNTER_REJECT: self.counters.reject,
            }
            points |= {point for point, address in names.items() if address is not None}
        return points

    def _bit_points(self) -> set[str]:
        assert isinstance(self.state, BooleanStateSource)
        points = {STATE_RUNNING}
        if self.state.fault is not None:
            points.add(STATE_FAULT)
        if self.state.setup is not None:
            points.add(STATE_SETUP)
        return points

    def feed(self, reading: Reading) -> list[Derived]:
        """What ``reading`` changes; ``memory`` is updated in place."""
        if reading.point not in self.points():
            return []
        if reading.quality is not ReadingQuality.GOOD or reading.ts_ms < EPOCH_2000_MS:
            return []
        last_ts = self.memory["last_ts"].get(reading.point)
        if last_ts is not None and reading.ts_ms < last_ts:
            return []  # stale: an older value arriving late
        self.memory["last_ts"][reading.point] = reading.ts_ms
        if reading.point.startswith("counter."):
            return self._count(reading)
        return self._state(reading)

    # -- state ---------------------------------------------------------------------------

    def _state(self, reading: Reading) -> list[Derived]:
        out: list[Derived] = []
        reason = None
        if isinstance(self.state, CodeStateSource):
            reason = code_key(reading.value)[:128]
            state = self.state.codes.get(reason)
            if state is None:
                state = self.state.unknown_state
                out.append(
                    _validate(
                        MachineEvent,
                        {
                            "ts": reading.ts_ms,
                            "code": UNKNOWN_STATE_CODE,
                            "severity": Severity.WARNING,
                            "message": f"state code {reason!r} of {self.station} is not in the "
                            f"configured codes; taken as {state}",
                        },
                    )
                )
        else:
            self.memory["bits"][reading.point] = bool(reading.value)
            bits = self.memory["bits"]
            if not self._bit_points() <= bits.keys():
                return []  # every configured bit read once before a state is known
            if bits.get(STATE_FAULT):
                state = EquipmentState.UNPLANNED_STOP.value
            elif bits.get(STATE_SETUP):
                state = EquipmentState.SETUP.value
            elif bits.get(STATE_RUNNING):
                state = EquipmentState.RUNNING.value
            else:
                state = EquipmentState.IDLE.value
        if state != self.memory["state"]:
            self.memory["state"] = state
            change = {"ts": reading.ts_ms, "state": state, "reason_code": reason or None}
            out.append(_validate(StateChange, change))
        return out

    # -- counters ------------------------------------------------------------------------

    def _count(self, reading: Reading) -> list[Derived]:
        assert self.counters is not None
        value = _as_count(reading.value)
        if value is None:
            return []
        bits = self.counters.bits
        last = self.memory["raw"].get(reading.point)
        delta, how = counter_delta(last, value, bits)
        self.memory["raw"][reading.point] = value % (1 << bits)
        out: list[Derived] = []
        if how == "reset":
            out.append(
                _validate(
                    MachineEvent,
                    {
                        "ts": reading.ts_ms,
                        "code": COUNTER_RESET,
                        "severity": Severity.INFO,
                        "message": f"{reading.point} of {self.station} dropped from {last} to "
                        f"{value % (1 << bits)}: counted as a PLC counter reset",
                    },
                )
            )
        good = bad = 0
        if reading.point == COUNTER_GOOD:
            good = delta
        elif reading.point == COUNTER_BAD:
            bad = delta
        else:
            pending = self.memory["pending"]
            if reading.point == COUNTER_TOTAL:
                pending += delta
            else:
                pending -= delta
                bad = delta
            good = max(0, pending)
            self.memory["pending"] = pending - good
        if good or bad:
            # The cloud keys a count by (station, ts) (Timestream takes one record per key), so
            # two counts read at one instant (good and bad in one poll) must not share a ts:
            # a later one moves 1 ms past the last.
            ts = max(reading.ts_ms, self.memory.get("last_count_ts", 0) + 1)
            self.memory["last_count_ts"] = ts
            out.append(_validate(PartCount, {"ts": ts, "good": good, "bad": bad}))
        return out
