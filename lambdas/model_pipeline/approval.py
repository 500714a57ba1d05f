"""A quality expert's decision on a TRAINED model, for the approval API (not a pipeline step).

``decide`` records the decision in the registry first, as a conditional write, and only then
releases the waiting execution, so of two concurrent decisions exactly one reaches it::

    decide(ModelRegistry(table), boto3.client("stepfunctions"),
           "berlin/body-line-1/vision-01", "1.0.1795169220", "approve", "jane", "looks right")

Approval sends ``send_task_success`` with ``{"approved_by": reviewer}``; rejection sends
``send_task_failure`` with error ``ModelRejected`` and the comment as its cause.
"""

from __future__ import annotations

import json
from enum import StrEnum
from typing import Any

from botocore.exceptions import ClientError

from lambdas.model_pipeline.registry import (
    ApprovalNotPending,
    ModelRecord,
    ModelRegistry,
    ModelStatus,
    check_transition,
)

REJECTED_ERROR = "ModelRejected"  # the error the state machine sees on a rejection
MAX_CAUSE_CHARS = 32_768  # SendTaskFailure's limit on the cause
# The execution stopped waiting (timed out, was stopped, or the token is stale).
GONE_CODES = frozenset({"TaskTimedOut", "TaskDoesNotExist", "InvalidToken"})


class Decision(StrEnum):
    APPROVE = "approve"
    REJECT = "reject"


def decide(
    registry: ModelRegistry,
    sfn_client: Any,
    station: str,
    version: str,
    decision: str,
    reviewer: str,
    comment: str = "",
) -> ModelRecord:
    """Approve or reject ``version`` of ``station`` ("site/line/station") and release the
    pipeline. Returns the updated record.

    Raises ``ValueError`` for an unknown decision, a missing reviewer or a rejection without a
    comment; ``ModelNotFound``; ``InvalidTransition`` when the model was already decided;
    ``ApprovalNotPending`` when no execution is waiting for it (no task token, or the
    execution timed out: then the decision is recorded all the same).
    """
    decision = Decision(decision)
    if not reviewer.strip():
        raise ValueError("a decision needs the reviewer's name")
    if decision is Decision.REJECT and not comment.strip():
        raise ValueError("a rejection needs a comment saying why")
    target = ModelStatus.APPROVED if decision is Decision.APPROVE else ModelStatus.REJECTED

    record = registry.get(station, version)
    check_transition(record.status, target, station, version)
    token = record.approval_token
    if not token:
        raise ApprovalNotPending(
            f"model {station} {version} has no approval task token: no pipeline execution "
            "is waiting for a decision on it (yet)"
        )

    if decision is Decision.APPROVE:
        updated = registry.transition(
            station, version, target, approved_by=reviewer, decision_comment=comment or None
        )
        release = {"taskToken": token, "output": json.dumps({"approved_by": reviewer})}
        _release(sfn_client.send_task_success, release, station, version)
    else:
        updated = registry.transition(
            station,
            version,
            target,
            rejected_by=reviewer,
            decision_comment=comment,
            rejection_reasons=[comment],
        )
        release = {"taskToken": token, "error": REJECTED_ERROR, "cause": comment[:MAX_CAUSE_CHARS]}
        _release(sfn_client.send_task_failure, release, station, version)
    return updated


def _release(send: Any, request: dict[str, str], station: str, version: str) -> None:
    try:
        send(**request)
    except ClientError as err:
        code = err.response.get("Error", {}).get("Code")
        if code not in GONE_CODES:
            raise
        raise ApprovalNotPending(
            f"the decision on model {station} {version} is recorded, but its pipeline "
            f"execution is no longer waiting ({code}); start a new training to deploy a model"
        ) from err
