"""ContainersStack: the EKS Auto Mode cluster the MES services run on in the cloud, their pods'
IAM roles (Pod Identity), the network paths from the pods to the database and the service bus,
and the certificate of the services' name.

It takes what it needs as arguments (the ContainersData stack's network and stores, the
platform's keys and bus, the enterprise interface's tables), so it references them and they
never reference it.
"""

from __future__ import annotations

from collections.abc import Mapping
from hashlib import sha256
from typing import Any

from aws_cdk import CfnOutput, Stack
from aws_cdk import aws_certificatemanager as acm
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_eks_v2 as eks
from aws_cdk import aws_events as events
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_route53 as route53
from constructs import Construct

from mes_domain.containers import ServiceBus, service_bus_cluster_name
from mes_domain.plant import EdgeSite, Plant
from stacks.constructs.delivery_pipeline import DeliveryPipeline
from stacks.constructs.eks_cluster import ServicesCluster
from stacks.constructs.outposts_cluster import edge_cluster_name
from stacks.constructs.service_identities import KafkaAccess, ServiceIdentities

POSTGRES_PORT = 5432
# MSK: clients with IAM access control reach the brokers on 9098 (MSK developer guide, "Port
# information"); services/common/transports/kafka.py connects there.
MSK_IAM_PORT = 9098


