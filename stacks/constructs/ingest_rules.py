"""IoT topic rules that route station messages, each with an S3 error action.

telemetry -> Kinesis (devices may use Basic Ingest); state and count -> SiteWise through
BatchPutAssetPropertyValue on the station's property aliases, and -> Kinesis with the topic as
partition key, so the writer stores them for the KPI engine; quality -> SQS. A message a rule
cannot deliver lands, with the error, under ``errors/<kind>/`` in the encrypted error bucket.
"""

from __future__ import annotations

from aws_cdk import Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_iot as iot
from aws_cdk import aws_kinesis as kinesis
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from lambdas.quality_results.contract import TOPIC_FIELD as QUALITY_TOPIC_FIELD
from mes_domain.naming import rule_name as rule_name
from mes_domain.sitewise import BAD_COUNT, EQUIPMENT_STATE, GOOD_COUNT, property_alias
from mes_domain.topics import MessageKind, topic_filter
from stacks.compliance import acknowledge

# Levels of mes/v1/{site}/{line}/{station}/{kind} in IoT SQL's 1-based topic(n).
SITE, LINE, STATION = "${topic(3)}", "${topic(4)}", "${topic(5)}"
ERROR_PREFIX = "errors"


def _sitewise_time() -> dict[str, str]:
    # Payload ts is epoch milliseconds; SiteWise wants seconds plus nanoseconds.
    return {"timeInSeconds": "${floor(ts / 1000)}", "offsetInNanos": "${(ts % 1000) * 1000000}"}


class IngestRules(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        prefix: str,
        telemetry_stream: kinesis.IStream,
        quality_queue: sqs.IQueue,
        error_bucket: s3.IBucket,
    ) -> None:
        super().__init__(scope, construct_id)
        self._prefix = prefix
        self._error_bucket = error_bucket
        bucket_resource = error_bucket.node.default_child
        self._error_bucket_logical_id = Stack.of(self).resolve(bucket_resource.logical_id)
        self.rules: dict[MessageKind, iot.CfnTopicRule] = {}

        self._stream = telemetry_stream
        role = self._role(MessageKind.TELEMETRY)
        self._rule(
            MessageKind.TELEMETRY, role, self._kinesis_action(role, f"{SITE}/{LINE}/{STATION}")
        )

        sitewise_measurements = {
            MessageKind.STATE: [(EQUIPMENT_STATE, {"stringValue": "${state}"})],
            MessageKind.COUNT: [
                (GOOD_COUNT, {"integerValue": "${good}"}),
                (BAD_COUNT, {"integerValue": "${bad}"}),
            ],
        }
        for kind, measurements in sitewise_measurements.items():
            role = self._role(kind)
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
            acknowledge(
                role.node.find_child("DefaultPolicy"),
                "AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:iotsitewise:<AWS::Region>:<AWS::AccountId>:asset/*]",
                "BatchPutAssetPropertyValue on any asset of this account and region: the "
                "rule writes by property alias, which SiteWise resolves to a station asset "
                "whose id exists only once it is deployed.",
            )
            entries = [
                {
                    "propertyAlias": property_alias(SITE, LINE, STATION, name),
                    "propertyValues": [{"timestamp": _sitewise_time(), "value": value}],
                }
                for name, value in measurements
            ]
            sitewise_action = {
                "iotSiteWise": {"putAssetPropertyValueEntries": entries, "roleArn": role.role_arn}
            }
            # The whole topic tells the writer the message's kind and station, payload untouched.
            self._rule(kind, role, sitewise_action, self._kinesis_action(role, "${topic()}"))

        role = self._role(MessageKind.QUALITY)
        role.add_to_policy(
            iam.PolicyStatement(actions=["sqs:SendMessage"], resources=[quality_queue.queue_arn])
        )
        if quality_queue.encryption_master_key is not None:
            quality_queue.encryption_master_key.grant(role, "kms:GenerateDataKey", "kms:Decrypt")
        # The payload does not name its station: the consumer reads it from the topic.
        self._rule(
            MessageKind.QUALITY,
            role,
            {"sqs": {"queueUrl": quality_queue.queue_url, "roleArn": role.role_arn}},
            select=f"*, topic() AS {QUALITY_TOPIC_FIELD}",
        )

    def _kinesis_action(self, role: iam.Role, partition_key: str) -> dict:
        role.add_to_policy(
            iam.PolicyStatement(actions=["kinesis:PutRecord"], resources=[self._stream.stream_arn])
        )
        if self._stream.encryption_key is not None:
            self._stream.encryption_key.grant(role, "kms:GenerateDataKey")
        return {
            "kinesis": {
                "streamName": self._stream.stream_name,
                "partitionKey": partition_key,
                "roleArn": role.role_arn,
            }
        }

    def _role(self, kind: MessageKind) -> iam.Role:
        """One role per rule: its action's target plus its own error prefix, nothing else."""
        role = iam.Role(
            self,
            f"{kind.value.title()}RuleRole",
            assumed_by=iam.ServicePrincipal("iot.amazonaws.com"),
        )
        role.add_to_policy(
            iam.PolicyStatement(
                actions=["s3:PutObject"],
                resources=[self._error_bucket.arn_for_objects(f"{ERROR_PREFIX}/{kind.value}/*")],
            )
        )
        if self._error_bucket.encryption_key is not None:
            self._error_bucket.encryption_key.grant(role, "kms:GenerateDataKey")
        acknowledge(
            role.node.find_child("DefaultPolicy"),
            f"AwsSolutions-IAM5[Resource::<{self._error_bucket_logical_id}.Arn>/"
            f"{ERROR_PREFIX}/{kind.value}/*]",
            "Failed messages are written under unique keys in this rule's own error prefix.",
        )
        return role

    def _rule(self, kind: MessageKind, role: iam.Role, *actions: dict, select: str = "*") -> None:
        name = rule_name(self._prefix, kind)
        error_key = f"{ERROR_PREFIX}/{kind.value}/" + "${timestamp()}-${newuuid()}.json"
        self.rules[kind] = iot.CfnTopicRule(
            self,
            f"{kind.value.title()}Rule",
            rule_name=name,
            topic_rule_payload={
                "sql": f"SELECT {select} FROM '{topic_filter(kind)}'",
                "awsIotSqlVersion": "2016-03-23",
                "ruleDisabled": False,
                "description": f"Routes {kind.value} messages of every station",
                "actions": list(actions),
                "errorAction": {
                    "s3": {
                        "bucketName": self._error_bucket.bucket_name,
                        "key": error_key,
                        "roleArn": role.role_arn,
                    }
                },
            },
        )
