"""EnterpriseStack: ERP and PLM documents in (file drop and API) to the MES microservices'
stores, and MES events out to ERP and PLM (API destinations) and to files."""

from __future__ import annotations

from typing import Any

from aws_cdk import CfnOutput, Stack
from aws_cdk import aws_events as events
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from constructs import Construct

from mes_domain.plant import Plant
from stacks.constructs.document_router import DocumentRouter
from stacks.constructs.enterprise_outbound import EnterpriseOutbound
from stacks.constructs.enterprise_storage import EnterpriseStorage
from stacks.constructs.lambda_packaging import LambdaPackaging


class EnterpriseStack(Stack):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        plant: Plant,
        data_key: kms.IKey,
        logs_key: kms.IKey,
        access_logs: s3.IBucket,
        event_bus: events.IEventBus,
        packaging: LambdaPackaging,
        **kwargs: Any,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        self.storage = EnterpriseStorage(
            self, "Storage", data_key=data_key, access_logs=access_logs
        )
        self.outbound = EnterpriseOutbound(
            self,
            "Outbound",
            plant=plant,
            event_bus=event_bus,
            exchange_bucket=self.storage.exchange_bucket,
            data_key=data_key,
            queue_key=self.storage.queue_key,
            logs_key=logs_key,
        )
        self.storage.acknowledge_notifications_handler()
        self.router = DocumentRouter(
            self,
            "Router",
            plant=plant,
            storage=self.storage,
            packaging=packaging,
            logs_key=logs_key,
            event_bus=event_bus,
        )
        CfnOutput(self, "DocumentsApiUrl", value=self.router.api.url)
        CfnOutput(self, "ExchangeBucketName", value=self.storage.exchange_bucket.bucket_name)
