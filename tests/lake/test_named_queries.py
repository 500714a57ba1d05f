"""The named Athena queries, run for real: DuckDB over Parquet of a simulated day of the demo
plant, each query translated from Trino with sqlglot, against ``mes_domain.kpi`` and the KPI
calculator on the same events (to 1e-9), and against the simulation itself."""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np
import pytest
import sqlglot
from sqlglot import exp

from lambdas.kpi_calculator.calculate import (
    Period,
    StationEvents,
    _rollup,
    compute,
)
from mes_domain import lake
from mes_domain.contracts import Verdict
from mes_domain.kpi import NO_PLANNED_TIME, downtime_pareto, first_pass_yield, shift_windows
from stacks.datalake_queries import NAMED_QUERIES, render, sql_file
from tests.lake.duckdb_lake import DATABASE, run
from tests.lake.simulation import is_close

THURSDAY, FRIDAY = date(2025, 11, 13), date(2025, 11, 14)
RATIOS = ("availability", "performance", "quality", "oee")
# Athena: "? parameters can be placed only in the WHERE clause", and the console takes at most
# 25 question marks (docs.aws.amazon.com/athena/latest/ug/querying-with-prepared-statements.html).
ATHENA_CONSOLE_MAX_PARAMETERS = 25


# --- the files ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name", NAMED_QUERIES)
def test_each_query_is_trino_sql_with_parameters_only_in_where_clauses(name, demo_plant):
    sql = render(sql_file(name).read_text(), database="mes_lake", plant=demo_plant)
    (tree,) = sqlglot.parse(sql, read="trino")
    placeholders = list(tree.find_all(exp.Placeholder))
    assert 0 < len(placeholders) <= ATHENA_CONSOLE_MAX_PARAMETERS
    assert all(p.find_ancestor(exp.Where) is not None for p in placeholders), name
    assert "${" not in sql and '"mes_lake".' in sql
    assert sql_file(name).read_text().startswith("-- ")  # the named query's description


# --- OEE --------------------------------------------------------------------------------------


def _station_events(simulated):
    return {
        path: StationEvents(simulated.states.get(path, []), simulated.counts.get(path, []))
        for path in {*simulated.states, *simulated.counts}
    }


def expected_oee(simulated, first: date, last: date) -> dict[tuple, object]:
    """(scope, line, start_ms) -> the KPI calculator's KpiResult, shift by shift, plus each
    line over all the shifts rolled up as the calculator rolls stations up."""
    plant, site = simulated.plant, simulated.site
    zone = ZoneInfo(site.timezone)
    start = int(datetime.combine(first, datetime.min.time(), zone).timestamp() * 1000)
    end = int(datetime.combine(last, datetime.max.time(), zone).timestamp() * 1000)
    events = _station_events(simulated)
    expected, per_line = {}, defaultdict(list)
    windows = [
        w
        for w in shift_windows(site, start, end)
        if first <= datetime.fromtimestamp(w.start_ms / 1000, zone).date() <= last
    ]
    for window in windows:
        kpis = compute(plant, events, Period.SHIFT, window.name, window.start_ms, window.end_ms)
        for kpi in kpis:
            if kpi.scope.level == "line":
                expected[("line_shift", kpi.scope.line, window.start_ms)] = kpi.result
            elif kpi.scope.level == "site":
                expected[("site_shift", None, window.start_ms)] = kpi.result
            else:
                cycle = plant.station(*[getattr(kpi.scope, k) for k in ("site", "line", "station")])
                per_line[kpi.scope.line].append((kpi.result, cycle.station.ideal_cycle_time_s))
    first_start = min(w.start_ms for w in windows)
    for line, results in per_line.items():
        expected[("line", line, first_start)] = _rollup(results)
    return expected


def oee_mismatches(rows: list[dict], expected: dict) -> list[str]:
    problems = []
    got = {(r["scope"], r["line"], r["start_ms"]): r for r in rows}
    if set(got) != set(expected):
        problems.append(f"rows {sorted(set(got) ^ set(expected), key=str)}")
    for key in set(got) & set(expected):
        row, result = got[key], expected[key]
        for name in (*RATIOS, "planned_busy_time_s", "actual_production_time_s"):
            if not is_close(row[name], getattr(result, name)):
                problems.append(f"{key} {name}: {row[name]} != {getattr(result, name)}")
        for name in ("produced_quantity", "good_quantity"):
            if row[name] != getattr(result, name):
                problems.append(f"{key} {name}: {row[name]} != {getattr(result, name)}")
    return problems


