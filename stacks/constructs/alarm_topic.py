"""The encrypted SNS topic every alarm of the platform publishes to, and its e-mail
subscriptions with a dead-letter queue for the alarms SNS could not deliver."""

from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from stacks.constructs.queues import dead_letter_queue


class AlarmTopic(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        encryption_key: kms.Key,
        topic_name: str,
        display_name: str,
        emails: Sequence[str] = (),
    ) -> None:
        super().__init__(scope, construct_id)
        self.topic = sns.Topic(
            self,
            "Topic",
            topic_name=topic_name,
            display_name=display_name,
            master_key=encryption_key,
            enforce_ssl=True,
        )
        # An alarm e-mail SNS cannot deliver (client or server error) waits here, 14 days, in
        # an encrypted TLS-only queue the dashboard shows and alarms on
        # (docs.aws.amazon.com/sns/latest/dg/sns-dead-letter-queues.html).
        self.undelivered: sqs.Queue | None = None
        if not emails:
            return
        self.undelivered = dead_letter_queue(
            self,
            "Undelivered",
            encryption_key=encryption_key,
            holds="alarm e-mails SNS could not deliver",
        )
        # An encrypted dead-letter queue needs a customer managed key whose policy lets the
        # SNS service principal use it (same page). The ARN is built from the topic's name: a
        # Ref would make the key depend on the topic it encrypts.
        topic_arn = Stack.of(self).format_arn(service="sns", resource=topic_name)
        encryption_key.add_to_resource_policy(
            iam.PolicyStatement(
                sid="AllowAlarmTopicToFillItsEncryptedDeadLetterQueue",
                principals=[iam.ServicePrincipal("sns.amazonaws.com")],
                actions=["kms:Decrypt", "kms:GenerateDataKey"],
                resources=["*"],
                conditions={"ArnEquals": {"aws:SourceArn": topic_arn}},
            )
        )
        for email in emails:
            self.topic.add_subscription(
                subscriptions.EmailSubscription(email, dead_letter_queue=self.undelivered)
            )
