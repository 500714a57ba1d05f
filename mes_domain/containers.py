"""The containers platform: its settings in the plant config and the names that the CDK stacks,
the Kubernetes manifests and the services' images all use.

No SDK imports: the stacks (``stacks/containers_stack.py``), the manifests' tests and the
pipeline's buildspecs read these names, so the cluster, its roles and the pods agree by
construction.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated

from pydantic import AfterValidator, Field, field_validator, model_validator

from mes_domain.contracts import StrictModel
from mes_domain.ids import Identifier
from mes_domain.naming import NameRule

# The Kubernetes namespace of the MES services, in the cloud cluster and at the edge site.
NAMESPACE = "mes"


@dataclass(frozen=True, slots=True)
class MesService:
    """One containerised MES service: its Dockerfile target, image repository, Kubernetes
    names and database."""

    name: str  # Dockerfile target, Deployment, Service and ServiceAccount name
    module: str  # python -m services.<module>
    database: str  # its own PostgreSQL database and login role
    port: int = 8080

    @property
    def service_account(self) -> str:
        return self.name

    def repository_name(self, stack_prefix: str) -> str:
        # ECR repository names are lowercase: (?:[a-z0-9]+(?:[._-][a-z0-9]+)*/)*[a-z0-9]+...
        return f"{stack_prefix.lower()}/{self.name}"


SERVICES = (
    MesService(
        name="production-execution", module="production_execution", database="production_execution"
    ),
    MesService(name="inventory", module="inventory", database="inventory"),
)


class ServiceBus(StrEnum):
    """How the edge and cloud instances of the services sync (services/common/sync.py)."""

    HTTPS = "https"  # through API Gateway, SigV4-signed
    MSK = "msk"  # MSK Serverless, IAM authentication


class EndpointAccess(StrEnum):
    PRIVATE = "private"
    PUBLIC_AND_PRIVATE = "public_and_private"


class SourceProvider(StrEnum):
    CODECONNECTIONS = "codeconnections"  # GitHub, GitLab or Bitbucket through a connection
    S3 = "s3"  # a zip in a versioned bucket the stack creates


CODECONNECTION_ARN = re.compile(
    r"^arn:aws[a-z-]*:(codeconnections|codestar-connections):[a-z]{2}(-[a-z]+)+-\d:\d{12}:"
    r"connection/[0-9a-f-]{36}$"
)
REPOSITORY_ID = re.compile(r"^[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)+$")
GIT_BRANCH = re.compile(r"^(?!/)(?!.*//)(?!.*\.\.)[A-Za-z0-9._/-]{1,255}(?<!/)$")
DNS_NAME = re.compile(r"^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$")
HOSTED_ZONE_ID = re.compile(r"^Z[A-Z0-9]{1,31}$")
OUTPOST_ARN = re.compile(
    r"^arn:aws[a-z-]*:outposts:[a-z]{2}(-[a-z]+)+-\d:\d{12}:outpost/op-[0-9a-f]{17}$"
)
AVAILABILITY_ZONE = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d[a-z]$")
IAM_PRINCIPAL_ARN = re.compile(
    r"^arn:aws[a-z-]*:iam::\d{12}:(role|user)/[A-Za-z0-9_+=,.@/-]{1,512}$"
)


def _python_pattern(pattern: re.Pattern[str], what: str):
    """A validator for patterns with look-arounds, which pydantic's Rust regex lacks."""

    def check(value: str) -> str:
        if not pattern.match(value):
            raise ValueError(f"{value!r} is not {what}")
        return value

    return AfterValidator(check)


def _dns_name(value: str) -> str:
    if len(value) > 253 or not DNS_NAME.match(value):
        raise ValueError(f"{value!r} is not a lowercase DNS name like api.example.com")
    return value


DnsName = Annotated[str, AfterValidator(_dns_name)]


def _cidr(value: str) -> str:
    try:
        network = ipaddress.ip_network(value, strict=True)
    except ValueError as exc:
        raise ValueError(f"{value!r} is not a CIDR block: {exc}") from None
    if network.version != 4:
        raise ValueError(f"{value!r}: only IPv4 CIDR blocks are supported")
    return value


Cidr = Annotated[str, AfterValidator(_cidr)]


