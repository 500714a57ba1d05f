"""The containers platform exists exactly when ``capabilities.eks`` is on: none of its stacks or
resource types in the demo plant's assembly; in the full plant's, its three stacks, which
``MesStacks`` exposes; and the EdgeSite stack only for an Outposts edge site. Across its stacks,
the grants name what the other stacks make (references followed as a deploy resolves them).

Reads the session's two synthesized apps; the edge-site choice is checked on
``compose_containers`` with stand-in stacks, so this module synthesizes nothing."""

from __future__ import annotations

from dataclasses import fields
from unittest.mock import MagicMock

import pytest

from mes_domain.containers import NAMESPACE, SERVICES
from mes_domain.plant import Plant
from stacks import mes_app
from stacks.containers_data_stack import ContainersDataStack
from stacks.containers_stack import ContainersStack
from stacks.edge_site_stack import EdgeSiteStack
from tests.stacks.assembly import (
    ACCOUNT,
    DBI_RESOURCE_ID,
    REGION,
    Assembly,
    Template,
    as_list,
    statements,
)
from tests.stacks.plants import with_containers

# Resource types only the containers platform makes.
PLATFORM_TYPES = (
    "AWS::EKS::",
    "AWS::RDS::",
    "AWS::ECR::",
    "AWS::MSK::",
    "AWS::CodePipeline::",
    "AWS::CodeBuild::",
)
# MesStacks attribute, stack capability, class.
PLATFORM_STACKS = (
    ("containers_data", "ContainersData", ContainersDataStack),
    ("containers", "Containers", ContainersStack),
    ("edge_site", "EdgeSite", EdgeSiteStack),
)


def _platform_resources(assembly: Assembly) -> dict[str, list[str]]:
    """Stack name -> the platform's resource types in it (nested templates included)."""
    found: dict[str, list[str]] = {}
    for template in assembly.templates():
        for resource in template.resources.values():
            if resource["Type"].startswith(PLATFORM_TYPES):
                found.setdefault(template.stack_name, []).append(resource["Type"])
    return found


def test_the_demo_plant_has_no_containers_platform(demo_plant, synthesized):
    stacks, cloud_assembly = synthesized
    assert not demo_plant.capabilities.eks
    for attribute, capability, _ in PLATFORM_STACKS:
        assert getattr(stacks, attribute) is None, attribute
        assert mes_app.stack_name(demo_plant, capability) not in {
            s.stack_name for s in cloud_assembly.stacks
        }
    assembly = Assembly(cloud_assembly.directory)
    composed = [f.name for f in fields(stacks) if getattr(stacks, f.name) is not None]
    assert len(assembly.stacks) == len(composed) >= 8
    assert _platform_resources(assembly) == {}


def test_the_full_plant_has_every_containers_stack(full_plant, full_synthesized):
    stacks, cloud_assembly = full_synthesized
    assert full_plant.capabilities.eks
    names = {s.stack_name for s in cloud_assembly.stacks}
    for attribute, capability, kind in PLATFORM_STACKS:
        stack = getattr(stacks, attribute)
        assert isinstance(stack, kind), attribute
        assert stack.stack_name == mes_app.stack_name(full_plant, capability) in names
    found = _platform_resources(Assembly(cloud_assembly.directory))
    prefix = full_plant.deployment.stack_prefix
    # each where the design puts it, and nowhere else
    assert set(found) == {f"{prefix}-{c}" for _, c, _ in PLATFORM_STACKS}
    assert {"AWS::RDS::DBInstance", "AWS::ECR::Repository", "AWS::MSK::ServerlessCluster"} <= set(
        found[f"{prefix}-ContainersData"]
    )
    assert {"AWS::EKS::Cluster", "AWS::CodePipeline::Pipeline", "AWS::CodeBuild::Project"} <= set(
        found[f"{prefix}-Containers"]
    )
    assert found[f"{prefix}-EdgeSite"].count("AWS::EKS::Cluster") == 1


@pytest.fixture
def stand_ins(monkeypatch) -> dict[str, MagicMock]:
    """compose_containers' three stack classes replaced, so composing builds no stack."""
    classes = {}
    for _, capability, kind in PLATFORM_STACKS:
        classes[capability] = MagicMock(name=kind.__name__)
        monkeypatch.setattr(mes_app, kind.__name__, classes[capability])
    return classes


@pytest.mark.parametrize(
    ("edge_site", "has_edge_stack"),
    [("none", False), ("eks-anywhere", False), ("outposts", True)],
)
def test_only_an_outposts_edge_site_gets_the_edge_site_stack(
    demo_plant, stand_ins, edge_site, has_edge_stack
):
    document = with_containers(demo_plant.model_dump(mode="json"), edge_site=edge_site)
    plant = Plant.model_validate(document)
    composed = mes_app.compose_containers(
        MagicMock(), plant, MagicMock(), MagicMock(), {"env": None}
    )
    expected = {"containers_data", "containers"} | ({"edge_site"} if has_edge_stack else set())
    assert set(composed) == expected
    assert stand_ins["EdgeSite"].called == has_edge_stack
    if has_edge_stack:
        (_, name), _ = stand_ins["EdgeSite"].call_args
        assert name == mes_app.stack_name(plant, "EdgeSite")
        # the pipeline's deploy stage reaches the edge cluster's API
        pipeline = stand_ins["Containers"].return_value.add_delivery_pipeline.return_value
        edge = composed["edge_site"].edge
        edge.admit_api_clients.assert_called_once_with(
            "PipelineDeploy", pipeline.deploy_security_group
        )


