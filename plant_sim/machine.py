"""One station's machine: a deterministic, event-driven state machine in simulated time.

The machine runs cycles (the station's ideal cycle time, plus jitter: a cycle is never faster
than ideal), scraps a share of its parts, fails after an exponential running time (MTBF) and is
repaired after an exponential time (MTTR), starves now and then (IDLE), changes over every
so many parts (SETUP) and, if its profile says so, stops for planned breaks (PLANNED_STOP).
Its PLC keeps cumulative counters that roll over at the configured bits and restart at 0 with
the PLC (``restart_plc``).

Every event happens at a time computed from earlier events only, never from where ``advance``
was called, so ``advance(600)`` and ten ``advance(60)`` give exactly the same machine. The
random streams are seeded from the simulator's seed and the station's path (and each tag's
name), so adding a station or a tag does not change the others.

A machine's *points* are what its PLC exposes, named like the DataCollector's readings:
``state`` (a code of ``CodeStateSource.codes``), ``state.running``/``state.fault``/
``state.setup``, ``counter.good``/``counter.bad`` or ``counter.total``/``counter.reject``, and
each tag with a source. Their values are the ones a reader gets: a value at a Modbus address is
already rounded to its register type, scale and offset (``modbus_codec.as_read``).
"""

from __future__ import annotations

import math
import random
import re
from collections import deque
from dataclasses import dataclass

from mes_domain.collection import (
    Address,
    BooleanStateSource,
    CodeStateSource,
    ModbusAddress,
)
from mes_domain.contracts import EquipmentState
from mes_domain.plant import Station, TagDataType
from plant_sim import modbus_codec

# Point names, as data_collector.readings names them.
STATE = "state"
STATE_RUNNING, STATE_FAULT, STATE_SETUP = "state.running", "state.fault", "state.setup"
COUNTER_GOOD, COUNTER_BAD = "counter.good", "counter.bad"
COUNTER_TOTAL, COUNTER_REJECT = "counter.total", "counter.reject"

RUNNING = EquipmentState.RUNNING
IDLE = EquipmentState.IDLE
SETUP = EquipmentState.SETUP
UNPLANNED_STOP = EquipmentState.UNPLANNED_STOP
PLANNED_STOP = EquipmentState.PLANNED_STOP

# Plausible ranges of a tag by unit (low, high); others: 0..100.
UNIT_RANGES: dict[str, tuple[float, float]] = {
    "kN": (200.0, 800.0),
    "spm": (10.0, 30.0),
    "degC": (20.0, 80.0),
    "rpm": (500.0, 12000.0),
    "kA": (6.0, 12.0),
    "pct": (0.0, 100.0),
    "Nm": (20.0, 60.0),
    "bar": (2.0, 6.0),
    "mbar_l_per_s": (0.001, 0.05),
    "ms": (2.0, 20.0),
    "mm_per_min": (200.0, 2000.0),
    "A": (0.0, 100.0),
    "V": (380.0, 420.0),
    "kW": (0.0, 100.0),
}
# Signals that fall to their low end while the machine does not run.
LOAD_UNITS = frozenset({"kN", "spm", "rpm", "kA", "Nm", "mm_per_min", "A", "kW"})
INTEGER = re.compile(r"-?\d+")
HISTORY = 100_000  # state transitions and MQTT snapshots kept per machine


class SimulatorError(ValueError):
    """A plant config the simulator cannot serve; the message names the station and point."""


@dataclass(frozen=True)
class MachineProfile:
    """How a machine behaves; times in seconds of simulated time."""

    mtbf_s: float = 1800.0  # mean running time between failures
    mttr_s: float = 120.0  # mean time to repair
    cycle_jitter: float = 0.05  # a cycle takes ideal * (1 + |N(0, jitter)|)
    scrap_rate: float = 0.02
    idle_probability: float = 0.02  # after a part, the machine starves for a while
    mean_idle_s: float = 30.0
    setup_every_parts: int | None = 500  # None: never changes over
    setup_s: float = 300.0  # +-20 %
    string_every_parts: int = 10  # a string tag moves to its next value
    # A planned stop (a break) every so many seconds from the start; None: no breaks. A break
    # interrupts a cycle (the part is started again after it) and pauses a stop in progress.
    planned_stop_every_s: float | None = None
    planned_stop_s: float = 1800.0

    def __post_init__(self) -> None:
        if self.mtbf_s <= 0 or self.mttr_s <= 0 or self.mean_idle_s <= 0 or self.setup_s <= 0:
            raise SimulatorError(f"{self}: times must be positive")
        every = self.planned_stop_every_s
        if every is not None and not 0 < self.planned_stop_s < every:
            raise SimulatorError(f"{self}: a planned stop is shorter than its period")
        if not 0 <= self.scrap_rate <= 1 or not 0 <= self.idle_probability <= 1:
            raise SimulatorError(f"{self}: rates are between 0 and 1")


