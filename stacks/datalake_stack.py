"""DataLakeStack: telemetry and MES records as Parquet in S3, a Glue catalog with partition
projection, a crawler for the ERP/PLM landing zone, and an Athena workgroup with named queries.

The tables come from ``mes_domain.lake`` (derived from the contracts); the queries from
``stacks/datalake_queries``.
"""

from __future__ import annotations

from typing import Any

from aws_cdk import CfnOutput, Stack
from aws_cdk import aws_events as events
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from constructs import Construct

from mes_domain import lake
from mes_domain.plant import Plant
from stacks.constructs.enterprise_storage import INBOUND_PREFIX
from stacks.constructs.lake_athena import LakeAthena
from stacks.constructs.lake_catalog import LakeCatalog
from stacks.constructs.lake_delivery import LakeDelivery
from stacks.constructs.lake_storage import LakeStorage
from stacks.constructs.lambda_packaging import LambdaPackaging
from stacks.enterprise_stack import EnterpriseStack
from stacks.iiot_stack import IiotStack


class DataLakeStack(Stack):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        plant: Plant,
        iiot: IiotStack,
        enterprise: EnterpriseStack,
        event_bus: events.IEventBus,
        data_key: kms.IKey,
        logs_key: kms.IKey,
        access_logs: s3.IBucket,
        packaging: LambdaPackaging,
        **kwargs: Any,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        prefix = plant.deployment.stack_prefix
        self.storage = LakeStorage(
            self,
            "Storage",
            retention=plant.retention,
            data_key=data_key,
            access_logs=access_logs,
        )
        self.catalog = LakeCatalog(
            self,
            "Catalog",
            database_name=lake.database_name(prefix),
            curated=self.storage.curated,
            site_ids=[site.id for site in plant.sites],
            landing_bucket=enterprise.storage.exchange_bucket,
            landing_prefix=INBOUND_PREFIX,
            data_key=data_key,
            logs_key=logs_key,
        )
        self.delivery = LakeDelivery(
            self,
            "Delivery",
            catalog=self.catalog,
            curated=self.storage.curated,
            raw=self.storage.raw,
            data_key=data_key,
            logs_key=logs_key,
            telemetry_stream=iiot.telemetry_stream,
            event_bus=event_bus,
            # The enterprise stack's queue key already lets EventBridge encrypt with it.
            event_queue_key=enterprise.storage.queue_key,
            packaging=packaging,
            log_retention_days=plant.retention.log_days,
        )
        for lake_stream in self.delivery.streams.values():
            # Firehose reads its table's schema when it is created: the table comes first.
            lake_stream.stream.node.add_dependency(self.catalog.tables[lake_stream.table.name])
        self.athena = LakeAthena(
            self,
            "Athena",
            workgroup_name=lake.workgroup_name(prefix),
            database_name=self.catalog.database_name,
            plant=plant,
            results=self.storage.results,
            data_key=data_key,
        )

        CfnOutput(self, "DatabaseName", value=self.catalog.database_name)
        CfnOutput(self, "WorkGroupName", value=self.athena.workgroup.ref)
        CfnOutput(self, "CuratedBucketName", value=self.storage.curated.bucket_name)
        CfnOutput(self, "RawBucketName", value=self.storage.raw.bucket_name)