# --- grants across the platform's stacks, resolved as deployed (tests/stacks/assembly.py) ---


@pytest.fixture(scope="module")
def full_assembly(full_synthesized) -> Assembly:
    _, cloud_assembly = full_synthesized
    return Assembly(cloud_assembly.directory)


def _granted(assembly: Assembly, template: Template, role_id: str, action: str) -> set[str]:
    """The resolved resources ``action`` is allowed on by the policies attached to a role."""
    found = set()
    for policy in template.resources.values():
        properties = policy.get("Properties", {})
        if policy["Type"] != "AWS::IAM::Policy" or {"Ref": role_id} not in properties["Roles"]:
            continue
        for statement in statements(properties["PolicyDocument"]):
            if action in as_list(statement["Action"]):
                found |= {
                    str(assembly.resolve(template, r)) for r in as_list(statement["Resource"])
                }
    return found


def _arn(service: str, resource: str) -> str:
    return f"arn:aws:{service}:{REGION}:{ACCOUNT}:{resource}"


def test_each_pod_role_connects_to_the_data_stacks_instance_as_its_own_user(full_assembly):
    """IAM database authentication: rds-db:connect on the ContainersData instance's
    DbiResourceId and the service's own login role only (its ``database``)."""
    associations = list(full_assembly.resources("AWS::EKS::PodIdentityAssociation"))
    assert {a["Properties"]["ServiceAccount"] for _, _, a in associations} == {
        s.service_account for s in SERVICES
    }
    for template, _, association in associations:
        properties = association["Properties"]
        assert properties["Namespace"] == NAMESPACE
        (service,) = [s for s in SERVICES if s.service_account == properties["ServiceAccount"]]
        role = full_assembly.target(template, properties["RoleArn"])
        assert role.type == "AWS::IAM::Role"
        # DBI_RESOURCE_ID is what the data stack's AWS::RDS::DBInstance DbiResourceId resolves to
        assert _granted(full_assembly, template, role.logical_id, "rds-db:connect") == {
            _arn("rds-db", f"dbuser:{DBI_RESOURCE_ID}/{service.database}")
        }


def test_the_kafka_grants_name_the_data_stacks_serverless_cluster(full_assembly):
    """Wherever a role may connect to Kafka (production execution's; inventory has no Kafka
    client), it is to the ContainersData cluster, and its topics and groups are that cluster's
    by name."""
    ((data, cluster_id, cluster),) = full_assembly.resources("AWS::MSK::ServerlessCluster")
    cluster_name = cluster["Properties"]["ClusterName"]
    cluster_arn = str(full_assembly.resolve(data, {"Fn::GetAtt": [cluster_id, "Arn"]}))
    connecting = 0
    for template, role, _ in full_assembly.resources("AWS::IAM::Role"):
        connect = _granted(full_assembly, template, role, "kafka-cluster:Connect")
        if not connect:
            continue
        connecting += 1
        assert connect == {cluster_arn}, role
        for action, kind in (
            ("kafka-cluster:ReadData", "topic"),
            ("kafka-cluster:AlterGroup", "group"),
        ):
            (resource,) = _granted(full_assembly, template, role, action)
            assert resource.startswith(_arn("kafka", f"{kind}/{cluster_name}/*/")), resource
    assert connecting >= 1


def test_the_image_build_pushes_to_the_data_stacks_repositories(full_plant, full_assembly):
    """One repository per service in ContainersData; whatever may push images may push to
    those, and only those."""
    prefix = full_plant.deployment.stack_prefix
    repositories = {
        r["Properties"]["RepositoryName"]
        for _, _, r in full_assembly.resources("AWS::ECR::Repository")
    }
    assert repositories == {s.repository_name(prefix) for s in SERVICES}
    pushers = [
        _granted(full_assembly, template, role, "ecr:PutImage")
        for template, role, _ in full_assembly.resources("AWS::IAM::Role")
    ]
    expected = {_arn("ecr", f"repository/{name}") for name in repositories}
    assert [granted for granted in pushers if granted] == [expected]


def test_the_deploy_stages_describe_exactly_the_clusters_the_assembly_makes(full_assembly):
    """The edge deploy names the EdgeSite stack's cluster by its fixed name, not a reference:
    the two must agree."""
    clusters = {
        _arn("eks", f"cluster/{cluster['Properties']['Name']}")
        for _, _, cluster in full_assembly.resources("AWS::EKS::Cluster")
    }
    assert len(clusters) == 2
    described = set()
    for template in full_assembly.templates():
        for logical_id, role in template.resources.items():
            if role["Type"] == "AWS::IAM::Role":
                described |= _granted(full_assembly, template, logical_id, "eks:DescribeCluster")
    assert described == clusters
