"""Reading events from Timestream query results, and emitting KPIs as EMF."""

import json

import pytest

from lambdas.kpi_calculator.adapters import (
    TimestreamEventSource,
    emit_metrics,
    rows,
    to_events,
)
from lambdas.kpi_calculator.calculate import Period, compute
from tests.lambdas.kpi_calculator.conftest import NOW_MS, PRESS

COLUMNS = ["site", "line", "station", "measure_name", "ts", "state", "reason_code", "good", "bad"]


def page(*data_rows, token=None):
    result = {
        "ColumnInfo": [{"Name": name, "Type": {"ScalarType": "VARCHAR"}} for name in COLUMNS],
        "Rows": [
            {"Data": [{"NullValue": True} if v is None else {"ScalarValue": str(v)} for v in row]}
            for row in data_rows
        ],
    }
    return {**result, "NextToken": token} if token else result


STATE_ROW = [*PRESS, "state", NOW_MS - 100, "UNPLANNED_STOP", "JAM", None, None]
COUNT_ROW = [*PRESS, "count", NOW_MS - 50, None, None, 4, 1]


def test_rows_and_events_from_query_pages():
    skipped = []
    events = to_events(rows([page(STATE_ROW), page(COUNT_ROW)]), skipped)
    press = events[PRESS]
    assert press.states[0].state == "UNPLANNED_STOP" and press.states[0].reason_code == "JAM"
    assert (press.counts[0].good, press.counts[0].bad) == (4, 1)
    assert skipped == []


def test_a_row_that_no_longer_validates_is_skipped_and_named():
    bad = [*PRESS, "state", NOW_MS, "EXPLODED", None, None, None]
    skipped = []
    events = to_events(rows([page(bad, STATE_ROW)]), skipped)
    assert len(events[PRESS].states) == 1
    assert len(skipped) == 1 and skipped[0].startswith("berlin/body-line-1/press-01 at")


class StubQuery:
    """Timestream Query as seen by the adapter: pages behind NextToken, SQL recorded."""

    def __init__(self, pages):
        self.pages, self.sql, self.tokens = list(pages), [], []

    def query(self, QueryString, NextToken=None):  # noqa: N803 - boto3's keyword names
        self.sql.append(QueryString)
        self.tokens.append(NextToken)
        return self.pages.pop(0)


def test_the_source_reads_the_state_before_the_window_and_every_page_inside_it():
    stub = StubQuery([page(STATE_ROW), page(COUNT_ROW, token="t1"), page(COUNT_ROW)])
    source = TimestreamEventSource("db", "events", query_client=stub)
    events = source.read(NOW_MS, NOW_MS + 900_000)
    assert len(events[PRESS].states) == 1 and len(events[PRESS].counts) == 2
    assert "max_by(state, time)" in stub.sql[0] and f"< from_milliseconds({NOW_MS})" in stub.sql[0]
    assert f"time < from_milliseconds({NOW_MS + 900_000})" in stub.sql[1]
    assert stub.tokens == [None, None, "t1"]


def emf_documents(capsys):
    return [json.loads(line) for line in capsys.readouterr().out.splitlines() if "_aws" in line]


def test_metrics_carry_the_scope_dimensions_and_the_window_end(demo_plant, capsys):
    start, end = NOW_MS - 900_000, NOW_MS
    kpis = compute(demo_plant, {}, Period.WINDOW, "w", start, end)
    emit_metrics(kpis, "MES/KPI")
    documents = emf_documents(capsys)
    assert len(documents) == len(kpis) == 11
    station = next(d for d in documents if d.get("station") == "press-01")
    assert station["_aws"]["Timestamp"] == end
    (directive,) = station["_aws"]["CloudWatchMetrics"]
    assert directive["Namespace"] == "MES/KPI"
    assert directive["Dimensions"] == [["site", "line", "station"]]
    assert station["GoodParts"] == [0] and "Performance" not in station  # undefined: not sent
    site = next(d for d in documents if "line" not in d)
    assert site["_aws"]["CloudWatchMetrics"][0]["Dimensions"] == [["site"]]


def test_query_failures_become_write_failed():
    from botocore.exceptions import ClientError

    from lambdas.common.timestream import WriteFailed

    class Failing:
        def query(self, **_):
            raise ClientError({"Error": {"Code": "ThrottlingException", "Message": "x"}}, "Query")

    with pytest.raises(WriteFailed, match="events query failed"):
        TimestreamEventSource("db", "events", query_client=Failing()).read(0, 1)
