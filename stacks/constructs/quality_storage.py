"""Stateful stores of quality inspection: images for training, trained models and their
registry, and the inspection records, counts and non-conformances."""

from __future__ import annotations

from aws_cdk import Stack
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from constructs import Construct

from stacks.compliance import acknowledge
from stacks.constructs.buckets import DataBucket
from stacks.constructs.tables import N, S, data_table


class QualityStorage(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        data_key: kms.IKey,
        access_logs: s3.IBucket,
    ) -> None:
        super().__init__(scope, construct_id)
        # datasets/{site}/{line}/{station}/{good|defect}/<image>
        self.dataset_bucket = DataBucket(
            self, "Datasets", encryption_key=data_key, access_logs=access_logs
        ).bucket
        # models/{site}/{line}/{station}/{version}/model.onnx and model.json
        self.model_bucket = DataBucket(
            self, "Models", encryption_key=data_key, access_logs=access_logs
        ).bucket

        def table(construct_id_: str, partition, sort=None) -> dynamodb.Table:
            return data_table(
                self, construct_id_, data_key=data_key, partition=partition, sort=sort
            )

        # The model registry: status, metrics, lineage and the approval token per model.
        self.models_table = table("Models-Registry", ("station", S), ("model_version", S))
        # One record per station and part: the key that makes results idempotent.
        self.records_table = table("InspectionRecords", ("station", S), ("part_id", S))
        self.counts_table = table("QualityCounts", ("station", S), ("window_start", N))
        self.nonconformances_table = table("NonConformances", ("ncr_id", S))

        # For the gateways' token exchange role: fetch model artifacts, upload captures.
        self.gateway_access = iam.ManagedPolicy(
            self,
            "GatewayAccess",
            description="Quality inspection on a gateway: read models, upload dataset images",
            statements=[
                iam.PolicyStatement(
                    actions=["s3:GetObject"],
                    resources=[self.model_bucket.arn_for_objects("models/*")],
                ),
                iam.PolicyStatement(
                    actions=["s3:PutObject", "s3:GetObject"],
                    resources=[self.dataset_bucket.arn_for_objects("datasets/*")],
                ),
                iam.PolicyStatement(
                    actions=["kms:Decrypt", "kms:GenerateDataKey"], resources=[data_key.key_arn]
                ),
            ],
        )
        stack = Stack.of(self)
        for bucket, prefix, use in (
            (self.model_bucket, "models", "Gateways fetch the model components' artifacts"),
            (self.dataset_bucket, "datasets", "Gateways upload their stations' captures"),
        ):
            logical_id = stack.get_logical_id(bucket.node.default_child)
            acknowledge(
                self.gateway_access,
                f"AwsSolutions-IAM5[Resource::<{logical_id}.Arn>/{prefix}/*]",
                f"{use}, under {prefix}/ of this bucket only; the keys are per model or image.",
            )
