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
from mes_domain.plant import Plant
from stacks.constructs.eks_cluster import ServicesCluster
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
