"""A simulated production day of a plant, as the contracts carry it, for the lake's queries.

Deterministic (one seeded ``random.Random``), so every run writes the same lake. The day holds
what the queries must get right, on purpose:
- states with reason codes, straddling shift changes, an OFFLINE spell after the last shift,
  exact duplicates (at-least-once delivery) and two different states at one timestamp;
- the first state an hour before the early shift, so the night shift before is partly unknown;
- part counts per cycle with the running order, one exactly at a shift change; the machining
  line runs faster than its ideal cycle (performance above 1, reported, never clamped);
- inspection results of the camera station under two model versions, re-inspections (a part
  that failed first and passed later), ERROR results and a same-timestamp verdict tie;
- non-conformances from the camera, manual ones at assembly and TEST ones at the leak bench;
- production orders, their confirmations per station and the lots consumed (the genealogy).

Telemetry is produced as columns (``TelemetryColumns``), not as pydantic readings: a day of the
demo plant is millions of readings.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import numpy as np

from mes_domain.collection import ModbusAddress, MqttAddress, OpcUaAddress
from mes_domain.contracts import (
    EquipmentState,
    InspectionResult,
    PartCount,
    StateChange,
    Verdict,
)
from mes_domain.enterprise import (
    DefectSource,
    MaterialConsumption,
    NonConformanceReport,
    ProductionConfirmation,
    ProductionOrder,
    SourceSystem,
)
from mes_domain.plant import Line, Plant, Site, Station, StationKind, Tag, TagDataType

# A Friday: early and late shifts, and no night shift after the late one in the demo calendar.
SIMULATED_DAY = date(2025, 11, 14)
FIRST_STATE_CLOCK = time(5, 0)  # an hour before the early shift: the night before is unknown
LAST_EVENT_CLOCK = time(23, 30)  # past the late shift's end: OFFLINE there counts nowhere

# Causes by state: what a device reports as reason_code (None: it gave none).
REASONS: dict[EquipmentState, tuple[str | None, ...]] = {
    EquipmentState.UNPLANNED_STOP: ("JAM", "TOOL_BREAK", "SENSOR_FAULT", None),
    EquipmentState.IDLE: ("STARVED", "BLOCKED", None),
    EquipmentState.SETUP: ("CHANGEOVER",),
    EquipmentState.PLANNED_STOP: ("BREAK",),
    EquipmentState.OFFLINE: (None,),
}
MODEL_ID = "surface-defects"
MODEL_VERSIONS = ("2025.10.1", "2025.11.1")  # the second deployed at MODEL_SWITCH_CLOCK
MODEL_SWITCH_CLOCK = time(11, 0)
DEFECT_CODES = ("SCRATCH", "DENT", "CRACK")
# How much faster than ideal a line's machines run (< 1: faster, so performance above 1).
CYCLE_FACTOR = {"machining-line-1": 0.85}


@dataclass
class TelemetryColumns:
    """Readings of many tags as columns; ``value`` as the reading carries it (float, int, bool
    or str, one Python type per tag)."""

    site: list[str] = field(default_factory=list)
    line: list[str] = field(default_factory=list)
    station: list[str] = field(default_factory=list)
    batch_id: list[str] = field(default_factory=list)
    ts: list[np.ndarray] = field(default_factory=list)
    tag: list[str] = field(default_factory=list)
    unit: list[str | None] = field(default_factory=list)
    data_type: list[TagDataType] = field(default_factory=list)
    values: list[np.ndarray] = field(default_factory=list)

    @property
    def rows(self) -> int:
        return sum(len(ts) for ts in self.ts)


@dataclass
class Genealogy:
    """What went into an order: the lots each station consumed, per operation."""

    order_id: str
    material_id: str
    line: str
    operations: dict[int, tuple[str, list[tuple[str, str, float]]]]  # no -> station, lots


@dataclass
class SimulatedDay:
    plant: Plant
    site: Site
    day: date
    start_ms: int
    end_ms: int
    states: dict[tuple[str, str, str], list[StateChange]]
    counts: dict[tuple[str, str, str], list[PartCount]]
    inspections: dict[tuple[str, str, str], list[InspectionResult]]
    nonconformances: list[NonConformanceReport]
    orders: list[ProductionOrder]
    confirmations: list[ProductionConfirmation]
    genealogy: dict[str, Genealogy]
    telemetry: TelemetryColumns


def local_ms(site: Site, day: date, clock: time) -> int:
    return int(datetime.combine(day, clock, ZoneInfo(site.timezone)).timestamp() * 1000)


def tag_sampling_ms(line: Line, tag: Tag, station: Station) -> int:
    """How often the line's DataCollector reads the tag: an OPC UA subscription's sampling
    interval (0, "as fast as the server can", taken as 100 ms), a Modbus connection's poll
    interval, an MQTT result once per cycle; a tag without a source (the station publishes it
    itself) once a second."""
    source = tag.source
    if isinstance(source, OpcUaAddress):
        return source.sampling_interval_ms or 100
    if isinstance(source, ModbusAddress):
        collection = line.collection
        return collection.connection(source.connection).poll_interval_ms
    if isinstance(source, MqttAddress):
        return int(station.ideal_cycle_time_s * 1000)
    return 1000


def _order_id(line: Line) -> str:
    return f"PO-{line.id.upper()}-1"


def _material(line: Line) -> str:
    return "DOOR-L" if line.id.startswith("body") else "HOUSING-A"


def _simulate_station(
    rng: random.Random,
    site: Site,
    line: Line,
    station: Station,
    start_ms: int,
    end_ms: int,
    shift_changes: list[int],
    late_shift_end_ms: int,
) -> tuple[list[StateChange], list[PartCount]]:
    """States and counts of one station: running spells broken by losses, a break per shift."""
    states: list[StateChange] = []
    counts: list[PartCount] = []
    order_id = _order_id(line)
    cycle_ms = station.ideal_cycle_time_s * 1000 * CYCLE_FACTOR.get(line.id, 1.0)
    breaks = [change + 4 * 3600_000 for change in shift_changes]  # mid-shift, 30 minutes
    t = start_ms
    while t < late_shift_end_ms:
        if breaks and t >= breaks[0]:
            begin = breaks.pop(0)
            states.append(
                StateChange(v=1, ts=max(t, begin), state="PLANNED_STOP", reason_code="BREAK")
            )
            t = max(t, begin) + 30 * 60_000
            continue
        states.append(StateChange(v=1, ts=t, state=EquipmentState.RUNNING))
        run_until = min(t + int(rng.expovariate(1 / (25 * 60_000))) + 60_000, late_shift_end_ms)
        if breaks:
            run_until = min(run_until, breaks[0])
        made = t
        while True:
            cycle = cycle_ms * (1 + abs(rng.gauss(0, 0.05)))
            if made + cycle > run_until:
                break
            made += cycle
            bad = rng.random() < 0.03
            counts.append(
                PartCount(v=1, ts=int(made), good=0 if bad else 1, bad=int(bad), order_id=order_id)
            )
        t = run_until
        if t >= late_shift_end_ms or (breaks and t >= breaks[0]):
            continue
        loss = rng.choices(
            [
                EquipmentState.UNPLANNED_STOP,
                EquipmentState.IDLE,
                EquipmentState.SETUP,
                EquipmentState.OFFLINE,
            ],
            weights=[5, 4, 1, 0.3],
        )[0]
        reason = rng.choice(REASONS[loss])
        states.append(StateChange(v=1, ts=t, state=loss, reason_code=reason))
        t += int(rng.expovariate(1 / (4 * 60_000))) + 10_000
    # After the late shift: offline until the end, outside the calendar.
    states.append(StateChange(v=1, ts=late_shift_end_ms + 5 * 60_000, state="OFFLINE"))
    return [s for s in states if s.ts < end_ms], [c for c in counts if c.ts < end_ms]


def _inspections(
    rng: random.Random, site: Site, day: date, start_ms: int, end_ms: int, station: Station
) -> list[InspectionResult]:
    """The camera inspects a part every cycle; a failed part is looked at again later."""
    switch_ms = local_ms(site, day, MODEL_SWITCH_CLOCK)
    results: list[InspectionResult] = []
    cycle_ms = int(station.ideal_cycle_time_s * 1000) * 15  # every 15th slot: a sample
    part = 0
    for ts in range(start_ms + 60_000, end_ms - 3600_000, cycle_ms):
        part += 1
        version = MODEL_VERSIONS[ts >= switch_ms]
        defect_share = 0.08 if version == MODEL_VERSIONS[0] else 0.04
        part_id = f"P{part:06d}"
        kind = rng.random()
        common = {"v": 1, "part_id": part_id, "model_id": MODEL_ID, "model_version": version}
        latency = round(rng.uniform(20, 60), 3)
        if kind < 0.01:
            results.append(
                InspectionResult(
                    **common,
                    ts=ts,
                    verdict=Verdict.ERROR,
                    latency_ms=latency,
                    reason="image unreadable",
                )
            )
            continue
        failed = kind < 0.01 + defect_share
        verdict = Verdict.DEFECT if failed else Verdict.GOOD
        score = rng.uniform(0.6, 0.99) if failed else rng.uniform(0.01, 0.4)
        results.append(
            InspectionResult(
                **common, ts=ts, verdict=verdict, score=score, threshold=0.5, latency_ms=latency
            )
        )
        if failed and rng.random() < 0.5:  # re-inspected after rework: passes now
            results.append(
                InspectionResult(
                    **common,
                    ts=ts + 120_000,
                    verdict=Verdict.GOOD,
                    score=0.2,
                    threshold=0.5,
                    latency_ms=latency,
                )
            )
    # A tie: two verdicts on one part at one instant; DEFECT sorts first, so the part failed.
    tie_ts = start_ms + 7_777
    for verdict, score in ((Verdict.GOOD, 0.1), (Verdict.DEFECT, 0.9)):
        results.append(
            InspectionResult(
                v=1,
                ts=tie_ts,
                part_id="P-TIE",
                verdict=verdict,
                score=score,
                threshold=0.5,
                model_id=MODEL_ID,
                model_version=MODEL_VERSIONS[0],
                latency_ms=30.0,
            )
        )
    return results


def simulate_telemetry(
    site: Site, start_ms: int, end_ms: int, *, seed: int = 18, sampling_floor_ms: int = 0
) -> TelemetryColumns:
    """Every tag of the site sampled as its line's DataCollector reads it (``tag_sampling_ms``),
    but never faster than ``sampling_floor_ms``, over ``[start_ms, end_ms)``."""
    rng = np.random.default_rng(seed)
    columns = TelemetryColumns()
    for line in site.lines:
        for station in line.stations:
            for tag in station.tags:
                step = max(tag_sampling_ms(line, tag, station), sampling_floor_ms)
                ts = np.arange(start_ms, end_ms, step, dtype=np.int64)
                n = ts.size
                if tag.data_type is TagDataType.BOOLEAN:
                    values = rng.random(n) < 0.5
                elif tag.data_type is TagDataType.INTEGER:
                    values = rng.integers(0, 50, n)
                elif tag.data_type is TagDataType.STRING:
                    values = np.array([f"P{1000 + k}" for k in rng.integers(1, 5, n)], dtype=object)
                else:  # a slow walk around a level, with noise: like a real signal
                    level = rng.uniform(10, 500)
                    walk = np.cumsum(rng.normal(0, level * 0.001, n))
                    values = np.round(level + walk + rng.normal(0, level * 0.01, n), 4)
                columns.site.append(site.id)
                columns.line.append(line.id)
                columns.station.append(station.id)
                columns.batch_id.append(station.id)  # a batch: a station's second
                columns.ts.append(ts)
                columns.tag.append(tag.name)
                columns.unit.append(tag.unit)
                columns.data_type.append(tag.data_type)
                columns.values.append(values)
    return columns


def _duplicate_some(rng: random.Random, events: list, share: float) -> list:
    """At-least-once delivery: a share of the events arrives twice."""
    doubled = list(events)
    doubled += [e for e in events if rng.random() < share]
    return doubled


def simulate_day(
    plant: Plant, *, day: date = SIMULATED_DAY, seed: int = 18, telemetry_floor_ms: int = 1000
) -> SimulatedDay:
    """Everything the first site of ``plant`` records on ``day`` (see the module doc).

    ``telemetry_floor_ms``: no tag is sampled faster (the tests need hours, not millions of
    rows; the benchmark passes 0 for the configured sampling).
    """
    rng = random.Random(seed)
    site = plant.sites[0]
    start_ms = local_ms(site, day, FIRST_STATE_CLOCK)
    end_ms = local_ms(site, day, LAST_EVENT_CLOCK)
    shift_changes = [local_ms(site, day, time(6)), local_ms(site, day, time(14))]
    late_shift_end_ms = local_ms(site, day, time(22))
    states, counts, inspections = {}, {}, {}
    orders, confirmations, genealogy, ncrs = [], [], {}, []
    for line in site.lines:
        order_id = _order_id(line)
        orders.append(
            ProductionOrder(
                v=1,
                source_system=SourceSystem.ERP,
                document_id=f"ERP-{order_id}",
                revision=0,
                issued_at=start_ms - 86_400_000,
                order_id=order_id,
                material_id=_material(line),
                quantity=5000.0,
                uom="EA",
                site=site.id,
                line=line.id,
                planned_start=start_ms,
                planned_end=end_ms,
            )
        )
        operations = {}
        for number, station in enumerate(line.stations, start=1):
            path = (site.id, line.id, station.id)
            if station.kind is StationKind.CAMERA_INSPECTION:
                # Inspection consumes nothing: its confirmation has no materials.
                inspections[path] = _inspections(rng, site, day, start_ms, end_ms, station)
                verdicts = [r.verdict for r in inspections[path]]
                good, scrap = verdicts.count(Verdict.GOOD), verdicts.count(Verdict.DEFECT)
                lots = []
            else:
                station_states, station_counts = _simulate_station(
                    rng, site, line, station, start_ms, end_ms, shift_changes, late_shift_end_ms
                )
                states[path] = _duplicate_some(rng, station_states, 0.05)
                counts[path] = _duplicate_some(rng, station_counts, 0.02)
                good = sum(c.good for c in station_counts)
                scrap = sum(c.bad for c in station_counts)
                lots = [
                    (f"RAW-{station.id.upper()}", f"LOT-{station.id}-{k}", round(good * 0.5, 3))
                    for k in (1, 2)
                ]
            operations[number] = (station.id, lots)
            confirmations.append(
                ProductionConfirmation(
                    v=1,
                    source_system=SourceSystem.MES,
                    document_id=f"CONF-{order_id}-{number}",
                    revision=0,
                    issued_at=end_ms - 60_000,
                    order_id=order_id,
                    operation_no=number,
                    site=site.id,
                    line=line.id,
                    station=station.id,
                    good_quantity=float(good),
                    scrap_quantity=float(scrap),
                    materials_consumed=[
                        MaterialConsumption(material_id=material, quantity=quantity, uom="EA")
                        for material, _, quantity in lots
                    ],
                    labour_time_s=3600.0,
                    started_at=start_ms,
                    finished_at=end_ms - 60_000,
                    machine_time_s=1000.0,
                    final=number == len(line.stations),
                )
            )
        genealogy[order_id] = Genealogy(order_id, _material(line), line.id, operations)

    _add_edge_cases(site, day, states, counts)

    body_line = site.lines[0]
    camera = next(s for s in body_line.stations if s.kind is StationKind.CAMERA_INSPECTION)
    first_verdicts: dict[str, InspectionResult] = {}
    for result in sorted(
        inspections[(site.id, body_line.id, camera.id)], key=lambda r: (r.ts, r.verdict.value)
    ):
        if result.verdict is not Verdict.ERROR:
            first_verdicts.setdefault(result.part_id, result)
    for n, result in enumerate(r for r in first_verdicts.values() if r.verdict is Verdict.DEFECT):
        ncrs.append(
            _ncr(
                site,
                body_line,
                camera,
                result.part_id,
                DEFECT_CODES[n % 3],
                result.ts,
                DefectSource.VISION,
                result,
            )
        )
    for line in site.lines:
        for station in line.stations:
            if station.kind not in (StationKind.ASSEMBLY, StationKind.TEST):
                continue
            source = (
                DefectSource.MANUAL if station.kind is StationKind.ASSEMBLY else DefectSource.TEST
            )
            bad = [c for c in counts[(site.id, line.id, station.id)] if c.bad][:12]
            for k, count in enumerate(bad):
                code = "LEAK" if source is DefectSource.TEST else ("MISSING_CLIP", "GAP")[k % 2]
                ncrs.append(
                    _ncr(
                        site,
                        line,
                        station,
                        f"{station.id}-{count.ts}",
                        code,
                        count.ts,
                        source,
                        None,
                        order_id=_order_id(line),
                    )
                )
    ncrs += ncrs[:3]  # redelivered reports: one ncr_id counts once

    return SimulatedDay(
        plant=plant,
        site=site,
        day=day,
        start_ms=start_ms,
        end_ms=end_ms,
        states=states,
        counts=counts,
        inspections=inspections,
        nonconformances=ncrs,
        orders=orders,
        confirmations=confirmations,
        genealogy=genealogy,
        telemetry=simulate_telemetry(
            site, start_ms, end_ms, seed=seed, sampling_floor_ms=telemetry_floor_ms
        ),
    )


def _ncr(site, line, station, part_id, code, ts, source, inspection, order_id=None):
    return NonConformanceReport(
        v=1,
        source_system=SourceSystem.MES,
        document_id=f"NCR-{part_id}",
        revision=0,
        issued_at=ts + 1000,
        ncr_id=f"NCR-{part_id}",
        site=site.id,
        line=line.id,
        station=station.id,
        part_id=part_id,
        order_id=order_id or _order_id(line),
        defect_code=code,
        description=f"{code} on {part_id}",
        detected_at=ts,
        source=source,
        inspection=inspection,
    )


def _add_edge_cases(site: Site, day: date, states: dict, counts: dict) -> None:
    """Ties and boundary events the definitions have an answer for."""
    line = site.lines[0]
    press = (site.id, line.id, line.stations[0].id)
    late_start = local_ms(site, day, time(14))
    # Two different states at one instant: the one that sorts last by name wins, UNPLANNED_STOP
    # over SETUP (another cause of loss), RUNNING over IDLE (production time, not a loss).
    tie = late_start + 90 * 60_000 + 123
    states[press] += [
        StateChange(v=1, ts=tie, state="SETUP", reason_code="CHANGEOVER"),
        StateChange(v=1, ts=tie, state="UNPLANNED_STOP", reason_code="JAM"),
        StateChange(v=1, ts=tie + 45_000, state="RUNNING"),
        StateChange(v=1, ts=tie + 3600_000, state="IDLE", reason_code="STARVED"),
        StateChange(v=1, ts=tie + 3600_000, state="RUNNING"),
        StateChange(v=1, ts=tie + 3600_000 + 600_000, state="IDLE", reason_code="BLOCKED"),
        StateChange(v=1, ts=tie + 3600_000 + 660_000, state="RUNNING"),
    ]
    # A part counted exactly at the shift change belongs to the late shift, not the early one.
    counts[press].append(PartCount(v=1, ts=late_start, good=1, bad=0, order_id=_order_id(line)))
    # A count with no order id (a station that does not know it) still counts.
    counts[press].append(PartCount(v=1, ts=late_start + 1, good=2, bad=1))


def events_between(events: list, start_ms: int, end_ms: int) -> list:
    return [e for e in events if start_ms <= e.ts < end_ms]


def is_close(a: float | None, b: float | None, tolerance: float = 1e-9) -> bool:
    if a is None or b is None:
        return a is b
    return math.isclose(a, b, rel_tol=tolerance, abs_tol=tolerance)


def days_between(first: date, last: date) -> list[date]:
    return [first + timedelta(days=k) for k in range((last - first).days + 1)]
