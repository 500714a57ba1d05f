"""MSK Serverless for ``containers.service_bus: msk``: the edge and cloud instances of the services
sync through it, authenticating with IAM (services/common/transports/kafka.py)."""

from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import Fn
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_msk as msk
from constructs import Construct

from mes_domain.containers import MSK_CLUSTER_NAME

# "To communicate with brokers in a cluster that is set up to use IAM access control, use port
# 9098 for access from within AWS" (MSK developer guide, port-info.html). MSK Serverless supports
# IAM client authentication only (MSK developer guide, serverless.html).
IAM_PORT = 9098
# MSK Serverless quotas we stay within (MSK developer guide, limits.html, "MSK Serverless quota",
# per cluster): 3,000 client connections, 2,400 partitions, 500 consumer groups, 200 MBps in,
# 8 MiB messages. The sync transport uses one topic per instance (cloud and each edge site) and a
# consumer group per reader and origin: a few connections and partitions per site.


class ServiceBus(Construct):
    """``cluster`` (its ``cluster_arn`` and ``cluster_name``), ``security_group`` on the brokers'
    endpoints admitting 9098 from ``client_security_group`` only, and ``grant_kafka``.

    CloudFormation returns no bootstrap brokers for a serverless cluster (its only attribute is
    the ARN); a client reads them with ``aws kafka get-bootstrap-brokers --cluster-arn <arn>``
    (``BootstrapBrokerStringSaslIam``)."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        vpc: ec2.IVpc,
        subnets: ec2.SubnetSelection,
        cluster_name: str,
    ) -> None:
        super().__init__(scope, construct_id)
        problem = MSK_CLUSTER_NAME.problem(cluster_name)
        if problem:
            raise ValueError(f"MSK cluster name {cluster_name!r}: {problem}")
        self.client_security_group = ec2.SecurityGroup(
            self,
            "ClientSecurityGroup",
            vpc=vpc,
            description="Clients of the MES service bus (MSK Serverless, IAM on 9098)",
            allow_all_outbound=False,
        )
        self.security_group = ec2.SecurityGroup(
            self,
            "SecurityGroup",
            vpc=vpc,
            description="MES service bus (MSK Serverless): 9098 from its clients only",
            allow_all_outbound=False,
        )
        self.security_group.add_ingress_rule(
            self.client_security_group, ec2.Port.tcp(IAM_PORT), "Kafka over IAM from clients"
        )
        self.client_security_group.add_egress_rule(
            self.security_group, ec2.Port.tcp(IAM_PORT), "Kafka over IAM to the service bus"
        )
        self.cluster = msk.CfnServerlessCluster(
            self,
            "Cluster",
            cluster_name=cluster_name,
            client_authentication=msk.CfnServerlessCluster.ClientAuthenticationProperty(
                sasl=msk.CfnServerlessCluster.SaslProperty(
                    iam=msk.CfnServerlessCluster.IamProperty(enabled=True)
                )
            ),
            vpc_configs=[
                msk.CfnServerlessCluster.VpcConfigProperty(
                    subnet_ids=vpc.select_subnets(subnet_type=subnets.subnet_type).subnet_ids,
                    security_groups=[self.security_group.security_group_id],
                )
            ],
        )
        self.cluster_name = cluster_name
        self.cluster_arn = self.cluster.attr_arn

    def allow_client(self, peer: ec2.ISecurityGroup, description: str) -> None:
        """Admit ``peer`` (e.g. the cluster's security group) on 9098 besides
        ``client_security_group``; the rule is made in the peer's stack (``remote_rule``)."""
        self.security_group.add_ingress_rule(
            peer, ec2.Port.tcp(IAM_PORT), description, remote_rule=True
        )

    def _arn(self, resource: str, name: str) -> str:
        """arn:${Partition}:kafka:${Region}:${Account}:<resource>/${ClusterName}/${ClusterUuid}/
        <name>, from the cluster's arn:...:cluster/${ClusterName}/${ClusterUuid} (Service
        Authorization Reference, "Apache Kafka APIs for Amazon MSK clusters", resource types)."""
        account_part, cluster_part = (
            Fn.select(index, Fn.split(":cluster/", self.cluster_arn)) for index in (0, 1)
        )
        return Fn.join("", [account_part, f":{resource}/", cluster_part, f"/{name}"])

    def grant_kafka(
        self,
        role: iam.IRole,
        policy_id: str,
        *,
        write_topics: Sequence[str] = (),
        read_topics: Sequence[str] = (),
        groups: Sequence[str] = (),
        create_topics: bool = False,
    ) -> iam.ManagedPolicy:
        """Attach to ``role`` a managed policy (construct id ``policy_id``, made here) with the
        kafka-cluster actions a sync client needs, on these topics and consumer groups. Each
        action comes with the ones it requires (MSK developer guide, kafka-actions.html):
        WriteData needs DescribeTopic, ReadData DescribeTopic and AlterGroup,
        WriteDataIdempotently (the producer's enable.idempotence) WriteData. ``create_topics``:
        CreateTopic on the write topics too, for a client that creates its own topic.

        The policy lives in this stack because the topic and group ARNs are cut out of the
        cluster's ARN with Fn::Split, which cfn-lint (E1022) refuses on a cross-stack output."""
        cluster_actions = ["kafka-cluster:Connect", "kafka-cluster:DescribeCluster"]
        if write_topics:
            cluster_actions.append("kafka-cluster:WriteDataIdempotently")
        statements = [iam.PolicyStatement(actions=cluster_actions, resources=[self.cluster_arn])]
        if write_topics:
            statements.append(
                iam.PolicyStatement(
                    actions=[
                        "kafka-cluster:DescribeTopic",
                        "kafka-cluster:WriteData",
                        *(["kafka-cluster:CreateTopic"] if create_topics else []),
                    ],
                    resources=[self._arn("topic", t) for t in write_topics],
                )
            )
        if read_topics:
            statements.append(
                iam.PolicyStatement(
                    actions=["kafka-cluster:DescribeTopic", "kafka-cluster:ReadData"],
                    resources=[self._arn("topic", t) for t in read_topics],
                )
            )
        if groups:
            statements.append(
                iam.PolicyStatement(
                    actions=["kafka-cluster:DescribeGroup", "kafka-cluster:AlterGroup"],
                    resources=[self._arn("group", g) for g in groups],
                )
            )
        policy = iam.ManagedPolicy(
            self,
            policy_id,
            description=f"Sync over the MES service bus {self.cluster_name}",
            statements=statements,
        )
        role.add_managed_policy(policy)
        return policy
