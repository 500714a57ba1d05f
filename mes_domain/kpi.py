"""OEE and plant KPIs by ISO 22400-2: pure math, no AWS, no I/O.

Time elements of a station over a window ``[start, end)``:
- RUNNING is actual production time, and part of planned busy time;
- IDLE, UNPLANNED_STOP and SETUP are availability losses, part of planned busy time;
- PLANNED_STOP is taken out of planned busy time;
- OFFLINE is a loss inside the shift calendar (``scheduled``) and counts nowhere outside it;
- before the first known state the time is unknown and counts nowhere (flag).

So planned busy + planned stop + unscheduled offline + unknown = the window, always.

Documented answers to the corner cases:
- each state lasts until the next change; the one in force at the window's start is the last
  change before it; a change at or after the window's end does not matter;
- input is sorted; exact duplicates count once; two different states at one timestamp: the
  one that sorts last by state name wins, so the result does not depend on input order;
- a part count belongs to the window when ``start <= ts < end``;
- no planned time: availability, performance and OEE are None, flag ``NO_PLANNED_TIME``;
- no production time: performance is None (``NO_PRODUCTION_TIME``);
- no parts: quality is None (``NO_PARTS``);
- performance above 1 (the ideal cycle time is too long) is reported, flagged
  ``PERFORMANCE_ABOVE_1`` and never clamped.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from typing import NamedTuple
from zoneinfo import ZoneInfo

import numpy as np

from mes_domain.contracts import (
    AVAILABILITY_LOSS_STATES,
    EquipmentState,
    InspectionResult,
    PartCount,
    StateChange,
    Verdict,
)
from mes_domain.plant import Site, Weekday

NO_PLANNED_TIME = "NO_PLANNED_TIME"
NO_PRODUCTION_TIME = "NO_PRODUCTION_TIME"
NO_PARTS = "NO_PARTS"
PERFORMANCE_ABOVE_1 = "PERFORMANCE_ABOVE_1"
UNKNOWN_INITIAL_STATE = "UNKNOWN_INITIAL_STATE"

MS_PER_S = 1000.0


@dataclass(frozen=True, slots=True)
class KpiResult:
    availability: float | None
    performance: float | None
    quality: float | None
    oee: float | None
    planned_busy_time_s: float
    actual_production_time_s: float
    produced_quantity: int
    good_quantity: int
    downtime_by_state_s: Mapping[str, float] = field(default_factory=dict)
    flags: frozenset[str] = frozenset()
    planned_stop_time_s: float = 0.0
    unscheduled_offline_time_s: float = 0.0
    unknown_time_s: float = 0.0

    @property
    def scrap_quantity(self) -> int:
        return self.produced_quantity - self.good_quantity


def _check(name: str, value: float, *, positive: bool = False) -> None:
    if not math.isfinite(value) or value < 0 or (positive and value == 0):
        need = "positive" if positive else "non-negative"
        raise ValueError(f"{name} must be a finite, {need} number, not {value!r}")


def oee_from_totals(
    planned_busy_time_s: float,
    actual_production_time_s: float,
    ideal_cycle_time_s: float,
    produced_quantity: int,
    good_quantity: int,
    *,
    downtime_by_state_s: Mapping[str, float] | None = None,
    flags: Iterable[str] = (),
    **time_elements: float,
) -> KpiResult:
    """availability = actual / planned; performance = ideal cycle x produced / actual;
    quality = good / produced; OEE = the product. Undefined ratios are None with a flag."""
    _check("planned_busy_time_s", planned_busy_time_s)
    _check("actual_production_time_s", actual_production_time_s)
    _check("ideal_cycle_time_s", ideal_cycle_time_s, positive=True)
    _check("produced_quantity", produced_quantity)
    _check("good_quantity", good_quantity)
    if actual_production_time_s > planned_busy_time_s * (1 + 1e-9):
        raise ValueError(
            f"actual_production_time_s ({actual_production_time_s}) exceeds "
            f"planned_busy_time_s ({planned_busy_time_s})"
        )
    if good_quantity > produced_quantity:
        raise ValueError(f"good_quantity ({good_quantity}) exceeds produced ({produced_quantity})")
    raised = set(flags)
    availability = performance = quality = None
    if planned_busy_time_s == 0:
        raised.add(NO_PLANNED_TIME)
    else:
        availability = actual_production_time_s / planned_busy_time_s
    if actual_production_time_s == 0:
        raised.add(NO_PRODUCTION_TIME)
    elif availability is not None:
        performance = ideal_cycle_time_s * produced_quantity / actual_production_time_s
        if performance > 1:
            raised.add(PERFORMANCE_ABOVE_1)
    if produced_quantity == 0:
        raised.add(NO_PARTS)
    else:
        quality = good_quantity / produced_quantity
    defined = None not in (availability, performance, quality)
    return KpiResult(
        availability=availability,
        performance=performance,
        quality=quality,
        oee=availability * performance * quality if defined else None,
        planned_busy_time_s=float(planned_busy_time_s),
        actual_production_time_s=float(actual_production_time_s),
        produced_quantity=int(produced_quantity),
        good_quantity=int(good_quantity),
        downtime_by_state_s=dict(downtime_by_state_s or {}),
        flags=frozenset(raised),
        **time_elements,
    )


class Interval(NamedTuple):
    start_ms: int
    end_ms: int
    state: EquipmentState
    reason_code: str | None


def state_intervals(
    states: Iterable[StateChange], window_start_ms: int, window_end_ms: int
) -> tuple[list[Interval], int]:
    """The states in force over the window, cut at its edges, plus the unknown leading ms."""
    if window_end_ms <= window_start_ms:
        raise ValueError(f"window end {window_end_ms} is not after its start {window_start_ms}")
    ordered = sorted(
        {(s.ts, s.state.value, s.reason_code or "") for s in states},
    )
    # At one timestamp the last (by state name) wins: keep only the last change per ts.
    latest: dict[int, tuple[str, str]] = {}
    for ts, value, reason in ordered:
        latest[ts] = (value, reason)
    changes = sorted(latest.items())
    in_force = None
    inside = []
    for ts, change in changes:
        if ts <= window_start_ms:
            in_force = change
        elif ts < window_end_ms:
            inside.append((ts, change))
    segments = []
    cursor, current = window_start_ms, in_force
    unknown = 0
    for ts, change in inside:
        if current is None:
            unknown += ts - cursor
        else:
            segments.append((cursor, ts, current))
        cursor, current = ts, change
    if current is None:
        unknown += window_end_ms - cursor
    else:
        segments.append((cursor, window_end_ms, current))
    intervals = [
        Interval(start, end, EquipmentState(value), reason or None)
        for start, end, (value, reason) in segments
        if end > start
    ]
    return intervals, unknown


def _overlap_ms(start: int, end: int, scheduled: Sequence[tuple[int, int]]) -> int:
    return sum(max(0, min(end, e) - max(start, s)) for s, e in scheduled)


def kpis_from_events(
    states: Sequence[StateChange],
    counts: Sequence[PartCount],
    window_start_ms: int,
    window_end_ms: int,
    ideal_cycle_time_s: float,
    *,
    scheduled: Sequence[tuple[int, int]] | None = None,
) -> KpiResult:
    """KPIs of one station over ``[window_start_ms, window_end_ms)``; see the module doc."""
    intervals, unknown_ms = state_intervals(states, window_start_ms, window_end_ms)
    calendar = [(window_start_ms, window_end_ms)] if scheduled is None else list(scheduled)
    running = planned_stop = unscheduled_offline = 0
    downtime_ms: dict[str, int] = defaultdict(int)  # whole ms until the end: exact sums
    for interval in intervals:
        length = interval.end_ms - interval.start_ms
        if interval.state is EquipmentState.RUNNING:
            running += length
        elif interval.state is EquipmentState.PLANNED_STOP:
            planned_stop += length
        elif interval.state is EquipmentState.OFFLINE:
            inside = _overlap_ms(interval.start_ms, interval.end_ms, calendar)
            unscheduled_offline += length - inside
            if inside:
                downtime_ms[EquipmentState.OFFLINE.value] += inside
        else:
            downtime_ms[interval.state.value] += length
    unique_counts = {(c.ts, c.good, c.bad, c.order_id) for c in counts}
    in_window = [c for c in unique_counts if window_start_ms <= c[0] < window_end_ms]
    good = sum(c[1] for c in in_window)
    produced = good + sum(c[2] for c in in_window)
    planned_busy_ms = running + sum(downtime_ms.values())
    return oee_from_totals(
        planned_busy_ms / MS_PER_S,
        running / MS_PER_S,
        ideal_cycle_time_s,
        produced,
        good,
        downtime_by_state_s={state: ms / MS_PER_S for state, ms in downtime_ms.items()},
        flags=[UNKNOWN_INITIAL_STATE] if unknown_ms else [],
        planned_stop_time_s=planned_stop / MS_PER_S,
        unscheduled_offline_time_s=unscheduled_offline / MS_PER_S,
        unknown_time_s=unknown_ms / MS_PER_S,
    )


# --- many stations at once ---

# Codes in state-name order, so sorting by code is the tie rule of ``state_intervals``.
STATE_CODES = tuple(sorted(EquipmentState, key=lambda state: state.value))
_CODE = {state: code for code, state in enumerate(STATE_CODES)}


@dataclass(frozen=True)
class StationColumns:
    """Events of many stations as columns; ``*_station`` holds each row's station index."""

    state_station: np.ndarray
    state_ts: np.ndarray
    state_code: np.ndarray
    count_station: np.ndarray
    count_ts: np.ndarray
    count_good: np.ndarray
    count_bad: np.ndarray


