"""Add an IAM role to a cluster's aws-auth ConfigMap: the only way to grant access to an EKS
local cluster on an Outpost, which accepts no access entries
(stacks/constructs/outposts_cluster.py).

    kubectl -n kube-system get configmap aws-auth -o json --ignore-not-found \\
      | python3 services/k8s/aws_auth.py --role-arn "$EDGE_DEPLOY_ROLE_ARN" \\
          --username mes-edge-deploy --group system:masters \\
      | kubectl apply -f -

Reads the current ConfigMap (JSON or YAML) on stdin, or nothing when there is none yet, and
writes the ConfigMap with the role's ``mapRoles`` entry added, or replaced when the role is
already mapped, every other entry and key kept as it was. Running it again changes nothing.

Standard library and PyYAML only, like deploy_overlay.py beside it.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Sequence
from typing import Any, TextIO

import yaml

NAME = "aws-auth"
NAMESPACE = "kube-system"
# An IAM role ARN, with an optional path: arn:<partition>:iam::<account>:role[/<path>]/<name>
# (IAM User Guide, "IAM identifiers": role names of [\w+=,.@-], at most 64 characters).
ROLE_ARN = re.compile(
    r"^arn:(?P<partition>aws[a-z-]*):iam::(?P<account>\d{12}):role/"
    r"(?:[\w+=,.@-]+/)*(?P<name>[\w+=,.@-]{1,64})$"
)
# A Kubernetes user or group name as aws-auth maps it: no blanks, not empty.
SUBJECT = re.compile(r"^\S+$")


def mapped_role_arn(role_arn: str) -> str:
    """The ARN as aws-auth must name it: without the role's path, which the authenticator does
    not match (kubernetes-sigs/aws-iam-authenticator#153, aws/containers-roadmap#926)."""
    match = ROLE_ARN.match(role_arn)
    if match is None:
        raise ValueError(
            f"{role_arn!r} is not an IAM role ARN (arn:aws:iam::<account>:role/<name>); "
            "an assumed-role session ARN is not one"
        )
    return f"arn:{match['partition']}:iam::{match['account']}:role/{match['name']}"


def with_role(
    config_map: dict[str, Any] | None, role_arn: str, username: str, groups: Sequence[str]
) -> dict[str, Any]:
    """``config_map`` (None: there is none yet) with ``role_arn`` mapped to ``username`` in
    ``groups``; the input is not changed."""
    if not SUBJECT.match(username):
        raise ValueError(f"username {username!r} is empty or has blanks")
    if not groups or not all(SUBJECT.match(group) for group in groups):
        raise ValueError(f"groups {list(groups)!r}: at least one, none empty or with blanks")
    existing = config_map or {}
    if (
        not isinstance(existing, dict)
        or existing
        and (
            existing.get("kind") != "ConfigMap"
            or existing.get("metadata", {}).get("name") != NAME
            or existing.get("metadata", {}).get("namespace") != NAMESPACE
        )
    ):
        raise ValueError(f"the input is not the ConfigMap {NAMESPACE}/{NAME}")
    data = dict(existing.get("data") or {})
    entries = yaml.safe_load(data.get("mapRoles") or "[]") or []
    if not isinstance(entries, list):
        raise ValueError("the ConfigMap's mapRoles is not a list")
    arn = mapped_role_arn(role_arn)
    entry = {"rolearn": arn, "username": username, "groups": list(groups)}
    mapped: list[Any] = []
    for other in entries:
        if mapped_role_arn_or_none(other) != arn:
            mapped.append(other)
        elif entry not in mapped:  # the role's old place: a re-run does not reorder the list
            mapped.append(entry)
    if entry not in mapped:
        mapped.append(entry)
    data["mapRoles"] = yaml.safe_dump(mapped, default_flow_style=False, sort_keys=False)
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": NAME, "namespace": NAMESPACE},
        "data": data,
    }


def mapped_role_arn_or_none(entry: Any) -> str | None:
    """An existing entry's role ARN as aws-auth matches it (None: not a role entry we know)."""
    if not isinstance(entry, dict) or not isinstance(entry.get("rolearn"), str):
        return None
    try:
        return mapped_role_arn(entry["rolearn"])
    except ValueError:
        return entry["rolearn"]


def main(
    argv: Sequence[str] | None = None, stdin: TextIO = sys.stdin, stdout: TextIO = sys.stdout
) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--role-arn", required=True, help="the IAM role to map")
    parser.add_argument("--username", required=True, help="its Kubernetes user name")
    parser.add_argument(
        "--group", action="append", required=True, dest="groups", help="a Kubernetes group (repeat)"
    )
    args = parser.parse_args(argv)
    text = stdin.read()
    current = yaml.safe_load(text) if text.strip() else None
    try:
        result = with_role(current, args.role_arn, args.username, args.groups)
    except ValueError as error:
        print(f"aws_auth.py: {error}", file=sys.stderr)
        return 2
    yaml.safe_dump(result, stdout, default_flow_style=False, sort_keys=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
