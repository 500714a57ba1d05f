"""The IoT policy of one line's gateways, attached to each gateway's certificate by the fleet
provisioning template (stacks/constructs/edge_fleet.py) with the core device policy.

Gateways are Greengrass core devices, and AWS IoT policies for core devices support no thing
policy variables (``iot:Connection.Thing.*``); a wildcard on similarly named things is the
documented alternative (greengrass/v2/developerguide/device-auth.html#iot-policies). So the
line comes from the policy's name, one policy per line, and the gateway from the thing-name
prefix every gateway shares (``mes_domain.naming.gateway_thing_prefix``): a gateway publishes only
under its line's station topics (directly or through Basic Ingest to the routing rules), gets
AWS credentials only through its line's role alias, and subscribes only to gateway command
topics.
"""

from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import Stack
from aws_cdk import aws_iot as iot
from constructs import Construct

from mes_domain.naming import ROLE_ALIAS
from mes_domain.naming import gateway_line_policy_name as gateway_line_policy_name
from mes_domain.naming import gateway_policy_name as gateway_policy_name
from mes_domain.naming import gateway_role_alias as gateway_role_alias
from mes_domain.naming import gateway_thing_prefix as gateway_thing_prefix
from mes_domain.topics import BASIC_INGEST_PREFIX, COMMAND_ROOT, TOPIC_ROOT, TOPIC_VERSION

# The credentials provider passes only the thing name, type and certificate id to IAM, never
# the thing's attributes (docs.aws.amazon.com/iot/latest/developerguide/authorizing-direct-aws
# .html). So each line has its own token exchange role behind a role alias named by site and
# line, and a line's gateways may assume only their own line's.


def line_topics(site: str, line: str) -> str:
    """The station topics of one line (``mes_domain.topics.StationTopic``)."""
    return f"{TOPIC_ROOT}/{TOPIC_VERSION}/{site}/{line}/*"


def command_topics(prefix: str) -> str:
    """Every gateway's command topics (``mes_domain.topics.command_filter``)."""
    return f"{COMMAND_ROOT}/{gateway_thing_prefix(prefix)}*/*"


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
        prefix: str,
        site: str,
        line: str,
        basic_ingest_rules: Sequence[str],
    ) -> None:
        super().__init__(scope, construct_id)
        stack = Stack.of(self)

        def iot_arn(resource: str, name: str) -> str:
            return f"arn:{stack.partition}:iot:{stack.region}:{stack.account}:{resource}/{name}"

        own_line = line_topics(site, line)
        publish = [iot_arn("topic", own_line)] + [
            iot_arn("topic", f"{BASIC_INGEST_PREFIX}{rule}/{own_line}")
            for rule in basic_ingest_rules
        ]
        commands = command_topics(prefix)
        self.policy = iot.CfnPolicy(
            self,
            "Policy",
            policy_name=gateway_line_policy_name(prefix, site, line),
            policy_document={
                "Version": "2012-10-17",
                "Statement": [
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
                            "rolealias", check_role_alias(gateway_role_alias(prefix, site, line))
                        ),
                    },
                    {
                        "Sid": "SubscribeGatewayCommands",
                        "Effect": "Allow",
                        "Action": "iot:Subscribe",
                        "Resource": iot_arn("topicfilter", commands),
                    },
                    {
                        "Sid": "ReceiveGatewayCommands",
                        "Effect": "Allow",
                        "Action": "iot:Receive",
                        "Resource": iot_arn("topic", commands),
                    },
                ],
            },
        )