def columns_from_events(
    stations: Sequence[tuple[Sequence[StateChange], Sequence[PartCount]]],
) -> StationColumns:
    """Columns from per-station (states, counts); order ids are not carried (see below)."""
    states = [(i, s.ts, _CODE[s.state]) for i, (ss, _) in enumerate(stations) for s in ss]
    counts = [(i, c.ts, c.good, c.bad) for i, (_, cs) in enumerate(stations) for c in cs]
    state_array = np.array(states, dtype=np.int64).reshape(-1, 3)
    count_array = np.array(counts, dtype=np.int64).reshape(-1, 4)
    return StationColumns(*state_array.T, *count_array.T)


def _unique_rows(*columns: np.ndarray) -> np.ndarray:
    """Indices of the first of each group of identical rows, sorted by the given columns
    (the last column is the primary key, as in ``np.lexsort``)."""
    order = np.lexsort(columns)
    if order.size == 0:
        return order
    stacked = np.stack([c[order] for c in columns])
    new = np.ones(order.size, dtype=bool)
    new[1:] = np.any(stacked[:, 1:] != stacked[:, :-1], axis=0)
    return order[new]


def kpis_for_stations(
    columns: StationColumns,
    ideal_cycle_times_s: Sequence[float] | np.ndarray,
    window_start_ms: int,
    window_end_ms: int,
    *,
    scheduled: Sequence[tuple[int, int]] | None = None,
) -> list[KpiResult]:
    """``kpis_from_events`` for every station at once, in numpy; the same results, except that
    count duplicates are recognised by (ts, good, bad) since columns carry no order id."""
    if window_end_ms <= window_start_ms:
        raise ValueError(f"window end {window_end_ms} is not after its start {window_start_ms}")
    cycles = np.asarray(ideal_cycle_times_s, dtype=float)
    n = cycles.size
    calendar = [(window_start_ms, window_end_ms)] if scheduled is None else list(scheduled)

    # States: unique rows sorted by (station, ts, code); the last code at one ts wins.
    keep = _unique_rows(columns.state_code, columns.state_ts, columns.state_station)
    station, ts = columns.state_station[keep], columns.state_ts[keep]
    code = columns.state_code[keep]
    last_at_ts = np.ones(keep.size, dtype=bool)
    last_at_ts[:-1] = (station[1:] != station[:-1]) | (ts[1:] != ts[:-1])
    station, ts, code = station[last_at_ts], ts[last_at_ts], code[last_at_ts]

    # Each change lasts until the station's next change or the window's end, cut to the window.
    following = np.full(ts.size, window_end_ms, dtype=np.int64)
    same_station = station[1:] == station[:-1]
    following[:-1][same_station] = ts[1:][same_station]
    begin = np.maximum(ts, window_start_ms)
    end = np.minimum(following, window_end_ms)
    length = np.clip(end - begin, 0, None)

    offline = code == _CODE[EquipmentState.OFFLINE]
    inside = np.zeros(ts.size, dtype=np.int64)
    for s, e in calendar:
        inside += np.clip(np.minimum(end, e) - np.maximum(begin, s), 0, None)
    counted = np.where(offline, inside, length)
    per_state = np.bincount(
        station * len(STATE_CODES) + code, weights=counted, minlength=n * len(STATE_CODES)
    ).reshape(n, len(STATE_CODES))
    unscheduled = np.bincount(station, weights=np.where(offline, length - inside, 0), minlength=n)

    first_ts = np.full(n, window_end_ms, dtype=np.int64)
    np.minimum.at(first_ts, station, ts)
    unknown = np.clip(np.minimum(first_ts, window_end_ms) - window_start_ms, 0, None)

    keep = _unique_rows(
        columns.count_bad, columns.count_good, columns.count_ts, columns.count_station
    )
    c_station, c_ts = columns.count_station[keep], columns.count_ts[keep]
    in_window = (c_ts >= window_start_ms) & (c_ts < window_end_ms)
    good = np.bincount(c_station[in_window], columns.count_good[keep][in_window], minlength=n)
    bad = np.bincount(c_station[in_window], columns.count_bad[keep][in_window], minlength=n)

    running = _CODE[EquipmentState.RUNNING]
    planned_stop = _CODE[EquipmentState.PLANNED_STOP]
    losses = [_CODE[state] for state in (*AVAILABILITY_LOSS_STATES, EquipmentState.OFFLINE)]
    results = []
    for i in range(n):
        downtime = {
            STATE_CODES[c].value: per_state[i, c] / MS_PER_S for c in losses if per_state[i, c]
        }
        results.append(
            oee_from_totals(
                (per_state[i, running] + per_state[i, losses].sum()) / MS_PER_S,
                per_state[i, running] / MS_PER_S,
                float(cycles[i]),
                int(good[i] + bad[i]),
                int(good[i]),
                downtime_by_state_s=downtime,
                flags=[UNKNOWN_INITIAL_STATE] if unknown[i] else [],
                planned_stop_time_s=per_state[i, planned_stop] / MS_PER_S,
                unscheduled_offline_time_s=unscheduled[i] / MS_PER_S,
                unknown_time_s=unknown[i] / MS_PER_S,
            )
        )
    return results


