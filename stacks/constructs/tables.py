"""DynamoDB tables as the platform keeps its data, and grants that are exactly what a function
does with them."""

from __future__ import annotations

from aws_cdk import RemovalPolicy
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from constructs import Construct

S = dynamodb.AttributeType.STRING
N = dynamodb.AttributeType.NUMBER


def data_table(
    scope: Construct,
    construct_id: str,
    *,
    data_key: kms.IKey,
    partition: tuple[str, dynamodb.AttributeType],
    sort: tuple[str, dynamodb.AttributeType] | None = None,
    time_to_live: str | None = None,
) -> dynamodb.Table:
    """On demand, encrypted with the platform data key, point-in-time recovery, kept on delete."""
    return dynamodb.Table(
        scope,
        construct_id,
        partition_key=dynamodb.Attribute(name=partition[0], type=partition[1]),
        sort_key=dynamodb.Attribute(name=sort[0], type=sort[1]) if sort else None,
        time_to_live_attribute=time_to_live,
        billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
        encryption=dynamodb.TableEncryption.CUSTOMER_MANAGED,
        encryption_key=data_key,
        point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
            point_in_time_recovery_enabled=True
        ),
        removal_policy=RemovalPolicy.RETAIN,
    )


def grant_table(table: dynamodb.ITable, grantee: iam.IGrantable, *actions: str) -> None:
    """Exactly ``actions`` on ``table``, and the use of its key that they need."""
    table.grant(grantee, *actions)
    if table.encryption_key is not None:
        table.encryption_key.grant(grantee, "kms:Decrypt", "kms:DescribeKey", "kms:GenerateDataKey")
