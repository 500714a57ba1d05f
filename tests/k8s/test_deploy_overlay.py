"""services/k8s/deploy_overlay.py: the wrapper kustomization the deploy stage applies. What it
refuses, what it writes, and that it needs nothing beyond the standard library and PyYAML."""

from __future__ import annotations

import ast
import importlib.util
import sys

import pytest
import yaml

from mes_domain.containers import SERVICES
from stacks.plant_config import _document as plant_document
from tests.k8s.render import (
    CERTIFICATE_ARN,
    DEPLOY_ENVIRONMENT,
    DEPLOY_OVERLAY,
    PLANT_CONFIG,
    REGISTRY,
    TAG,
    deploy_arguments,
)

_spec = importlib.util.spec_from_file_location("deploy_overlay", DEPLOY_OVERLAY)
deploy_overlay = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(deploy_overlay)


def run(tmp_path, overlay, *extra, environ=None):
    environ = DEPLOY_ENVIRONMENT[overlay] if environ is None else environ
    return deploy_overlay.main(deploy_arguments(overlay, tmp_path / "out", *extra), environ)


def written(tmp_path) -> dict:
    return yaml.safe_load((tmp_path / "out" / "kustomization.yaml").read_text())


def test_it_imports_only_the_standard_library_and_pyyaml():
    tree = ast.parse(DEPLOY_OVERLAY.read_text())
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            imported.add(node.module.split(".")[0])
    assert imported - set(sys.stdlib_module_names) == {"yaml"}


def test_the_services_it_knows_are_mes_domain_containers():
    assert deploy_overlay.service_images() == [service.name for service in SERVICES]


def test_the_cloud_wrapper_has_the_images_the_platform_values_and_the_plant(tmp_path):
    assert run(tmp_path, "cloud") == 0
    document = written(tmp_path)
    (overlay,) = document["resources"]
    assert not overlay.startswith("/")  # relative: the folder applies from any checkout
    assert (tmp_path / "out" / overlay).resolve() == DEPLOY_OVERLAY.parent / "overlays" / "cloud"
    assert document["images"] == [
        {"name": service.name, "newName": f"{REGISTRY}/mes/{service.name}", "newTag": TAG}
        for service in SERVICES
    ]
    platform, plant = document["configMapGenerator"]
    assert platform["name"] == "mes-platform" and platform["behavior"] == "merge"
    literals = dict(literal.split("=", 1) for literal in platform["literals"])
    environment = DEPLOY_ENVIRONMENT["cloud"]
    assert literals["DATABASE_HOST"] == environment["PGHOST"]  # libpq's variable, reused
    assert literals["MES_EVENT_BUS_NAME"] == environment["MES_EVENT_BUS_NAME"]
    assert "PGHOST" not in literals
    assert plant == {"name": "mes-plant", "namespace": "mes", "files": ["plant.yaml"]}
    assert "patches" not in document  # no domain, the overlay's VPC CIDR


def test_the_plant_config_is_written_with_its_extends_resolved_as_the_stacks_resolve_it(tmp_path):
    assert run(tmp_path, "cloud") == 0
    written_plant = yaml.safe_load((tmp_path / "out" / "plant.yaml").read_text())
    assert "extends" in PLANT_CONFIG.read_text()
    assert "extends" not in written_plant
    assert written_plant == plant_document(PLANT_CONFIG)


def test_explicit_values_win_over_the_environment(tmp_path):
    extra = ("--env=MES_LOG_LEVEL=DEBUG", "--database-host=other.example", "--database-port=6432")
    assert run(tmp_path, "cloud", *extra) == 0
    literals = dict(x.split("=", 1) for x in written(tmp_path)["configMapGenerator"][0]["literals"])
    assert literals["MES_LOG_LEVEL"] == "DEBUG"
    assert (literals["DATABASE_HOST"], literals["DATABASE_PORT"]) == ("other.example", "6432")


@pytest.mark.parametrize(
    ("overlay", "extra", "environ_change", "says"),
    [
        ("cloud", ("--env=MES_DATABASE_PASSWORD=hunter2",), {}, "looks like a secret"),
        ("cloud", (), {"MES_API_TOKEN": "abc"}, "looks like a secret"),
        ("cloud", ("--env=MES_EVENT_BUS=bus",), {}, "not a platform value"),
        ("cloud", ("--env=mes_log_level=INFO",), {}, "not an environment variable name"),
        ("cloud", ("--env=MES_INSTANCE_ID=berlin",), {}, "cloud overlay is MES_INSTANCE_ID=cloud"),
        ("cloud", (), {"PGHOST": None}, "database host is missing"),
        ("cloud", ("--database-port=54321x",), {}, "not a TCP port"),
        ("cloud", ("--env=MES_EVENT_BUS_NAME=a\nb",), {}, "one line"),
        ("edge", (), {"MES_INSTANCE_ID": None}, "needs MES_INSTANCE_ID"),
        ("edge", (), {"MES_INSTANCE_ID": "cloud"}, "needs MES_INSTANCE_ID"),
        ("edge", (f"--certificate-arn={CERTIFICATE_ARN}",), {}, "cloud overlay's ALB"),
        ("edge", ("--vpc-cidr=10.0.0.0/16",), {}, "cloud overlay's load balancer"),
        ("cloud", ("--certificate-arn=arn:aws:iam::123456789012:role/x",), {}, "not an ACM"),
        ("cloud", ("--vpc-cidr=10.0.0.1/16",), {}, "--vpc-cidr"),
        ("cloud", ("--tag=latest:1",), {}, "not an image tag"),
    ],
)
def test_it_refuses_what_would_deploy_something_wrong(
    tmp_path, capsys, overlay, extra, environ_change, says
):
    environ = {**DEPLOY_ENVIRONMENT[overlay], **environ_change}
    environ = {key: value for key, value in environ.items() if value is not None}
    assert run(tmp_path, overlay, *extra, environ=environ) == 2
    assert says in capsys.readouterr().err
    assert not (tmp_path / "out").exists()  # nothing half-written


def test_every_service_needs_an_untagged_image(tmp_path, capsys):
    base = deploy_arguments("cloud", tmp_path / "out")
    only_one = [arg for arg in base if not arg.startswith("--image=inventory=")]
    assert deploy_overlay.main(only_one, DEPLOY_ENVIRONMENT["cloud"]) == 2
    assert "no --image for inventory" in capsys.readouterr().err
    tagged = [f"{arg}:v1" if arg.startswith("--image=") else arg for arg in base]
    assert deploy_overlay.main(tagged, DEPLOY_ENVIRONMENT["cloud"]) == 2
    assert "without tag or digest" in capsys.readouterr().err
    unknown = [*base, "--image=quality=registry.example/quality"]
    assert deploy_overlay.main(unknown, DEPLOY_ENVIRONMENT["cloud"]) == 2
    assert "a service of" in capsys.readouterr().err
