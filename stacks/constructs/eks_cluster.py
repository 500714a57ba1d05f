"""The MES services' cloud cluster: EKS Auto Mode (``aws_eks_v2``), private subnets, API-server
access through access entries only, every control-plane log type in a KMS-encrypted log group,
Kubernetes secrets envelope-encrypted with a KMS key, the Kubernetes Metrics Server as an EKS
add-on (the services' HorizontalPodAutoscalers read it), and no kubectl Lambda: the delivery
pipeline's deploy stage applies the manifests with kubectl from inside the VPC.

cdk-nag's EKS rules (EKS1 public endpoint, EKS2 control-plane logs) inspect aws_eks.CfnCluster
and aws_eks's custom resource only, not aws_eks_v2.CfnCluster (cdk-nag 3.0.2,
rules/eks/*.js), so tests/stacks/test_containers_cluster.py asserts what they would: every log
type, and a public endpoint only with the configured networks."""

from __future__ import annotations

import re

from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_eks_v2 as eks
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from constructs import Construct

from mes_domain.containers import EndpointAccess, cluster_name  # checked at config load
from mes_domain.plant import Plant
from stacks.compliance import acknowledge
from stacks.constructs.log_groups import retained_log_group

# EKS Auto Mode's built-in node pools (EKS user guide, "Create a Node Pool for EKS Auto Mode":
# the built-in pools can only be enabled or disabled).
NODE_POOLS = ("system", "general-purpose")
# Every control-plane log type (EKS user guide, "Send control plane logs to CloudWatch Logs").
CONTROL_PLANE_LOGS = (
    eks.ClusterLoggingTypes.API,
    eks.ClusterLoggingTypes.AUDIT,
    eks.ClusterLoggingTypes.AUTHENTICATOR,
    eks.ClusterLoggingTypes.CONTROLLER_MANAGER,
    eks.ClusterLoggingTypes.SCHEDULER,
)
# EKS access policy of a cluster administrator (EKS user guide, "Associate access policies
# with access entries").
CLUSTER_ADMIN_POLICY = "AmazonEKSClusterAdminPolicy"
API_SERVER_PORT = 443
# The Kubernetes Metrics Server, which the HorizontalPodAutoscalers of services/k8s read: an EKS
# community add-on (EKS user guide, "Community add-ons": add-on name metrics-server, namespace
# kube-system, no IAM role), "not deployed by default in Amazon EKS clusters" (user guide, "View
# resource usage with the Kubernetes Metrics Server"), Auto Mode ones included: Auto Mode's
# built-in capabilities are pod and service networking, DNS, autoscaling, block storage, load
# balancing, the Pod Identity agent and node monitoring (user guide, "Amazon EKS add-ons":
# Considerations for Amazon EKS Auto Mode). Its pods run on the built-in node pools like any
# workload. No version: EKS installs the default version for the cluster's Kubernetes version.
METRICS_SERVER_ADDON = "metrics-server"
# The pre-created log group EKS writes control-plane logs to (EKS user guide, "Send control
# plane logs to CloudWatch Logs": /aws/eks/<cluster-name>/cluster).
CONTROL_PLANE_LOG_GROUP = "/aws/eks/{}/cluster"
IAM4_CLUSTER_POLICIES = (
    # What EKS requires of an Auto Mode cluster role (EKS user guide, "Amazon EKS cluster IAM
    # role": the Auto Mode cluster role policies), attached by aws_eks_v2.Cluster.
    "AmazonEKSClusterPolicy",
    "AmazonEKSComputePolicy",
    "AmazonEKSBlockStoragePolicy",
    "AmazonEKSLoadBalancingPolicy",
    "AmazonEKSNetworkingPolicy",
)
NODE_POLICIES = (
    # What EKS suggests for an Auto Mode node role (EKS user guide, "Learn about identity and
    # access in EKS Auto Mode": Node IAM role), narrower than the AmazonEKSWorkerNodePolicy and
    # AmazonEC2ContainerRegistryReadOnly aws_eks_v2.Cluster would attach to a role of its own.
    "AmazonEKSWorkerNodeMinimalPolicy",
    "AmazonEC2ContainerRegistryPullOnly",
)


class UnsupportedKubernetesVersion(ValueError):
    """A Kubernetes version this aws-cdk-lib cannot create a cluster of."""


def kubernetes_version(version: str) -> eks.KubernetesVersion:
    """The CDK constant of ``version`` ("1.34" -> KubernetesVersion.V1_34); a version the
    installed aws-cdk-lib does not know is refused, not passed through with ``of``."""
    name = "V" + version.replace(".", "_")
    found = getattr(eks.KubernetesVersion, name, None) if re.fullmatch(r"1\.\d+", version) else None
    if found is None:
        known = sorted(
            (n for n in dir(eks.KubernetesVersion) if re.fullmatch(r"V1_\d+", n)),
            key=lambda n: int(n.split("_")[1]),
        )
        raise UnsupportedKubernetesVersion(
            f"containers.kubernetes_version {version!r} is not one aws-cdk-lib "
            f"{_cdk_version()} supports ({', '.join(n[1:].replace('_', '.') for n in known)})"
        )
    return found


def _cdk_version() -> str:
    from importlib.metadata import version

    return version("aws-cdk-lib")


