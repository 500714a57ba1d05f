"""The lake's Athena workgroup and named queries.

The workgroup enforces its configuration (a client cannot send results elsewhere or unencrypted),
writes results SSE-KMS with the data key to the results bucket, publishes CloudWatch metrics and
cancels a query past ``BYTES_SCANNED_CUTOFF``. The named queries are part 2's SQL files
(``stacks/datalake_queries``), rendered with the database and the plant's stations and shifts.
"""

from __future__ import annotations

from aws_cdk import aws_athena as athena
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from constructs import Construct

from mes_domain.plant import Plant
from stacks import datalake_queries

# Athena's per-query data usage control: "The minimum value is 10 MB" (Athena user guide,
# "Configure per-query and per-workgroup data usage controls"; API WorkGroupConfiguration's
# BytesScannedCutoffPerQuery: minimum 10000000). A day of a site's telemetry is far below this;
# a scan of everything is what it stops.
MIN_BYTES_SCANNED_CUTOFF = 10_000_000
BYTES_SCANNED_CUTOFF = 100 * 1024**3  # 100 GiB
ENGINE_VERSION = "Athena engine version 3"
RESULTS_PREFIX = "results/"


class LakeAthena(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        workgroup_name: str,
        database_name: str,
        plant: Plant,
        results: s3.IBucket,
        data_key: kms.IKey,
    ) -> None:
        super().__init__(scope, construct_id)
        self.workgroup = athena.CfnWorkGroup(
            self,
            "WorkGroup",
            name=workgroup_name,
            description="Queries of the MES data lake: enforced, encrypted results, cut off",
            state="ENABLED",
            recursive_delete_option=True,  # its saved queries go with it
            work_group_configuration=athena.CfnWorkGroup.WorkGroupConfigurationProperty(
                enforce_work_group_configuration=True,
                publish_cloud_watch_metrics_enabled=True,
                bytes_scanned_cutoff_per_query=BYTES_SCANNED_CUTOFF,
                engine_version=athena.CfnWorkGroup.EngineVersionProperty(
                    selected_engine_version=ENGINE_VERSION
                ),
                result_configuration=athena.CfnWorkGroup.ResultConfigurationProperty(
                    output_location=f"s3://{results.bucket_name}/{RESULTS_PREFIX}",
                    encryption_configuration=athena.CfnWorkGroup.EncryptionConfigurationProperty(
                        encryption_option="SSE_KMS", kms_key=data_key.key_arn
                    ),
                    expected_bucket_owner=None,
                ),
            ),
        )
        self.named_queries: dict[str, athena.CfnNamedQuery] = {}
        queries = datalake_queries.named_queries(database=database_name, plant=plant)
        for name, sql in queries.items():
            query = athena.CfnNamedQuery(
                self,
                f"Query-{name}",
                name=name,
                description=datalake_queries.description(name)[:1024],
                database=database_name,
                query_string=sql,
                work_group=self.workgroup.ref,
            )
            self.named_queries[name] = query
