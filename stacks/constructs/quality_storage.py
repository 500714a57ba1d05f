"""Stateful stores of quality inspection: images for training, trained models and their
registry, and the inspection records, counts and non-conformances."""

from __future__ import annotations

from aws_cdk import Stack
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from aws_cdk import aws_iot as iot
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from constructs import Construct

from mes_domain.plant import Plant
from mes_domain.quality import dataset_prefix, model_station_prefix
from stacks.compliance import acknowledge
from stacks.constructs.buckets import DataBucket
from stacks.constructs.gateway_policy import check_role_alias, gateway_role_alias
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


class GatewayAccess(Construct):
    """One token exchange role per line with camera stations, behind the role alias only that
    line's gateways may assume (their line's ``GatewayPolicy``): it reads the models and writes
    the datasets of the line's camera stations and nothing else."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        plant: Plant,
        storage: QualityStorage,
        data_key: kms.IKey,
    ) -> None:
        super().__init__(scope, construct_id)
        prefix = plant.deployment.stack_prefix
        lines: dict[tuple[str, str], list[str]] = {}
        for ref in plant.stations():
            if ref.station.camera is not None:
                lines.setdefault((ref.site.id, ref.line.id), []).append(ref.station.id)
        self.roles: dict[tuple[str, str], iam.Role] = {}
        self.role_aliases: dict[tuple[str, str], iot.CfnRoleAlias] = {}
        for (site, line), stations in sorted(lines.items()):
            policy = iam.ManagedPolicy(
                self,
                f"Policy-{site}-{line}",
                description=f"Quality inspection gateways of {site}/{line}: read the camera "
                "stations' models, upload their captures",
                statements=[
                    iam.PolicyStatement(
                        actions=["s3:GetObject"],
                        resources=[
                            storage.model_bucket.arn_for_objects(
                                model_station_prefix(site, line, station) + "*"
                            )
                            for station in stations
                        ],
                    ),
                    # The uploader asks (HeadObject, which needs GetObject) before it puts.
                    iam.PolicyStatement(
                        actions=["s3:PutObject", "s3:GetObject"],
                        resources=[
                            storage.dataset_bucket.arn_for_objects(
                                dataset_prefix(site, line, station) + "*"
                            )
                            for station in stations
                        ],
                    ),
                    iam.PolicyStatement(
                        actions=["kms:Decrypt", "kms:GenerateDataKey"],
                        resources=[data_key.key_arn],
                    ),
                ],
            )
            role = iam.Role(
                self,
                f"Role-{site}-{line}",
                description=f"Token exchange role of the gateways of line {site}/{line}",
                assumed_by=iam.ServicePrincipal("credentials.iot.amazonaws.com"),
                managed_policies=[policy],
            )
            alias = iot.CfnRoleAlias(
                self,
                f"RoleAlias-{site}-{line}",
                role_alias=check_role_alias(gateway_role_alias(prefix, site, line)),
                role_arn=role.role_arn,
            )
            self.roles[(site, line)] = role
            self.role_aliases[(site, line)] = alias
            self._acknowledge(policy, storage, site, line, stations)

    @staticmethod
    def _acknowledge(
        policy: iam.ManagedPolicy,
        storage: QualityStorage,
        site: str,
        line: str,
        stations: list[str],
    ) -> None:
        stack = Stack.of(policy)
        for bucket, prefix_of, use in (
            (storage.model_bucket, model_station_prefix, "fetch the model versions"),
            # HeadObject before each put needs GetObject.
            (storage.dataset_bucket, dataset_prefix, "upload and read back the captures"),
        ):
            logical_id = stack.get_logical_id(bucket.node.default_child)
            for station in stations:
                acknowledge(
                    policy,
                    f"AwsSolutions-IAM5[Resource::<{logical_id}.Arn>/"
                    f"{prefix_of(site, line, station)}*]",
                    f"Gateways of {site}/{line} {use} of their camera station {station} only; "
                    "the keys are per model version or capture.",
                )
