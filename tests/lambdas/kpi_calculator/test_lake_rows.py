"""The KPI calculator's rows for the data lake: the kpi_results table's columns, put on the
platform bus in PutEvents batches, once per closed window."""

from __future__ import annotations

import json

import boto3
import pytest
from moto import mock_aws

from lambdas.common.aws import client as aws_clients
from lambdas.common.timestream import WriteFailed
from lambdas.kpi_calculator import handler
from lambdas.kpi_calculator.adapters import MAX_ENTRIES_PER_PUT, publish_lake_rows
from lambdas.kpi_calculator.calculate import Period, Scope, StationEvents, compute, lake_row
from lambdas.kpi_calculator.settings import EnvVar
from mes_domain import lake
from tests.lambdas.conftest import LambdaContext
from tests.lambdas.kpi_calculator.conftest import NOW_ISO, PRESS, count, state
from tests.lambdas.kpi_calculator.test_handler import aws  # noqa: F401 (the handler fixture)

BUS = "mes-events"


def press_window(demo_plant, window):
    start, end = window
    events = {
        PRESS: StationEvents(
            [state(start - 1, "RUNNING"), state(start + 60_000, "UNPLANNED_STOP", "JAM")],
            [count(start + 1_000, 40, 2)],
        )
    }
    return compute(demo_plant, events, Period.WINDOW, "w", start, end)


def test_a_row_has_exactly_the_lake_tables_columns_and_partitions(demo_plant, window):
    kpis = press_window(demo_plant, window)
    columns = {c.name for c in lake.KPI_RESULTS.columns}
    for kpi in kpis:
        row = lake_row(kpi, 123)
        assert set(row) == columns | {"site", "dt"}
        assert row["dt"] == lake.day_of(kpi.start_ms)
    press = next(k for k in kpis if k.scope == Scope(*PRESS))
    row = lake_row(press, 123)
    assert (row["level"], row["line"], row["station"], row["period"]) == (
        "station",
        "body-line-1",
        "press-01",
        "window",
    )
    assert (row["good_quantity"], row["produced_quantity"]) == (40, 42)
    assert row["oee"] == press.result.oee and row["computed_at_ms"] == 123
    assert row["downtime_by_state_s"] == {
        "UNPLANNED_STOP": press.result.downtime_by_state_s["UNPLANNED_STOP"]
    }
    assert row["pareto"][0]["cause"] == "JAM" and row["failures"] == 1
    site = lake_row(kpis[-1], 123)
    assert (site["level"], site["line"], site["station"]) == ("site", "-", "-")
    json.dumps(row)  # the event's detail


@pytest.fixture
def bus_queue(fake_credentials):
    """A moto bus whose KPI events land in a queue, as the lake's rule would take them."""
    with mock_aws():
        aws_clients.cache_clear()
        events, sqs = boto3.client("events"), boto3.client("sqs")
        events.create_event_bus(Name=BUS)
        queue = sqs.create_queue(QueueName="kpi-events")["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])
        events.put_rule(
            Name="lake",
            EventBusName=BUS,
            EventPattern=json.dumps(
                {"source": [lake.KPI_EVENT_SOURCE], "detail-type": [lake.KPI_EVENT_DETAIL_TYPE]}
            ),
        )
        events.put_targets(
            Rule="lake",
            EventBusName=BUS,
            Targets=[{"Id": "q", "Arn": arn["Attributes"]["QueueArn"]}],
        )
        yield sqs, queue
        aws_clients.cache_clear()


def received(sqs, queue) -> list[dict]:
    messages = []
    while batch := sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10).get("Messages"):
        messages += [json.loads(m["Body"]) for m in batch]
        for m in batch:
            sqs.delete_message(QueueUrl=queue, ReceiptHandle=m["ReceiptHandle"])
    return messages


def test_rows_go_to_the_bus_in_batches_of_ten(bus_queue, demo_plant, window):
    sqs, queue = bus_queue
    rows = [lake_row(kpi, 123) for kpi in press_window(demo_plant, window)]
    assert len(rows) > MAX_ENTRIES_PER_PUT  # more than one PutEvents call
    publish_lake_rows(BUS, rows)
    events = received(sqs, queue)
    assert sorted(json.dumps(e["detail"], sort_keys=True) for e in events) == sorted(
        json.dumps(r, sort_keys=True) for r in rows
    )
    assert {e["source"] for e in events} == {"mes.kpi"}


def test_a_rejected_entry_fails_the_call(monkeypatch):
    class Rejecting:
        def put_events(self, Entries):
            return {
                "FailedEntryCount": 1,
                "Entries": [{"ErrorCode": "ThrottlingException", "ErrorMessage": "slow down"}],
            }

    monkeypatch.setattr("lambdas.kpi_calculator.adapters.client", lambda name: Rejecting())
    with pytest.raises(WriteFailed, match="ThrottlingException"):
        publish_lake_rows(BUS, [{"site": "berlin"}])


def test_closed_windows_reach_the_lake_once_and_the_running_shift_never(aws, monkeypatch):  # noqa: F811
    published = []
    monkeypatch.setenv(EnvVar.EVENT_BUS_NAME, BUS)
    handler.settings.cache_clear()
    monkeypatch.setattr(
        handler, "publish_lake_rows", lambda bus, rows: published.append((bus, rows))
    )

    handler.lambda_handler({"time": NOW_ISO}, LambdaContext())
    handler.lambda_handler({"time": NOW_ISO}, LambdaContext())  # the same schedule again

    assert [bus for bus, _ in published] == [BUS] * 3  # three windows, each once
    rows = [row for _, batch in published for row in batch]
    assert len(rows) == 33 and {r["period"] for r in rows} == {"window"}