# --- KPIs beyond OEE ---


def first_pass_yield(inspections: Iterable[InspectionResult]) -> float | None:
    """Share of distinct parts whose first verdict (by time) is GOOD; None if none. ERROR
    results reached no verdict, so they neither pass nor fail a part."""
    first: dict[str, InspectionResult] = {}
    verdicts = (r for r in inspections if r.verdict is not Verdict.ERROR)
    for result in sorted(verdicts, key=lambda r: (r.ts, r.verdict.value)):
        first.setdefault(result.part_id, result)
    if not first:
        return None
    return sum(r.verdict is Verdict.GOOD for r in first.values()) / len(first)


def scrap_rate(produced_quantity: int, good_quantity: int) -> float | None:
    """Scrap (produced - good) over produced; None when nothing was produced."""
    if good_quantity > produced_quantity or good_quantity < 0:
        raise ValueError(f"good_quantity {good_quantity} is not within 0..{produced_quantity}")
    return (produced_quantity - good_quantity) / produced_quantity if produced_quantity else None


@dataclass(frozen=True, slots=True)
class Reliability:
    failures: int
    mtbf_s: float | None  # production time per failure
    mttr_s: float | None  # unplanned stop time per failure


def mtbf_mttr(
    states: Sequence[StateChange], window_start_ms: int, window_end_ms: int
) -> Reliability:
    """Failures are unplanned stops that begin inside the window (consecutive unplanned-stop
    changes are one failure); None for both means there was no failure to average over."""
    intervals, _ = state_intervals(states, window_start_ms, window_end_ms)
    failures, previous = 0, None
    running = repair = 0
    for interval in intervals:
        if interval.state is EquipmentState.RUNNING:
            running += interval.end_ms - interval.start_ms
        elif interval.state is EquipmentState.UNPLANNED_STOP:
            repair += interval.end_ms - interval.start_ms
            begins_here = interval.start_ms > window_start_ms
            if previous is not EquipmentState.UNPLANNED_STOP and begins_here:
                failures += 1
        previous = interval.state
    if failures == 0:
        return Reliability(0, None, None)
    return Reliability(failures, running / MS_PER_S / failures, repair / MS_PER_S / failures)


