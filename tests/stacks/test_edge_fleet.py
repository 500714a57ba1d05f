"""The EdgeFleet stack (demo plant, synthesized once a session): the provisioning template and
its hook, the claim policy, role aliases, one deployment per gateway group from the plant
config, gateway health rules, and no private key anywhere in the cloud assembly."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from aws_cdk.assertions import Template

from mes_domain import fleet, naming
from mes_domain.collection import collector_component_configuration
from mes_domain.edge_deployment import DATA_COLLECTOR, QUALITY_INSPECTION
from mes_domain.edge_spooler import DISK_SPOOLER, NUCLEUS
from mes_domain.plant import Plant
from stacks.constructs import edge_fleet
from tests.stacks.assembly import template_text

PREFIX = "MesDemo"


@pytest.fixture(scope="module")
def template(synthesized) -> Template:
    stacks, _ = synthesized
    return Template.from_stack(stacks.edge_fleet)


@pytest.fixture(scope="module")
def resources(template):
    return template.to_json()["Resources"]


def of_type(resources, kind):
    return {k: v for k, v in resources.items() if v["Type"] == kind}


def only(resources, kind):
    (found,) = of_type(resources, kind).values()
    return found["Properties"]


def actions_of(statement) -> list[str]:
    action = statement["Action"]
    return [action] if isinstance(action, str) else action


def text(value) -> str:
    return template_text(value)


# --- fleet provisioning ---


def test_the_template_creates_the_thing_from_the_hook_answer_and_attaches_both_policies(
    resources, iiot_template, demo_plant
):
    props = only(resources, "AWS::IoT::ProvisioningTemplate")
    assert props["TemplateName"] == fleet.provisioning_template_name(PREFIX)
    assert props["Enabled"] is True
    body = json.loads(props["TemplateBody"])
    assert set(body["Parameters"]) == {p.value for p in fleet.TemplateParameter}
    thing = body["Resources"]["thing"]["Properties"]
    assert thing["ThingName"] == {"Ref": "ThingName"}
    assert thing["AttributePayload"] == {
        "site": {"Ref": "Site"},
        "line": {"Ref": "Line"},
        "serial": {"Ref": "SerialNumber"},
    }
    assert thing["ThingGroups"] == [{"Ref": "ThingGroup"}, {"Ref": "SecondThingGroup"}]
    certificate = body["Resources"]["certificate"]["Properties"]
    assert certificate == {
        "CertificateId": {"Ref": "AWS::IoT::Certificate::Id"},
        "Status": "ACTIVE",
    }
    policies = [
        r["Properties"]["PolicyName"]
        for r in body["Resources"].values()
        if r["Type"] == "AWS::IoT::Policy"
    ]
    core, line_policy = policies
    assert core == fleet.core_device_policy_name(PREFIX)
    # the line's gateway policy, by the site and line the hook granted
    assert line_policy == {
        "Fn::Join": ["@", [naming.gateway_policy_name(PREFIX), {"Ref": "Site"}, {"Ref": "Line"}]]
    }
    separator, parts = line_policy["Fn::Join"]
    existing = {
        p["Properties"]["PolicyName"]
        for p in iiot_template.find_resources("AWS::IoT::Policy").values()
    }
    for site in demo_plant.sites:
        for line in site.lines:
            values = {"Site": site.id, "Line": line.id}
            name = separator.join(p if isinstance(p, str) else values[p["Ref"]] for p in parts)
            assert name == naming.gateway_line_policy_name(PREFIX, site.id, line.id)
            assert name in existing


def test_the_hook_is_the_template_pre_provisioning_hook_and_only_iot_may_call_it(resources):
    props = only(resources, "AWS::IoT::ProvisioningTemplate")
    hook = props["PreProvisioningHook"]
    assert hook["PayloadVersion"] == "2020-04-01"
    function_id = hook["TargetArn"]["Fn::GetAtt"][0]
    assert resources[function_id]["Type"] == "AWS::Lambda::Function"
    assert resources[function_id]["Properties"]["Handler"] == (
        "lambdas.provisioning_hook.handler.lambda_handler"
    )
    permissions = [
        p["Properties"]
        for p in of_type(resources, "AWS::Lambda::Permission").values()
        if p["Properties"]["FunctionName"]["Fn::GetAtt"][0] == function_id
    ]
    (permission,) = permissions
    assert permission["Principal"] == "iot.amazonaws.com"
    assert text(permission["SourceArn"]).endswith(
        f":provisioningtemplate/{fleet.provisioning_template_name(PREFIX)}"
    )
    assert "SourceAccount" in permission


def test_the_hook_has_its_own_role_reading_and_claiming_only_the_allow_list(resources):
    props = only(resources, "AWS::IoT::ProvisioningTemplate")
    function_id = props["PreProvisioningHook"]["TargetArn"]["Fn::GetAtt"][0]
    role_id = resources[function_id]["Properties"]["Role"]["Fn::GetAtt"][0]
    users = [
        k
        for k, v in of_type(resources, "AWS::Lambda::Function").items()
        if v["Properties"]["Role"]["Fn::GetAtt"][0] == role_id
    ]
    assert users == [function_id]
    (table_id,) = of_type(resources, "AWS::DynamoDB::Table")
    statements = [
        s
        for p in of_type(resources, "AWS::IAM::Policy").values()
        if {"Ref": role_id} in p["Properties"]["Roles"]
        for s in p["Properties"]["PolicyDocument"]["Statement"]
    ]
    dynamodb = [s for s in statements if all(a.startswith("dynamodb:") for a in actions_of(s))]
    (statement,) = dynamodb
    assert sorted(statement["Action"]) == ["dynamodb:GetItem", "dynamodb:UpdateItem"]
    assert table_id in json.dumps(statement["Resource"])
    actions = {
        a
        for s in statements
        for a in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])
    }
    assert not {a for a in actions if a.startswith(("iot:", "secretsmanager:", "s3:"))}


def test_the_allow_list_is_keyed_by_serial(resources):
    table = only(resources, "AWS::DynamoDB::Table")
    assert table["KeySchema"] == [{"AttributeName": "serial", "KeyType": "HASH"}]


def test_the_claim_policy_allows_only_the_provisioning_topics(resources):
    claim = [
        p["Properties"]
        for p in of_type(resources, "AWS::IoT::Policy").values()
        if p["Properties"]["PolicyName"] == fleet.claim_policy_name(PREFIX)
    ]
    (policy,) = claim
    template_name = fleet.provisioning_template_name(PREFIX)
    allowed = (
        "$aws/certificates/create/",
        "$aws/certificates/create-from-csr/",
        f"$aws/provisioning-templates/{template_name}/provision/",
    )
    actions = set()
    for statement in policy["PolicyDocument"]["Statement"]:
        assert statement["Effect"] == "Allow"
        names = (
            statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        )
        actions |= set(names)
        resources_ = statement["Resource"]
        resources_ = resources_ if isinstance(resources_, list) else [resources_]
        for resource in map(text, resources_):
            if names == ["iot:Connect"]:
                assert resource.endswith(":client/*")
                continue
            kind, _, topic = resource.split("${AWS::AccountId}:", 1)[1].partition("/")
            assert kind in {"topic", "topicfilter"}
            assert topic.startswith(allowed), topic
    assert actions == {"iot:Connect", "iot:Publish", "iot:Receive", "iot:Subscribe"}


def test_the_claim_certificate_is_made_at_deploy_time_into_an_operator_only_secret(resources):
    (custom,) = of_type(resources, "Custom::IotClaimCertificate").values()
    secret_id = custom["Properties"]["SecretArn"]["Ref"]
    assert resources[secret_id]["Type"] == "AWS::SecretsManager::Secret"
    secret = resources[secret_id]["Properties"]
    assert "SecretString" not in secret and "GenerateSecretString" not in secret
    assert "KmsKeyId" in secret
    policy = only(resources, "AWS::SecretsManager::ResourcePolicy")
    (deny,) = policy["ResourcePolicy"]["Statement"]
    assert deny["Effect"] == "Deny" and deny["Action"] == "secretsmanager:GetSecretValue"
    operator = deny["Condition"]["ArnNotEquals"]["aws:PrincipalArn"]["Fn::GetAtt"][0]
    assert resources[operator]["Type"] == "AWS::IAM::Role"


def operator_statements(resources) -> list[dict]:
    role_id = next(
        k
        for k, v in of_type(resources, "AWS::IAM::Role").items()
        if "mes_gateway" in v["Properties"].get("Description", "")
    )
    return [
        s
        for p in of_type(resources, "AWS::IAM::Policy").values()
        if {"Ref": role_id} in p["Properties"]["Roles"]
        for s in p["Properties"]["PolicyDocument"]["Statement"]
    ]


def test_the_operator_may_revoke_and_restore_the_claim_certificate_and_no_other(resources):
    """``mes_gateway revoke-claim/restore-claim`` (and ``bundle``'s check that the claim is
    ACTIVE): DescribeCertificate and UpdateCertificate on the custom resource's certificate."""
    (custom_id,) = of_type(resources, "Custom::IotClaimCertificate")
    granted = {}
    for statement in operator_statements(resources):
        for action in actions_of(statement):
            if action.startswith("iot:"):
                granted[action] = statement["Resource"]
    certificate = {"Fn::GetAtt": [custom_id, "CertificateArn"]}
    assert granted == {
        "iot:DescribeEndpoint": "*",
        "iot:DescribeCertificate": certificate,
        "iot:UpdateCertificate": certificate,
    }


