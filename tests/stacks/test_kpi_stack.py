"""KpiStack as synthesized: the schedule, the calculator's access, the dashboard, the alarms."""

import json

from aws_cdk.assertions import Match

from lambdas.kpi_calculator.settings import EnvVar


def test_the_calculator_runs_on_the_configured_window(kpi_template, demo_plant):
    minutes = demo_plant.kpi.window_minutes
    kpi_template.has_resource_properties(
        "AWS::Events::Rule",
        {
            "ScheduleExpression": f"rate({minutes} minutes)",
            "State": "ENABLED",
            "Targets": [
                Match.object_like(
                    {
                        "RetryPolicy": {
                            "MaximumRetryAttempts": 2,
                            "MaximumEventAgeInSeconds": 60 * minutes,
                        },
                        "DeadLetterConfig": {"Arn": Match.any_value()},
                    }
                )
            ],
        },
    )


def test_the_calculator_reads_events_writes_kpis_and_knows_the_plant(kpi_template):
    functions = kpi_template.find_resources(
        "AWS::Lambda::Function",
        {"Properties": {"Handler": "lambdas.kpi_calculator.handler.lambda_handler"}},
    )
    (function,) = functions.values()
    environment = function["Properties"]["Environment"]["Variables"]
    assert environment[EnvVar.EVENTS_TABLE] == "events" and environment[EnvVar.KPI_TABLE] == "kpis"
    assert environment[EnvVar.METRICS_NAMESPACE] == "MES/KPI"
    assert len(function["Properties"]["Layers"]) == 2  # dependencies and the plant config
    assert function["Properties"]["DeadLetterConfig"]["TargetArn"]

    statements = [
        s
        for policy in kpi_template.find_resources("AWS::IAM::Policy").values()
        for s in policy["Properties"]["PolicyDocument"]["Statement"]
    ]
    by_action = {json.dumps(s["Action"]): s["Resource"] for s in statements}
    # Only the events table is read and only the kpis table written (both from the IIoT stack).
    assert "TimeSeriesEventsTable" in json.dumps(by_action['"timestream:Select"'])
    assert "TimeSeriesKpiTable" in json.dumps(by_action['"timestream:WriteRecords"'])


def test_the_plant_config_layer_holds_the_validated_plant(synthesized, demo_plant):
    from pathlib import Path

    from mes_domain.plant import Plant

    _, assembly = synthesized
    (plant_file,) = Path(assembly.directory).glob("asset.*/plant/plant.json")
    assert Plant.model_validate_json(plant_file.read_text()) == demo_plant


def test_idempotency_table_is_encrypted_expiring_and_recoverable(kpi_template):
    kpi_template.has_resource_properties(
        "AWS::DynamoDB::Table",
        {
            "KeySchema": [{"AttributeName": "id", "KeyType": "HASH"}],
            "BillingMode": "PAY_PER_REQUEST",
            "TimeToLiveSpecification": {"AttributeName": "expiration", "Enabled": True},
            "SSESpecification": Match.object_like({"SSEEnabled": True, "SSEType": "KMS"}),
            "PointInTimeRecoverySpecification": {"PointInTimeRecoveryEnabled": True},
        },
    )


def test_dashboard_shows_kpis_per_line_and_station_and_the_pipeline(kpi_template, demo_plant):
    (dashboard,) = kpi_template.find_resources("AWS::CloudWatch::Dashboard").values()
    body = json.dumps(dashboard["Properties"]["DashboardBody"])
    for line in demo_plant.sites[0].lines:
        assert f"berlin/{line.id}: OEE by station" in body
        for station in line.stations:
            assert f'\\"station\\",\\"{station.id}\\"' in body
    for title in (
        "berlin: OEE by line",
        "berlin: availability, performance, quality",
        "berlin: good and bad parts by line",
        "Telemetry stream iterator age",
        "Lambda errors and throttles",
        "Dead-letter queue depth",
    ):
        assert title in body


def test_alarms_on_iterator_age_and_every_dead_letter_queue_go_to_the_alarm_topic(kpi_template):
    alarms = kpi_template.find_resources("AWS::CloudWatch::Alarm")
    names = {
        a["Properties"].get("MetricName")
        or a["Properties"]["Metrics"][0]["MetricStat"]["Metric"]["MetricName"]
        for a in alarms.values()
    }
    assert names == {"GetRecords.IteratorAgeMilliseconds", "ApproximateNumberOfMessagesVisible"}
    dead_letter_alarms = sorted(
        key.removeprefix("PlantDashboard").split("Alarm")[0]
        for key in alarms
        if "IteratorAge" not in key
    )
    assert dead_letter_alarms == [
        "EnterpriseArrivalsDeadLetters", "EnterpriseUndelivered", "KpiFailedRuns",
        "QualityResultsDeadLetters", "TelemetryDeadLetters", "TelemetryFailedBatches",
    ]  # fmt: skip
    assert len(alarms) == 1 + len(dead_letter_alarms)
    for alarm in alarms.values():
        properties = alarm["Properties"]
        assert "AlarmsTopic" in json.dumps(properties["AlarmActions"])
        assert properties["TreatMissingData"] == "notBreaching"
    kpi_template.has_resource_properties(
        "AWS::CloudWatch::Alarm",
        {"MetricName": "GetRecords.IteratorAgeMilliseconds", "Threshold": 300000},
    )
