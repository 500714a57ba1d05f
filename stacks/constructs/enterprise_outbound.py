"""MES events out to the enterprise: rules on the platform bus send production confirmations,
order status changes and non-conformances to ERP and PLM through API destinations, and, for
systems that take files, every MES event to files under ``exports/`` of the exchange bucket.

Each API destination's key is in a Secrets Manager secret the stack creates; the operator
puts the real key there and deploys again, which hands it to the EventBridge connection.
"""

from __future__ import annotations

from aws_cdk import Duration, SecretValue, Stack
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kinesisfirehose as firehose
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_secretsmanager as secretsmanager
from constructs import Construct

from mes_domain.plant import OutboundEndpoint, Plant
from stacks.compliance import acknowledge
from stacks.constructs.log_groups import retained_log_group
from stacks.constructs.queues import dead_letter_queue

MES_SOURCES = ["mes.enterprise", "mes.quality"]
# What each system is told (EventBridge detail types).
TO_ERP = [
    "ProductionConfirmation",
    "OrderStatusChanged",
    "NonConformance",
    "InventoryAvailability",  # the inventory service's stock, back to ERP
]
TO_PLM = ["NonConformance"]
EXPORT_PREFIX = "exports/"
EXPORT_ERRORS_PREFIX = "export-errors/"
FIREHOSE_BUCKET_ACTIONS = ("s3:GetBucketLocation", "s3:ListBucket", "s3:ListBucketMultipartUploads")
FIREHOSE_OBJECT_ACTIONS = ("s3:AbortMultipartUpload", "s3:GetObject", "s3:PutObject")
RETRY_ATTEMPTS = 185  # EventBridge's maximum: a system down for a day loses nothing
MAX_EVENT_AGE = Duration.hours(24)
FIREHOSE_CIDR_MAPPING = "@aws-cdk--aws-kinesisfirehose.CidrBlocks"  # "/" becomes "--" in ids


