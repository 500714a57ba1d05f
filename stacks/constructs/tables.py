"""Grants on DynamoDB tables that are exactly what a function does."""

from __future__ import annotations

from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam


def grant_table(table: dynamodb.ITable, grantee: iam.IGrantable, *actions: str) -> None:
    """Exactly ``actions`` on ``table``, and the use of its key that they need."""
    table.grant(grantee, *actions)
    if table.encryption_key is not None:
        table.encryption_key.grant(grantee, "kms:Decrypt", "kms:DescribeKey", "kms:GenerateDataKey")
