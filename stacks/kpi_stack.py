"""KpiStack: the scheduled KPI calculator, the plant dashboard and the pipeline alarms."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aws_cdk import CfnOutput, Stack
from aws_cdk import aws_events as events
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from mes_domain.plant import Plant
from stacks.constructs.kpi_calculator import METRICS_NAMESPACE, KpiCalculator
from stacks.constructs.lambda_packaging import LambdaPackaging
from stacks.constructs.plant_dashboard import PlantDashboard
from stacks.iiot_stack import IiotStack


class KpiStack(Stack):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        plant: Plant,
        iiot: IiotStack,
        data_key: kms.IKey,
        logs_key: kms.IKey,
        alarm_topic: sns.ITopic,
        packaging: LambdaPackaging,
        watched_functions: Mapping[str, lambda_.IFunction] = {},
        watched_dead_letters: Mapping[str, sqs.IQueue] = {},
        event_bus: events.IEventBus | None = None,
        **kwargs: Any,
    ) -> None:
        """``watched_*``: other capabilities' functions and dead-letter queues, shown on the
        dashboard and alarmed like the pipeline's own. ``event_bus``: where the calculator puts
        each closed window's KPI rows for the data lake."""
        super().__init__(scope, construct_id, **kwargs)
        store = iiot.timeseries
        self.kpi_calculator = KpiCalculator(
            self,
            "KpiCalculator",
            plant=plant,
            database_name=store.database_name,
            events_table=store.events_table_name,
            events_table_arn=store.table_arns[store.events_table_name],
            kpi_table=store.kpi_table_name,
            kpi_table_arn=store.table_arns[store.kpi_table_name],
            packaging=packaging,
            data_key=data_key,
            logs_key=logs_key,
            event_bus=event_bus,
        )
        writer = iiot.telemetry_writer
        self.dashboard = PlantDashboard(
            self,
            "PlantDashboard",
            plant=plant,
            namespace=METRICS_NAMESPACE,
            stream=iiot.telemetry_stream,
            functions={
                "TelemetryWriter": writer.function,
                "KpiCalculator": self.kpi_calculator.function,
                **watched_functions,
            },
            dead_letter_queues={
                "TelemetryDeadLetters": writer.dead_letter_queue,
                "TelemetryFailedBatches": writer.failed_batches,
                "QualityResultsDeadLetters": iiot.quality_results_dead_letters,
                "KpiFailedRuns": self.kpi_calculator.failed_invocations,
                **watched_dead_letters,
            },
            alarm_topic=alarm_topic,
        )
        CfnOutput(self, "DashboardName", value=self.dashboard.dashboard.dashboard_name)