def _seeded(seed: int, *path: str) -> random.Random:
    # A str seed is hashed with SHA-512: the same stream on every run and platform.
    return random.Random("/".join((str(seed), *path)))


class _Signal:
    """A tag's value: a smooth mean-reverting walk in its range, a toggle or a cycling name."""

    def __init__(self, name: str, kind: str, unit: str | None, rng: random.Random, address):
        self.name, self.kind, self.rng = name, kind, rng
        low, high = UNIT_RANGES.get(unit or "", (0.0, 100.0))
        if isinstance(address, ModbusAddress) and kind != "boolean":
            type_low, type_high = modbus_codec.value_range(address)
            if max(low, type_low) < min(high, type_high):
                low, high = max(low, type_low), min(high, type_high)
            else:
                low, high = type_low, type_high
        self.low, self.high = low, high
        self.load = (unit or "") in LOAD_UNITS
        self.level = low + (high - low) * rng.uniform(0.4, 0.6)
        self.choices = [f"P{1000 + i}" for i in range(1, 5)]
        self.index = 0
        self.flag = False

    def value(self):
        if self.kind == "boolean":
            return self.flag
        if self.kind == "string":
            return self.choices[self.index]
        if self.kind == "integer":
            return int(round(self.level))
        return round(self.level, 3)

    def walk(self, dt: float, running: bool) -> None:
        if self.kind not in ("double", "integer"):
            return
        span = self.high - self.low
        target = self.low + 0.05 * span if self.load and not running else self.low + 0.5 * span
        step = 0.3 * (target - self.level) * dt + 0.04 * span * math.sqrt(dt) * self.rng.gauss()
        self.level = min(self.high, max(self.low, self.level + step))

    def part_done(self, parts: int, every: int) -> None:
        if self.kind == "boolean":
            self.flag = not self.flag
        elif self.kind == "string" and parts % every == 0:
            self.index = (self.index + 1) % len(self.choices)


def _tag_kind(where: str, name: str, data_type: TagDataType, address: Address | None) -> str:
    if isinstance(address, ModbusAddress) and address.table.is_bits:
        return "boolean"
    if isinstance(address, ModbusAddress) and data_type is TagDataType.STRING:
        raise SimulatorError(f"{where} tag {name}: a string tag cannot live in Modbus registers")
    return data_type.value


