"""Across the whole cloud assembly: account-wide singletons have one owner, the stacks that need
them deploy after it, and stateful stores outlive ``cdk destroy``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

# "To avoid overwriting other roles, you should only have one AWS::ApiGateway::Account resource
# per region per account."
# https://docs.aws.amazon.com/AWSCloudFormation/latest/TemplateReference/aws-resource-apigateway-account.html
ACCOUNT = "AWS::ApiGateway::Account"
# Execution logging needs the account's CloudWatch role first:
# https://docs.aws.amazon.com/apigateway/latest/developerguide/set-up-logging.html
STAGE = "AWS::ApiGateway::Stage"
PUSH_TO_CLOUDWATCH = "AmazonAPIGatewayPushToCloudWatchLogs"


def templates(assembly_dir: Path, template_file: str):
    """(template file, template) of a stack and, depth first, of its nested stacks."""
    template = json.loads((assembly_dir / template_file).read_text())
    yield template_file, template
    for resource in template.get("Resources", {}).values():
        nested = resource.get("Metadata", {}).get("aws:asset:path")
        if resource["Type"] == "AWS::CloudFormation::Stack" and nested:
            yield from templates(assembly_dir, nested)


def resources_by_stack(synthesized, resource_type: str) -> dict[str, dict[str, dict]]:
    """Each top-level stack's ``resource_type`` resources, nested stacks' included."""
    _, assembly = synthesized
    found = {}
    for stack in assembly.stacks:
        for _, template in templates(Path(assembly.directory), stack.template_file):
            for logical_id, resource in template.get("Resources", {}).items():
                if resource["Type"] == resource_type:
                    found.setdefault(stack.stack_name, {})[logical_id] = resource
    return found


def depends_on(stack, name: str) -> bool:
    """Whether ``stack`` deploys after the stack ``name``, directly or through others."""
    return any(
        dep.id == name or depends_on(dep, name)
        for dep in stack.dependencies
        if hasattr(dep, "template_file")
    )


def test_exactly_one_api_gateway_account_setting_and_the_platform_owns_it(synthesized):
    stacks, _ = synthesized
    accounts = resources_by_stack(synthesized, ACCOUNT)
    assert {name: len(found) for name, found in accounts.items()} == {stacks.platform.stack_name: 1}


def test_the_account_setting_names_a_retained_api_gateway_role_with_the_logging_policy(
    synthesized, platform_template
):
    ((_, account),) = platform_template.find_resources(ACCOUNT).items()
    role_id = account["Properties"]["CloudWatchRoleArn"]["Fn::GetAtt"][0]
    role = platform_template.find_resources("AWS::IAM::Role")[role_id]
    (statement,) = role["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    assert statement["Principal"] == {"Service": "apigateway.amazonaws.com"}
    (policy,) = role["Properties"]["ManagedPolicyArns"]
    assert json.dumps(policy).endswith(f'service-role/{PUSH_TO_CLOUDWATCH}"]]}}')
    # The setting outlives the stack (the docs above), so its role must too.
    assert account["DeletionPolicy"] == role["DeletionPolicy"] == "Retain"


def test_every_logging_api_stage_deploys_after_the_account_setting(synthesized):
    _, assembly = synthesized
    (owner,) = resources_by_stack(synthesized, ACCOUNT)
    stages = resources_by_stack(synthesized, STAGE)
    assert len(stages) >= 2  # the quality and documents APIs
    for name, found in stages.items():
        for stage in found.values():
            properties = stage["Properties"]
            logging = {s.get("LoggingLevel") for s in properties.get("MethodSettings", [])}
            assert "AccessLogSetting" in properties or logging - {None, "OFF"}
        assert depends_on(assembly.get_stack_by_name(name), owner), f"{name} before {owner}"


@pytest.mark.parametrize("resource_type", ["AWS::Timestream::Database", "AWS::Timestream::Table"])
def test_the_time_series_store_survives_cdk_destroy(synthesized, resource_type):
    stacks, _ = synthesized
    found = resources_by_stack(synthesized, resource_type)
    assert set(found) == {stacks.iiot.stack_name}
    for resource in found[stacks.iiot.stack_name].values():
        assert resource["DeletionPolicy"] == resource["UpdateReplacePolicy"] == "Retain"
