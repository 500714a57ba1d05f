"""The IoT policy every plant gateway holds, scoped to the connected thing.

A gateway's thing carries ``site`` and ``line`` attributes (set at onboarding). It may connect
only as itself, publish only under its own line's station topics (directly or through Basic
Ingest to the routing rules), and subscribe only to its own command topics.
"""

from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import Stack
from aws_cdk import aws_iot as iot
from constructs import Construct

from mes_domain.topics import BASIC_INGEST_PREFIX, COMMAND_ROOT, TOPIC_ROOT, TOPIC_VERSION

THING_NAME = "${iot:Connection.Thing.ThingName}"
THING_SITE = "${iot:Connection.Thing.Attributes[site]}"
THING_LINE = "${iot:Connection.Thing.Attributes[line]}"
OWN_LINE_TOPICS = f"{TOPIC_ROOT}/{TOPIC_VERSION}/{THING_SITE}/{THING_LINE}/*"
OWN_COMMAND_TOPICS = f"{COMMAND_ROOT}/{THING_NAME}/*"


class GatewayPolicy(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        policy_name: str,
        basic_ingest_rules: Sequence[str],
    ) -> None:
        super().__init__(scope, construct_id)
        stack = Stack.of(self)

        def iot_arn(resource: str, name: str) -> str:
            return f"arn:{stack.partition}:iot:{stack.region}:{stack.account}:{resource}/{name}"

        publish = [iot_arn("topic", OWN_LINE_TOPICS)] + [
            iot_arn("topic", f"{BASIC_INGEST_PREFIX}{rule}/{OWN_LINE_TOPICS}")
            for rule in basic_ingest_rules
        ]
        self.policy = iot.CfnPolicy(
            self,
            "Policy",
            policy_name=policy_name,
            policy_document={
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Sid": "ConnectAsItself",
                        "Effect": "Allow",
                        "Action": "iot:Connect",
                        "Resource": iot_arn("client", THING_NAME),
                        "Condition": {"Bool": {"iot:Connection.Thing.IsAttached": "true"}},
                    },
                    {
                        "Sid": "PublishOwnLine",
                        "Effect": "Allow",
                        "Action": "iot:Publish",
                        "Resource": publish,
                    },
                    {
                        "Sid": "SubscribeOwnCommands",
                        "Effect": "Allow",
                        "Action": "iot:Subscribe",
                        "Resource": iot_arn("topicfilter", OWN_COMMAND_TOPICS),
                    },
                    {
                        "Sid": "ReceiveOwnCommands",
                        "Effect": "Allow",
                        "Action": "iot:Receive",
                        "Resource": iot_arn("topic", OWN_COMMAND_TOPICS),
                    },
                ],
            },
        )
