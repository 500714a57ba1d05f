"""The KPI calculator: a scheduled Lambda that reads state and count events from the store,
computes KPIs per station, line and site, writes them back and emits them as metrics."""

from __future__ import annotations

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from constructs import Construct

from lambdas.kpi_calculator.contract import EnvVar
from mes_domain.plant import Plant
from stacks.constructs.lambda_packaging import LambdaPackaging
from stacks.constructs.mes_function import MesFunction
from stacks.constructs.plant_config_layer import PlantConfigLayer
from stacks.constructs.queues import dead_letter_queue

METRICS_NAMESPACE = "MES/KPI"


class KpiCalculator(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        plant: Plant,
        database_name: str,
        events_table: str,
        events_table_arn: str,
        kpi_table: str,
        kpi_table_arn: str,
        packaging: LambdaPackaging,
        data_key: kms.IKey,
        logs_key: kms.IKey,
        event_bus: events.IEventBus | None = None,
    ) -> None:
        """``event_bus``: where each closed window's rows go for the data lake (optional)."""
        super().__init__(scope, construct_id)
        # Which windows were published: the record that makes a re-run a no-op.
        self.idempotency_table = dynamodb.Table(
            self,
            "Idempotency",
            partition_key=dynamodb.Attribute(name="id", type=dynamodb.AttributeType.STRING),
            billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
            time_to_live_attribute="expiration",
            encryption=dynamodb.TableEncryption.CUSTOMER_MANAGED,
            encryption_key=data_key,
            point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
                point_in_time_recovery_enabled=True
            ),
            removal_policy=RemovalPolicy.DESTROY,
        )
        self.failed_invocations = dead_letter_queue(
            self,
            "FailedRuns",
            encryption_key=data_key,
            holds="KPI runs that failed every retry",
            of_queue_or_function=True,
        )
        self.calculator = MesFunction(
            self,
            "Calculator",
            handler="lambdas.kpi_calculator.handler.lambda_handler",
            description="Scheduled KPIs per station, line and site: store -> store and metrics",
            packaging=packaging,
            logs_key=logs_key,
            log_retention_days=plant.retention.log_days,
            memory_size=1024,
            timeout_seconds=300,
            extra_layers=[PlantConfigLayer(self, "Plant", plant=plant).layer],
            dead_letter_queue=self.failed_invocations,
            environment={
                EnvVar.TIMESTREAM_DATABASE.value: database_name,
                EnvVar.EVENTS_TABLE.value: events_table,
                EnvVar.KPI_TABLE.value: kpi_table,
                EnvVar.IDEMPOTENCY_TABLE.value: self.idempotency_table.table_name,
                EnvVar.METRICS_NAMESPACE.value: METRICS_NAMESPACE,
                "POWERTOOLS_SERVICE_NAME": "kpi_calculator",
                **({EnvVar.EVENT_BUS_NAME.value: event_bus.event_bus_name} if event_bus else {}),
            },
        )
        self.function = self.calculator.function
        role = self.calculator.role
        role.add_to_policy(
            iam.PolicyStatement(actions=["timestream:Select"], resources=[events_table_arn])
        )
        role.add_to_policy(
            iam.PolicyStatement(actions=["timestream:WriteRecords"], resources=[kpi_table_arn])
        )
        role.add_to_policy(
            iam.PolicyStatement(actions=["timestream:DescribeEndpoints"], resources=["*"])
        )
        self.idempotency_table.grant_read_write_data(role)
        if event_bus is not None:
            event_bus.grant_put_events_to(role)

        self.schedule = events.Rule(
            self,
            "Schedule",
            description=f"Every {plant.kpi.window_minutes} minutes: the KPI window",
            schedule=events.Schedule.rate(Duration.minutes(plant.kpi.window_minutes)),
            targets=[
                targets.LambdaFunction(
                    self.function,
                    retry_attempts=2,
                    max_event_age=Duration.minutes(plant.kpi.window_minutes),
                    dead_letter_queue=self.failed_invocations,
                )
            ],
        )
        self.calculator.acknowledge_policy(
            {
                "AwsSolutions-IAM5[Resource::*]": (
                    "timestream:DescribeEndpoints and the X-Ray trace writes support no "
                    "resource-level permissions."
                ),
                "AwsSolutions-IAM5[Action::kms:GenerateDataKey*]": (
                    "From grant_read_write_data on the KMS-encrypted idempotency table; scoped "
                    "to the platform data key only."
                ),
                "AwsSolutions-IAM5[Action::kms:ReEncrypt*]": (
                    "From grant_read_write_data on the KMS-encrypted idempotency table; scoped "
                    "to the platform data key only."
                ),
            }
        )
