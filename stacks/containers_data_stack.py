"""ContainersDataStack: the stateful half of the containers platform (``capabilities.eks``): the
VPC, the services' PostgreSQL, their image repositories and, with ``service_bus: msk``, the
MSK Serverless cluster. The cluster stack (stacks/containers_stack.py) builds on it."""

from __future__ import annotations

from typing import Any

from aws_cdk import CfnOutput, Stack
from aws_cdk import aws_kms as kms
from constructs import Construct

from mes_domain.containers import (
    ServiceBus as ServiceBusKind,
)
from mes_domain.containers import (
    database_identifier,
    service_bus_cluster_name,
)
from mes_domain.plant import Plant
from stacks.constructs.service_bus import ServiceBus
from stacks.constructs.service_database import ServiceDatabase
from stacks.constructs.service_images import ServiceImages
from stacks.constructs.service_network import ServiceNetwork


class ContainersDataStack(Stack):
    """``vpc``, ``database`` (with ``database_security_group``, ``database_resource_id`` and the
    RDS-managed ``master_secret``), ``repositories`` by service name and ``service_bus`` (None
    unless the services sync over MSK)."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        plant: Plant,
        data_key: kms.IKey,
        logs_key: kms.IKey,
        **kwargs: Any,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        prefix = plant.deployment.stack_prefix
        settings = plant.containers
        log_days = plant.retention.log_days

        self.network = ServiceNetwork(
            self,
            "Network",
            vpc_cidr=settings.vpc_cidr,
            nat_gateways=settings.nat_gateways,
            logs_key=logs_key,
            log_retention_days=log_days,
        )
        self.vpc = self.network.vpc

        self.service_database = ServiceDatabase(
            self,
            "Database",
            vpc=self.vpc,
            subnets=self.network.isolated,
            settings=settings.database,
            identifier=database_identifier(prefix),
            data_key=data_key,
            logs_key=logs_key,
            log_retention_days=log_days,
        )
        self.database = self.service_database.instance
        self.database_security_group = self.service_database.security_group
        self.database_resource_id = self.service_database.resource_id
        self.master_secret = self.service_database.master_secret

        self.repositories = ServiceImages(
            self, "Images", stack_prefix=prefix, data_key=data_key
        ).repositories

        self.service_bus: ServiceBus | None = None
        if settings.service_bus is ServiceBusKind.MSK:
            self.service_bus = ServiceBus(
                self,
                "ServiceBus",
                vpc=self.vpc,
                subnets=self.network.private,
                cluster_name=service_bus_cluster_name(prefix),
            )
            CfnOutput(self, "ServiceBusClusterArn", value=self.service_bus.cluster_arn)

        CfnOutput(self, "VpcId", value=self.vpc.vpc_id)
        CfnOutput(self, "DatabaseEndpoint", value=self.database.db_instance_endpoint_address)
        CfnOutput(self, "DatabaseMasterSecretArn", value=self.master_secret.secret_arn)
        for name, repository in self.repositories.items():
            CfnOutput(
                self,
                f"{self.repositories[name].node.id}RepositoryUri",
                value=repository.repository_uri,
            )