OEE_PARAMETERS = ["berlin", THURSDAY.isoformat(), FRIDAY.isoformat()] * 3


def test_oee_by_line_and_shift_equals_the_kpi_calculator(duck, simulated, demo_plant):
    rows = run(duck, "oee_by_line_and_shift", demo_plant, OEE_PARAMETERS)
    expected = expected_oee(simulated, THURSDAY, FRIDAY)
    assert oee_mismatches(rows, expected) == []
    # Thursday's night shift, Friday's early and late (no night shift on Friday), and Thursday's
    # early and late with no events at all: every line and the site, and each line overall.
    lines = len(simulated.site.lines)
    assert len(rows) == 5 * (lines + 1) + lines
    empty = [
        r
        for r in rows
        if r["scope"] == "line_shift"
        and r["start_ms"] < simulated.start_ms
        and r["shift"] != "night"
    ]
    assert len(empty) == 2 * lines
    for row in empty:  # no planned time: NULL, not 0 and not a division error
        assert all(row[name] is None for name in RATIOS)
        assert NO_PLANNED_TIME in expected[(row["scope"], row["line"], row["start_ms"])].flags
    # The machining line runs faster than its ideal cycle: reported above 1, never clamped.
    machining = [r for r in rows if r["line"] == "machining-line-1" and r["performance"]]
    assert machining and all(r["performance"] > 1.05 for r in machining)
    assert all(0 < r["oee"] < 1 for r in rows if r["line"] == "body-line-1" and r["oee"])


def test_monday_shifts_take_the_state_set_on_friday(duck, simulated, demo_plant):
    """The stations went OFFLINE after Friday's late shift and reported nothing since: Monday's
    shifts are scheduled time lost (availability 0), not unknown time. A two-day lookback
    would miss Friday's change and report no planned time instead."""
    monday = FRIDAY + timedelta(days=3)
    parameters = ["berlin", monday.isoformat(), monday.isoformat()] * 3
    expected = expected_oee(simulated, monday, monday)
    rows = run(duck, "oee_by_line_and_shift", demo_plant, parameters)
    assert oee_mismatches(rows, expected) == []
    assert {r["availability"] for r in rows} == {0.0} and len(rows) == 3 * 3 + 2

    sql = sql_file("oee_by_line_and_shift").read_text()
    assert sql.count("INTERVAL '7' DAY") == 1
    short = run(
        duck,
        "oee_by_line_and_shift",
        demo_plant,
        parameters,
        sql=sql.replace("INTERVAL '7' DAY", "INTERVAL '2' DAY"),
    )
    assert oee_mismatches(short, expected) != []


@pytest.mark.parametrize(
    "wrong, replacement",
    [
        # A planned stop counted as an availability loss.
        ("'SETUP', 'OFFLINE')", "'SETUP', 'OFFLINE', 'PLANNED_STOP')"),
        # Duplicate part counts counted twice.
        (
            "SELECT DISTINCT line, station, ts, good, bad, order_id",
            "SELECT line, station, ts, good, bad, order_id",
        ),
        # Of two states at one instant, the first by name wins instead of the last.
        ("ORDER BY state DESC, coalesce(reason_code, '') DESC", "ORDER BY state"),
        # A count at a shift's end taken into that shift.
        ("c.ts >= w.start_ms AND c.ts < w.end_ms", "c.ts > w.start_ms AND c.ts <= w.end_ms"),
    ],
)
def test_a_wrong_definition_gives_another_oee(duck, simulated, demo_plant, wrong, replacement):
    """The comparison can fail: each deliberate error in the query is caught."""
    sql = sql_file("oee_by_line_and_shift").read_text()
    assert sql.count(wrong) == 1
    rows = run(
        duck,
        "oee_by_line_and_shift",
        demo_plant,
        OEE_PARAMETERS,
        sql=sql.replace(wrong, replacement),
    )
    assert oee_mismatches(rows, expected_oee(simulated, THURSDAY, FRIDAY)) != []


