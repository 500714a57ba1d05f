"""One IAM role per MES service for its pods, through EKS Pod Identity, each allowed what that
service's code calls and nothing else.

EKS Auto Mode runs the Pod Identity agent itself (EKS user guide, "Set up the Amazon EKS Pod
Identity Agent": not needed on Auto Mode clusters), so an association per service account is
all a pod needs. What each service calls, from its code:

- both: ``events:PutEvents`` on the bus (services/common/relay.py through
  ``EventBridgePublisher``) and ``rds-db:connect`` as its own login role (IAM database
  authentication, MES_DATABASE_IAM_AUTH);
- production execution: ``dynamodb:GetItem`` on the enterprise interface's orders, products and
  process plans tables (``DynamoDbStore.get``, a consistent GetItem, never a Query) with
  ``kms:Decrypt`` on their key, and the Kafka sync when the service bus is MSK
  (services/common/transports/kafka.py: it produces to ``mes-sync.<origin>`` idempotently and
  reads its peers' topics in groups ``mes-sync.<instance>.<origin>``). Inventory has no Kafka
  client, so it gets no Kafka permission.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from aws_cdk import ArnFormat, Stack
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_eks_v2 as eks
from aws_cdk import aws_events as events
from aws_cdk import aws_iam as iam
from constructs import Construct

from mes_domain.containers import NAMESPACE, SERVICES, MesService
from stacks.compliance import acknowledge

PRODUCTION_EXECUTION = "production-execution"
# The stores production execution reads, by key of ``enterprise_tables``.
ENTERPRISE_TABLES = ("orders", "products", "process_plans")
# services/common/transports/kafka.py: TOPIC_PREFIX names topics and consumer groups alike.
SYNC_PREFIX = "mes-sync."
POD_IDENTITY_PRINCIPAL = "pods.eks.amazonaws.com"


@dataclass(frozen=True)
class KafkaAccess:
    """The MSK Serverless cluster: its ARN
    (``arn:${Partition}:kafka:${Region}:${Account}:cluster/${ClusterName}/${ClusterUuid}``) and
    its name (``mes_domain.containers.service_bus_cluster_name``)."""

    cluster_arn: str
    cluster_name: str


def database_user_arn(scope: Construct, resource_id: str, user: str) -> str:
    """``rds-db:connect``'s resource: one database user of one instance, by the instance's
    DbiResourceId (RDS user guide, "Creating and using an IAM policy for IAM database access":
    arn:aws:rds-db:region:account-id:dbuser:DbiResourceId/db-user-name)."""
    return Stack.of(scope).format_arn(
        service="rds-db",
        resource="dbuser",
        resource_name=f"{resource_id}/{user}",
        arn_format=ArnFormat.COLON_RESOURCE_NAME,
    )


def kafka_arns(scope: Construct, cluster_name: str) -> tuple[str, str]:
    """(topic ARN, group ARN) patterns of the sync's topics and groups (MSK developer guide,
    "Semantics of IAM authorization policy actions and resources":
    arn:aws:kafka:region:account-id:topic/cluster-name/cluster-uuid/topic-name, and
    group/cluster-name/cluster-uuid/group-name). Any UUID: a topic or group action needs
    kafka-cluster:Connect on its cluster too, which the role has on the one cluster only; and
    the patterns stay free of the cluster ARN's cross-stack reference, which cdk-nag renders
    differently before and after synthesis."""
    stack = Stack.of(scope)
    return tuple(  # type: ignore[return-value]
        stack.format_arn(
            service="kafka", resource=kind, resource_name=f"{cluster_name}/*/{SYNC_PREFIX}*"
        )
        for kind in ("topic", "group")
    )


class ServiceIdentities(Construct):
    """``roles``: service name -> its pods' IAM role; ``associations``: service name -> its
    Pod Identity association (namespace ``NAMESPACE``, service account = the service name)."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        cluster: eks.ICluster,
        event_bus: events.IEventBus,
        enterprise_tables: Mapping[str, dynamodb.ITable],
        database_resource_id: str,
        kafka: KafkaAccess | None,
    ) -> None:
        super().__init__(scope, construct_id)
        missing = set(ENTERPRISE_TABLES) - set(enterprise_tables)
        if missing:
            raise ValueError(f"enterprise_tables lacks {sorted(missing)}")
        self.roles: dict[str, iam.Role] = {}
        self.associations: dict[str, eks.CfnPodIdentityAssociation] = {}
        for service in SERVICES:
            role = self._role(service)
            role.add_to_policy(
                iam.PolicyStatement(
                    sid="PublishMesEvents",
                    actions=["events:PutEvents"],
                    resources=[event_bus.event_bus_arn],
                )
            )
            role.add_to_policy(
                iam.PolicyStatement(
                    sid="ConnectAsItsDatabaseUser",
                    actions=["rds-db:connect"],
                    resources=[database_user_arn(self, database_resource_id, service.database)],
                )
            )
            if service.name == PRODUCTION_EXECUTION:
                self._read_enterprise_store(role, [enterprise_tables[k] for k in ENTERPRISE_TABLES])
                if kafka is not None:
                    self._sync_over_kafka(role, kafka)
            self.roles[service.name] = role
            self.associations[service.name] = eks.CfnPodIdentityAssociation(
                self,
                f"{_pascal(service.name)}Association",
                cluster_name=cluster.cluster_name,
                namespace=NAMESPACE,
                service_account=service.service_account,
                role_arn=role.role_arn,
            )

    def _role(self, service: MesService) -> iam.Role:
        account = Stack.of(self).account
        # The trust policy EKS Pod Identity requires (EKS user guide, "Create IAM role with
        # trust policy required by EKS Pod Identity"), limited to this account's clusters.
        # sts:AssumeRole and sts:TagSession, in one statement.
        principal = iam.SessionTagsPrincipal(
            iam.ServicePrincipal(POD_IDENTITY_PRINCIPAL).with_conditions(
                {"StringEquals": {"aws:SourceAccount": account}}
            )
        )
        return iam.Role(
            self,
            f"{_pascal(service.name)}Role",
            assumed_by=principal,
            description=f"Pods of the MES {service.name} service (EKS Pod Identity)",
        )

    def _read_enterprise_store(self, role: iam.Role, tables: list[dynamodb.ITable]) -> None:
        role.add_to_policy(
            iam.PolicyStatement(
                sid="ReadEnterpriseDocuments",
                actions=["dynamodb:GetItem"],
                resources=[table.table_arn for table in tables],
            )
        )
        keys = {id(t.encryption_key): t.encryption_key for t in tables if t.encryption_key}
        if keys:
            role.add_to_policy(
                iam.PolicyStatement(
                    sid="DecryptEnterpriseDocuments",
                    actions=["kms:Decrypt"],
                    resources=[key.key_arn for key in keys.values()],
                )
            )

    def _sync_over_kafka(self, role: iam.Role, kafka: KafkaAccess) -> None:
        topics, groups = kafka_arns(self, kafka.cluster_name)
        # Each action with the actions it requires (MSK developer guide, "Semantics of IAM
        # authorization policy actions and resources"): WriteDataIdempotently needs WriteData,
        # WriteData and ReadData need DescribeTopic, ReadData needs AlterGroup.
        role.add_to_policy(
            iam.PolicyStatement(
                sid="ConnectToTheServiceBus",
                actions=["kafka-cluster:Connect", "kafka-cluster:WriteDataIdempotently"],
                resources=[kafka.cluster_arn],
            )
        )
        role.add_to_policy(
            iam.PolicyStatement(
                sid="ProduceAndConsumeSyncTopics",
                # CreateTopic: each instance's Kafka transport creates its own sync topic and its
                # peer's before it first writes or reads (services/common/transports/kafka.py).
                actions=[
                    "kafka-cluster:CreateTopic",
                    "kafka-cluster:DescribeTopic",
                    "kafka-cluster:WriteData",
                    "kafka-cluster:ReadData",
                ],
                resources=[topics],
            )
        )
        role.add_to_policy(
            iam.PolicyStatement(
                sid="CommitSyncConsumerGroups",
                actions=["kafka-cluster:AlterGroup", "kafka-cluster:DescribeGroup"],
                resources=[groups],
            )
        )
        policy = role.node.find_child("DefaultPolicy").node.default_child
        for kind, arn in (("topic", topics), ("group", groups)):
            acknowledge(
                policy,
                f"AwsSolutions-IAM5[Resource::{_nag_text(policy, arn)}]",
                f"the sync's {kind}s are one per instance, named {SYNC_PREFIX}<instance>...; "
                "Connect is granted on the one MSK cluster, so only its such "
                f"{kind}s are reachable",
            )


def _pascal(name: str) -> str:
    return "".join(part.capitalize() for part in name.split("-"))


def _nag_text(resource, value: str) -> str:
    """A resource as cdk-nag names it in a finding: a Ref as <Name>, a GetAtt as
    <LogicalId.Attribute>, the parts of a Join joined."""
    return _render(Stack.of(resource).resolve(value))


def _render(value) -> str:
    if isinstance(value, str):
        return value
    if "Ref" in value:
        return f"<{value['Ref']}>"
    if "Fn::GetAtt" in value:
        return "<{}.{}>".format(*value["Fn::GetAtt"])
    if "Fn::Join" in value:
        separator, parts = value["Fn::Join"]
        return separator.join(_render(part) for part in parts)
    raise ValueError(f"cannot name {value} as cdk-nag does")
