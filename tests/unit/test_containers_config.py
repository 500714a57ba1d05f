"""The containers platform's part of the plant config: each bad value is refused with the field
and the reason, and the options the stacks read parse as documented."""

from __future__ import annotations

import re

import pytest
import yaml
from pydantic import ValidationError

from mes_domain.containers import SERVICES, ContainersSettings, ServiceBus
from mes_domain.plant import EdgeSite, Plant
from tests.conftest import DEMO_PLANT
from tests.stacks.plants import with_containers
from tests.unit.test_plant import plant_with


def demo_document() -> dict:
    return yaml.safe_load(DEMO_PLANT.read_text())


def error_text(document: dict) -> str:
    with pytest.raises(ValidationError) as info:
        Plant.model_validate(document)
    return str(info.value)


def test_the_demo_plant_leaves_the_platform_off_with_the_documented_defaults():
    plant = Plant.model_validate(demo_document())
    assert plant.capabilities.eks is False
    assert plant.deployment.edge_site is EdgeSite.NONE
    assert plant.containers == ContainersSettings()  # the file spells out the defaults


def test_every_option_on_parses():
    plant = Plant.model_validate(with_containers(demo_document()))
    assert plant.capabilities.eks
    assert plant.deployment.edge_site is EdgeSite.OUTPOSTS
    assert plant.containers.service_bus is ServiceBus.MSK
    assert plant.containers.outpost is not None
    assert plant.containers.pipeline.source.repository == "acme/mes-platform"


@pytest.mark.parametrize("spelling", ["eks-anywhere", "eks_anywhere"])
def test_eks_anywhere_takes_the_issue_s_spelling_and_the_older_one(spelling):
    document = with_containers(demo_document(), edge_site="eks-anywhere")
    document["deployment"]["edge_site"] = spelling
    assert Plant.model_validate(document).deployment.edge_site is EdgeSite.EKS_ANYWHERE


@pytest.mark.parametrize(
    ("old", "moved_to"),
    [("msk", "containers.service_bus: msk"), ("edge_site", "deployment.edge_site")],
)
def test_the_old_capability_switches_say_where_they_moved(old, moved_to):
    document = plant_with(lambda d: d.update(capabilities={"eks": True, old: "x"}))
    assert f"capabilities.{old} has moved to {moved_to}" in error_text(document)


def test_an_edge_site_needs_the_platform_and_outposts_need_their_settings():
    def edge(site: str, eks: bool, outpost: dict | None = None):
        def mutate(document):
            document["deployment"]["edge_site"] = site
            document["capabilities"] = {"eks": eks}
            if outpost is not None:
                document["containers"] = {"outpost": outpost}

        return plant_with(mutate)

    assert "turn on capabilities.eks" in error_text(edge("eks-anywhere", eks=False))
    assert "needs containers.outpost" in error_text(edge("outposts", eks=True))
    outpost = {
        "outpost_arn": "arn:aws:outposts:eu-central-1:123456789012:outpost/op-0123456789abcdef0",
        "availability_zone": "eu-central-1a",
        "subnet_cidr": "10.40.240.0/24",
        "site": "s1",
        "database_host": "edge-db.s1.example.com",
    }
    assert "applies only to deployment.edge_site outposts" in error_text(
        edge("none", eks=True, outpost=outpost)
    )
    assert "set containers.domain" in error_text(edge("outposts", eks=True, outpost=outpost))
    assert "is not a site of the plant" in error_text(
        edge("outposts", eks=True, outpost={**outpost, "site": "elsewhere"})
    )


@pytest.mark.parametrize(
    ("containers", "reason"),
    [
        ({"endpoint_access": "public_and_private"}, "needs public_access_cidrs"),
        ({"public_access_cidrs": ["203.0.113.0/24"]}, "apply only to endpoint_access"),
        (
            {"endpoint_access": "public_and_private", "public_access_cidrs": ["0.0.0.0/0"]},
            "must not open the endpoint",
        ),
        (
            {"endpoint_access": "public_and_private", "public_access_cidrs": ["10.0.0.1/8"]},
            "is not a CIDR block",
        ),
        ({"vpc_cidr": "2001:db8::/32"}, "only IPv4"),
        ({"service_bus": "kafka"}, "service_bus"),
        ({"kubernetes_version": "1.9"}, "kubernetes_version"),
        ({"database": {"instance_class": "t4g.medium"}}, "instance_class"),
        ({"database": {"backup_retention_days": 0}}, "backup_retention_days"),
        (
            {"database": {"allocated_storage_gib": 200, "max_allocated_storage_gib": 100}},
            "below allocated_storage_gib",
        ),
        (
            {
                "domain": {
                    "hosted_zone_id": "Z0123456789ABCDEFGHIJ",
                    "zone_name": "mes.example.com",
                    "record_name": "mes.example.com",
                }
            },
            "must be a name below",
        ),
        (
            {
                "domain": {
                    "hosted_zone_id": "Z0123456789ABCDEFGHIJ",
                    "zone_name": "mes.example.com",
                    "record_name": "API.mes.example.com",
                }
            },
            "lowercase DNS name",
        ),
        ({"pipeline": {"source": {"provider": "codeconnections"}}}, "needs connection_arn"),
        (
            {"pipeline": {"source": {"provider": "s3", "repository": "acme/mes"}}},
            "belong to a codeconnections source",
        ),
        (
            {
                "pipeline": {
                    "source": {
                        "provider": "codeconnections",
                        "connection_arn": "arn:aws:iam::123456789012:role/x",
                        "repository": "acme/mes",
                    }
                }
            },
            "not the ARN of a CodeConnections connection",
        ),
        ({"pipeline": {"source": {"branch": "feature//x"}}}, "not a git branch name"),
        ({"pipeline": {"approval_emails": ["not-an-address"]}}, "approval_emails"),
    ],
)
def test_each_bad_containers_value_is_refused_with_its_reason(containers, reason):
    document = plant_with(lambda d: d.update(capabilities={"eks": True}, containers=containers))
    assert reason in error_text(document)


def test_the_services_names_fit_kubernetes_postgresql_and_ecr():
    dns_label = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
    for service in SERVICES:
        assert len(service.name) <= 63 and re.match(dns_label, service.name)
        assert service.database.isidentifier() and len(service.database) <= 63
        # ECR: lowercase, at most 256 characters, / separates namespaces.
        repository = service.repository_name("MesDemo")
        assert repository == repository.lower() and len(repository) <= 256
    assert len({s.name for s in SERVICES}) == len({s.database for s in SERVICES}) == len(SERVICES)
