"""The IoT policy every plant gateway holds, scoped to the connected thing.

A gateway's thing carries ``site`` and ``line`` attributes (set at onboarding). It may connect
only as itself, publish only under its own line's station topics (directly or through Basic
Ingest to the routing rules), subscribe only to its own command topics, and get AWS credentials
only through its own line's role alias (``gateway_role_alias``).
"""

from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import Stack
from aws_cdk import aws_iot as iot
from constructs import Construct

from mes_domain.naming import ROLE_ALIAS
from mes_domain.naming import gateway_policy_name as gateway_policy_name
from mes_domain.naming import gateway_role_alias as gateway_role_alias
from mes_domain.topics import BASIC_INGEST_PREFIX, COMMAND_ROOT, TOPIC_ROOT, TOPIC_VERSION

THING_NAME = "${iot:Connection.Thing.ThingName}"
THING_SITE = "${iot:Connection.Thing.Attributes[site]}"
THING_LINE = "${iot:Connection.Thing.Attributes[line]}"
OWN_LINE_TOPICS = f"{TOPIC_ROOT}/{TOPIC_VERSION}/{THING_SITE}/{THING_LINE}/*"
OWN_COMMAND_TOPICS = f"{COMMAND_ROOT}/{THING_NAME}/*"
# The credentials provider passes only the thing name, type and certificate id to IAM, never
# the thing's attributes (docs.aws.amazon.com/iot/latest/developerguide/authorizing-direct-aws
# .html), but the IoT policy may use the attributes when the gateway sends its thing name. So
# each camera line has its own token exchange role behind a role alias named by site and line,
# and a gateway may assume only its own line's (mes_domain.naming.gateway_role_alias).


def check_role_alias(name: str) -> str:
    """``name`` if IoT accepts it as a role alias; the plant validator already made sure."""
    problem = ROLE_ALIAS.problem(name)
    if problem is not None:
        raise ValueError(f"role alias {name!r} is {problem}")
    return name


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
                        "Sid": "AssumeOwnLineRole",
                        "Effect": "Allow",
                        "Action": "iot:AssumeRoleWithCertificate",
                        "Resource": iot_arn(
                            "rolealias", f"{policy_name}@{THING_SITE}@{THING_LINE}"
                        ),
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