class PipelineSource(StrictModel):
    provider: SourceProvider = SourceProvider.S3
    connection_arn: str | None = None  # codeconnections: the connection, made in the console
    repository: str | None = None  # codeconnections: owner/name
    branch: Annotated[str, _python_pattern(GIT_BRANCH, "a git branch name")] = "main"

    @field_validator("connection_arn")
    @classmethod
    def _connection(cls, arn: str | None) -> str | None:
        if arn is not None and not CODECONNECTION_ARN.match(arn):
            raise ValueError(f"{arn!r} is not the ARN of a CodeConnections connection")
        return arn

    @field_validator("repository")
    @classmethod
    def _repository(cls, repository: str | None) -> str | None:
        if repository is not None and not REPOSITORY_ID.match(repository):
            raise ValueError(f"{repository!r} is not a repository id like owner/name")
        return repository

    @model_validator(mode="after")
    def _complete(self) -> PipelineSource:
        connection = (self.connection_arn, self.repository)
        if self.provider is SourceProvider.CODECONNECTIONS and None in connection:
            raise ValueError("a codeconnections source needs connection_arn and repository")
        if self.provider is SourceProvider.S3 and connection != (None, None):
            raise ValueError("connection_arn and repository belong to a codeconnections source")
        return self


class PipelineSettings(StrictModel):
    source: PipelineSource = PipelineSource()
    # Who is told that a release waits for approval before production.
    approval_emails: list[Annotated[str, Field(pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")]] = []


class DatabaseSettings(StrictModel):
    # Graviton burstable by default: the two services' OLTP load at one plant is small.
    instance_class: Annotated[str, Field(pattern=r"^db\.[a-z0-9]+\.[a-z0-9]+$")] = "db.t4g.medium"
    multi_az: bool = False
    allocated_storage_gib: Annotated[int, Field(ge=20, le=65536)] = 20
    max_allocated_storage_gib: Annotated[int, Field(ge=20, le=65536)] = 100
    backup_retention_days: Annotated[int, Field(ge=1, le=35)] = 7

    @model_validator(mode="after")
    def _storage_can_grow(self) -> DatabaseSettings:
        if self.max_allocated_storage_gib < self.allocated_storage_gib:
            raise ValueError("max_allocated_storage_gib is below allocated_storage_gib")
        return self


class DomainSettings(StrictModel):
    """The services' public name: a Route 53 record in an existing hosted zone, and an ACM
    certificate for it on the ALB."""

    hosted_zone_id: Annotated[str, Field(pattern=HOSTED_ZONE_ID.pattern)]
    zone_name: DnsName
    record_name: DnsName

    @model_validator(mode="after")
    def _record_in_zone(self) -> DomainSettings:
        # A CNAME to the ALB the Ingress makes; DNS allows no CNAME at a zone's apex.
        if not self.record_name.endswith(f".{self.zone_name}"):
            raise ValueError(
                f"record_name {self.record_name!r} must be a name below {self.zone_name!r}"
            )
        return self


class OutpostSettings(StrictModel):
    """The EKS local cluster on an Outpost (``deployment.edge_site: outposts``)."""

    outpost_arn: Annotated[str, Field(pattern=OUTPOST_ARN.pattern)]
    availability_zone: Annotated[str, Field(pattern=AVAILABILITY_ZONE.pattern)]
    subnet_cidr: Cidr
    control_plane_instance_type: Annotated[str, Field(pattern=r"^[a-z0-9]+\.[a-z0-9]+$")] = (
        "m5.large"
    )
    # Local clusters get Kubernetes versions later than the cloud (EKS user guide, "Learn
    # Kubernetes and Amazon EKS platform versions for AWS Outposts": 1.32 is the newest).
    kubernetes_version: Annotated[str, Field(pattern=r"^1\.\d{2}$")] = "1.32"
    # The plant site the Outpost serves: the edge instance's MES_INSTANCE_ID.
    site: Identifier
    # The site's PostgreSQL for the edge instance (RDS on Outposts or the site's own server).
    database_host: Annotated[str, Field(pattern=r"^[A-Za-z0-9]([A-Za-z0-9.-]{0,252})$")]


class ContainersSettings(StrictModel):
    """The EKS platform of the MES services (``capabilities.eks``)."""

    kubernetes_version: Annotated[str, Field(pattern=r"^1\.\d{2}$")] = "1.34"
    endpoint_access: EndpointAccess = EndpointAccess.PRIVATE
    # With public_and_private: the only networks that reach the public endpoint.
    public_access_cidrs: list[Cidr] = []
    vpc_cidr: Cidr = "10.40.0.0/16"
    # NAT gateways for what no VPC endpoint serves (image pulls from public registries).
    nat_gateways: Annotated[int, Field(ge=1, le=2)] = 1  # one per AZ at most: 2 AZs
    service_bus: ServiceBus = ServiceBus.HTTPS
    database: DatabaseSettings = DatabaseSettings()
    domain: DomainSettings | None = None
    pipeline: PipelineSettings = PipelineSettings()
    outpost: OutpostSettings | None = None
    # IAM roles or users that get a cluster-admin access entry on the cloud cluster (kubectl for
    # operators); the pipeline's deploy role gets its own. The Outposts local cluster takes no
    # access entries (aws-auth only: README, "The edge site on AWS Outposts").
    cluster_admin_arns: list[Annotated[str, Field(pattern=IAM_PRINCIPAL_ARN.pattern)]] = []

    @model_validator(mode="after")
    def _public_endpoint_is_restricted(self) -> ContainersSettings:
        public = self.endpoint_access is EndpointAccess.PUBLIC_AND_PRIVATE
        if public and not self.public_access_cidrs:
            raise ValueError(
                "a public endpoint needs public_access_cidrs: the networks that may reach it"
            )
        if not public and self.public_access_cidrs:
            raise ValueError("public_access_cidrs apply only to endpoint_access public_and_private")
        if "0.0.0.0/0" in self.public_access_cidrs:
            raise ValueError("public_access_cidrs must not open the endpoint to 0.0.0.0/0")
        return self


# --- names the ContainersData stack derives from deployment.stack_prefix, with AWS's rules ---
# (stacks/containers_data_stack.py). The plant validator can check them like naming's others.

ECR_REPOSITORY_NAME = NameRule(
    "ECR repository name",
    256,
    r"(?:[a-z0-9]+(?:[._-][a-z0-9]+)*/)*[a-z0-9]+(?:[._-][a-z0-9]+)*",
    "docs.aws.amazon.com/AmazonECR/latest/APIReference/API_CreateRepository.html",
    min_length=2,
)
# "Must begin with a letter ... Can't end with a hyphen or contain two consecutive hyphens";
# RDS stores identifiers in lowercase.
DB_INSTANCE_IDENTIFIER = NameRule(
    "RDS DB instance identifier",
    63,
    r"[a-z](?:-?[a-z0-9])*",
    "docs.aws.amazon.com/AmazonRDS/latest/APIReference/API_CreateDBInstance.html",
)
# ClusterName is 1 to 64 characters (AWS::MSK::ServerlessCluster); it is a path segment of the
# cluster's, topics' and groups' ARNs, so only letters, digits and hyphens.
MSK_CLUSTER_NAME = NameRule(
    "MSK cluster name",
    64,
    r"[A-Za-z0-9][A-Za-z0-9-]*",
    "docs.aws.amazon.com/AWSCloudFormation/latest/TemplateReference/"
    "aws-resource-msk-serverlesscluster.html",
)


def database_identifier(stack_prefix: str) -> str:
    """The services' RDS instance; its CloudWatch log groups are named after it."""
    return f"{stack_prefix.lower()}-db"


def service_bus_cluster_name(stack_prefix: str) -> str:
    """The MSK Serverless cluster of ``service_bus: msk``."""
    return f"{stack_prefix}-sync"


def containers_data_names(stack_prefix: str, *, msk: bool) -> list[tuple[NameRule, str]]:
    """Every name the ContainersData stack derives from the prefix, with its rule."""
    names = [(ECR_REPOSITORY_NAME, s.repository_name(stack_prefix)) for s in SERVICES]
    names.append((DB_INSTANCE_IDENTIFIER, database_identifier(stack_prefix)))
    if msk:
        names.append((MSK_CLUSTER_NAME, service_bus_cluster_name(stack_prefix)))
    return names


# --- the clusters' names (stacks/constructs/eks_cluster.py, outposts_cluster.py) ---

# CreateCluster: "can contain only alphanumeric characters (case-sensitive), hyphens, and
# underscores. It must start with an alphanumeric character and can't be longer than 100
# characters".
EKS_CLUSTER_NAME = NameRule(
    "EKS cluster name",
    100,
    r"[0-9A-Za-z][A-Za-z0-9\-_]*",
    "docs.aws.amazon.com/eks/latest/APIReference/API_CreateCluster.html",
)


def cluster_name(stack_prefix: str) -> str:
    """The cloud cluster (EKS Auto Mode) of the MES services. Fixed, not generated, so that its
    control-plane log group can be created first with the logs key and a retention."""
    return f"{stack_prefix}-services"


def edge_cluster_name(stack_prefix: str) -> str:
    """The EKS local cluster on the Outpost (``deployment.edge_site: outposts``). The prefix
    holds no underscore, which CloudFormation refuses in AWS::EKS::Cluster's Name."""
    return f"{stack_prefix}-edge"


def cluster_names(stack_prefix: str, *, outposts: bool) -> list[tuple[NameRule, str]]:
    """The clusters' names, with their rule: the cloud's, and the Outpost's if there is one."""
    names = [(EKS_CLUSTER_NAME, cluster_name(stack_prefix))]
    if outposts:
        names.append((EKS_CLUSTER_NAME, edge_cluster_name(stack_prefix)))
    return names
