"""Who may decide on a model: a member of the site's approvers group, and, to approve, someone
other than the expert who asked for the training (four eyes).

Pure: it reads the Cognito claims API Gateway passed and the model's registry record.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from lambdas.model_pipeline.registry import ModelRecord
from mes_domain.naming import approvers_group_name


class NotAllowed(Exception):
    """The signed-in user may not take this decision; the message says why."""


def groups(claims: Mapping[str, Any]) -> frozenset[str]:
    """The user's Cognito groups. A REST API's Cognito authorizer passes every claim as a
    string: a list arrives comma-separated or as ``[a b]``; a list is taken as it is."""
    value = claims.get("cognito:groups")
    if not value:
        return frozenset()
    if isinstance(value, list | tuple):
        return frozenset(map(str, value))
    text = str(value).strip()
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    return frozenset(part for part in text.replace(",", " ").split() if part)


def check_decision(
    claims: Mapping[str, Any], site: str, record: ModelRecord, decision: str
) -> None:
    """Raise ``NotAllowed`` unless the user in ``claims`` may take ``decision`` on ``record``."""
    group = approvers_group_name(site)
    if group not in groups(claims):
        raise NotAllowed(
            f"only members of the Cognito group {group!r} may decide on models of site {site!r}"
        )
    if decision != "approve":
        return  # rejecting one's own model is always allowed: it deploys nothing
    sub = claims.get("sub")
    if not sub:
        raise NotAllowed("the sign-in carries no user id (sub): an approval needs one")
    if record.requested_by_sub is None:
        # A record without its requester's id cannot show the approver is someone else.
        raise NotAllowed(
            f"model {record.station} {record.model_version} does not record who requested it, "
            "so no one can be shown to be a second person: reject it and train again"
        )
    if record.requested_by_sub == sub:
        raise NotAllowed(
            "the expert who requested a model's training may not approve it: "
            "another approver of the site must"
        )
