"""The containers platform's names (mes_domain.containers) are checked at config load like the
others (mes_domain.naming.derived_names), when ``capabilities.eks`` is on."""

from __future__ import annotations

import pytest
import yaml

from mes_domain import containers, naming
from mes_domain.naming import field_text
from stacks.plant_config import PlantConfigError, load_plant
from tests.stacks.plants import with_containers

PREFIX = ("deployment", "stack_prefix")
# The model pipeline's state machine (80 characters) is what bounds the prefix first.
LONGEST_PREFIX = "M" + "p" * (
    naming.STATE_MACHINE_NAME.max_length - len(naming.model_pipeline_name("")) - 1
)


def _document(demo_plant, prefix: str, *, eks: bool = True) -> dict:
    document = demo_plant.model_dump(mode="json")
    if eks:
        with_containers(document)  # MSK and an Outposts edge site: every name there is
    document["deployment"]["stack_prefix"] = prefix
    return document


def _load(tmp_path, document: dict):
    path = tmp_path / "plant.yaml"
    path.write_text(yaml.safe_dump(document))
    return path, load_plant(path)


def test_with_eks_on_the_containers_names_are_derived_from_the_prefix(demo_plant, tmp_path):
    _, plant = _load(tmp_path, _document(demo_plant, "MesDemo"))
    derived = {(d.rule, d.name) for d in naming.derived_names(plant) if d.field == PREFIX}
    assert {
        (naming.STACK_NAME, "MesDemo-ContainersData"),
        (naming.STACK_NAME, "MesDemo-Containers"),
        (naming.STACK_NAME, "MesDemo-EdgeSite"),
        (containers.ECR_REPOSITORY_NAME, "mesdemo/production-execution"),
        (containers.ECR_REPOSITORY_NAME, "mesdemo/inventory"),
        (containers.DB_INSTANCE_IDENTIFIER, "mesdemo-db"),
        (containers.MSK_CLUSTER_NAME, "MesDemo-sync"),
        (containers.EKS_CLUSTER_NAME, "MesDemo-services"),
        (containers.EKS_CLUSTER_NAME, "MesDemo-edge"),
    } <= derived


def test_with_eks_off_no_containers_name_is_derived(demo_plant):
    assert not demo_plant.capabilities.eks
    rules = {d.rule for d in naming.derived_names(demo_plant)}
    assert not rules & {
        containers.ECR_REPOSITORY_NAME,
        containers.DB_INSTANCE_IDENTIFIER,
        containers.MSK_CLUSTER_NAME,
        containers.EKS_CLUSTER_NAME,
    }


def test_the_longest_prefix_the_config_allows_fits_every_containers_name(demo_plant, tmp_path):
    """Within the state machine's bound the containers names fit: a 57-character prefix makes a
    60-character DB instance identifier (63 allowed) and a 62-character MSK cluster (64)."""
    _, plant = _load(tmp_path, _document(demo_plant, LONGEST_PREFIX))
    assert plant.deployment.stack_prefix == LONGEST_PREFIX
    names = dict(containers.containers_data_names(LONGEST_PREFIX, msk=True))
    assert len(names[containers.DB_INSTANCE_IDENTIFIER]) == 60
    assert len(names[containers.MSK_CLUSTER_NAME]) == 62
    with pytest.raises(PlantConfigError, match="Step Functions state machine name"):
        _load(tmp_path, _document(demo_plant, LONGEST_PREFIX + "p"))


@pytest.mark.parametrize(
    ("prefix", "what", "name"),
    [
        # RDS: "Can't end with a hyphen or contain two consecutive hyphens"
        ("MesDemo-", "RDS DB instance identifier", "mesdemo--db"),
        ("Mes--Demo", "RDS DB instance identifier", "mes--demo-db"),
        # ECR: one separator between lowercase letters and digits
        ("Mes--Demo", "ECR repository name", "mes--demo/inventory"),
    ],
)
def test_a_prefix_that_makes_a_containers_name_aws_refuses_is_a_config_error(
    demo_plant, tmp_path, prefix, what, name
):
    """It loads with the platform off (no such resource), and with it on the loader names the
    field, its value, the name and AWS's rule."""
    _load(tmp_path, _document(demo_plant, prefix, eks=False))
    with pytest.raises(PlantConfigError) as info:
        _load(tmp_path, _document(demo_plant, prefix))
    message = str(info.value)
    assert f"{field_text(PREFIX)}: {prefix!r} makes the {what} {name!r} not of the form" in message


@pytest.mark.parametrize(
    ("rule", "name", "fits"),
    [
        (containers.EKS_CLUSTER_NAME, "MesDemo-services", True),
        (containers.EKS_CLUSTER_NAME, "a_b-1", True),
        (containers.EKS_CLUSTER_NAME, "x" * 100, True),
        (containers.EKS_CLUSTER_NAME, "x" * 101, False),
        (containers.EKS_CLUSTER_NAME, "-edge", False),
        (containers.EKS_CLUSTER_NAME, "mes.edge", False),
    ],
)
def test_the_eks_cluster_name_rule(rule, name, fits):
    assert (rule.problem(name) is None) == fits
