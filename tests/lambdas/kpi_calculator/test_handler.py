"""The KPI calculator under moto: metrics and records per window, and idempotent re-runs."""

import json

import boto3
import pytest
from moto import mock_aws

from lambdas.common.aws import client as aws_clients
from lambdas.common.timestream import TimestreamRecordWriter
from lambdas.kpi_calculator import handler
from lambdas.kpi_calculator.calculate import StationEvents
from lambdas.kpi_calculator.settings import EnvVar
from tests.lambdas.conftest import LambdaContext
from tests.lambdas.kpi_calculator.conftest import NOW_ISO, PRESS, count, state

DATABASE, KPI_TABLE, IDEMPOTENCY_TABLE = "mes_demo", "kpis", "kpi-idempotency"


class StubEvents:
    """The store's events: the press runs from before the first window and makes parts."""

    def __init__(self):
        self.skipped, self.reads = [], []

    def read(self, start_ms, end_ms):
        self.reads.append((start_ms, end_ms))
        return {
            PRESS: StationEvents(
                states=[state(start_ms - 1_000, "RUNNING")],
                counts=[count(start_ms + 1_000, 100, 5)],
            )
        }


@pytest.fixture
def aws(monkeypatch, tmp_path, demo_plant, fake_credentials):
    plant_file = tmp_path / "plant.json"
    plant_file.write_text(demo_plant.model_dump_json())
    environment = {
        EnvVar.TIMESTREAM_DATABASE: DATABASE,
        EnvVar.EVENTS_TABLE: "events",
        EnvVar.KPI_TABLE: KPI_TABLE,
        EnvVar.IDEMPOTENCY_TABLE: IDEMPOTENCY_TABLE,
        EnvVar.METRICS_NAMESPACE: "MES/KPI",
        EnvVar.PLANT_FILE: str(plant_file),
    }
    for key, value in environment.items():
        monkeypatch.setenv(key, value)
    caches = (
        aws_clients,
        handler.settings,
        handler.plant,
        handler.ports,
        handler.idempotent_publish,
    )
    with mock_aws():
        timestream = boto3.client("timestream-write")
        timestream.create_database(DatabaseName=DATABASE)
        timestream.create_table(DatabaseName=DATABASE, TableName=KPI_TABLE)
        boto3.client("dynamodb").create_table(
            TableName=IDEMPOTENCY_TABLE,
            KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        for cached in caches:
            cached.cache_clear()
        events = StubEvents()
        monkeypatch.setattr(
            handler, "ports", lambda: (events, TimestreamRecordWriter(DATABASE, KPI_TABLE))
        )
        yield events
        for cached in caches:
            cached.cache_clear()


def kpi_records(period):
    from moto.timestreamwrite.models import timestreamwrite_backends

    backend = timestreamwrite_backends["123456789012"]["eu-central-1"]
    records = backend.databases[DATABASE].tables[KPI_TABLE].records
    return [r for r in records if {"Name": "period", "Value": period} in r["Dimensions"]]


def emitted(capsys):
    lines = capsys.readouterr().out.splitlines()
    return [json.loads(line) for line in lines if '"CloudWatchMetrics"' in line]


def test_a_run_publishes_the_closed_windows_and_the_current_shift(aws, capsys):
    summary = handler.lambda_handler({"time": NOW_ISO}, LambdaContext())

    assert [w["records"] for w in summary["windows"]] == [11, 11, 11]
    assert len(kpi_records("window")) == 33
    assert len(kpi_records("shift")) == 11 and summary["shift_records"] == 11
    documents = emitted(capsys)
    assert len(documents) == 33  # 11 scopes x 3 windows; the running shift is not emitted
    press = [d for d in documents if d.get("station") == "press-01"]
    assert [d["GoodParts"] for d in press] == [[100], [100], [100]]
    assert [d["BadParts"] for d in press] == [[5], [5], [5]]
    assert all(d["Availability"] == [100] for d in press)


def test_running_the_same_schedule_twice_doubles_nothing(aws, capsys):
    handler.lambda_handler({"time": NOW_ISO}, LambdaContext())
    first = emitted(capsys)
    reads = len(aws.reads)

    again = handler.lambda_handler({"time": NOW_ISO}, LambdaContext())

    assert emitted(capsys) == []  # no metric is emitted twice
    assert len(kpi_records("window")) == 33  # no window record is written twice
    assert [w["records"] for w in again["windows"]] == [11, 11, 11]  # the saved results
    assert len(aws.reads) == reads + 1  # only the running shift is read again
    assert len(first) == 33
