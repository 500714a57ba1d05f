"""The lake's named Athena queries: one ``<name>.sql`` file each (Athena engine v3, Trino SQL).

The files hold three placeholders, filled at synth from the plant config by ``render``:

- ``${database}``: the Glue database;
- ``${stations}``: rows ``(site, line, station, ideal_cycle_time_s)`` of every configured
  station (OEE needs the ideal cycle time, which no event carries; the KPI calculator reads it
  from the same config);
- ``${shift_calendar}``: rows ``(site, time_zone, shift, start_clock, end_clock, iso_weekday)``,
  one per shift and weekday (1 = Monday), as ``mes_domain.kpi.shift_windows`` reads the calendar.

Everything a user chooses (site, line, days, order, tag) is an execution parameter ``?``: Athena
allows them only in WHERE clauses and assigns them by position, so a query that reads three
tables asks for the same values three times; each file's header lists its parameters in order.

Pure Python (the plant model only): the DataLake stack, the tests and the benchmark share it.
"""

from __future__ import annotations

from pathlib import Path
from string import Template

from mes_domain.plant import Plant

QUERY_DIRECTORY = Path(__file__).resolve().parent
NAMED_QUERIES = (
    "oee_by_line_and_shift",
    "downtime_pareto",
    "first_pass_yield_by_model_version",
    "defects_by_station_and_kind",
    "hourly_tag_aggregates",
    "order_genealogy",
)


def _text(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _double(value: float) -> str:
    # A plain 6.0 is a DECIMAL literal in Trino; with an exponent it is a DOUBLE, as in Python.
    text = repr(float(value))
    return text if "e" in text else f"{text}E0"


def stations_rows(plant: Plant) -> str:
    """The VALUES rows of ``${stations}``."""
    return ",\n        ".join(
        f"({_text(ref.site.id)}, {_text(ref.line.id)}, {_text(ref.station.id)}, "
        f"{_double(ref.station.ideal_cycle_time_s)})"
        for ref in plant.stations()
    )


def shift_calendar_rows(plant: Plant) -> str:
    """The VALUES rows of ``${shift_calendar}``: one per site, shift and weekday."""
    return ",\n        ".join(
        f"({_text(site.id)}, {_text(site.timezone)}, {_text(shift.name)}, "
        f"{_text(shift.start)}, {_text(shift.end)}, {day.index + 1})"
        for site in plant.sites
        for shift in site.shift_calendar.shifts
        for day in shift.days
    )


def sql_file(name: str) -> Path:
    if name not in NAMED_QUERIES:
        raise KeyError(f"no named query {name!r}; there are {', '.join(NAMED_QUERIES)}")
    return QUERY_DIRECTORY / f"{name}.sql"


def render(sql: str, *, database: str, plant: Plant) -> str:
    """The query text with its placeholders filled; an unknown placeholder is an error."""
    return Template(sql).substitute(
        database=database,
        stations=stations_rows(plant),
        shift_calendar=shift_calendar_rows(plant),
    )


def description(name: str) -> str:
    """The file's first comment line, for the named query's description."""
    first = sql_file(name).read_text().splitlines()[0]
    return first.removeprefix("--").strip()


def named_queries(*, database: str, plant: Plant) -> dict[str, str]:
    """Name -> rendered SQL of every named query."""
    return {
        name: render(sql_file(name).read_text(), database=database, plant=plant)
        for name in NAMED_QUERIES
    }
