"""The model pipeline's and the quality API's Greengrass v2 and IoT grants, as synthesized.

Greengrass v2 ARNs are colon-separated (Service Authorization Reference, "Actions, resources,
and condition keys for AWS IoT Greengrass V2"): ``components:NAME``,
``components:NAME:versions:VERSION``, ``deployments:ID``, ``coreDevices:NAME``. A path-style
ARN (``components/*``) matches nothing, so every call would be denied.
"""

from __future__ import annotations

import fnmatch
import json
import re

import pytest

from mes_domain import edge_deployment as edge
from mes_domain.naming import station_thing_group_name, thing_group_name
from tests.stacks.assembly import template_text

GREENGRASS_V2 = re.compile(
    r"^arn:\$\{AWS::Partition\}:greengrass:\$\{AWS::Region\}:\$\{AWS::AccountId\}:"
    r"(components:[^:/]+(:versions:[^:/]+)?|deployments:[^:/]+|coreDevices:[^:/]+)$"
)
COMPONENT = "com.acme.mes.models.SurfaceDefects"  # the demo plant's camera model component
# The camera stations' gateway groups (<prefix>-<site>-<line>:<station>), never a line's group:
# a deployment to a group replaces its previous one
# (docs.aws.amazon.com/greengrass/v2/developerguide/revise-deployments.html).
STATION_GROUPS = "thinggroup/MesDemo-*-*:*:models"  # the camera stations' model groups


def _grants(template, policy_prefix: str) -> dict[str, set[str]]:
    """Action -> resources of the policies whose logical id starts with ``policy_prefix``."""
    grants: dict[str, set[str]] = {}
    for key, policy in template.find_resources("AWS::IAM::Policy").items():
        if not key.startswith(policy_prefix):
            continue
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
            actions = statement["Action"]
            resources = statement["Resource"]
            for action in [actions] if isinstance(actions, str) else actions:
                grants.setdefault(action, set()).update(
                    template_text(r)
                    for r in (resources if isinstance(resources, list) else [resources])
                )
    return grants


def _arn(service: str, resource: str) -> str:
    return f"arn:${{AWS::Partition}}:{service}:${{AWS::Region}}:${{AWS::AccountId}}:{resource}"


def test_every_greengrass_resource_has_the_services_arn_format(quality_template):
    found = set()
    for action, resources in _grants(quality_template, "").items():
        if action.startswith("greengrass:"):
            found |= {r for r in resources if r != "*"}
    assert found, "no Greengrass resource is granted at all"
    assert all(GREENGRASS_V2.match(arn) for arn in found), sorted(found)


def test_publish_creates_and_describes_only_the_configured_components(quality_template):
    grants = _grants(quality_template, "PipelinePublishComponent")
    assert grants["greengrass:CreateComponentVersion"] == {
        _arn("greengrass", f"components:{COMPONENT}")
    }
    assert grants["greengrass:DescribeComponent"] == {
        _arn("greengrass", f"components:{COMPONENT}:versions:*")
    }


def test_deploy_creates_deployments_with_the_iot_jobs_greengrass_runs_for_it(quality_template):
    grants = _grants(quality_template, "PipelineDeployModel")
    groups = _arn("iot", STATION_GROUPS)
    jobs = _arn("iot", "job/*")
    # CreateDeployment and ListDeployments take no resource type, so only "*" matches them.
    assert grants["greengrass:CreateDeployment"] == {"*"}
    assert grants["greengrass:ListDeployments"] == {"*"}
    assert grants["greengrass:GetDeployment"] == {_arn("greengrass", "deployments:*")}
    # The dependent actions the reference lists, on the camera stations' groups only.
    assert grants["iot:CreateJob"] == {jobs, groups}
    assert grants["iot:DescribeThingGroup"] == {groups}
    for action in ("iot:DescribeJob", "iot:UpdateJob", "iot:CancelJob"):
        assert grants[action] == {jobs}, action


def test_the_api_reads_deployment_status_and_writes_none(quality_template):
    grants = _grants(quality_template, "ApiHandler")
    assert grants["greengrass:GetDeployment"] == {_arn("greengrass", "deployments:*")}
    assert grants["iot:DescribeJob"] == {_arn("iot", "job/*")}
    assert grants["iot:DescribeThingGroup"] == {_arn("iot", STATION_GROUPS)}
    assert not {"greengrass:CreateDeployment", "iot:CreateJob"} & set(grants)


@pytest.mark.parametrize("policy_prefix", ["PipelinePublishComponent", "PipelineDeployModel",
                                           "ApiHandler"])  # fmt: skip
def test_acknowledgements_name_the_arns_actually_granted(quality_template, policy_prefix):
    """A nag reason that names a path-style ARN hid the denied grants: none is left."""
    for key, policy in quality_template.find_resources("AWS::IAM::Policy").items():
        if key.startswith(policy_prefix):
            text = json.dumps(policy.get("Metadata", {}))
            assert "components/" not in text and "deployments/" not in text


def _matches(pattern: str, name: str) -> bool:
    """IAM's "*" matches any characters, ":" included."""
    return fnmatch.fnmatchcase(name, pattern.removeprefix("thinggroup/"))


def test_the_granted_groups_are_the_model_groups_and_no_group_the_stack_deploys_to(
    quality_template, demo_plant
):
    versions = {edge.DATA_COLLECTOR: "1.0.0", edge.QUALITY_INSPECTION: "1.0.0"}
    cameras, others = set(), set()
    for site in demo_plant.sites:
        others.add(thing_group_name("MesDemo", site.id))
        for line in site.lines:
            others.add(thing_group_name("MesDemo", site.id, line.id))
            document = edge.line_deployments(demo_plant, site.id, line.id, versions)
            for deployment in document["deployments"]:
                if edge.QUALITY_INSPECTION in deployment["components"]:
                    cameras.add(deployment["targetThingGroupName"])
    assert cameras == {station_thing_group_name("MesDemo", "berlin", "body-line-1", "vision-01")}
    granted = {
        resource.rsplit(":thinggroup/", 1)[-1]
        for action in ("iot:CreateJob", "iot:DescribeThingGroup")
        for resource in _grants(quality_template, "PipelineDeployModel")[action]
        if ":thinggroup/" in resource
    }
    assert granted == {STATION_GROUPS.removeprefix("thinggroup/")}
    for name in cameras:  # the EdgeFleet stack's camera gateway groups: never the pipeline's
        assert not _matches(STATION_GROUPS, name), name
        assert _matches(STATION_GROUPS, name + ":models"), name
    for name in others:
        assert not _matches(STATION_GROUPS, name), name
    assert not _matches(STATION_GROUPS, station_thing_group_name("MesDemo", "s", "l", "models"))
