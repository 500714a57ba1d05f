"""The edge site's cluster: an EKS local cluster, control plane and nodes on an AWS Outpost rack,
in a subnet on the Outpost inside the platform's VPC, so the edge instance of the MES services
keeps running through a disconnect from the Region (EKS user guide, "Create local Amazon EKS
clusters on AWS Outposts for high availability").

What a local cluster differs in, from the EKS user guide's comparison of the deployment options
("Deploy Amazon EKS on-premises with AWS Outposts"): the endpoint is private only, the cluster
role is assumed by EC2 and carries AmazonEKSLocalOutpostClusterPolicy, secrets envelope
encryption is not supported (so none is configured: the control plane's EBS volumes on the
Outpost hold etcd), and neither IRSA nor EKS Pod Identity is available.

Authentication is the aws-auth ConfigMap only: EKS refuses a local cluster with any other
AccessConfig ("Local Amazon EKS cluster only supports bootstrapClusterCreatorAdminPermissions=true
and authenticationMode=CONFIG_MAP for AccessConfig", quoted in eksctl-io/eksctl#7552; eksctl
enforces CONFIG_MAP on Outposts since eksctl-io/eksctl#7699; "Outposts still does not support
access entries", eksctl-io/eksctl#7695). So no access entry can be made here: the cluster's
creator (CloudFormation's execution role of ``cdk deploy``) is its only admin until someone
maps more roles into aws-auth (services/k8s/aws_auth.py; README, "The edge site on AWS
Outposts"). Its nodes are self-managed, on the Outpost, and not made here.
"""

from __future__ import annotations

import ipaddress

from aws_cdk import Token
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_eks_v2 as eks
from aws_cdk import aws_iam as iam
from constructs import Construct

from mes_domain.containers import edge_cluster_name  # checked at config load
from mes_domain.plant import Plant
from stacks.compliance import acknowledge
from stacks.constructs.eks_cluster import (
    API_SERVER_PORT,
    CONTROL_PLANE_LOG_GROUP,
    CONTROL_PLANE_LOGS,
)
from stacks.constructs.log_groups import retained_log_group

LOCAL_CLUSTER_POLICY = "AmazonEKSLocalOutpostClusterPolicy"
# The only AccessConfig EKS accepts for a local cluster (module docstring).
LOCAL_CLUSTER_AUTHENTICATION_MODE = "CONFIG_MAP"
# Kubernetes versions EKS offers for local clusters (EKS user guide, "Learn Kubernetes and
# Amazon EKS platform versions for AWS Outposts"); add one when that page does.
LOCAL_CLUSTER_VERSIONS = ("1.29", "1.30", "1.31", "1.32")


def check_subnet(subnet_cidr: str, vpc_cidr: str, taken: list[str]) -> None:
    """The Outpost subnet is a block of the VPC's range that no other subnet of it uses."""
    subnet = ipaddress.ip_network(subnet_cidr)
    if not subnet.subnet_of(ipaddress.ip_network(vpc_cidr)):
        raise ValueError(
            f"containers.outpost.subnet_cidr {subnet_cidr} is not within vpc_cidr {vpc_cidr}"
        )
    for other in taken:
        if subnet.overlaps(ipaddress.ip_network(other)):
            raise ValueError(
                f"containers.outpost.subnet_cidr {subnet_cidr} overlaps the VPC's subnet {other}"
            )