class Machine:
    """A station's machine from simulated second 0; ``advance`` moves it on."""

    def __init__(
        self,
        site: str,
        line: str,
        station: Station,
        *,
        seed: int = 0,
        profile: MachineProfile | None = None,
        tag_period_s: float = 0.5,
    ) -> None:
        if tag_period_s <= 0:
            raise SimulatorError("tag_period_s must be positive")
        self.site, self.line, self.station = site, line, station
        self.path = (site, line, station.id)
        self.where = "/".join(self.path)
        self.profile = profile or MachineProfile()
        self.tag_period_s = tag_period_s
        self.rng = _seeded(seed, *self.path)
        self.addresses: dict[str, Address] = self._addresses()
        self.counter_bits = station.counters.bits if station.counters else 32
        self._check_counters()
        self._state_code = self._state_codes()
        self._signals = {
            tag.name: _Signal(
                tag.name,
                _tag_kind(self.where, tag.name, tag.data_type, tag.source),
                tag.unit,
                _seeded(seed, *self.path, "tag", tag.name),
                tag.source,
            )
            for tag in station.tags
            if tag.source is not None
        }
        # truth
        self.now = 0.0
        self.state: EquipmentState = RUNNING
        self.good = 0  # parts made since the start, never reset
        self.bad = 0
        self.failures = 0
        self.plc_restarts = 0
        self._base_good = self._base_bad = 0
        self.history: deque[tuple[float, EquipmentState]] = deque([(0.0, RUNNING)], HISTORY)
        self.snapshot_points: frozenset[str] = frozenset()  # set by the MQTT publisher
        self.snapshots: deque[tuple[float, dict]] = deque(maxlen=HISTORY)
        self.snapshots_dropped = 0
        # schedule
        self._parts_since_setup = 0
        self._samples = 0  # tag samples taken; the next is at (_samples + 1) * period
        self._state_until = math.inf
        self._breaks = 0  # planned stops begun; the next at (_breaks + 1) * every
        self._paused: tuple[EquipmentState, float] | None = None  # a stop a break interrupted
        self._failure_at = self.rng.expovariate(1 / self.profile.mtbf_s)
        self._run_left = 0.0
        self._cycle_end = self._cycle_time()
        self._values: dict[str, object] = {}
        self._points = tuple(self.addresses)
        self._walk_points = tuple(
            name for name, s in self._signals.items() if s.kind in ("double", "integer")
        )
        self._readers = {
            point: modbus_codec.reader(address)
            for point, address in self.addresses.items()
            if isinstance(address, ModbusAddress)
        }
        self.changed_at: dict[str, float] = {}
        self._refresh(0.0)

    # -- configuration -------------------------------------------------------------------------

    def _addresses(self) -> dict[str, Address]:
        station = self.station
        points: dict[str, Address] = {}
        if isinstance(station.state, CodeStateSource):
            points[STATE] = station.state.source
        elif isinstance(station.state, BooleanStateSource):
            for point, address in (
                (STATE_RUNNING, station.state.running),
                (STATE_FAULT, station.state.fault),
                (STATE_SETUP, station.state.setup),
            ):
                if address is not None:
                    points[point] = address
        if station.counters is not None:
            for point, address in (
                (COUNTER_GOOD, station.counters.good),
                (COUNTER_BAD, station.counters.bad),
                (COUNTER_TOTAL, station.counters.total),
                (COUNTER_REJECT, station.counters.reject),
            ):
                if address is not None:
                    points[point] = address
        for tag in station.tags:
            if tag.source is not None:
                points[tag.name] = tag.source
        return points

    def _check_counters(self) -> None:
        for point, address in self.addresses.items():
            if not point.startswith("counter.") or not isinstance(address, ModbusAddress):
                continue
            low, high = modbus_codec.value_range(address)
            if (
                not modbus_codec.is_integer(address.type)
                or low > 0
                or high < (1 << self.counter_bits) - 1
            ):
                raise SimulatorError(
                    f"{self.where} {point}: a {self.counter_bits}-bit counter does not fit "
                    f"{address.type} (scale {address.scale}, offset {address.offset}) at "
                    f"{address.connection} {address.table} {address.address}"
                )

    def _state_codes(self) -> dict[EquipmentState, object]:
        if not isinstance(self.station.state, CodeStateSource):
            return {}
        source = self.station.state
        codes: dict[EquipmentState, object] = {}
        for code, state in source.codes.items():
            codes.setdefault(EquipmentState(state), self._code_value(code, source.source))
        numeric = [int(c) for c in source.codes if INTEGER.fullmatch(c)]
        # A state the map lacks shows a code it does not know (the collector's unknown_state).
        spare = str(max(numeric) + 1) if numeric else "UNMAPPED"
        for state in EquipmentState:
            codes.setdefault(state, self._code_value(spare, source.source))
        return codes

    def _code_value(self, code: str, address: Address):
        if INTEGER.fullmatch(code):
            value = int(code)
            if isinstance(address, ModbusAddress):
                try:
                    return modbus_codec.as_read(value, address)
                except ValueError as err:
                    raise SimulatorError(f"{self.where} state code {code}: {err}") from None
            return value
        if isinstance(address, ModbusAddress):
            raise SimulatorError(
                f"{self.where} state code {code!r} is not a number, so no Modbus register holds it"
            )
        return code

    # -- simulation ----------------------------------------------------------------------------

    def _cycle_time(self) -> float:
        jitter = abs(self.rng.gauss(0.0, self.profile.cycle_jitter))
        return self.station.ideal_cycle_time_s * (1.0 + jitter)

    def _enter(self, state: EquipmentState, t: float) -> None:
        if state != self.state:
            self.state = state
            self.history.append((t, state))

    def _start_running(self, t: float) -> None:
        self._enter(RUNNING, t)
        self._failure_at = t + self._run_left
        self._cycle_end = t + self._cycle_time()
        self._state_until = math.inf

    def _stop(self, state: EquipmentState, t: float, duration: float) -> None:
        if self.state is RUNNING and state is not UNPLANNED_STOP:
            self._run_left = self._failure_at - t  # running time left until the next failure
        self._enter(state, t)
        self._state_until = t + duration
        self._cycle_end = self._failure_at = math.inf

    def _next_event(self) -> tuple[float, int]:
        # At equal times: failure, end of a cycle, end of a stop, a break, then a tag sample.
        sample_at = (self._samples + 1) * self.tag_period_s
        every = self.profile.planned_stop_every_s
        break_at = (self._breaks + 1) * every if every else math.inf
        return min(
            (self._failure_at, 0),
            (self._cycle_end, 1),
            (self._state_until, 2),
            (break_at, 3),
            (sample_at, 4),
        )

    def advance_to(self, t_end: float) -> None:
        """Run every event up to simulated second ``t_end`` (from the machine's start)."""
        while True:
            t, kind = self._next_event()
            if t > t_end:
                break
            if kind == 0:
                self.failures += 1
                self._stop(UNPLANNED_STOP, t, self.rng.expovariate(1 / self.profile.mttr_s))
            elif kind == 1:
                self._part_done(t)  # refreshes the points itself, before its MQTT snapshot
                continue
            elif kind == 2:
                self._stop_ends(t)
            elif kind == 3:
                self._breaks += 1
                if self.state is not RUNNING:
                    self._paused = (self.state, self._state_until)
                self._stop(PLANNED_STOP, t, self.profile.planned_stop_s)
            else:
                self._samples += 1
                running = self.state is RUNNING
                for signal in self._signals.values():
                    signal.walk(self.tag_period_s, running)
                self._refresh(t, self._walk_points)
                continue
            self._refresh(t)
        self.now = max(self.now, t_end)

    def _stop_ends(self, t: float) -> None:
        if self.state is PLANNED_STOP and self._paused is not None:
            (state, until), self._paused = self._paused, None
            if until > t:  # the interrupted stop goes on after the break
                self._enter(state, t)
                self._state_until = until
                return
            self.state = state  # it ended during the break
        if self.state is UNPLANNED_STOP:
            self._run_left = self.rng.expovariate(1 / self.profile.mtbf_s)
        self._start_running(t)

    def advance(self, seconds: float) -> None:
        self.advance_to(self.now + seconds)

    def _part_done(self, t: float) -> None:
        profile = self.profile
        if self.rng.random() < profile.scrap_rate:
            self.bad += 1
        else:
            self.good += 1
        self._parts_since_setup += 1
        for signal in self._signals.values():
            signal.part_done(self.good + self.bad, profile.string_every_parts)
        if profile.setup_every_parts and self._parts_since_setup >= profile.setup_every_parts:
            self._parts_since_setup = 0
            self._stop(SETUP, t, profile.setup_s * self.rng.uniform(0.8, 1.2))
        elif self.rng.random() < profile.idle_probability:
            self._stop(IDLE, t, self.rng.expovariate(1 / profile.mean_idle_s))
        else:
            self._cycle_end = t + self._cycle_time()
        self._refresh(t)
        if self.snapshot_points:
            if len(self.snapshots) == self.snapshots.maxlen:
                self.snapshots_dropped += 1
            self.snapshots.append((t, {p: self._values[p] for p in self.snapshot_points}))

    def restart_plc(self) -> None:
        """The PLC restarts: its counters start again at 0; the parts made stay made."""
        self._base_good, self._base_bad = self.good, self.bad
        self.plc_restarts += 1
        self._refresh(self.now)

    def set_plc_counters(self, good: int, bad: int = 0) -> None:
        """The PLC's counters show ``good`` and ``bad`` from now on (a PLC that has counted for
        years before the simulation); they go on counting, and roll over, from there."""
        self._base_good, self._base_bad = self.good - good, self.bad - bad
        self._refresh(self.now)

    # -- what the PLC shows ----------------------------------------------------------------------

    def counters(self) -> dict[str, int]:
        """The PLC's counters (since its last restart, rolled over at ``bits``)."""
        modulus = 1 << self.counter_bits
        good, bad = self.good - self._base_good, self.bad - self._base_bad
        return {
            COUNTER_GOOD: good % modulus,
            COUNTER_BAD: bad % modulus,
            COUNTER_TOTAL: (good + bad) % modulus,
            COUNTER_REJECT: bad % modulus,
        }

    def _compute(self, points) -> None:
        counters = self.counters() if points is not self._walk_points else {}
        for point in points:
            if point == STATE:
                value = self._state_code[self.state]
            elif point == STATE_RUNNING:
                value = self.state is RUNNING
            elif point == STATE_FAULT:
                value = self.state is UNPLANNED_STOP
            elif point == STATE_SETUP:
                value = self.state is SETUP
            elif point in counters:
                value = counters[point]
            else:
                value = self._signals[point].value()
            read = self._readers.get(point)
            yield point, (read(value) if read else value)

    def _refresh(self, t: float, points=None) -> None:
        for point, value in self._compute(self._points if points is None else points):
            if point not in self._values or self._values[point] != value:
                self._values[point] = value
                self.changed_at[point] = t

    def values(self) -> dict[str, object]:
        """Each point's value, as a reader of its address gets it."""
        return dict(self._values)

    def value(self, point: str):
        return self._values[point]

    def tag_values(self) -> dict[str, object]:
        return {name: self._values[name] for name in self._signals}

    def kind(self, point: str) -> str:
        """The value's type: bool, int, uint16, uint32, uint64, double or string."""
        if point.startswith("state."):
            return "bool"
        if point.startswith("counter."):
            return f"uint{self.counter_bits}"
        if point == STATE:
            code = self._values[STATE]
            if isinstance(code, str):
                return "string"
            return "int" if isinstance(code, int) else "double"
        kind = self._signals[point].kind
        return {"boolean": "bool", "integer": "int"}.get(kind, kind)
