"""The telemetry writer: a Lambda on the telemetry stream that writes to the time-series store."""

from __future__ import annotations

from aws_cdk import Duration, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kinesis as kinesis
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_event_sources as sources
from aws_cdk import aws_s3 as s3
from constructs import Construct

from lambdas.telemetry_writer.contract import DEAD_LETTER_PREFIX, EnvVar
from stacks.compliance import acknowledge
from stacks.constructs.buckets import DataBucket
from stacks.constructs.lambda_packaging import LambdaPackaging
from stacks.constructs.mes_function import MesFunction
from stacks.constructs.queues import dead_letter_queue
from stacks.constructs.timeseries_store import TimeSeriesStore

BATCH_SIZE = 500
BATCHING_WINDOW = Duration.seconds(5)
RETRY_ATTEMPTS = 10


class TelemetryWriter(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        stream: kinesis.IStream,
        store: TimeSeriesStore,
        packaging: LambdaPackaging,
        data_key: kms.IKey,
        logs_key: kms.IKey,
        log_retention_days: int,
        access_logs: s3.IBucket,
    ) -> None:
        super().__init__(scope, construct_id)

        # Malformed and rejected readings, with the reason; kept long enough to be replayed.
        self.dead_letter_queue = dead_letter_queue(
            self, "DeadLetters", encryption_key=data_key, holds="malformed and rejected readings"
        )
        # Stream batches that kept failing after every retry (on-failure destination).
        self.failed_batches = dead_letter_queue(
            self, "FailedBatches", encryption_key=data_key, holds="stream batches out of retries"
        )
        # A dead letter too large for a queue message is kept whole here; its message points to it.
        self.dead_letter_payloads = DataBucket(
            self, "DeadLetterPayloads", encryption_key=data_key, access_logs=access_logs
        ).bucket

        self._function = MesFunction(
            self,
            "Writer",
            handler="lambdas.telemetry_writer.handler.lambda_handler",
            description="Telemetry, states and counts: Kinesis -> time-series store; bad -> DLQ",
            packaging=packaging,
            logs_key=logs_key,
            log_retention_days=log_retention_days,
            environment={
                EnvVar.TIMESTREAM_DATABASE.value: store.database_name,
                EnvVar.TIMESTREAM_TABLE.value: store.table_name,
                EnvVar.EVENTS_TABLE.value: store.events_table_name,
                EnvVar.DEAD_LETTER_QUEUE_URL.value: self.dead_letter_queue.queue_url,
                EnvVar.DEAD_LETTER_BUCKET.value: self.dead_letter_payloads.bucket_name,
                "POWERTOOLS_SERVICE_NAME": "telemetry_writer",
            },
        )
        self.function = self._function.function
        role = self._function.role
        self.function.add_event_source(
            sources.KinesisEventSource(
                stream,
                starting_position=lambda_.StartingPosition.TRIM_HORIZON,
                batch_size=BATCH_SIZE,
                max_batching_window=BATCHING_WINDOW,
                report_batch_item_failures=True,
                bisect_batch_on_error=True,
                retry_attempts=RETRY_ATTEMPTS,
                on_failure=sources.SqsDlq(self.failed_batches),
            )
        )
        self.dead_letter_queue.grant_send_messages(role)
        payload_objects = self.dead_letter_payloads.arn_for_objects(f"{DEAD_LETTER_PREFIX}/*")
        role.add_to_policy(
            iam.PolicyStatement(actions=["s3:PutObject"], resources=[payload_objects])
        )
        data_key.grant(role, "kms:GenerateDataKey")  # SSE-KMS on a single-part PutObject
        bucket_id = Stack.of(self).resolve(self.dead_letter_payloads.node.default_child.logical_id)
        role.add_to_policy(
            iam.PolicyStatement(
                actions=["timestream:WriteRecords"],
                resources=[store.table_arn, store.table_arns[store.events_table_name]],
            )
        )
        # Timestream's endpoint discovery has no resource-level permissions.
        role.add_to_policy(
            iam.PolicyStatement(actions=["timestream:DescribeEndpoints"], resources=["*"])
        )
        self._function.acknowledge_policy(
            {
                f"AwsSolutions-IAM5[Resource::<{bucket_id}.Arn>/{DEAD_LETTER_PREFIX}/*]": (
                    "Only PutObject, under the dead-letter prefix: one object per oversized dead "
                    "letter, keyed by its shard, sequence number and place in the stream item."
                ),
                "AwsSolutions-IAM5[Resource::*]": (
                    "timestream:DescribeEndpoints and the X-Ray trace writes support no "
                    "resource-level permissions."
                ),
                "AwsSolutions-IAM5[Action::kms:GenerateDataKey*]": (
                    "From grant_send_messages on the two KMS-encrypted queues; scoped to the "
                    "platform data key only."
                ),
                "AwsSolutions-IAM5[Action::kms:ReEncrypt*]": (
                    "From grant_send_messages on the two KMS-encrypted queues; scoped to the "
                    "platform data key only."
                ),
            }
        )
        acknowledge(
            self.function.node.default_child,
            "Serverless-LambdaDLQ",
            "Stream-invoked, never async: failed batches go to the event source mapping's "
            "on-failure queue (FailedBatches) and bad readings to the DeadLetters queue.",
        )
