"""Pure logic of the KPI calculator: windows, KPIs per station, line and site, and their records.

Station KPIs come from ``mes_domain.kpi``; a line or site is rolled up from its stations' time
elements and counts (never by averaging ratios), with the parts-weighted ideal cycle time, so
its performance is the sum of ideal times over the sum of production times.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from mes_domain import lake
from mes_domain.contracts import PartCount, StateChange
from mes_domain.kpi import (
    KpiResult,
    ParetoEntry,
    Reliability,
    downtime_pareto,
    kpis_from_events,
    mtbf_mttr,
    oee_from_totals,
    scrap_rate,
    shift_windows,
)
from mes_domain.plant import Plant, Site

MINUTE_MS = 60_000
MEASURE_NAME = "kpi"
PARETO_TOP = 5  # causes kept per station record
ALL = "-"  # the line or station dimension of a line- or site-level record

StationPath = tuple[str, str, str]


class Period(StrEnum):
    WINDOW = "window"  # a closed tumbling window, the same grid as the SiteWise metrics
    SHIFT = "shift"  # the current shift, from its start to now


@dataclass(frozen=True, slots=True)
class StationEvents:
    states: list[StateChange] = field(default_factory=list)
    counts: list[PartCount] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Scope:
    site: str
    line: str | None = None
    station: str | None = None

    @property
    def level(self) -> str:
        return "station" if self.station else "line" if self.line else "site"

    def dimensions(self) -> dict[str, str]:
        """CloudWatch dimensions: only the levels this scope has."""
        named = {"site": self.site, "line": self.line, "station": self.station}
        return {key: value for key, value in named.items() if value is not None}


@dataclass(frozen=True, slots=True)
class ScopedKpi:
    scope: Scope
    period: Period
    label: str  # the window's start as ISO text, or the shift's name
    start_ms: int
    end_ms: int
    result: KpiResult
    reliability: Reliability
    pareto: tuple[ParetoEntry, ...] = ()


def closed_windows(now_ms: int, window_minutes: int, count: int) -> list[tuple[int, int]]:
    """The ``count`` most recent windows that ended at or before ``now_ms``, oldest first.

    Windows are aligned to the epoch like SiteWise's tumbling windows, so both agree.
    """
    size = window_minutes * MINUTE_MS
    last_end = now_ms - now_ms % size
    return [(last_end - k * size, last_end - (k - 1) * size) for k in range(count, 0, -1)]


def _rollup_reliability(kpis: Sequence[ScopedKpi]) -> Reliability:
    """Failures add up; MTBF and MTTR are recomputed from the summed times."""
    failures = sum(k.reliability.failures for k in kpis)
    if failures == 0:
        return Reliability(0, None, None)
    running = sum(k.result.actual_production_time_s for k in kpis)
    repair = sum((k.reliability.mttr_s or 0.0) * k.reliability.failures for k in kpis)
    return Reliability(failures, running / failures, repair / failures)


def _rollup(results: Sequence[tuple[KpiResult, float]]) -> KpiResult:
    """Sum time elements and counts; ideal time divided by produced is the weighted cycle."""
    planned = sum(r.planned_busy_time_s for r, _ in results)
    actual = sum(r.actual_production_time_s for r, _ in results)
    produced = sum(r.produced_quantity for r, _ in results)
    good = sum(r.good_quantity for r, _ in results)
    ideal_time = sum(cycle * r.produced_quantity for r, cycle in results)
    weighted_cycle = ideal_time / produced if produced else 1.0
    return oee_from_totals(planned, actual, weighted_cycle, produced, good)


def compute(
    plant: Plant,
    events: Mapping[StationPath, StationEvents],
    period: Period,
    label: str,
    start_ms: int,
    end_ms: int,
) -> list[ScopedKpi]:
    """KPIs of every configured station, line and site for [start_ms, end_ms).

    A station with no events still gets a result (it never ran); events of stations that are
    not in the plant config are ignored by design, since nothing can be said of their cycle.
    """
    kpis: list[ScopedKpi] = []
    for site in plant.sites:
        scheduled = [(w.start_ms, w.end_ms) for w in shift_windows(site, start_ms, end_ms)]
        site_results, site_kpis = [], []
        for line in site.lines:
            line_results, line_kpis = [], []
            for station in line.stations:
                station_events = events.get((site.id, line.id, station.id), StationEvents())
                result = kpis_from_events(
                    station_events.states,
                    station_events.counts,
                    start_ms,
                    end_ms,
                    station.ideal_cycle_time_s,
                    scheduled=scheduled,
                )
                states = station_events.states
                scoped = ScopedKpi(
                    Scope(site.id, line.id, station.id),
                    period,
                    label,
                    start_ms,
                    end_ms,
                    result,
                    mtbf_mttr(states, start_ms, end_ms),
                    tuple(downtime_pareto(states, start_ms, end_ms)[:PARETO_TOP]),
                )
                line_kpis.append(scoped)
                line_results.append((result, station.ideal_cycle_time_s))
            kpis += line_kpis
            line_scope = Scope(site.id, line.id)
            line_reliability = _rollup_reliability(line_kpis)
            line_kpi = _rollup(line_results)
            kpis.append(
                ScopedKpi(line_scope, period, label, start_ms, end_ms, line_kpi, line_reliability)
            )
            site_results += line_results
            site_kpis += line_kpis
        site_reliability = _rollup_reliability(site_kpis)
        site_kpi = _rollup(site_results)
        kpis.append(
            ScopedKpi(Scope(site.id), period, label, start_ms, end_ms, site_kpi, site_reliability)
        )
    return kpis


def current_shift(site: Site, now_ms: int) -> tuple[str, int, int] | None:
    """(name, start, now) of the shift running at ``now_ms``; None between shifts."""
    day_ms = 24 * 60 * MINUTE_MS
    for window in shift_windows(site, now_ms - day_ms, now_ms + 1):
        if window.start_ms <= now_ms < window.end_ms:
            return window.name, window.start_ms, now_ms
    return None


def _measures(kpi: ScopedKpi) -> Iterable[tuple[str, str, str]]:
    result, reliability = kpi.result, kpi.reliability
    for name in ("availability", "performance", "quality", "oee"):
        value = getattr(result, name)
        if value is not None:  # an undefined ratio is left out, never written as 0
            yield name, "DOUBLE", repr(float(value))
    yield "planned_busy_time_s", "DOUBLE", repr(float(result.planned_busy_time_s))
    yield "actual_production_time_s", "DOUBLE", repr(float(result.actual_production_time_s))
    yield "produced_quantity", "BIGINT", str(result.produced_quantity)
    yield "good_quantity", "BIGINT", str(result.good_quantity)
    scrap = scrap_rate(result.produced_quantity, result.good_quantity)
    if scrap is not None:
        yield "scrap_rate", "DOUBLE", repr(float(scrap))
    for state, seconds in sorted(result.downtime_by_state_s.items()):
        yield f"downtime_{str(state).lower()}_s", "DOUBLE", repr(float(seconds))
    yield "failures", "BIGINT", str(reliability.failures)
    if reliability.failures:
        yield "mtbf_s", "DOUBLE", repr(float(reliability.mtbf_s))
        yield "mttr_s", "DOUBLE", repr(float(reliability.mttr_s))
    if kpi.pareto:
        top = [{"cause": e.cause, "seconds": e.seconds, "count": e.occurrences} for e in kpi.pareto]
        yield "downtime_pareto", "VARCHAR", json.dumps(top, separators=(",", ":"))
    if result.flags:
        yield "flags", "VARCHAR", ",".join(sorted(result.flags))


def kpi_record(kpi: ScopedKpi, computed_at_ms: int) -> dict:
    """A multi-measure record at the period's start. The version is the computation time, so a
    re-run replaces the earlier values instead of being rejected or duplicated."""
    scope = kpi.scope
    return {
        "Dimensions": [
            {"Name": "level", "Value": scope.level},
            {"Name": "site", "Value": scope.site},
            {"Name": "line", "Value": scope.line or ALL},
            {"Name": "station", "Value": scope.station or ALL},
            {"Name": "period", "Value": kpi.period.value},
            {"Name": "label", "Value": kpi.label},
        ],
        "MeasureName": MEASURE_NAME,
        "MeasureValueType": "MULTI",
        "MeasureValues": [
            {"Name": name, "Type": kind, "Value": value} for name, kind, value in _measures(kpi)
        ],
        "Time": str(kpi.start_ms),
        "TimeUnit": "MILLISECONDS",
        "Version": computed_at_ms,
    }


def lake_row(kpi: ScopedKpi, computed_at_ms: int) -> dict:
    """The row of ``mes_domain.lake.KPI_RESULTS``: the scope and period, the KpiResult, the
    reliability and the downtime Pareto, with the partition keys ``site`` and ``dt``."""
    scope, result, reliability = kpi.scope, kpi.result, kpi.reliability
    return {
        lake.SITE: scope.site,
        "level": scope.level,
        "line": scope.line or ALL,
        "station": scope.station or ALL,
        "period": kpi.period.value,
        "label": kpi.label,
        "start_ms": kpi.start_ms,
        "end_ms": kpi.end_ms,
        "computed_at_ms": computed_at_ms,
        "availability": result.availability,
        "performance": result.performance,
        "quality": result.quality,
        "oee": result.oee,
        "planned_busy_time_s": result.planned_busy_time_s,
        "actual_production_time_s": result.actual_production_time_s,
        "produced_quantity": result.produced_quantity,
        "good_quantity": result.good_quantity,
        "downtime_by_state_s": {
            str(state): seconds for state, seconds in result.downtime_by_state_s.items()
        },
        "flags": sorted(result.flags),
        "planned_stop_time_s": result.planned_stop_time_s,
        "unscheduled_offline_time_s": result.unscheduled_offline_time_s,
        "unknown_time_s": result.unknown_time_s,
        "failures": reliability.failures,
        "mtbf_s": reliability.mtbf_s,
        "mttr_s": reliability.mttr_s,
        "pareto": [
            {"cause": e.cause, "seconds": e.seconds, "occurrences": e.occurrences}
            for e in kpi.pareto
        ],
        lake.DT: lake.day_of(kpi.start_ms),
    }