class OutpostsCluster(Construct):
    """``cluster``: the local cluster (``cluster.ref`` is its name); ``subnet``: its subnet on
    the Outpost; ``role``: its cluster role."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        plant: Plant,
        vpc: ec2.IVpc,
        logs_key,
    ) -> None:
        super().__init__(scope, construct_id)
        outpost = plant.containers.outpost
        if outpost is None:
            raise ValueError("deployment.edge_site outposts needs containers.outpost")
        if outpost.kubernetes_version not in LOCAL_CLUSTER_VERSIONS:
            raise ValueError(
                f"containers.outpost.kubernetes_version {outpost.kubernetes_version!r} is not "
                f"offered for EKS local clusters ({', '.join(LOCAL_CLUSTER_VERSIONS)})"
            )
        private = vpc.select_subnets(subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS).subnets
        check_subnet(
            outpost.subnet_cidr,
            plant.containers.vpc_cidr,
            [
                s.ipv4_cidr_block
                for s in [*vpc.public_subnets, *private, *vpc.isolated_subnets]
                if not Token.is_unresolved(s.ipv4_cidr_block)
            ],
        )
        self.name = edge_cluster_name(plant.deployment.stack_prefix)

        self.subnet = ec2.CfnSubnet(
            self,
            "Subnet",
            vpc_id=vpc.vpc_id,
            cidr_block=outpost.subnet_cidr,
            availability_zone=outpost.availability_zone,
            outpost_arn=outpost.outpost_arn,
            map_public_ip_on_launch=False,
            tags=[{"key": "Name", "value": f"{self.name}-outpost"}],
        )
        # The zone is the Outpost's parent AZ, fixed by where the rack is anchored.
        reason = "an Outpost subnet must be in the Outpost's own parent Availability Zone"
        acknowledge(self.subnet, "CloudFormation-Validate::W3010", reason)
        self.subnet.add_metadata("cfn-lint", {"config": {"ignore_checks": ["W3010"]}})
        # The control plane instances reach Regional services (SSM, EC2, ECR, logs, STS) through
        # the NAT gateway or the VPC's endpoints (EKS user guide, "Create a VPC and subnets for
        # Amazon EKS clusters on AWS Outposts": subnet access to AWS services): the subnet
        # shares the route table of the VPC's private subnet in the Outpost's parent AZ (the
        # NAT route and the S3 and DynamoDB gateway endpoints), or of the first one.
        same_zone = [s for s in private if s.availability_zone == outpost.availability_zone]
        ec2.CfnSubnetRouteTableAssociation(
            self,
            "Routes",
            subnet_id=self.subnet.ref,
            route_table_id=(same_zone or private)[0].route_table.route_table_id,
        )

        self.role = iam.Role(
            self,
            "ClusterRole",
            # The local cluster role's trust and policy (EKS user guide, "Deploy an Amazon EKS
            # cluster on AWS Outposts": the control plane instances assume it).
            assumed_by=iam.ServicePrincipal("ec2.amazonaws.com"),
            managed_policies=[iam.ManagedPolicy.from_aws_managed_policy_name(LOCAL_CLUSTER_POLICY)],
            description="Control plane instances of the edge site's EKS local cluster",
        )
        acknowledge(
            self.role.node.default_child,
            f"AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/{LOCAL_CLUSTER_POLICY}]",
            "EKS requires this AWS managed policy on a local cluster's role; it is maintained "
            "by EKS as the control plane instances' needs change",
        )

        self.log_group = retained_log_group(
            self,
            "ControlPlaneLogs",
            log_group_name=CONTROL_PLANE_LOG_GROUP.format(self.name),
            logs_key=logs_key,
            retention_days=plant.retention.log_days,
        )

        self.cluster = eks.CfnCluster(
            self,
            "Cluster",
            name=self.name,
            version=outpost.kubernetes_version,
            role_arn=self.role.role_arn,
            resources_vpc_config=eks.CfnCluster.ResourcesVpcConfigProperty(
                subnet_ids=[self.subnet.ref],
                # Local clusters: private endpoint only.
                endpoint_private_access=True,
                endpoint_public_access=False,
            ),
            outpost_config=eks.CfnCluster.OutpostConfigProperty(
                outpost_arns=[outpost.outpost_arn],
                control_plane_instance_type=outpost.control_plane_instance_type,
            ),
            logging=eks.CfnCluster.LoggingProperty(
                cluster_logging=eks.CfnCluster.ClusterLoggingProperty(
                    enabled_types=[
                        eks.CfnCluster.LoggingTypeConfigProperty(type=_log_type(kind))
                        for kind in CONTROL_PLANE_LOGS
                    ]
                )
            ),
            # aws-auth only, the creator its first admin: all a local cluster accepts.
            access_config=eks.CfnCluster.AccessConfigProperty(
                authentication_mode=LOCAL_CLUSTER_AUTHENTICATION_MODE,
                bootstrap_cluster_creator_admin_permissions=True,
            ),
        )
        self.cluster.add_resource_dependency(self.log_group.node.default_child)
        self.security_group_id = self.cluster.attr_cluster_security_group_id

    def admit_api_clients(self, construct_id: str, peer: ec2.ISecurityGroup) -> None:
        """Let ``peer`` (e.g. the deploy stage's CodeBuild) reach the private API endpoint."""
        ec2.CfnSecurityGroupIngress(
            self,
            construct_id,
            group_id=self.security_group_id,
            source_security_group_id=peer.security_group_id,
            ip_protocol="tcp",
            from_port=API_SERVER_PORT,
            to_port=API_SERVER_PORT,
            description="Kubernetes API of the edge site's local cluster",
        )


def _log_type(kind: eks.ClusterLoggingTypes) -> str:
    # The CloudFormation names: api, audit, authenticator, controllerManager, scheduler.
    head, *rest = kind.value.lower().split("_")
    return head + "".join(part.capitalize() for part in rest)
