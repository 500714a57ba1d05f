"""The KPI calculator's pure logic: windows, station KPIs, roll-ups and records."""

import json

import pytest

from lambdas.kpi_calculator.calculate import (
    Period,
    Scope,
    StationEvents,
    closed_windows,
    compute,
    current_shift,
    kpi_record,
)
from tests.lambdas.kpi_calculator.conftest import NOW_MS, PRESS, WELD, WINDOW_MS, count, state


def test_closed_windows_are_aligned_like_sitewise_and_end_before_now():
    windows = closed_windows(NOW_MS, 15, 3)
    last_end = NOW_MS - NOW_MS % WINDOW_MS
    assert windows == [
        (last_end - 3 * WINDOW_MS, last_end - 2 * WINDOW_MS),
        (last_end - 2 * WINDOW_MS, last_end - WINDOW_MS),
        (last_end - WINDOW_MS, last_end),
    ]
    assert closed_windows(last_end, 15, 1) == [(last_end - WINDOW_MS, last_end)]


def test_every_station_line_and_site_gets_kpis_and_idle_stations_count(demo_plant, window):
    start, end = window
    events = {
        PRESS: StationEvents(
            states=[state(start - 60_000, "RUNNING"), state(start + 600_000, "UNPLANNED_STOP")],
            counts=[count(start + 60_000, 90, 10)],
        )
    }
    kpis = compute(demo_plant, events, Period.WINDOW, "w", start, end)
    scopes = {k.scope: k.result for k in kpis}
    assert len(scopes) == 8 + 2 + 1
    press = scopes[Scope(*PRESS)]
    assert press.actual_production_time_s == 600
    assert press.planned_busy_time_s == 900
    assert press.availability == pytest.approx(600 / 900)
    assert press.performance == pytest.approx(6.0 * 100 / 600)
    assert press.quality == pytest.approx(0.9)
    weld = scopes[Scope(*WELD)]  # no events at all: nothing produced, nothing known
    assert weld.produced_quantity == 0 and weld.actual_production_time_s == 0


def test_a_line_is_rolled_up_from_time_elements_not_averaged(demo_plant, window):
    start, end = window
    events = {
        PRESS: StationEvents([state(start - 1, "RUNNING")], [count(start + 5, 150)]),
        WELD: StationEvents(
            [state(start - 1, "RUNNING"), state(start + 300_000, "IDLE")], [count(start + 5, 6, 2)]
        ),
    }
    kpis = {k.scope: k.result for k in compute(demo_plant, events, Period.WINDOW, "w", start, end)}
    line = kpis[Scope("berlin", "body-line-1")]
    press, weld = kpis[Scope(*PRESS)], kpis[Scope(*WELD)]
    assert line.planned_busy_time_s == press.planned_busy_time_s + weld.planned_busy_time_s
    assert line.actual_production_time_s == 900 + 300
    ideal = 6.0 * 150 + 45.0 * 8
    assert line.performance == pytest.approx(ideal / 1200)
    assert line.quality == pytest.approx(156 / 158)
    assert line.oee == pytest.approx(line.availability * line.performance * line.quality)
    site = kpis[Scope("berlin")]
    assert site.good_quantity == 156 and site.produced_quantity == 158


def test_the_running_shift_is_found_in_the_site_time_zone(demo_plant):
    name, start, end = current_shift(demo_plant.sites[0], NOW_MS)
    assert name == "early" and end == NOW_MS
    assert start == NOW_MS - (5 * 60 + 7) * 60_000  # 06:00 Berlin = 05:00 UTC in November


def test_a_record_omits_undefined_ratios_and_carries_a_version(demo_plant, window):
    start, end = window
    kpis = compute(demo_plant, {}, Period.WINDOW, "09:45", start, end)
    record = kpi_record(kpis[0], computed_at_ms=123)
    names = {m["Name"] for m in record["MeasureValues"]}
    assert not {"performance", "quality", "scrap_rate"} & names  # nothing produced
    assert {"planned_busy_time_s", "produced_quantity", "good_quantity"} <= names
    dimensions = {d["Name"]: d["Value"] for d in record["Dimensions"]}
    assert dimensions == {
        "level": "station",
        "site": "berlin",
        "line": "body-line-1",
        "station": "press-01",
        "period": "window",
        "label": "09:45",
    }
    assert record["Time"] == str(start) and record["Version"] == 123
    site_record = kpi_record(kpis[-1], 1)
    assert {d["Name"]: d["Value"] for d in site_record["Dimensions"]}["line"] == "-"


def test_failures_mtbf_mttr_and_pareto_per_station_and_rolled_up(demo_plant, window):
    start, end = window
    minute = 60_000
    press_states = [
        state(start - 1, "RUNNING"),
        state(start + 2 * minute, "UNPLANNED_STOP", "JAM"),
        state(start + 4 * minute, "RUNNING"),
        state(start + 10 * minute, "UNPLANNED_STOP", "MOTOR"),
        state(start + 11 * minute, "RUNNING"),
    ]
    weld_states = [state(start - 1, "RUNNING"), state(start + 5 * minute, "UNPLANNED_STOP")]
    events = {PRESS: StationEvents(press_states), WELD: StationEvents(weld_states)}
    kpis = {k.scope: k for k in compute(demo_plant, events, Period.WINDOW, "w", start, end)}

    press = kpis[Scope(*PRESS)]
    assert press.reliability.failures == 2
    assert press.reliability.mtbf_s == 12 * 60 / 2 and press.reliability.mttr_s == 3 * 60 / 2
    assert [e.cause for e in press.pareto] == ["JAM", "MOTOR"]

    line = kpis[Scope("berlin", "body-line-1")]
    assert line.reliability.failures == 3
    assert line.reliability.mtbf_s == (12 * 60 + 5 * 60) / 3
    assert line.reliability.mttr_s == (3 * 60 + 10 * 60) / 3

    measures = {m["Name"]: m["Value"] for m in kpi_record(press, 1)["MeasureValues"]}
    assert measures["failures"] == "2" and float(measures["mttr_s"]) == 90.0
    assert json.loads(measures["downtime_pareto"])[0] == {
        "cause": "JAM",
        "seconds": 120.0,
        "count": 1,
    }
    idle = kpis[Scope("berlin", "machining-line-1", "cnc-01")]
    idle_measures = {m["Name"] for m in kpi_record(idle, 1)["MeasureValues"]}
    assert "mtbf_s" not in idle_measures and "downtime_pareto" not in idle_measures


def test_records_carry_the_scrap_rate_of_what_was_produced(demo_plant, window):
    start, end = window
    events = {PRESS: StationEvents([state(start - 1, "RUNNING")], [count(start + 1000, 6, 2)])}
    kpis = compute(demo_plant, events, Period.WINDOW, "09:45", start, end)
    values = {m["Name"]: m["Value"] for m in kpi_record(kpis[0], 1)["MeasureValues"]}
    assert float(values["scrap_rate"]) == 2 / 8
    line = next(k for k in kpis if k.scope.level == "line" and k.scope.line == "body-line-1")
    line_values = {m["Name"]: m["Value"] for m in kpi_record(line, 1)["MeasureValues"]}
    assert float(line_values["scrap_rate"]) == 2 / 8  # the other stations produced nothing
