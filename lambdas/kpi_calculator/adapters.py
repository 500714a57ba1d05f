"""Adapters of the KPI calculator: the events it reads, the metrics it emits, and the rows it
puts on the platform bus for the data lake."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterator, Sequence
from typing import Any, Protocol

from aws_lambda_powertools.metrics import EphemeralMetrics, MetricUnit
from botocore.exceptions import BotoCoreError, ClientError
from pydantic import ValidationError

from lambdas.common.aws import client
from lambdas.common.timestream import WriteFailed
from lambdas.kpi_calculator.calculate import ScopedKpi, StationEvents, StationPath
from mes_domain.contracts import PartCount, StateChange
from mes_domain.lake import KPI_EVENT_DETAIL_TYPE, KPI_EVENT_SOURCE

# How far back to look for the state in force at a window's start.
STATE_LOOKBACK_HOURS = 7 * 24


class EventSource(Protocol):
    def read(self, start_ms: int, end_ms: int) -> dict[StationPath, StationEvents]: ...


def window_query(database: str, table: str, start_ms: int, end_ms: int) -> str:
    return (
        "SELECT site, line, station, measure_name, to_milliseconds(time) AS ts, "
        "state, reason_code, good, bad, order_id "
        f'FROM "{database}"."{table}" '
        f"WHERE time >= from_milliseconds({int(start_ms)}) "
        f"AND time < from_milliseconds({int(end_ms)}) "
        "AND measure_name IN ('state', 'count')"
    )


def state_before_query(database: str, table: str, start_ms: int) -> str:
    """Each station's last state change before ``start_ms``: the state in force at the start."""
    return (
        "SELECT site, line, station, 'state' AS measure_name, "
        "max(to_milliseconds(time)) AS ts, max_by(state, time) AS state, "
        "max_by(reason_code, time) AS reason_code "
        f'FROM "{database}"."{table}" '
        f"WHERE time < from_milliseconds({int(start_ms)}) "
        f"AND time >= from_milliseconds({int(start_ms)}) - {STATE_LOOKBACK_HOURS}h "
        "AND measure_name = 'state' GROUP BY site, line, station"
    )


def rows(pages: Sequence[dict]) -> Iterator[dict[str, str | None]]:
    """Timestream query result pages as dicts of column name to scalar text (None for null)."""
    for page in pages:
        names = [column["Name"] for column in page.get("ColumnInfo", [])]
        for row in page.get("Rows", []):
            values = [None if d.get("NullValue") else d.get("ScalarValue") for d in row["Data"]]
            yield dict(zip(names, values, strict=True))


def to_events(
    result_rows: Iterator[dict[str, str | None]], skipped: list[str]
) -> dict[StationPath, StationEvents]:
    """Contract objects per station; a row that no longer validates is skipped and named."""
    events: dict[StationPath, StationEvents] = defaultdict(StationEvents)
    for row in result_rows:
        path = (row["site"], row["line"], row["station"])
        try:
            if row["measure_name"] == "state":
                events[path].states.append(
                    StateChange(
                        v=1, ts=int(row["ts"]), state=row["state"], reason_code=row["reason_code"]
                    )
                )
            else:
                events[path].counts.append(
                    PartCount(
                        v=1,
                        ts=int(row["ts"]),
                        good=int(row["good"]),
                        bad=int(row["bad"]),
                        order_id=row.get("order_id"),
                    )
                )
        except (ValidationError, TypeError, ValueError) as err:
            skipped.append(f"{'/'.join(map(str, path))} at {row.get('ts')}: {err}")
    return dict(events)


class TimestreamEventSource:
    def __init__(self, database: str, table: str, query_client: Any | None = None) -> None:
        self._database = database
        self._table = table
        self._client = query_client
        self.skipped: list[str] = []

    def _pages(self, sql: str) -> list[dict]:
        query = self._client or client("timestream-query")
        pages, token = [], None
        try:
            while True:
                page = query.query(QueryString=sql, **({"NextToken": token} if token else {}))
                pages.append(page)
                token = page.get("NextToken")
                if not token:
                    return pages
        except (ClientError, BotoCoreError) as err:
            raise WriteFailed(f"events query failed: {err}") from err

    def read(self, start_ms: int, end_ms: int) -> dict[StationPath, StationEvents]:
        before = self._pages(state_before_query(self._database, self._table, start_ms))
        inside = self._pages(window_query(self._database, self._table, start_ms, end_ms))
        return to_events(rows([*before, *inside]), self.skipped)


RATIO_METRICS = {"availability": "Availability", "performance": "Performance"}
RATIO_METRICS |= {"quality": "Quality", "oee": "OEE"}


def emit_metrics(kpis: Sequence[ScopedKpi], namespace: str) -> None:
    """One EMF document per scope, stamped with the window's end; dimensions are the scope's
    levels, so a station, a line and a site are separate series."""
    for kpi in kpis:
        metrics = EphemeralMetrics(namespace=namespace)
        for name, value in kpi.scope.dimensions().items():  # one dimension set, no empty one
            metrics.add_dimension(name=name, value=value)
        metrics.set_timestamp(kpi.end_ms)
        result = kpi.result
        for field_name, metric_name in RATIO_METRICS.items():
            value = getattr(result, field_name)
            if value is not None:
                metrics.add_metric(name=metric_name, unit=MetricUnit.Percent, value=100 * value)
        good, produced = result.good_quantity, result.produced_quantity
        metrics.add_metric(name="GoodParts", unit=MetricUnit.Count, value=good)
        metrics.add_metric(name="BadParts", unit=MetricUnit.Count, value=produced - good)
        downtime = sum(result.downtime_by_state_s.values())
        metrics.add_metric(name="Downtime", unit=MetricUnit.Seconds, value=downtime)
        metrics.flush_metrics()


# "Entries: ... Array Members: Minimum number of 1 item. Maximum number of 10 items."
# (EventBridge API reference, PutEvents).
MAX_ENTRIES_PER_PUT = 10


def publish_lake_rows(event_bus_name: str, lake_rows: Sequence[dict]) -> None:
    """Put each KPI row on the bus (the data lake's rule takes them); any rejected entry fails
    the whole call, so the window is retried (rows are at least once: a query keeps the one
    with the latest ``computed_at_ms``)."""
    entries = [
        {
            "Source": KPI_EVENT_SOURCE,
            "DetailType": KPI_EVENT_DETAIL_TYPE,
            "Detail": json.dumps(row, separators=(",", ":")),
            "EventBusName": event_bus_name,
        }
        for row in lake_rows
    ]
    for start in range(0, len(entries), MAX_ENTRIES_PER_PUT):
        try:
            response = client("events").put_events(
                Entries=entries[start : start + MAX_ENTRIES_PER_PUT]
            )
        except (ClientError, BotoCoreError) as err:
            raise WriteFailed(f"KPI events not published: {err}") from err
        if response.get("FailedEntryCount"):
            failed = next(e for e in response["Entries"] if e.get("ErrorCode"))
            raise WriteFailed(
                f"{response['FailedEntryCount']} KPI event(s) rejected: "
                f"{failed.get('ErrorCode')} {failed.get('ErrorMessage')}"
            )
