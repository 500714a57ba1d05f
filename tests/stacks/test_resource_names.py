"""Every resource name in the assembly of a plant whose config values are as long as the
validator allows obeys AWS's limit for it, and every name built from the config is one the
validator checked (mes_domain.naming): a config that loads deploys, name-wise."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from cfnlint.schema import PROVIDER_SCHEMA_MANAGER

from mes_domain import fleet, naming
from mes_domain.naming import NameRule
from tests.stacks.assembly import Assembly

REGISTRY = "CloudFormation registry schema of the type (cfn-lint's copy)"
# Names the app may set in future; each limit from the API reference, as cited.
SQS_QUEUE_NAME = NameRule(
    "SQS queue name",
    80,
    r"[A-Za-z0-9_-]+",
    "docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/API_CreateQueue.html",
)
IAM_ROLE_NAME = NameRule(
    "IAM role name",
    64,
    r"[\w+=,.@-]+",
    "docs.aws.amazon.com/IAM/latest/APIReference/API_PolicyRole.html",
)
IAM_POLICY_NAME = NameRule(
    "IAM inline policy name",
    128,
    r"[\w+=,.@-]+",
    "docs.aws.amazon.com/IAM/latest/APIReference/API_PutRolePolicy.html; " + REGISTRY,
)
# CreateDeployment deploymentName: 1 to 256 characters, no pattern.
GREENGRASS_DEPLOYMENT_NAME = NameRule(
    "Greengrass deployment name",
    256,
    r".+",
    "docs.aws.amazon.com/greengrass/v2/APIReference/API_CreateDeployment.html",
)
ATHENA_WORKGROUP_NAME = NameRule(
    "Athena workgroup name",
    128,
    r"[a-zA-Z0-9._-]+",
    "docs.aws.amazon.com/athena/latest/APIReference/API_NamedQuery.html (WorkGroup)",
)
ATHENA_NAMED_QUERY_NAME = NameRule(
    "Athena named query name",
    128,
    r".+",
    "docs.aws.amazon.com/athena/latest/APIReference/API_NamedQuery.html",
)
GLUE_SECURITY_CONFIGURATION_NAME = NameRule(
    "Glue security configuration name",
    255,
    r"[\u0020-\uD7FF\uE000-\uFFFD\t]+",
    "docs.aws.amazon.com/glue/latest/webapi/API_CreateSecurityConfiguration.html",
)
LAMBDA_FUNCTION_NAME = NameRule("Lambda function name", 64, r"[a-zA-Z0-9_-]+", REGISTRY)
S3_BUCKET_NAME = NameRule("S3 bucket name", 63, r"[a-z0-9][a-z0-9.-]*[a-z0-9]", REGISTRY, 3)
EVENTS_RULE_NAME = NameRule("EventBridge rule name", 64, r"[.\-_A-Za-z0-9]+", REGISTRY)
LOG_GROUP_NAME = NameRule("log group name", 512, r"[.\-_/#A-Za-z0-9]+", REGISTRY)
KINESIS_STREAM_NAME = NameRule("Kinesis stream name", 128, r"[a-zA-Z0-9_.-]+", REGISTRY)
SECRET_NAME = NameRule(
    "Secrets Manager secret name",
    512,
    r"[A-Za-z0-9/_+=.@-]+",
    "docs.aws.amazon.com/cli/latest/reference/secretsmanager/create-secret.html; " + REGISTRY,
)
MONITOR_NAME = NameRule(
    "SiteWise Monitor portal, project or dashboard name",
    256,
    r"[^\u0000-\u001F\u007F]+",
    "docs.aws.amazon.com/iot-sitewise/latest/APIReference/API_CreateProject.html",
)

# resource type -> name property -> the rule its value obeys
NAME_RULES: dict[tuple[str, str], NameRule] = {
    ("AWS::IoT::ThingGroup", "ThingGroupName"): naming.THING_GROUP_NAME,
    ("AWS::IoT::ThingGroup", "ParentGroupName"): naming.THING_GROUP_NAME,
    ("AWS::IoT::RoleAlias", "RoleAlias"): naming.ROLE_ALIAS,
    ("AWS::IoT::TopicRule", "RuleName"): naming.IOT_RULE_NAME,
    ("AWS::IoT::Policy", "PolicyName"): naming.IOT_POLICY_NAME,
    ("AWS::IoTSiteWise::Asset", "AssetName"): naming.SITEWISE_NAME,
    ("AWS::IoTSiteWise::AssetModel", "AssetModelName"): naming.SITEWISE_NAME,
    ("AWS::IoTSiteWise::Portal", "PortalName"): MONITOR_NAME,
    ("AWS::IoTSiteWise::Project", "ProjectName"): MONITOR_NAME,
    ("AWS::IoTSiteWise::Dashboard", "DashboardName"): MONITOR_NAME,
    ("AWS::Cognito::UserPool", "UserPoolName"): naming.USER_POOL_NAME,
    ("AWS::Cognito::UserPoolGroup", "GroupName"): naming.COGNITO_GROUP_NAME,
    ("AWS::Events::EventBus", "Name"): naming.EVENT_BUS_NAME,
    ("AWS::Events::Rule", "Name"): EVENTS_RULE_NAME,
    ("AWS::KMS::Alias", "AliasName"): naming.KMS_ALIAS,
    ("AWS::SNS::Topic", "TopicName"): naming.SNS_TOPIC_NAME,
    ("AWS::SNS::Topic", "DisplayName"): naming.SNS_DISPLAY_NAME,
    ("AWS::SecretsManager::Secret", "Name"): SECRET_NAME,
    ("AWS::StepFunctions::StateMachine", "StateMachineName"): naming.STATE_MACHINE_NAME,
    ("AWS::Timestream::Database", "DatabaseName"): naming.TIMESTREAM_NAME,
    ("AWS::Timestream::Table", "DatabaseName"): naming.TIMESTREAM_NAME,
    ("AWS::Timestream::Table", "TableName"): naming.TIMESTREAM_NAME,
    ("AWS::CloudWatch::Dashboard", "DashboardName"): naming.DASHBOARD_NAME,
    ("AWS::IAM::Policy", "PolicyName"): IAM_POLICY_NAME,
    ("AWS::IAM::Role", "RoleName"): IAM_ROLE_NAME,
    ("AWS::SQS::Queue", "QueueName"): SQS_QUEUE_NAME,
    ("AWS::Lambda::Function", "FunctionName"): LAMBDA_FUNCTION_NAME,
    ("AWS::S3::Bucket", "BucketName"): S3_BUCKET_NAME,
    ("AWS::Logs::LogGroup", "LogGroupName"): LOG_GROUP_NAME,
    ("AWS::Kinesis::Stream", "Name"): KINESIS_STREAM_NAME,
    ("AWS::IoT::ProvisioningTemplate", "TemplateName"): fleet.PROVISIONING_TEMPLATE_NAME,
    ("AWS::SSM::Parameter", "Name"): fleet.SSM_PARAMETER_NAME,
    ("AWS::GreengrassV2::Deployment", "DeploymentName"): GREENGRASS_DEPLOYMENT_NAME,
    ("AWS::Athena::WorkGroup", "Name"): ATHENA_WORKGROUP_NAME,
    ("AWS::Athena::NamedQuery", "Name"): ATHENA_NAMED_QUERY_NAME,
    ("AWS::Glue::SecurityConfiguration", "Name"): GLUE_SECURITY_CONFIGURATION_NAME,
}
# Properties that name another resource, whose own declaration is checked above.
REFERENCES = {
    ("AWS::Events::Rule", "EventBusName"),
    ("AWS::Lambda::EventSourceMapping", "FunctionName"),
    ("AWS::Lambda::Permission", "FunctionName"),
    ("AWS::Logs::LogStream", "LogGroupName"),
    ("Custom::S3BucketNotifications", "BucketName"),
    ("Custom::IotClaimCertificate", "PolicyName"),  # the claim policy, declared in the stack
    ("AWS::CloudWatch::Alarm", "MetricName"),  # the metric's, not a resource's
    ("AWS::Glue::Table", "DatabaseName"),  # the lake's database, declared in its stack
    ("AWS::Glue::Crawler", "DatabaseName"),
}
# API Gateway documents no limit on these, nor does the registry schema (asserted below).
NO_KNOWN_LIMIT = {
    ("AWS::ApiGateway::ApiKey", "Name"),
    ("AWS::ApiGateway::Authorizer", "Name"),
    ("AWS::ApiGateway::Model", "Name"),
    ("AWS::ApiGateway::RestApi", "Name"),
    ("AWS::ApiGateway::Stage", "StageName"),
    ("AWS::ApiGateway::UsagePlan", "UsagePlanName"),
}
# Names the validator derives from the config: the assembly holds no other value of these.
CONFIG_DERIVED = {
    ("AWS::IoT::ThingGroup", "ThingGroupName"),
    ("AWS::IoT::RoleAlias", "RoleAlias"),
    ("AWS::IoT::TopicRule", "RuleName"),
    ("AWS::IoT::Policy", "PolicyName"),
    ("AWS::IoTSiteWise::Asset", "AssetName"),
    ("AWS::IoTSiteWise::AssetModel", "AssetModelName"),
    ("AWS::Cognito::UserPool", "UserPoolName"),
    ("AWS::Events::EventBus", "Name"),
    ("AWS::KMS::Alias", "AliasName"),
    ("AWS::SNS::Topic", "TopicName"),
    ("AWS::SNS::Topic", "DisplayName"),
    ("AWS::StepFunctions::StateMachine", "StateMachineName"),
    ("AWS::Timestream::Database", "DatabaseName"),
    ("AWS::CloudWatch::Dashboard", "DashboardName"),
}
NAME_PROPERTY = re.compile(r"(Name|^RoleAlias)$")


def name_properties(directory: Path):
    """(template, type, property, resolved value) of every name property in the assembly."""
    assembly = Assembly(directory)
    for template in assembly.templates():
        for resource in template.resources.values():
            for key, value in resource.get("Properties", {}).items():
                if NAME_PROPERTY.search(key):
                    yield template, resource["Type"], key, value, assembly


@pytest.fixture(scope="module")
def names(longest_synthesized):
    _, assembly = longest_synthesized
    found = []
    for template, kind, key, value, reader in name_properties(Path(assembly.directory)):
        if (kind, key) in NAME_RULES:
            value = reader.resolve(template, value)
        found.append((template.file, kind, key, value))
    return found


def test_every_name_property_is_classified(names):
    unknown = {
        (kind, key)
        for _, kind, key, _ in names
        if (kind, key) not in NAME_RULES.keys() | REFERENCES | NO_KNOWN_LIMIT
    }
    assert unknown == set(), "give each a rule in NAME_RULES (with its source), or say why not"


def test_every_name_obeys_its_limit(names):
    checked = [(f, k, p, v) for f, k, p, v in names if (k, p) in NAME_RULES]
    assert len({(k, p) for _, k, p, _ in checked}) >= 20
    broken = [
        f"{file}: {kind}.{key} {value!r}: {problem}"
        for file, kind, key, value in checked
        if (problem := NAME_RULES[(kind, key)].problem(value)) is not None
    ]
    assert broken == []


def test_the_config_is_at_the_limits(names, longest_plant):
    """The plant really is the longest the validator allows: its longest names hit the limits."""
    longest = {}
    for _, kind, key, value in names:
        if (kind, key) in CONFIG_DERIVED:
            longest[(kind, key)] = max(longest.get((kind, key), 0), len(value))
    for kind_key in [
        ("AWS::IoT::ThingGroup", "ThingGroupName"),
        ("AWS::IoT::RoleAlias", "RoleAlias"),
        ("AWS::StepFunctions::StateMachine", "StateMachineName"),
        ("AWS::SNS::Topic", "DisplayName"),
    ]:
        assert longest[kind_key] == NAME_RULES[kind_key].max_length, kind_key


def test_every_config_derived_name_is_one_the_validator_checked(names, longest_plant):
    derived = {}
    for name in naming.derived_names(longest_plant):
        derived.setdefault(name.rule, set()).add(name.name)
    unchecked = [
        (kind, key, value)
        for _, kind, key, value in names
        if (kind, key) in CONFIG_DERIVED and value not in derived[NAME_RULES[(kind, key)]]
    ]
    assert unchecked == []
    assert len({(k, p) for _, k, p, _ in names if (k, p) in CONFIG_DERIVED}) == len(CONFIG_DERIVED)


def registry_property(kind: str, key: str) -> dict:
    schema = PROVIDER_SCHEMA_MANAGER.get_resource_schema(region="us-east-1", resource_type=kind)
    return schema.schema["properties"][key]


@pytest.mark.parametrize(("kind", "key"), sorted(NAME_RULES))
def test_no_rule_is_looser_than_cloudformations_schema(kind, key):
    registered = registry_property(kind, key)
    rule = NAME_RULES[(kind, key)]
    assert rule.max_length <= registered.get("maxLength", rule.max_length)
    assert rule.min_length >= registered.get("minLength", 0)


@pytest.mark.parametrize(("kind", "key"), sorted(NO_KNOWN_LIMIT))
def test_names_without_a_known_limit_have_none_in_the_schema(kind, key):
    registered = registry_property(kind, key)
    assert "maxLength" not in registered and "pattern" not in registered


def test_the_limits_catch_a_name_one_character_too_long():
    rule = naming.THING_GROUP_NAME
    assert rule.problem("g" * 128) is None
    assert "129 characters long; AWS allows 1 to 128" in rule.problem("g" * 129)
    assert "not of the form" in rule.problem("has space")
