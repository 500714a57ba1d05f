"""The gateway IoT policy: everything scoped to the connected thing and its own line."""

import json

import pytest

from stacks.constructs.gateway_policy import OWN_COMMAND_TOPICS, OWN_LINE_TOPICS

THING = "${iot:Connection.Thing.ThingName}"


@pytest.fixture(scope="module")
def statements(iiot_template):
    (policy,) = iiot_template.find_resources("AWS::IoT::Policy").values()
    assert policy["Properties"]["PolicyName"] == "MesDemo-gateway"
    return {s["Sid"]: s for s in policy["Properties"]["PolicyDocument"]["Statement"]}


def arn_suffix(resource):
    """The literal tail of an ARN built with Fn::Join."""
    return resource["Fn::Join"][1][-1]


def test_connects_only_as_itself_when_attached(statements):
    connect = statements["ConnectAsItself"]
    assert connect["Action"] == "iot:Connect"
    assert arn_suffix(connect["Resource"]) == f":client/{THING}"
    assert connect["Condition"] == {"Bool": {"iot:Connection.Thing.IsAttached": "true"}}


def test_publishes_only_under_its_own_line_directly_or_by_basic_ingest(statements):
    publish = statements["PublishOwnLine"]
    suffixes = sorted(arn_suffix(r) for r in publish["Resource"])
    rules = ["MesDemo_count", "MesDemo_quality", "MesDemo_state", "MesDemo_telemetry"]
    assert suffixes == sorted(
        [f":topic/{OWN_LINE_TOPICS}"] + [f":topic/$aws/rules/{r}/{OWN_LINE_TOPICS}" for r in rules]
    )
    assert OWN_LINE_TOPICS == (
        "mes/v1/${iot:Connection.Thing.Attributes[site]}/${iot:Connection.Thing.Attributes[line]}/*"
    )


def test_subscribes_and_receives_only_its_own_commands(statements):
    assert arn_suffix(statements["SubscribeOwnCommands"]["Resource"]) == (
        f":topicfilter/{OWN_COMMAND_TOPICS}"
    )
    assert (
        arn_suffix(statements["ReceiveOwnCommands"]["Resource"]) == f":topic/{OWN_COMMAND_TOPICS}"
    )
    assert THING in OWN_COMMAND_TOPICS


def test_no_statement_grants_a_bare_wildcard(statements):
    text = json.dumps(statements)
    assert '"Resource": "*"' not in text and '"iot:*"' not in text
