"""Hardened S3 buckets: TLS only, public access blocked, owner-enforced, encrypted, logged."""

from __future__ import annotations

from typing import Any

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from constructs import Construct

from stacks.compliance import acknowledge


def _baseline() -> dict[str, Any]:
    return {
        "block_public_access": s3.BlockPublicAccess.BLOCK_ALL,
        "enforce_ssl": True,
        "minimum_tls_version": 1.2,
        "object_ownership": s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
        "removal_policy": RemovalPolicy.RETAIN,
    }


class AccessLogBucket(Construct):
    """Destination of S3 server access logs for every other bucket of the platform."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        expire_after_days: int,
        noncurrent_version_days: int = 30,
    ) -> None:
        super().__init__(scope, construct_id)
        self.bucket = s3.Bucket(
            self,
            "Bucket",
            # S3 server access logging delivers only to SSE-S3 buckets, never SSE-KMS.
            encryption=s3.BucketEncryption.S3_MANAGED,
            # Versioned (checkov CKV_AWS_21): a log deleted or overwritten stays recoverable for
            # noncurrent_version_days. S3 removes the delete marker an expiry leaves once no
            # version remains, when the rule also expires current versions (S3 user guide,
            # "Managing delete markers").
            versioned=True,
            lifecycle_rules=[
                s3.LifecycleRule(
                    id="ExpireAccessLogs",
                    expiration=Duration.days(expire_after_days),
                    noncurrent_version_expiration=Duration.days(noncurrent_version_days),
                    abort_incomplete_multipart_upload_after=Duration.days(7),
                )
            ],
            **_baseline(),
        )
        acknowledge(
            self.bucket.node.default_child,
            "AwsSolutions-S1",
            "This is the access-log destination itself; logging it into itself would loop.",
        )


class DataBucket(Construct):
    """A versioned, KMS-encrypted bucket whose access is logged to the access-log bucket."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        encryption_key: kms.IKey,
        access_logs: s3.IBucket,
        noncurrent_version_days: int = 30,
    ) -> None:
        super().__init__(scope, construct_id)
        self.bucket = s3.Bucket(
            self,
            "Bucket",
            encryption=s3.BucketEncryption.KMS,
            encryption_key=encryption_key,
            bucket_key_enabled=True,
            versioned=True,
            server_access_logs_bucket=access_logs,
            server_access_logs_prefix=f"{construct_id}/",
            lifecycle_rules=[
                s3.LifecycleRule(
                    id="ExpireNoncurrentVersions",
                    noncurrent_version_expiration=Duration.days(noncurrent_version_days),
                    abort_incomplete_multipart_upload_after=Duration.days(7),
                )
            ],
            **_baseline(),
        )
