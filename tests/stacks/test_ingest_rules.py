"""Topic rules: SQL, action, error action and least-privilege roles, for every message kind."""

import pytest

from mes_domain.topics import MessageKind
from stacks.constructs.ingest_rules import rule_name


def rules_by_name(iiot_template):
    rules = iiot_template.find_resources("AWS::IoT::TopicRule")
    return {
        r["Properties"]["RuleName"]: r["Properties"]["TopicRulePayload"] for r in rules.values()
    }


@pytest.mark.parametrize(
    ("kind", "action"),
    [
        (MessageKind.TELEMETRY, "Kinesis"),
        (MessageKind.STATE, "IotSiteWise"),
        (MessageKind.COUNT, "IotSiteWise"),
        (MessageKind.QUALITY, "Sqs"),
    ],
)
def test_each_kind_has_its_rule_action_and_s3_error_action(iiot_template, kind, action):
    payload = rules_by_name(iiot_template)[rule_name("MesDemo", kind)]
    # The quality consumer needs the station, which only the topic names.
    select = "*, topic() AS mqtt_topic" if kind is MessageKind.QUALITY else "*"
    assert payload["Sql"] == f"SELECT {select} FROM 'mes/v1/+/+/+/{kind.value}'"
    assert payload["AwsIotSqlVersion"] == "2016-03-23"
    ((name, _),) = payload["Actions"][0].items()
    assert name == action
    error = payload["ErrorAction"]["S3"]
    assert error["Key"].startswith(f"errors/{kind.value}/")
    assert "${newuuid()}" in error["Key"]  # never overwrites an earlier failure


def test_telemetry_is_partitioned_by_station(iiot_template):
    kinesis = rules_by_name(iiot_template)["MesDemo_telemetry"]["Actions"][0]["Kinesis"]
    assert kinesis["PartitionKey"] == "${topic(3)}/${topic(4)}/${topic(5)}"


@pytest.mark.parametrize("kind", ["state", "count"])
def test_state_and_counts_also_reach_the_stream_keyed_by_their_topic(iiot_template, kind):
    actions = rules_by_name(iiot_template)[f"MesDemo_{kind}"]["Actions"]
    assert [next(iter(a)) for a in actions] == ["IotSiteWise", "Kinesis"]
    kinesis = actions[1]["Kinesis"]
    assert kinesis["PartitionKey"] == "${topic()}"
    assert kinesis["StreamName"] == {"Ref": iiot_template_stream_id(iiot_template)}


def iiot_template_stream_id(iiot_template):
    (logical_id,) = iiot_template.find_resources("AWS::Kinesis::Stream")
    return logical_id


def test_state_and_counts_map_to_the_station_asset_properties(iiot_template):
    rules = rules_by_name(iiot_template)
    state = rules["MesDemo_state"]["Actions"][0]["IotSiteWise"]["PutAssetPropertyValueEntries"]
    assert [e["PropertyAlias"] for e in state] == [
        "/mes/${topic(3)}/${topic(4)}/${topic(5)}/Equipment_State"
    ]
    assert state[0]["PropertyValues"][0]["Value"] == {"StringValue": "${state}"}
    counts = rules["MesDemo_count"]["Actions"][0]["IotSiteWise"]["PutAssetPropertyValueEntries"]
    assert [e["PropertyAlias"].rsplit("/", 1)[1] for e in counts] == ["Good_Count", "Bad_Count"]
    timestamp = counts[0]["PropertyValues"][0]["Timestamp"]
    assert timestamp == {
        "TimeInSeconds": "${floor(ts / 1000)}",
        "OffsetInNanos": "${(ts % 1000) * 1000000}",
    }


def test_rule_roles_write_only_their_own_error_prefix(iiot_template):
    policies = iiot_template.find_resources("AWS::IAM::Policy")
    prefixes = set()
    for logical_id, policy in policies.items():
        if "RuleRole" not in logical_id:
            continue  # the telemetry writer's role puts oversized dead letters elsewhere
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
            if statement["Action"] == "s3:PutObject":
                joined = statement["Resource"]["Fn::Join"][1]
                prefixes.add(joined[-1])
    assert prefixes == {f"/errors/{kind}/*" for kind in ("telemetry", "state", "count", "quality")}


def test_no_rule_role_has_wildcard_actions(iiot_template):
    policies = iiot_template.find_resources("AWS::IAM::Policy")
    for logical_id, policy in policies.items():
        if "RuleRole" not in logical_id:
            continue
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
            actions = (
                statement["Action"]
                if isinstance(statement["Action"], list)
                else [statement["Action"]]
            )
            assert not any(a.endswith("*") for a in actions), (logical_id, actions)
