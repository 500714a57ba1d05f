"""QualityInspectionStack: datasets, the model registry and pipeline, and what inspection
results become (records, counts per window, non-conformances for PLM)."""

from __future__ import annotations

from typing import Any

from aws_cdk import CfnOutput, Stack
from aws_cdk import aws_events as events
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from constructs import Construct

from mes_domain.plant import Plant
from stacks.constructs.gateway_policy import gateway_role_alias
from stacks.constructs.lambda_packaging import LambdaPackaging
from stacks.constructs.model_pipeline import ModelPipeline
from stacks.constructs.quality_api import QualityApi
from stacks.constructs.quality_results import QualityResults
from stacks.constructs.quality_storage import GatewayAccess, QualityStorage
from stacks.iiot_stack import IiotStack


class QualityInspectionStack(Stack):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        plant: Plant,
        iiot: IiotStack,
        data_key: kms.IKey,
        logs_key: kms.IKey,
        access_logs: s3.IBucket,
        event_bus: events.IEventBus,
        packaging: LambdaPackaging,
        **kwargs: Any,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        self.storage = QualityStorage(self, "Storage", data_key=data_key, access_logs=access_logs)
        self.gateways = GatewayAccess(
            self, "Gateways", plant=plant, storage=self.storage, data_key=data_key
        )
        self.results = QualityResults(
            self,
            "Results",
            plant=plant,
            queue=iiot.quality_results,
            storage=self.storage,
            event_bus=event_bus,
            store=iiot.timeseries,
            packaging=packaging,
            logs_key=logs_key,
        )
        self.pipeline = ModelPipeline(
            self,
            "Pipeline",
            plant=plant,
            storage=self.storage,
            packaging=packaging,
            logs_key=logs_key,
        )
        self.api = QualityApi(
            self,
            "Api",
            plant=plant,
            storage=self.storage,
            state_machine=self.pipeline.state_machine,
            packaging=packaging,
            logs_key=logs_key,
        )
        CfnOutput(self, "ApiUrl", value=self.api.api.url)
        CfnOutput(self, "UserPoolId", value=self.api.user_pool.user_pool_id)
        CfnOutput(self, "StateMachineArn", value=self.pipeline.state_machine.state_machine_arn)
        CfnOutput(
            self,
            "GatewayRoleAliases",
            description="A camera line's gateways get AWS credentials through its role alias "
            "(set as the Greengrass nucleus' iotRoleAlias)",
            value=gateway_role_alias(plant.deployment.stack_prefix, "<site>", "<line>"),
        )
        CfnOutput(self, "DatasetBucketName", value=self.storage.dataset_bucket.bucket_name)
        CfnOutput(self, "ModelBucketName", value=self.storage.model_bucket.bucket_name)