def test_no_private_key_material_anywhere_in_the_cloud_assembly(synthesized):
    """A PEM private key block with its body (binaries of the layers name the header only)."""
    _, assembly = synthesized
    pem = re.compile(rb"-----BEGIN [A-Z ]*PRIVATE KEY-----\s*[A-Za-z0-9+/=\r\n]{40,}")
    found = [
        str(path)
        for path in Path(assembly.directory).rglob("*")
        if path.is_file() and pem.search(path.read_bytes())
    ]
    assert found == []
    assert pem.search(b"-----BEGIN PRIVATE KEY-----\n" + b"A" * 64)  # the check would see one


# --- run time: core policy and role aliases ---


def test_the_core_policy_is_scoped_to_things_named_like_a_gateway(resources):
    """No thing policy variable (unsupported on core devices: greengrass/v2/developerguide/
    device-auth.html#iot-policies); the documented wildcard on similar thing names instead."""
    core = [
        p["Properties"]["PolicyDocument"]["Statement"]
        for p in of_type(resources, "AWS::IoT::Policy").values()
        if p["Properties"]["PolicyName"] == fleet.core_device_policy_name(PREFIX)
    ]
    (statements,) = core
    assert "iot:Connection.Thing." not in json.dumps(statements)
    by_sid = {s["Sid"]: s for s in statements}
    gateways = f"{naming.gateway_thing_prefix(PREFIX)}*"
    assert gateways == "MesDemo-gateway-*"
    # also the nucleus' extra connections, <thing>#<n>
    assert text(by_sid["ConnectAsAGateway"]["Resource"]).endswith(f":client/{gateways}")
    for sid in ("GatewayHealthJobsAndShadows", "SubscribeGatewayJobsAndShadows"):
        for resource in map(text, by_sid[sid]["Resource"]):
            assert f"/$aws/things/{gateways}/" in resource
    assert text(by_sid["GatewayShadows"]["Resource"]).endswith(f":thing/{gateways}")
    # the line's role alias is the line's gateway policy's (tests/stacks/test_gateway_policy)
    assert not [s for s in statements if "iot:AssumeRoleWithCertificate" in actions_of(s)]
    wildcard = [s for s in statements if s["Resource"] == "*"]
    assert [s["Sid"] for s in wildcard] == ["GreengrassDeployments"]
    # The minimal core device policy's four (device-auth.html): a group deployment document
    # over 31 KB needs GetDeploymentConfiguration, removal from a group
    # ListThingGroupsForCoreDevice.
    assert sorted(wildcard[0]["Action"]) == [
        "greengrass:GetComponentVersionArtifact",
        "greengrass:GetDeploymentConfiguration",
        "greengrass:ListThingGroupsForCoreDevice",
        "greengrass:ResolveComponentCandidates",
    ]


