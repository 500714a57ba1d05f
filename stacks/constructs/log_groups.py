"""The platform's log groups: encrypted with the logs key, kept after their stack, and expiring
after the plant's log retention."""

from __future__ import annotations

from aws_cdk import RemovalPolicy
from aws_cdk import aws_kms as kms
from aws_cdk import aws_logs as logs
from constructs import Construct


def retained_log_group(
    scope: Construct,
    construct_id: str,
    *,
    logs_key: kms.IKey,
    retention_days: int,
    log_group_name: str | None = None,
) -> logs.LogGroup:
    group = logs.LogGroup(
        scope,
        construct_id,
        log_group_name=log_group_name,
        encryption_key=logs_key,
        removal_policy=RemovalPolicy.RETAIN,
    )
    # RetentionDays is keyed by name in Python; the config holds a validated day count.
    group.node.default_child.retention_in_days = retention_days
    return group
