"""The quality-results consumer: inspection results from the IIoT quality queue become
records, good/bad counts per window and non-conformances (stored, and sent to the bus)."""

from __future__ import annotations

from aws_cdk import Duration, Stack
from aws_cdk import aws_events as events
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from lambdas.quality_results.contract import EnvVar
from mes_domain.plant import Plant
from stacks.constructs.lambda_packaging import LambdaPackaging
from stacks.constructs.mes_function import TRACING_REASON, MesFunction
from stacks.constructs.quality_storage import QualityStorage
from stacks.constructs.queues import consumer_visibility_timeout
from stacks.constructs.tables import grant_table
from stacks.constructs.timeseries_store import TimeSeriesStore

BATCH_SIZE = 50
BATCHING_WINDOW = Duration.seconds(5)  # SQS allows batches above 10 only with a window
TIMEOUT = Duration.seconds(120)
# The IIoT stack declares the queue before this consumer exists: it takes the timeout from here.
QUEUE_VISIBILITY_TIMEOUT = consumer_visibility_timeout(TIMEOUT, BATCHING_WINDOW)


class QualityResults(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        plant: Plant,
        queue: sqs.IQueue,
        storage: QualityStorage,
        event_bus: events.IEventBus,
        store: TimeSeriesStore,
        packaging: LambdaPackaging,
        logs_key: kms.IKey,
    ) -> None:
        super().__init__(scope, construct_id)
        self._function = MesFunction(
            self,
            "Consumer",
            handler="lambdas.quality_results.handler.lambda_handler",
            description="Inspection results -> records, counts per window, non-conformances",
            packaging=packaging,
            logs_key=logs_key,
            log_retention_days=plant.retention.log_days,
            timeout_seconds=int(TIMEOUT.to_seconds()),
            environment={
                EnvVar.RECORDS_TABLE.value: storage.records_table.table_name,
                EnvVar.COUNTS_TABLE.value: storage.counts_table.table_name,
                EnvVar.NONCONFORMANCES_TABLE.value: storage.nonconformances_table.table_name,
                EnvVar.EVENT_BUS_NAME.value: event_bus.event_bus_name,
                EnvVar.WINDOW_MINUTES.value: str(plant.kpi.window_minutes),
                EnvVar.TIMESTREAM_DATABASE.value: store.database_name,
                EnvVar.EVENTS_TABLE.value: store.events_table_name,
                "POWERTOOLS_SERVICE_NAME": "quality_results",
            },
        )
        self.function = self._function.function
        role = self._function.role
        self._function.consume(queue, batch_size=BATCH_SIZE, batching_window=BATCHING_WINDOW)
        grant = grant_table
        grant(storage.records_table, role, "dynamodb:PutItem", "dynamodb:ConditionCheckItem")
        grant(storage.counts_table, role, "dynamodb:UpdateItem")
        grant(
            storage.nonconformances_table,
            role,
            "dynamodb:PutItem",
            "dynamodb:GetItem",
            "dynamodb:UpdateItem",
        )
        event_bus.grant_put_events_to(role)
        # Part counts for the KPI engine (events table) and SiteWise (the station's aliases).
        role.add_to_policy(
            iam.PolicyStatement(
                actions=["timestream:WriteRecords"],
                resources=[store.table_arns[store.events_table_name]],
            )
        )
        role.add_to_policy(
            iam.PolicyStatement(actions=["timestream:DescribeEndpoints"], resources=["*"])
        )
        role.add_to_policy(
            iam.PolicyStatement(
                actions=["iotsitewise:BatchPutAssetPropertyValue"],
                resources=[
                    Stack.of(self).format_arn(
                        service="iotsitewise", resource="asset", resource_name="*"
                    )
                ],
            )
        )
        self._function.acknowledge_policy(
            {
                "AwsSolutions-IAM5[Resource::*]": TRACING_REASON
                + " timestream:DescribeEndpoints has none either.",
                "AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:iotsitewise:<AWS::Region>:"
                "<AWS::AccountId>:asset/*]": (
                    "BatchPutAssetPropertyValue on any asset of this account and region: "
                    "counts are written by property alias, which SiteWise resolves to a camera "
                    "station's asset whose id exists only once it is deployed."
                ),
            }
        )