def test_every_line_has_a_role_alias_its_gateways_may_assume(demo_plant, synthesized):
    stacks, _ = synthesized
    aliases = {}
    for stack in (stacks.edge_fleet, stacks.quality):
        for props in (
            r["Properties"]
            for r in Template.from_stack(stack).to_json()["Resources"].values()
            if r["Type"] == "AWS::IoT::RoleAlias"
        ):
            aliases[props["RoleAlias"]] = props.get("CredentialDurationSeconds", 3600)
    expected = {
        naming.gateway_role_alias(PREFIX, site.id, line.id)
        for site in demo_plant.sites
        for line in site.lines
    }
    assert set(aliases) == expected
    low, high = edge_fleet.CREDENTIAL_DURATION_RANGE_S
    assert all(low <= seconds <= high for seconds in aliases.values())


def test_the_documented_credential_duration_range():
    assert edge_fleet.CREDENTIAL_DURATION_RANGE_S == (900, 43_200)
    assert 900 <= edge_fleet.CREDENTIAL_DURATION_S <= 43_200


# --- deployments ---


def deployments(resources):
    return {
        text(d["Properties"]["TargetArn"]).split(":thinggroup/")[1]: d["Properties"]
        for d in of_type(resources, "AWS::GreengrassV2::Deployment").values()
    }


