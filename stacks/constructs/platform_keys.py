"""Customer-managed KMS keys: one for data at rest, one for logs."""

from __future__ import annotations

from aws_cdk import ArnFormat, Duration, RemovalPolicy, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from constructs import Construct

from mes_domain.naming import key_alias


class PlatformKeys(Construct):
    """The data key encrypts buckets, streams, queues and topics; the logs key log groups."""

    def __init__(self, scope: Construct, construct_id: str, *, alias_prefix: str) -> None:
        super().__init__(scope, construct_id)
        stack = Stack.of(self)

        self.data_key = self._rotating_key(
            "DataKey",
            alias=key_alias(alias_prefix, "data"),
            description=f"{alias_prefix}: MES data at rest (buckets, streams, queues, topics)",
        )
        # CloudWatch alarms publish to the encrypted alarm topic and need the key to do so.
        self.data_key.add_to_resource_policy(
            iam.PolicyStatement(
                sid="AllowCloudWatchAlarmsToPublishToEncryptedTopics",
                principals=[iam.ServicePrincipal("cloudwatch.amazonaws.com")],
                actions=["kms:Decrypt", "kms:GenerateDataKey*"],
                resources=["*"],
                conditions={"StringEquals": {"aws:SourceAccount": stack.account}},
            )
        )

        self.logs_key = self._rotating_key(
            "LogsKey",
            alias=key_alias(alias_prefix, "logs"),
            description=f"{alias_prefix}: CloudWatch Logs log groups",
        )
        log_groups_of_this_account = stack.format_arn(
            service="logs",
            resource="log-group",
            resource_name="*",
            arn_format=ArnFormat.COLON_RESOURCE_NAME,
        )
        self.logs_key.add_to_resource_policy(
            iam.PolicyStatement(
                sid="AllowCloudWatchLogsForThisAccount",
                principals=[iam.ServicePrincipal(f"logs.{stack.region}.amazonaws.com")],
                actions=[
                    "kms:Encrypt*",
                    "kms:Decrypt*",
                    "kms:ReEncrypt*",
                    "kms:GenerateDataKey*",
                    "kms:Describe*",
                ],
                resources=["*"],
                conditions={
                    "ArnLike": {"kms:EncryptionContext:aws:logs:arn": log_groups_of_this_account}
                },
            )
        )

    def _rotating_key(self, construct_id: str, *, alias: str, description: str) -> kms.Key:
        # Retained on stack deletion: data encrypted with a deleted key is lost for good.
        return kms.Key(
            self,
            construct_id,
            alias=alias,
            description=description,
            enable_key_rotation=True,
            pending_window=Duration.days(30),
            removal_policy=RemovalPolicy.RETAIN,
        )
