"""The gateways' IoT policies: one per line, scoped to that line and to things named like a
gateway, with no thing policy variable (Greengrass core devices support none)."""

import json

import pytest
from aws_cdk.assertions import Template

from mes_domain import fleet, naming
from stacks.constructs.gateway_policy import command_topics, line_topics
from tests.stacks.assembly import template_text

PREFIX = "MesDemo"
# greengrass/v2/developerguide/device-auth.html#iot-policies: "Thing policy variables
# (iot:Connection.Thing.*) aren't supported for in AWS IoT policies for core devices or
# Greengrass data plane operations"; a wildcard on similar thing names is the alternative.
UNSUPPORTED_ON_CORE_DEVICES = "iot:Connection.Thing."


@pytest.fixture(scope="module")
def policies(iiot_template):
    return {
        p["Properties"]["PolicyName"]: {
            s["Sid"]: s for s in p["Properties"]["PolicyDocument"]["Statement"]
        }
        for p in iiot_template.find_resources("AWS::IoT::Policy").values()
    }


def arn_tail(resource) -> str:
    """What follows the account in an ARN built with Fn::Join."""
    return template_text(resource).split(":${AWS::AccountId}:")[1]


def lines(plant):
    return [(site.id, line.id) for site in plant.sites for line in site.lines]


def test_one_policy_per_line_named_for_it(policies, demo_plant):
    assert set(policies) == {
        naming.gateway_line_policy_name(PREFIX, site, line) for site, line in lines(demo_plant)
    }


def test_each_line_publishes_only_under_its_own_topics_directly_or_by_basic_ingest(
    policies, demo_plant
):
    rules = ["MesDemo_count", "MesDemo_quality", "MesDemo_state", "MesDemo_telemetry"]
    for site, line in lines(demo_plant):
        publish = policies[naming.gateway_line_policy_name(PREFIX, site, line)]["PublishOwnLine"]
        assert publish["Action"] == "iot:Publish"
        own = f"mes/v1/{site}/{line}/*"
        assert line_topics(site, line) == own
        assert sorted(arn_tail(r) for r in publish["Resource"]) == sorted(
            [f"topic/{own}"] + [f"topic/$aws/rules/{r}/{own}" for r in rules]
        )


def test_each_line_assumes_only_its_own_role_alias(policies, demo_plant):
    for site, line in lines(demo_plant):
        assume = policies[naming.gateway_line_policy_name(PREFIX, site, line)]["AssumeOwnLineRole"]
        assert assume["Action"] == "iot:AssumeRoleWithCertificate"
        assert arn_tail(assume["Resource"]) == (
            f"rolealias/{naming.gateway_role_alias(PREFIX, site, line)}"
        )


def test_gateways_subscribe_and_receive_only_gateway_command_topics(policies):
    gateways = naming.gateway_thing_prefix(PREFIX)
    assert command_topics(PREFIX) == f"mes/cmd/v1/{gateways}*/*"
    for statements in policies.values():
        subscribe = statements["SubscribeGatewayCommands"]
        assert subscribe["Action"] == "iot:Subscribe"
        assert arn_tail(subscribe["Resource"]) == f"topicfilter/{command_topics(PREFIX)}"
        receive = statements["ReceiveGatewayCommands"]
        assert receive["Action"] == "iot:Receive"
        assert arn_tail(receive["Resource"]) == f"topic/{command_topics(PREFIX)}"
        assert set(statements) == {
            "PublishOwnLine",
            "AssumeOwnLineRole",
            "SubscribeGatewayCommands",
            "ReceiveGatewayCommands",
        }


def test_every_gateway_thing_name_has_the_policies_prefix():
    thing = fleet.gateway_thing_name(PREFIX, "SN-0001")
    assert thing == "MesDemo-gateway-SN-0001"
    assert thing.startswith(naming.gateway_thing_prefix(PREFIX))


def test_no_gateway_or_core_device_policy_uses_a_thing_policy_variable(synthesized):
    """The template attaches the core policy and a line's gateway policy to every gateway, a
    Greengrass core device; the claim policy is used by the nucleus' provisioning plugin."""
    stacks, _ = synthesized
    found = 0
    for stack in (stacks.iiot, stacks.edge_fleet):
        for policy in Template.from_stack(stack).find_resources("AWS::IoT::Policy").values():
            found += 1
            assert UNSUPPORTED_ON_CORE_DEVICES not in json.dumps(policy), policy
    assert found >= 3


def test_no_statement_grants_a_bare_wildcard(policies):
    text = json.dumps(policies)
    assert '"Resource": "*"' not in text and '"iot:*"' not in text