def test_one_deployment_per_gateway_group_with_versions_and_configuration_from_the_plant(
    demo_plant, resources
):
    found = deployments(resources)
    versions = edge_fleet.recipe_versions()
    expected_groups = set()
    for site in demo_plant.sites:
        for line in site.lines:
            if line.collects():
                expected_groups.add(naming.thing_group_name(PREFIX, site.id, line.id))
            for station in line.stations:
                if station.camera:
                    expected_groups.add(
                        naming.station_thing_group_name(PREFIX, site.id, line.id, station.id)
                    )
    assert set(found) == expected_groups
    for group, props in found.items():
        components = props["Components"]
        assert components[NUCLEUS]["ComponentVersion"] == fleet.NUCLEUS_VERSION
        merge = json.loads(components[NUCLEUS]["ConfigurationUpdate"]["Merge"])
        assert merge["mqtt"]["spooler"]["storageType"] == "Disk"
        assert components[DISK_SPOOLER]["ComponentVersion"] == fleet.DISK_SPOOLER_VERSION
        ours = DATA_COLLECTOR if ":" not in group else QUALITY_INSPECTION
        assert components[ours]["ComponentVersion"] == versions[ours]
    line_group = naming.thing_group_name(PREFIX, "berlin", "body-line-1")
    merge = json.loads(
        found[line_group]["Components"][DATA_COLLECTOR]["ConfigurationUpdate"]["Merge"]
    )
    assert merge == collector_component_configuration(demo_plant, "berlin", "body-line-1")
    camera = found[naming.station_thing_group_name(PREFIX, "berlin", "body-line-1", "vision-01")]
    merge = json.loads(camera["Components"][QUALITY_INSPECTION]["ConfigurationUpdate"]["Merge"])
    assert merge["station"] == {"site": "berlin", "line": "body-line-1", "station": "vision-01"}


def test_the_stack_deploys_no_model_and_never_to_a_model_group(demo_plant, resources):
    """Two writers: the stack owns the line and camera groups, the model pipeline the model
    groups; neither's deployment can replace the other's."""
    models = {
        ref.station.camera.model_component for ref in demo_plant.stations() if ref.station.camera
    }
    for group, props in deployments(resources).items():
        assert not group.endswith(fleet.MODEL_GROUP_SUFFIX)
        assert not models & set(props["Components"])
    groups = {
        g["Properties"]["ThingGroupName"]
        for g in of_type(resources, "AWS::IoT::ThingGroup").values()
    }
    assert fleet.model_thing_group_name(PREFIX, "berlin", "body-line-1", "vision-01") in groups


def test_a_changed_plant_config_gives_a_revised_deployment(demo_plant):
    document = demo_plant.model_dump(mode="json")
    station = document["sites"][0]["lines"][0]["stations"][0]
    station["tags"][0]["source"]["sampling_interval_ms"] = 250
    changed = Plant.model_validate(document)
    before = {d["targetThingGroupName"]: d for d in edge_fleet.fleet_deployments(demo_plant)}
    after = {d["targetThingGroupName"]: d for d in edge_fleet.fleet_deployments(changed)}
    line_group = naming.thing_group_name(PREFIX, "berlin", "body-line-1")
    assert before[line_group]["components"] != after[line_group]["components"]
    other = naming.thing_group_name(PREFIX, "berlin", "machining-line-1")
    assert before[other] == after[other]


# --- gateway health ---


def test_failed_deployments_and_broken_components_go_to_the_alarm_topic(resources):
    rules = [r["Properties"] for r in of_type(resources, "AWS::Events::Rule").values()]
    patterns = {r["EventPattern"]["detail-type"][0]: r for r in rules if "EventPattern" in r}
    deployment = patterns["Greengrass V2 Effective Deployment Status Change"]
    assert deployment["EventPattern"]["detail"] == {
        "coreDeviceExecutionStatus": ["FAILED", "REJECTED"]
    }
    component = patterns["Greengrass V2 Installed Component Status Change"]
    assert component["EventPattern"]["detail"] == {"components": {"lifecycleState": ["BROKEN"]}}
    for rule in (deployment, component):
        assert rule["EventPattern"]["source"] == ["aws.greengrass"]
        (target,) = rule["Targets"]
        assert "AlarmsTopic" in json.dumps(target["Arn"])
        assert "DeadLetterConfig" in target


