"""PlatformStack: the stateful foundation every other stack builds on."""

from __future__ import annotations

from typing import Any

from aws_cdk import CfnOutput, Stack
from aws_cdk import aws_events as events
from constructs import Construct

from mes_domain.naming import alarm_display_name, alarm_topic_name, event_bus_name
from mes_domain.plant import Plant
from stacks.constructs.alarm_topic import AlarmTopic
from stacks.constructs.api_gateway_logging import ApiGatewayLogging
from stacks.constructs.buckets import AccessLogBucket
from stacks.constructs.platform_keys import PlatformKeys


class PlatformStack(Stack):
    """KMS keys for data and logs, the access-log bucket, the alarm topic, the event bus and
    API Gateway's CloudWatch Logs role setting of the region."""

    def __init__(self, scope: Construct, construct_id: str, *, plant: Plant, **kwargs: Any) -> None:
        super().__init__(scope, construct_id, **kwargs)
        prefix = plant.deployment.stack_prefix

        keys = PlatformKeys(self, "Keys", alias_prefix=prefix)
        self.data_key = keys.data_key
        self.logs_key = keys.logs_key
        self.access_logs = AccessLogBucket(
            self, "AccessLogs", expire_after_days=plant.retention.access_log_days
        ).bucket
        alarms = AlarmTopic(
            self,
            "Alarms",
            encryption_key=self.data_key,
            topic_name=alarm_topic_name(prefix),
            display_name=alarm_display_name(plant.name),
            emails=plant.deployment.alarm_emails,
        )
        self.alarm_topic = alarms.topic
        # Dead-letter queues for the dashboard to show and alarm on, by name.
        self.dead_letter_queues = (
            {"AlarmEmailsUndelivered": alarms.undelivered} if alarms.undelivered else {}
        )

        # MES events for the enterprise (non-conformances, confirmations): one bus, many rules.
        self.event_bus = events.EventBus(
            self, "Events", event_bus_name=event_bus_name(prefix), kms_key=self.data_key
        )

        # One owner for the region's setting; the stacks with REST APIs deploy after this one.
        self.api_gateway_logging = ApiGatewayLogging(self, "ApiGatewayLogging")

        CfnOutput(self, "DataKeyArn", value=self.data_key.key_arn)
        CfnOutput(self, "LogsKeyArn", value=self.logs_key.key_arn)
        CfnOutput(self, "AccessLogBucketName", value=self.access_logs.bucket_name)
        CfnOutput(self, "AlarmTopicArn", value=self.alarm_topic.topic_arn)
        CfnOutput(self, "EventBusName", value=self.event_bus.event_bus_name)
