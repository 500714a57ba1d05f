"""Who may do what in quality inspection, as synthesized: approvers groups per site, and
gateways scoped to their own line's camera stations."""

from __future__ import annotations

import aws_cdk as cdk
import pytest
import yaml
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from aws_cdk.assertions import Template

from mes_domain.plant import Plant
from stacks.constructs.gateway_policy import gateway_line_policy_name, gateway_role_alias
from stacks.constructs.quality_storage import GatewayAccess, QualityStorage
from tests.conftest import DEMO_PLANT
from tests.stacks.assembly import template_text


def test_each_site_with_camera_stations_has_an_approvers_group(quality_template, demo_plant):
    pools = quality_template.find_resources("AWS::Cognito::UserPool")
    (pool_id,) = pools
    groups = quality_template.find_resources("AWS::Cognito::UserPoolGroup").values()
    sites = {ref.site.id for ref in demo_plant.stations() if ref.station.camera}
    assert sites  # the demo plant inspects with cameras
    assert {g["Properties"]["GroupName"] for g in groups} == {f"approvers-{s}" for s in sites}
    assert all(g["Properties"]["UserPoolId"] == {"Ref": pool_id} for g in groups)


# Gateways: a camera line's gateways may assume only their line's role alias (their line's IoT
# policy), and that role reads and writes only the prefixes of
# the line's camera stations.


def _camera(station_id: str) -> dict:
    return {
        "id": station_id,
        "kind": "camera_inspection",
        "ideal_cycle_time_s": 4.0,
        "camera": {"model_component": f"com.acme.mes.models.{station_id.replace('-', '')}"},
    }


@pytest.fixture(scope="module")
def two_camera_lines():
    """The demo plant with a second camera on the body line and one on the machining line."""
    document = yaml.safe_load(DEMO_PLANT.read_text())
    body, machining = document["sites"][0]["lines"]
    body["stations"].append(_camera("vision-02"))
    machining["stations"].append(_camera("vision-03"))
    plant = Plant.model_validate(document)
    stack = cdk.Stack(cdk.App(), "Quality")
    key = kms.Key(stack, "Data")
    storage = QualityStorage(stack, "Storage", data_key=key, access_logs=s3.Bucket(stack, "Logs"))
    GatewayAccess(stack, "Gateways", plant=plant, storage=storage, data_key=key)
    template = Template.from_stack(stack)
    buckets = {
        name: stack.get_logical_id(bucket.node.default_child)
        for name, bucket in (("models", storage.model_bucket), ("datasets", storage.dataset_bucket))
    }
    return template, buckets


def _line_policies(template) -> dict[str, dict[str, set[str]]]:
    """Role alias name -> the action -> resources of the role behind it."""
    roles = template.find_resources("AWS::IAM::Role")
    policies = template.find_resources("AWS::IAM::ManagedPolicy")
    found = {}
    for alias in template.find_resources("AWS::IoT::RoleAlias").values():
        role = roles[alias["Properties"]["RoleArn"]["Fn::GetAtt"][0]]["Properties"]
        trust = role["AssumeRolePolicyDocument"]["Statement"]
        assert [s["Principal"] for s in trust] == [{"Service": "credentials.iot.amazonaws.com"}]
        grants: dict[str, set[str]] = {}
        for attached in role["ManagedPolicyArns"]:
            document = policies[attached["Ref"]]["Properties"]["PolicyDocument"]
            for statement in document["Statement"]:
                actions = statement["Action"]
                resources = statement["Resource"]
                for action in [actions] if isinstance(actions, str) else actions:
                    grants.setdefault(action, set()).update(
                        template_text(r)
                        for r in (resources if isinstance(resources, list) else [resources])
                    )
        found[alias["Properties"]["RoleAlias"]] = grants
    return found


def test_each_camera_line_has_its_own_role_alias_and_no_other_line_has_one(two_camera_lines):
    template, _ = two_camera_lines
    assert set(_line_policies(template)) == {
        gateway_role_alias("MesDemo", "berlin", "body-line-1"),
        gateway_role_alias("MesDemo", "berlin", "machining-line-1"),
    }


def test_a_line_role_reads_and_writes_only_its_camera_stations(two_camera_lines):
    template, buckets = two_camera_lines
    policies = _line_policies(template)

    def under(bucket: str, *stations: str, line: str) -> set[str]:
        return {f"${{{buckets[bucket]}.Arn}}/{bucket}/berlin/{line}/{s}/*" for s in stations}

    body = policies[gateway_role_alias("MesDemo", "berlin", "body-line-1")]
    assert body["s3:GetObject"] == under(
        "models", "vision-01", "vision-02", line="body-line-1"
    ) | under("datasets", "vision-01", "vision-02", line="body-line-1")
    assert body["s3:PutObject"] == under("datasets", "vision-01", "vision-02", line="body-line-1")
    machining = policies[gateway_role_alias("MesDemo", "berlin", "machining-line-1")]
    assert machining["s3:PutObject"] == under("datasets", "vision-03", line="machining-line-1")
    for grants in policies.values():
        assert not {a for a in grants if a.startswith("s3:")} - {"s3:GetObject", "s3:PutObject"}
        s3_resources = set().union(*(r for a, r in grants.items() if a.startswith("s3:")))
        assert not any(r.endswith(("/models/*", "/datasets/*")) for r in s3_resources)


def test_the_demo_gateway_roles_match_the_iot_policys_alias(quality_template, iiot_template):
    (policy,) = iiot_template.find_resources(
        "AWS::IoT::Policy",
        {
            "Properties": {
                "PolicyName": gateway_line_policy_name("MesDemo", "berlin", "body-line-1")
            }
        },
    ).values()
    statements = {s["Sid"]: s for s in policy["Properties"]["PolicyDocument"]["Statement"]}
    assume = statements["AssumeOwnLineRole"]
    assert assume["Action"] == "iot:AssumeRoleWithCertificate"
    alias = gateway_role_alias("MesDemo", "berlin", "body-line-1")
    assert template_text(assume["Resource"]).endswith(f":rolealias/{alias}")
    aliases = quality_template.find_resources("AWS::IoT::RoleAlias").values()
    assert [a["Properties"]["RoleAlias"] for a in aliases] == [
        gateway_role_alias("MesDemo", "berlin", "body-line-1")
    ]
    # The one account-wide policy every gateway held before is gone.
    assert not quality_template.find_resources("AWS::IAM::ManagedPolicy", {
        "Properties": {"Description": "Quality inspection on a gateway: read models, upload "
                       "dataset images"}})  # fmt: skip