# --- downtime Pareto --------------------------------------------------------------------------


@pytest.mark.parametrize("line_index", [0, 1])
def test_downtime_pareto_equals_the_kpi_pareto_of_the_line(duck, simulated, demo_plant, line_index):
    site = simulated.site
    line = site.lines[line_index]
    early, late = shift_windows(site, simulated.start_ms, simulated.end_ms)[-2:]
    assert (early.name, late.name, early.end_ms) == ("early", "late", late.start_ms)
    seconds, occurrences = defaultdict(float), Counter()
    for station in line.stations:  # Friday's shifts are back to back: one window, 06:00-22:00
        states = simulated.states.get((site.id, line.id, station.id), [])
        for entry in downtime_pareto(states, early.start_ms, late.end_ms):
            seconds[entry.cause] += entry.seconds
            occurrences[entry.cause] += entry.occurrences
    expected = sorted(seconds, key=lambda cause: (-seconds[cause], cause))

    day = FRIDAY.isoformat()
    rows = run(duck, "downtime_pareto", demo_plant, [site.id, line.id, day, day] * 2)
    assert [r["cause"] for r in rows] == expected and len(expected) >= 5
    assert [r["rank"] for r in rows] == list(range(1, len(rows) + 1))
    for row in rows:
        assert is_close(row["seconds"], seconds[row["cause"]])
        assert row["occurrences"] == occurrences[row["cause"]]
    assert is_close(sum(r["share"] for r in rows), 1.0)
    assert is_close(rows[-1]["cumulative_share"], 1.0)
    assert {"OFFLINE", "BREAK", "PLANNED_STOP"}.isdisjoint(seconds)  # not causes of loss


# --- quality ------------------------------------------------------------------------------------


def test_first_pass_yield_by_model_version_equals_the_kpi(duck, simulated, demo_plant):
    day = simulated.day.isoformat()
    rows = run(duck, "first_pass_yield_by_model_version", demo_plant, ["berlin", day, day])
    expected = {}
    for (_, line, station), results in simulated.inspections.items():
        for version in {r.model_version for r in results}:
            mine = [r for r in results if r.model_version == version and lake.day_of(r.ts) == day]
            parts = {r.part_id for r in mine if r.verdict is not Verdict.ERROR}
            errors = sum(r.verdict is Verdict.ERROR for r in mine)
            expected[(line, station, version)] = (first_pass_yield(mine), len(parts), errors)
    got = {
        (r["line"], r["station"], r["model_version"]): (
            r["first_pass_yield"],
            r["parts"],
            r["error_results"],
        )
        for r in rows
    }
    assert got.keys() == expected.keys() and len(got) == 2
    for key, (fpy, parts, errors) in expected.items():
        assert is_close(got[key][0], fpy) and got[key][1:] == (parts, errors), key
    # The newer model passes more parts first time in this simulation.
    yields = sorted((version, values[0]) for (_, _, version), values in got.items())
    assert yields[0][1] < yields[1][1]


def test_defects_by_station_and_kind_count_each_report_once(duck, simulated, demo_plant):
    day = simulated.day.isoformat()
    rows = run(duck, "defects_by_station_and_kind", demo_plant, ["berlin", day, day])
    unique = {r.ncr_id: r for r in simulated.nonconformances}
    assert len(unique) < len(simulated.nonconformances)  # some were delivered twice
    reports = Counter((r.line, r.station, r.defect_code, r.source.value) for r in unique.values())
    parts = defaultdict(set)
    for r in unique.values():
        parts[(r.line, r.station, r.defect_code, r.source.value)].add(r.part_id)
    got = {(r["line"], r["station"], r["kind"], r["source"]): r for r in rows}
    assert got.keys() == reports.keys()
    for key, count in reports.items():
        assert (got[key]["nonconformances"], got[key]["parts"]) == (count, len(parts[key]))
    assert {"VISION", "MANUAL", "TEST"} == {r["source"] for r in rows}


# --- telemetry ----------------------------------------------------------------------------------