def endpoint_access(plant: Plant) -> eks.EndpointAccess:
    settings = plant.containers
    if settings.endpoint_access is EndpointAccess.PRIVATE:
        return eks.EndpointAccess.PRIVATE
    # The config refuses a public endpoint without CIDRs, and 0.0.0.0/0 among them.
    return eks.EndpointAccess.PUBLIC_AND_PRIVATE.only_from(*settings.public_access_cidrs)


class ServicesCluster(Construct):
    """``cluster``: the Auto Mode cluster; ``security_group``: the cluster security group
    (EKS-managed), which Auto Mode's built-in node pools put the nodes, and so the pods, in
    (EKS user guide, "Learn about VPC networking and load balancing in EKS Auto Mode": nodes
    use the eks-cluster-sg-* group unless a custom NodeClass selects others)."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        plant: Plant,
        vpc: ec2.IVpc,
        secrets_key: kms.IKey,
        logs_key: kms.IKey,
    ) -> None:
        super().__init__(scope, construct_id)
        self.name = cluster_name(plant.deployment.stack_prefix)
        self.log_group = retained_log_group(
            self,
            "ControlPlaneLogs",
            log_group_name=CONTROL_PLANE_LOG_GROUP.format(self.name),
            logs_key=logs_key,
            retention_days=plant.retention.log_days,
        )

        self.cluster = eks.Cluster(
            self,
            "Cluster",
            cluster_name=self.name,
            version=kubernetes_version(plant.containers.kubernetes_version),
            vpc=vpc,
            vpc_subnets=[ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS)],
            endpoint_access=endpoint_access(plant),
            default_capacity_type=eks.DefaultCapacityType.AUTOMODE,
            compute=eks.ComputeConfig(node_pools=list(NODE_POOLS), node_role=self._node_role()),
            cluster_logging=list(CONTROL_PLANE_LOGS),
            secrets_encryption_key=secrets_key,
            # Nobody is admin by having created the stack (that would be the CloudFormation
            # execution role, for good); the deploy stage's role and cluster_admin_arns get
            # access entries instead. authenticationMode is API: no aws-auth ConfigMap.
            bootstrap_cluster_creator_admin_permissions=False,
            # No kubectl provider: the cluster takes no manifests at deploy time.
            output_config_command=False,
        )
        self.cluster.node.add_dependency(self.log_group)
        self.security_group = self.cluster.cluster_security_group
        self.metrics_server = eks.Addon(
            self, "MetricsServer", addon_name=METRICS_SERVER_ADDON, cluster=self.cluster
        )
        self._acknowledge()

    def admit(self, construct_id: str, peer: ec2.ISecurityGroup, port: int, what: str) -> None:
        """Let the pods reach ``peer`` on ``port``: an ingress rule on ``peer`` from the cluster
        security group, declared in this stack (a rule in the peer's stack would make it
        depend on this one, which already depends on it)."""
        ec2.CfnSecurityGroupIngress(
            self,
            construct_id,
            group_id=peer.security_group_id,
            source_security_group_id=self.cluster.cluster_security_group_id,
            ip_protocol="tcp",
            from_port=port,
            to_port=port,
            description=f"MES services' pods (EKS cluster security group) to {what}",
        )

    def admit_api_clients(self, construct_id: str, peer: ec2.ISecurityGroup) -> None:
        """Let ``peer`` (e.g. the deploy stage's CodeBuild in the VPC) reach the private API
        endpoint, whose network interfaces carry the cluster security group."""
        ec2.CfnSecurityGroupIngress(
            self,
            construct_id,
            group_id=self.cluster.cluster_security_group_id,
            source_security_group_id=peer.security_group_id,
            ip_protocol="tcp",
            from_port=API_SERVER_PORT,
            to_port=API_SERVER_PORT,
            description="Kubernetes API of the MES services' cluster",
        )

    def grant_admin(self, construct_id: str, principal_arn: str) -> eks.AccessEntry:
        """A cluster-wide admin access entry for an IAM role or user."""
        return eks.AccessEntry(
            self,
            construct_id,
            cluster=self.cluster,
            principal=principal_arn,
            access_policies=[
                eks.AccessPolicy.from_access_policy_name(
                    CLUSTER_ADMIN_POLICY, access_scope_type=eks.AccessScopeType.CLUSTER
                )
            ],
        )

    def _acknowledge(self) -> None:
        cluster_role = self.cluster.role.node.default_child
        for policy in IAM4_CLUSTER_POLICIES:
            acknowledge(
                cluster_role,
                f"AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/{policy}]",
                "EKS requires this AWS managed policy on an Auto Mode cluster role; it is "
                "maintained by EKS as Auto Mode's needs change",
            )
        for policy in NODE_POLICIES:
            acknowledge(
                self.node_role.node.default_child,
                f"AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/{policy}]",
                "EKS requires this AWS managed policy on the Auto Mode node role (node "
                "registration and image pulls); it is maintained by EKS",
            )

    def _node_role(self) -> iam.Role:
        self.node_role = iam.Role(
            self,
            "NodeRole",
            # EC2 instances of Auto Mode's node pools assume it (EKS user guide, "Create an
            # Auto Mode cluster with the AWS CLI": the node trust policy).
            assumed_by=iam.ServicePrincipal("ec2.amazonaws.com"),
            managed_policies=[
                iam.ManagedPolicy.from_aws_managed_policy_name(p) for p in NODE_POLICIES
            ],
            description="Nodes of the MES services' EKS Auto Mode cluster",
        )
        return self.node_role