class ContainersStack(Stack):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        plant: Plant,
        vpc: ec2.IVpc,
        data_key: kms.IKey,
        logs_key: kms.IKey,
        event_bus: events.IEventBus,
        enterprise_tables: Mapping[str, dynamodb.ITable],
        database_resource_id: str,
        database_security_group: ec2.ISecurityGroup,
        kafka_cluster_arn: str | None,
        kafka_client_security_group: ec2.ISecurityGroup | None,
        **kwargs: Any,
    ) -> None:
        """``kafka_client_security_group``: the security group that admits Kafka clients on
        9098 (the one on the MSK cluster's network interfaces); the cluster security group is
        admitted to it, since the pods' traffic leaves from the cluster security group."""
        super().__init__(scope, construct_id, **kwargs)
        self._plant = plant
        self._keys = (data_key, logs_key)
        self._event_bus = event_bus
        self._enterprise_tables = enterprise_tables
        self._kafka_cluster_arn = kafka_cluster_arn
        msk = plant.containers.service_bus is ServiceBus.MSK
        if msk != (kafka_cluster_arn is not None) or msk != (
            kafka_client_security_group is not None
        ):
            raise ValueError(
                "kafka_cluster_arn and kafka_client_security_group are given exactly when "
                f"containers.service_bus is msk (it is {plant.containers.service_bus.value})"
            )
        services = ServicesCluster(
            self, "Services", plant=plant, vpc=vpc, secrets_key=data_key, logs_key=logs_key
        )
        self.services_cluster = services
        self.cluster: eks.Cluster = services.cluster
        self.cluster_security_group: ec2.ISecurityGroup = services.security_group
        services.admit("PodsToDatabase", database_security_group, POSTGRES_PORT, "PostgreSQL")
        if kafka_client_security_group is not None:
            services.admit("PodsToServiceBus", kafka_client_security_group, MSK_IAM_PORT, "MSK")

        identities = ServiceIdentities(
            self,
            "Identities",
            cluster=self.cluster,
            event_bus=event_bus,
            enterprise_tables=enterprise_tables,
            database_resource_id=database_resource_id,
            kafka=KafkaAccess(
                kafka_cluster_arn, service_bus_cluster_name(plant.deployment.stack_prefix)
            )
            if kafka_cluster_arn
            else None,
        )
        self.service_roles: dict[str, iam.Role] = identities.roles

        self.certificate: acm.ICertificate | None = None
        domain = plant.containers.domain
        if domain is not None:
            zone = route53.HostedZone.from_hosted_zone_attributes(
                self, "Zone", hosted_zone_id=domain.hosted_zone_id, zone_name=domain.zone_name
            )
            # For the Ingress's internal ALB; ACM validates it by a CNAME it writes in the zone.
            self.certificate = acm.Certificate(
                self,
                "Certificate",
                domain_name=domain.record_name,
                validation=acm.CertificateValidation.from_dns(zone),
            )
            CfnOutput(self, "CertificateArn", value=self.certificate.certificate_arn)

        for admin in plant.containers.cluster_admin_arns:
            # Keyed by the ARN, so adding or removing one admin leaves the others' entries.
            services.grant_admin(f"Admin{sha256(admin.encode()).hexdigest()[:12]}", admin)
        CfnOutput(self, "ClusterName", value=self.cluster.cluster_name)

    def platform_environment(self) -> dict[str, str]:
        """The MES_* values of the cloud instance's pods (services/k8s/deploy_overlay.py)."""
        msk = self._plant.containers.service_bus is ServiceBus.MSK
        values = {
            "MES_INSTANCE_ID": "cloud",
            "MES_AWS_REGION": self.region,
            "MES_DATABASE_IAM_AUTH": "true",
            "MES_EVENT_BUS_NAME": self._event_bus.event_bus_name,
            "MES_SYNC_TRANSPORT": "kafka" if msk else "https",
            "MES_ORDERS_TABLE": self._enterprise_tables["orders"].table_name,
            "MES_PRODUCTS_TABLE": self._enterprise_tables["products"].table_name,
            "MES_PROCESS_PLANS_TABLE": self._enterprise_tables["process_plans"].table_name,
        }
        outpost = self._plant.containers.outpost
        if outpost is not None:
            values["MES_EDGE_SITES"] = outpost.site
        return values

    def edge_platform_environment(self) -> dict[str, str] | None:
        """The Outposts edge instance's values: its site, its own PostgreSQL, and the cloud by
        the domain's name (https) or the bus (msk)."""
        containers = self._plant.containers
        outpost = containers.outpost
        if self._plant.deployment.edge_site is not EdgeSite.OUTPOSTS or outpost is None:
            return None
        values = {
            "MES_INSTANCE_ID": outpost.site,
            "DATABASE_HOST": outpost.database_host,
        }
        if containers.service_bus is ServiceBus.MSK:
            values |= {"MES_SYNC_TRANSPORT": "kafka", "MES_AWS_REGION": self.region}
        else:
            assert containers.domain is not None  # the plant config requires it
            values |= {
                "MES_SYNC_TRANSPORT": "https",
                "MES_CLOUD_URL": f"https://{containers.domain.record_name}",
            }
        return values

    def add_delivery_pipeline(
        self,
        *,
        vpc: ec2.IVpc,
        repositories: Mapping[str, Any],
        database: Any,
        master_secret: Any,
        master_secret_grant: Any,
        database_security_group: ec2.ISecurityGroup,
        access_logs: Any,
    ) -> DeliveryPipeline:
        """The pipeline that builds the images and deploys them to this cluster (and to the
        Outposts edge cluster, by its fixed name: a reference would make a cycle)."""
        data_key, logs_key = self._keys
        plant = self._plant
        edge_environment = self.edge_platform_environment()
        pipeline = DeliveryPipeline(
            self,
            "Delivery",
            plant=plant,
            vpc=vpc,
            cluster=self.cluster,
            repositories=repositories,
            database_endpoint=database.db_instance_endpoint_address,
            database_port=database.db_instance_endpoint_port,
            master_secret=master_secret,
            master_secret_grant=master_secret_grant,
            database_security_group=database_security_group,
            platform_environment=self.platform_environment(),
            data_key=data_key,
            logs_key=logs_key,
            access_logs=access_logs,
            domain=plant.containers.domain,
            certificate_arn=self.certificate.certificate_arn if self.certificate else None,
            edge_cluster_name=(
                edge_cluster_name(plant.deployment.stack_prefix) if edge_environment else None
            ),
            edge_platform_environment=edge_environment,
            kafka_cluster_arn=self._kafka_cluster_arn,
        )
        self.services_cluster.admit_api_clients("PipelineDeploy", pipeline.deploy_security_group)
        return pipeline