class ParetoEntry(NamedTuple):
    cause: str  # the reason code, or the state's name when the device gave none
    seconds: float
    occurrences: int


def downtime_pareto(
    states: Sequence[StateChange], window_start_ms: int, window_end_ms: int
) -> list[ParetoEntry]:
    """Availability-loss time by cause, longest first; ties by name."""
    intervals, _ = state_intervals(states, window_start_ms, window_end_ms)
    seconds: dict[str, float] = defaultdict(float)
    occurrences: dict[str, int] = defaultdict(int)
    for interval in intervals:
        if interval.state in AVAILABILITY_LOSS_STATES:
            cause = interval.reason_code or interval.state.value
            seconds[cause] += (interval.end_ms - interval.start_ms) / MS_PER_S
            occurrences[cause] += 1
    entries = [ParetoEntry(c, seconds[c], occurrences[c]) for c in seconds]
    return sorted(entries, key=lambda e: (-e.seconds, e.cause))


class ShiftWindow(NamedTuple):
    name: str
    start_ms: int
    end_ms: int


def _epoch_ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def shift_windows(site: Site, start_ms: int, end_ms: int) -> list[ShiftWindow]:
    """Shift occurrences of the site's calendar overlapping ``[start_ms, end_ms)``.

    Shift times are wall-clock times in the site's time zone, so a shift on a DST change day
    is an hour shorter or longer, as the people working it experience.
    """
    zone = ZoneInfo(site.timezone)
    first = datetime.fromtimestamp(start_ms / 1000, zone).date() - timedelta(days=1)
    last = datetime.fromtimestamp(end_ms / 1000, zone).date()
    windows = []
    day = first
    while day <= last:
        weekday = list(Weekday)[day.weekday()]
        for shift in site.shift_calendar.shifts:
            if weekday not in shift.days:
                continue
            begin_clock = time.fromisoformat(shift.start)
            end_clock = time.fromisoformat(shift.end)
            end_day = day + timedelta(days=1) if end_clock <= begin_clock else day
            begin = _epoch_ms(datetime.combine(day, begin_clock, zone))
            end = _epoch_ms(datetime.combine(end_day, end_clock, zone))
            if begin < end_ms and end > start_ms:
                windows.append(ShiftWindow(shift.name, begin, end))
        day += timedelta(days=1)
    return sorted(windows, key=lambda w: w.start_ms)


def parts_by_shift(
    counts: Iterable[PartCount], shifts: Sequence[ShiftWindow]
) -> dict[ShiftWindow, tuple[int, int]]:
    """(good, bad) per shift occurrence; exact duplicate counts count once."""
    totals = {shift: (0, 0) for shift in shifts}
    for ts, good, bad, _ in {(c.ts, c.good, c.bad, c.order_id) for c in counts}:
        for shift in shifts:
            if shift.start_ms <= ts < shift.end_ms:
                g, b = totals[shift]
                totals[shift] = (g + good, b + bad)
    return totals