def tag_hours(duck, simulated, demo_plant, station, tag):
    """The simulated readings of one tag (index, UTC hour of each) and the query's rows."""
    telemetry = simulated.telemetry
    i = next(
        k
        for k, (s, t) in enumerate(zip(telemetry.station, telemetry.tag, strict=True))
        if (s, t) == (station, tag)
    )
    day = simulated.day.isoformat()
    rows = run(
        duck,
        "hourly_tag_aggregates",
        demo_plant,
        ["berlin", day, day, telemetry.line[i], station, tag],
    )
    hours = telemetry.ts[i] // 3_600_000
    assert [r["hour_start_ms"] for r in rows] == [int(h) * 3_600_000 for h in np.unique(hours)]
    return i, hours, rows


@pytest.mark.parametrize(
    "station, tag, kind",
    [
        ("press-01", "ram_force", float),
        ("pack-01", "parts_per_box", int),
        ("assembly-01", "fixture_clamped", bool),
    ],
)
def test_hourly_tag_aggregates_equal_numpy(duck, simulated, demo_plant, station, tag, kind):
    i, hours, rows = tag_hours(duck, simulated, demo_plant, station, tag)
    readings = simulated.telemetry.values[i]
    assert type(readings[0].item()) is kind
    values = readings.astype(np.float64)
    for row in rows:
        members = hours == row["hour_start_ms"] // 3_600_000
        hour = values[members]
        assert row["readings"] == row["numeric_readings"] == hour.size
        assert (row["min_value"], row["max_value"]) == (hour.min(), hour.max())
        assert math.isclose(row["mean_value"], hour.mean(), rel_tol=1e-12)
        assert math.isclose(row["stddev_value"], hour.std(ddof=1), rel_tol=1e-9)
        last = readings[members][-1].item()
        # A number is kept once (value_number); a boolean has its text too.
        assert (row["last_number"], row["last_text"]) == (
            float(last),
            "true" if last is True else "false" if last is False else None,
        )


def test_hourly_aggregates_of_a_string_tag_count_and_keep_its_last_text(
    duck, simulated, demo_plant
):
    i, hours, rows = tag_hours(duck, simulated, demo_plant, "cnc-01", "program_number")
    readings = simulated.telemetry.values[i]
    for row in rows:
        hour = readings[hours == row["hour_start_ms"] // 3_600_000]
        assert row["readings"] == hour.size and row["numeric_readings"] == 0
        assert row["mean_value"] is None and row["last_number"] is None
        assert row["last_text"] == str(hour[-1])


# --- genealogy ----------------------------------------------------------------------------------


@pytest.mark.parametrize("line_index", [0, 1])
def test_order_genealogy_is_the_simulated_tree(duck, simulated, demo_plant, line_index):
    order = simulated.orders[line_index]
    truth = simulated.genealogy[order.order_id]
    rows = run(duck, "order_genealogy", demo_plant, [order.site, order.order_id] * 3)
    by_node = defaultdict(list)
    for row in rows:
        by_node[row["node"]].append(row)
    (root,) = by_node["order"]
    assert (root["item_id"], root["quantity"], root["depth"]) == (truth.material_id, 5000.0, 0)
    operations = {r["operation_no"]: r["station"] for r in by_node["operation"]}
    assert operations == {no: station for no, (station, _) in truth.operations.items()}
    materials = sorted(
        (r["operation_no"], r["item_id"], r["quantity"]) for r in by_node["material"]
    )
    assert materials == sorted(
        (no, material, quantity)
        for no, (_, lots) in truth.operations.items()
        for material, _, quantity in lots
    )
    station_operation = {station: no for no, (station, _) in truth.operations.items()}
    reports = {r.ncr_id: r for r in simulated.nonconformances if r.order_id == order.order_id}
    assert sorted(
        (r["operation_no"], r["station"], r["item_id"]) for r in by_node["nonconformance"]
    ) == sorted((station_operation[r.station], r.station, r.part_id) for r in reports.values())
    assert reports and all(r["depth"] == 2 for r in by_node["nonconformance"])
    assert rows[0]["node"] == "order"  # the root first, then operation by operation


def test_every_glue_table_is_a_view(duck):
    views = duck.execute(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = ?", [DATABASE]
    ).fetchall()
    assert {name for (name,) in views} == set(lake.TABLES_BY_NAME)
