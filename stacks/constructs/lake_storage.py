"""The data lake's buckets: raw JSON as it arrived, curated Parquet, and Athena's results.

Each is a ``DataBucket`` (KMS with the platform data key, TLS only, versioned, access logged)
with its own lifecycle: raw expires after ``retention.datalake_raw_days``, query results after
``RESULTS_EXPIRE_DAYS``, and every bucket aborts incomplete multipart uploads after a week
(the DataBucket rule). The curated zone is kept: it is the lake.
"""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from constructs import Construct

from mes_domain.plant import Retention
from stacks.constructs.buckets import DataBucket

RESULTS_EXPIRE_DAYS = 30  # a result is for the analyst who ran the query; rerun it after that


class LakeStorage(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        retention: Retention,
        data_key: kms.IKey,
        access_logs: s3.IBucket,
    ) -> None:
        super().__init__(scope, construct_id)

        def bucket(name: str) -> s3.Bucket:
            return DataBucket(self, name, encryption_key=data_key, access_logs=access_logs).bucket

        self.raw = bucket("Raw")
        self.raw.add_lifecycle_rule(
            id="ExpireRaw", expiration=Duration.days(retention.datalake_raw_days)
        )
        self.curated = bucket("Curated")
        self.results = bucket("AthenaResults")
        self.results.add_lifecycle_rule(
            id="ExpireResults", expiration=Duration.days(RESULTS_EXPIRE_DAYS)
        )