class EnterpriseOutbound(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        plant: Plant,
        event_bus: events.IEventBus,
        exchange_bucket: s3.IBucket,
        data_key: kms.IKey,
        queue_key: kms.IKey,
        logs_key: kms.IKey,
    ) -> None:
        super().__init__(scope, construct_id)
        self._plant, self._bus, self._data_key = plant, event_bus, data_key
        # Events no target accepted after every retry, kept for replay.
        self.dead_letters = dead_letter_queue(
            self, "Undelivered", encryption_key=queue_key, holds="events ERP or PLM never took"
        )
        self.rules: dict[str, events.Rule] = {}
        self.api_keys: dict[str, secretsmanager.Secret] = {}
        integration = plant.erp_plm
        for system, endpoint, detail_types in (
            ("Erp", integration.erp, TO_ERP),
            ("Plm", integration.plm, TO_PLM),
        ):
            if endpoint is not None:
                self._api_destination(system, endpoint, detail_types)
        if integration.export_files:
            self._file_export(exchange_bucket, logs_key)

    def _rule(self, name: str, detail_types: list[str] | None) -> events.Rule:
        pattern = events.EventPattern(source=MES_SOURCES, detail_type=detail_types)
        rule = events.Rule(
            self, f"{name}Rule", event_bus=self._bus, event_pattern=pattern, description=name
        )
        self.rules[name] = rule
        return rule

    def _api_destination(
        self, system: str, endpoint: OutboundEndpoint, detail_types: list[str]
    ) -> None:
        prefix = self._plant.deployment.stack_prefix
        api_key = self.api_keys[system] = secretsmanager.Secret(
            self,
            f"{system}ApiKey",
            secret_name=f"{prefix}/{system.lower()}-api-key",
            description=f"API key of {system.upper()} for MES events; put the real key here",
            encryption_key=self._data_key,
        )
        acknowledge(
            api_key.node.default_child,
            "AwsSolutions-SMG4",
            f"The key is issued and rotated by the {system.upper()} team; after a rotation "
            "the operator stores it here and deploys, which updates the connection.",
        )
        connection = events.Connection(
            self,
            f"{system}Connection",
            description=f"MES -> {system.upper()}",
            authorization=events.Authorization.api_key(
                endpoint.api_key_header, SecretValue.secrets_manager(api_key.secret_arn)
            ),
        )
        destination = events.ApiDestination(
            self,
            f"{system}Destination",
            connection=connection,
            endpoint=endpoint.url,
            http_method=events.HttpMethod.POST,
            rate_limit_per_second=endpoint.rate_per_second,
            description=f"MES events to {system.upper()}",
        )
        self._rule(f"To{system}", detail_types).add_target(
            targets.ApiDestination(
                destination,
                dead_letter_queue=self.dead_letters,
                retry_attempts=RETRY_ATTEMPTS,
                max_event_age=MAX_EVENT_AGE,
            )
        )

    def _file_export(self, bucket: s3.IBucket, logs_key: kms.IKey) -> None:
        stack = Stack.of(self)
        # Delivery errors are logged to a log group of the logs key (its policy lets CloudWatch
        # Logs use it for every log group of the account).
        log_group = retained_log_group(
            self, "ExportLogs", logs_key=logs_key, retention_days=self._plant.retention.log_days
        )
        role = iam.Role(
            self,
            "ExportRole",
            assumed_by=iam.ServicePrincipal("firehose.amazonaws.com"),
            description="Firehose writes MES event files under exports/ of the exchange bucket",
        )
        objects = [
            bucket.arn_for_objects(f"{EXPORT_PREFIX}*"),
            bucket.arn_for_objects(f"{EXPORT_ERRORS_PREFIX}*"),
        ]
        # What Firehose needs of an S3 destination (Firehose developer guide, "Grant Firehose
        # access to an Amazon S3 destination"), on its two prefixes only: no delete, nothing
        # under inbound/, archive/ or quarantine/.
        policy = iam.Policy(
            self,
            "ExportPolicy",
            roles=[role],
            statements=[
                iam.PolicyStatement(
                    actions=list(FIREHOSE_BUCKET_ACTIONS), resources=[bucket.bucket_arn]
                ),
                iam.PolicyStatement(actions=list(FIREHOSE_OBJECT_ACTIONS), resources=objects),
                # The bucket uses an S3 Bucket Key, so S3 asks KMS with the bucket's ARN as
                # encryption context, not the object's (S3 user guide, "Configuring an S3
                # Bucket Key"): the key is usable only by S3, for this bucket.
                iam.PolicyStatement(
                    actions=["kms:GenerateDataKey", "kms:Decrypt"],
                    resources=[self._data_key.key_arn],
                    conditions={
                        "StringEquals": {
                            "kms:ViaService": f"s3.{stack.region}.amazonaws.com",
                            "kms:EncryptionContext:aws:s3:arn": bucket.bucket_arn,
                        }
                    },
                ),
                iam.PolicyStatement(
                    actions=["logs:PutLogEvents"], resources=[log_group.log_group_arn]
                ),
            ],
        )
        self.export_role = role
        self.export_stream = firehose.DeliveryStream(
            self,
            "Export",
            # An AWS-owned key at rest: a grant to Firehose on the platform key would make the
            # platform stack depend on this one. The files land encrypted with the bucket's key.
            encryption=firehose.StreamEncryption.aws_owned_key(),
            destination=firehose.S3Bucket(
                bucket,
                data_output_prefix=f"{EXPORT_PREFIX}!{{timestamp:yyyy/MM/dd}}/",
                error_output_prefix=f"{EXPORT_ERRORS_PREFIX}!{{firehose:error-output-type}}/"
                "!{timestamp:yyyy/MM/dd}/",
                buffering_interval=Duration.seconds(60),
                logging_config=firehose.EnableLogging(log_group),
                # The destination grants read-write on the whole bucket to the role it is
                # given; this one takes no grants, so the policy above is all it has.
                role=role.without_policy_updates(),
            ),
        )
        self.export_stream.node.add_dependency(policy)
        rule = self._rule("ToFiles", None)
        rule.add_target(targets.FirehoseDeliveryStream(self.export_stream))
        # The Firehose target takes no dead-letter queue in CDK: set it on the rule's target.
        cfn_rule = rule.node.default_child
        cfn_rule.add_property_override(
            "Targets.0.DeadLetterConfig.Arn", self.dead_letters.queue_arn
        )
        cfn_rule.add_property_override("Targets.0.RetryPolicy.MaximumRetryAttempts", RETRY_ATTEMPTS)
        self.dead_letters.grant_send_messages(iam.ServicePrincipal("events.amazonaws.com"))
        acknowledge(
            cfn_rule,
            "Serverless-EventBusDLQ",
            "The target's dead-letter queue (Undelivered) is set by a property override, "
            "which cdk-nag does not read; the template has it.",
        )
        # Firehose adds a mapping of its regional CIDR blocks, used only by Redshift and Splunk
        # destinations; left in, it is an unused mapping (cfn-lint W7001).
        stack.node.try_remove_child(FIREHOSE_CIDR_MAPPING)
        bucket_id = stack.get_logical_id(bucket.node.default_child)
        for prefix in (EXPORT_PREFIX, EXPORT_ERRORS_PREFIX):
            acknowledge(
                policy,
                f"AwsSolutions-IAM5[Resource::<{bucket_id}.Arn>/{prefix}*]",
                f"Firehose names the files it writes under {prefix} by date and delivery; it "
                "may put, read back and abort multipart uploads of those objects only.",
            )
