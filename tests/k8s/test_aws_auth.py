"""services/k8s/aws_auth.py: the aws-auth ConfigMap with a role mapped, for the Outposts local
cluster (README, "The edge site on AWS Outposts"). What it keeps, what it refuses, that a
re-run changes nothing, and that it runs as the README pipes it."""

from __future__ import annotations

import ast
import importlib.util
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

AWS_AUTH = Path(__file__).resolve().parents[2] / "services" / "k8s" / "aws_auth.py"
_spec = importlib.util.spec_from_file_location("aws_auth", AWS_AUTH)
aws_auth = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(aws_auth)

DEPLOY_ROLE = "arn:aws:iam::123456789012:role/MesDemo-Containers-DeliveryDeployEdgeRole1D9-AbC"
NODE_ROLE = "arn:aws:iam::123456789012:role/MesDemo-edge-nodes"
NODE_ENTRY = {
    "rolearn": NODE_ROLE,
    "username": "system:node:{{EC2PrivateDNSName}}",
    "groups": ["system:bootstrappers", "system:nodes"],
}
# As `kubectl get configmap aws-auth -o json` prints it: server fields, another key.
CURRENT = {
    "apiVersion": "v1",
    "kind": "ConfigMap",
    "metadata": {
        "name": "aws-auth",
        "namespace": "kube-system",
        "resourceVersion": "4711",
        "uid": "8fdf7cf0-35b2-4005-9a90-ded6e0ee0f9a",
    },
    "data": {
        "mapRoles": yaml.safe_dump([NODE_ENTRY]),
        "mapUsers": "- userarn: arn:aws:iam::123456789012:user/shift-lead\n  username: lead\n",
    },
}
DEPLOY_ENTRY = {"rolearn": DEPLOY_ROLE, "username": "mes-edge-deploy", "groups": ["system:masters"]}


def roles(config_map: dict) -> list[dict]:
    return yaml.safe_load(config_map["data"]["mapRoles"])


def add_deploy_role(config_map: dict | None, role_arn: str = DEPLOY_ROLE) -> dict:
    return aws_auth.with_role(config_map, role_arn, "mes-edge-deploy", ["system:masters"])


def test_the_role_is_added_after_the_nodes_and_everything_else_is_kept():
    result = add_deploy_role(CURRENT)
    assert roles(result) == [NODE_ENTRY, DEPLOY_ENTRY]
    assert result["data"]["mapUsers"] == CURRENT["data"]["mapUsers"]
    # No resourceVersion or uid: what `kubectl apply` takes; the input is not changed.
    assert result["metadata"] == {"name": "aws-auth", "namespace": "kube-system"}
    assert roles(CURRENT) == [NODE_ENTRY]


def test_a_rerun_changes_nothing_and_a_remapped_role_keeps_its_place():
    once = add_deploy_role(CURRENT)
    assert add_deploy_role(once) == once
    first = aws_auth.with_role(CURRENT, NODE_ROLE, "other", ["readers"])
    assert roles(first) == [{"rolearn": NODE_ROLE, "username": "other", "groups": ["readers"]}]


def test_without_a_config_map_it_writes_a_new_one():
    assert add_deploy_role(None) == {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "aws-auth", "namespace": "kube-system"},
        "data": {"mapRoles": yaml.safe_dump([DEPLOY_ENTRY], sort_keys=False)},
    }


def test_a_role_path_is_dropped_because_aws_auth_does_not_match_it():
    with_path = "arn:aws:iam::123456789012:role/mes/deploy/MesEdgeDeploy"
    (entry,) = roles(add_deploy_role(None, with_path))
    assert entry["rolearn"] == "arn:aws:iam::123456789012:role/MesEdgeDeploy"
    china = "arn:aws-cn:iam::123456789012:role/MesEdgeDeploy"
    assert aws_auth.mapped_role_arn(china) == china
    # named with or without its path, it is the one entry
    pathless = add_deploy_role(None, "arn:aws:iam::123456789012:role/MesEdgeDeploy")
    assert roles(add_deploy_role(pathless, with_path)) == [entry]


@pytest.mark.parametrize(
    "role_arn",
    [
        "arn:aws:sts::123456789012:assumed-role/MesEdgeDeploy/session",  # a session, not a role
        "arn:aws:iam::123456789012:user/shift-lead",
        "arn:aws:iam::12345678901:role/MesEdgeDeploy",  # 11 digits
        "MesEdgeDeploy",
        "arn:aws:iam::123456789012:role/" + "r" * 65,
    ],
)
def test_what_is_not_an_iam_role_arn_is_refused(role_arn):
    with pytest.raises(ValueError, match="is not an IAM role ARN"):
        add_deploy_role(None, role_arn)


def test_bad_subjects_and_other_config_maps_are_refused():
    with pytest.raises(ValueError, match="username"):
        aws_auth.with_role(None, DEPLOY_ROLE, "mes edge", ["system:masters"])
    with pytest.raises(ValueError, match="groups"):
        aws_auth.with_role(None, DEPLOY_ROLE, "mes-edge-deploy", [])
    other = {**CURRENT, "metadata": {"name": "mes-platform", "namespace": "mes"}}
    with pytest.raises(ValueError, match="not the ConfigMap kube-system/aws-auth"):
        add_deploy_role(other)


def test_main_reads_stdin_writes_yaml_and_exits_2_on_a_refusal(capsys):
    out = io.StringIO()
    argv = ["--role-arn", DEPLOY_ROLE, "--username", "mes-edge-deploy", "--group", "system:masters"]
    assert aws_auth.main(argv, io.StringIO(json.dumps(CURRENT)), out) == 0
    assert roles(yaml.safe_load(out.getvalue())) == [NODE_ENTRY, DEPLOY_ENTRY]
    bad = ["--role-arn", "arn:aws:iam::123456789012:user/x", *argv[2:]]
    assert aws_auth.main(bad, io.StringIO(""), io.StringIO()) == 2
    assert "is not an IAM role ARN" in capsys.readouterr().err


def test_it_runs_as_the_readme_pipes_it_with_the_standard_library_and_pyyaml_only():
    tree = ast.parse(AWS_AUTH.read_text())
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            imported.add(node.module.split(".")[0])
    assert imported - set(sys.stdlib_module_names) == {"yaml"}
    # `kubectl get ... --ignore-not-found` prints nothing when there is no ConfigMap yet.
    result = subprocess.run(
        [sys.executable, str(AWS_AUTH), "--role-arn", DEPLOY_ROLE, "--username", "mes-edge-deploy"]
        + ["--group", "system:masters"],
        input="",
        capture_output=True,
        text=True,
        check=True,
    )
    assert roles(yaml.safe_load(result.stdout)) == [DEPLOY_ENTRY]