# --- gateway health on the plant dashboard ---


def function_named(resources, handler):
    (found,) = [
        (k, v["Properties"])
        for k, v in of_type(resources, "AWS::Lambda::Function").items()
        if v["Properties"]["Handler"] == handler
    ]
    return found


HEALTH_HANDLER = "lambdas.gateway_health.handler.lambda_handler"


def test_our_gateways_connect_and_disconnect_events_reach_the_health_function(resources):
    function_id, _ = function_named(resources, HEALTH_HANDLER)
    (rule_id, rule), *others = of_type(resources, "AWS::IoT::TopicRule").items()
    assert not others
    payload = rule["Properties"]["TopicRulePayload"]
    assert payload["Sql"] == (
        "SELECT * FROM '$aws/events/presence/+/+' WHERE startswith(clientId, 'MesDemo-gateway-')"
    )
    assert fleet.gateway_thing_name(PREFIX, "SN-1").startswith("MesDemo-gateway-")
    (action,) = payload["Actions"]
    assert action["Lambda"]["FunctionArn"] == {"Fn::GetAtt": [function_id, "Arn"]}
    assert "Sqs" in payload["ErrorAction"]
    (permission,) = [
        p["Properties"]
        for p in of_type(resources, "AWS::Lambda::Permission").values()
        if p["Properties"]["FunctionName"] == {"Fn::GetAtt": [function_id, "Arn"]}
        and p["Properties"]["Principal"] == "iot.amazonaws.com"
    ]
    assert permission["SourceArn"] == {"Fn::GetAtt": [rule_id, "Arn"]}


def test_the_census_runs_every_five_minutes_reading_the_allow_list_and_core_devices(resources):
    function_id, function = function_named(resources, HEALTH_HANDLER)
    (schedule,) = [
        r["Properties"]
        for r in of_type(resources, "AWS::Events::Rule").values()
        if "ScheduleExpression" in r["Properties"]
        and any(
            t["Arn"] == {"Fn::GetAtt": [function_id, "Arn"]} for t in r["Properties"]["Targets"]
        )
    ]
    assert schedule["ScheduleExpression"] == f"rate({fleet.CENSUS_INTERVAL_MINUTES} minutes)"
    assert "DeadLetterConfig" in schedule["Targets"][0]
    role_id = function["Role"]["Fn::GetAtt"][0]
    actions = {
        a
        for p in of_type(resources, "AWS::IAM::Policy").values()
        if {"Ref": role_id} in p["Properties"]["Roles"]
        for s in p["Properties"]["PolicyDocument"]["Statement"]
        for a in actions_of(s)
        if not a.startswith(("xray:", "kms:", "sqs:", "logs:"))
    }
    assert actions == {"dynamodb:UpdateItem", "dynamodb:Scan", "greengrass:ListCoreDevices"}


def test_the_plant_dashboard_shows_gateways_online_unhealthy_and_offline(kpi_template):
    (dashboard,) = kpi_template.find_resources("AWS::CloudWatch::Dashboard").values()
    _, parts = dashboard["Properties"]["DashboardBody"]["Fn::Join"]
    # References (region, stream names) become a placeholder inside their JSON strings.
    body = json.loads("".join(p if isinstance(p, str) else "ref" for p in parts))
    shown = [
        metric
        for widget in body["widgets"]
        if widget["type"] == "metric" and "Gateways" in widget["properties"].get("title", "")
        for metric in widget["properties"]["metrics"]
    ]
    names = {m[1] for m in shown}
    assert names == set(fleet.HEALTH_METRIC.values())
    for metric in shown:
        namespace, _, dimension, value, *_ = metric
        assert namespace == fleet.FLEET_METRICS_NAMESPACE
        assert (dimension, value) == (fleet.FLEET_METRICS_DIMENSION, PREFIX)


def test_the_stack_keeps_no_bucket_and_writes_only_what_the_onboarding_cli_reads(resources):
    """Component artifacts are CDK file assets (stacks/constructs/component_versions.py): the
    stack has no bucket of its own, and its SSM parameters are the ones mes_gateway reads."""
    assert not of_type(resources, "AWS::S3::Bucket")
    names = {p["Properties"]["Name"] for p in of_type(resources, "AWS::SSM::Parameter").values()}
    assert names == {fleet.ssm_parameter_name(PREFIX, key) for key in fleet.Parameter}
