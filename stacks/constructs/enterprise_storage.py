"""Stateful stores of the enterprise interface: the exchange bucket where ERP and PLM drop
files (and MES exports files), the queue of its arrivals, and one table per bounded context."""

from __future__ import annotations

from aws_cdk import RemovalPolicy, Stack
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_s3_notifications as notifications
from constructs import Construct

from stacks.compliance import acknowledge
from stacks.constructs.buckets import DataBucket
from stacks.constructs.queues import dead_letter_queue, encrypted_queue
from stacks.constructs.tables import S, data_table

INBOUND_PREFIX = "inbound/"  # inbound/{erp|plm}/{document type}/<file>


class EnterpriseStorage(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        data_key: kms.IKey,
        access_logs: s3.IBucket,
    ) -> None:
        super().__init__(scope, construct_id)
        # inbound/ (drops), archive/ (originals), quarantine/ (rejects and reports), exports/.
        self.exchange_bucket = DataBucket(
            self, "Exchange", encryption_key=data_key, access_logs=access_logs
        ).bucket
        # S3 and EventBridge may send to a KMS queue only if the key's policy lets them; a key
        # of this stack keeps the platform key's policy (and stack) free of references here.
        self.queue_key = kms.Key(
            self,
            "QueueKey",
            description="Encrypts the enterprise interface's queues (arrivals, undelivered)",
            enable_key_rotation=True,
            removal_policy=RemovalPolicy.RETAIN,
        )
        self.queue_key.grant(
            iam.ServicePrincipal("events.amazonaws.com"), "kms:GenerateDataKey", "kms:Decrypt"
        )
        self.arrivals_dead_letters = dead_letter_queue(
            self,
            "ArrivalsDeadLetters",
            encryption_key=self.queue_key,
            holds="files never routed",
            of_queue_or_function=True,
        )
        self.arrivals = encrypted_queue(
            self,
            "Arrivals",
            encryption_key=self.queue_key,
            dead_letter_queue=self.arrivals_dead_letters,
        )
        # A large file may take the router's 15 minutes: the message stays hidden meanwhile
        # (six times the function's timeout, as Lambda advises for SQS sources).
        self.arrivals.node.default_child.visibility_timeout = 6 * 900
        self.exchange_bucket.add_event_notification(
            s3.EventType.OBJECT_CREATED,
            notifications.SqsDestination(self.arrivals),
            s3.NotificationKeyFilter(prefix=INBOUND_PREFIX),
        )

        def keyed(construct_id_: str) -> dynamodb.Table:
            return data_table(
                self, construct_id_, data_key=data_key, partition=("pk", S), sort=("sk", S)
            )

        # One store per bounded context of the MES microservices.
        self.orders_table = keyed("Orders")
        self.products_table = keyed("Products")  # material master and bills of materials
        self.process_plans_table = keyed("ProcessPlans")  # routings and work instructions
        self.inventory_table = keyed("Inventory")
        # Which documents were already routed (Powertools idempotency).
        self.idempotency_table = data_table(
            self, "Idempotency", data_key=data_key, partition=("id", S), time_to_live="expiration"
        )

    def acknowledge_notifications_handler(self) -> None:
        """CDK's own function that configures the bucket's notifications at deploy time."""
        stack = Stack.of(self)
        # CDK adds DependsOn what it also references with GetAtt: harmless (cfn-lint W3005).
        ignore_w3005 = {"config": {"ignore_checks": ["W3005"]}}
        notifications_resource = self.exchange_bucket.node.try_find_child("Notifications")
        if notifications_resource is not None:
            notifications_resource.node.default_child.add_metadata("cfn-lint", ignore_w3005)
        for child in stack.node.children:
            if child.node.id.startswith("BucketNotificationsHandler"):
                child.node.find_child("Resource").add_metadata("cfn-lint", ignore_w3005)
                acknowledge(
                    child.node.find_child("Role"),
                    "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/"
                    "service-role/AWSLambdaBasicExecutionRole]",
                    "CDK's deploy-time handler that puts the bucket notification configuration; "
                    "the policy lets it create and write any log group of the account, and the "
                    "handler writes only its own.",
                )
