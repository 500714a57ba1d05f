"""ContainersStack as synthesized in a small app of stub stacks (VPC, keys, bus, tables,
security groups) with the compliance gates on, so a cdk-nag finding fails the synth: the EKS
Auto Mode cluster, its access and logging, the pods' IAM roles through Pod Identity, their paths
to the database and MSK, and the certificate.

Two apps, each synthesized once a process (``case``): "private" (private endpoint, HTTPS service
bus, no domain, no edge site) and "full" (``plants.with_containers``: public endpoint for two
networks, MSK, a domain, an admin, and the Outposts edge site, whose stack
tests/stacks/test_edge_site.py checks)."""

from __future__ import annotations

import atexit
import json
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import aws_cdk as cdk
import pytest
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_eks_v2 as eks
from aws_cdk import aws_events as events
from aws_cdk import aws_kms as kms
from aws_cdk import aws_msk as msk
from aws_cdk.assertions import Template

from mes_domain.containers import NAMESPACE, SERVICES
from mes_domain.plant import Plant
from stacks.compliance import add_compliance_gates
from stacks.constructs.eks_cluster import (
    METRICS_SERVER_ADDON,
    UnsupportedKubernetesVersion,
    cluster_name,
    kubernetes_version,
)
from stacks.constructs.service_identities import KafkaAccess, ServiceIdentities
from stacks.containers_stack import ContainersStack
from stacks.edge_site_stack import EdgeSiteStack
from tests.conftest import PROJECT_ROOT, cli_context
from tests.stacks.assembly import Assembly, as_list, policy_documents, statements
from tests.stacks.plants import with_containers
from tests.stacks.test_acknowledgements import _load as load_acknowledgements
from tests.stacks.test_acknowledgements import (
    iam_acknowledged_elsewhere,
    iam_mismatches,
    idle_others,
    misplaced,
)
from tests.stacks.test_assembly import _check_statement
from tests.stacks.test_cfn_lint import lint

ACCOUNT, REGION = "123456789012", "eu-central-1"
ENV = cdk.Environment(account=ACCOUNT, region=REGION)
DATABASE_RESOURCE_ID = "db-ABCDEFGHIJKLMNOPQRSTUVWXY0"
KAFKA_ARN = (
    f"arn:aws:kafka:{REGION}:{ACCOUNT}:cluster/MesDemo-sync/0a1b2c3d-4e5f-6a7b-8c9d-0e1f2a3b4c5d-s1"
)
ADMIN = f"arn:aws:iam::{ACCOUNT}:role/PlantEngineer"
CLUSTER = "AWS::EKS::Cluster"


class Dependencies(cdk.Stack):
    """What the platform, enterprise and ContainersData stacks give the cluster stack."""

    def __init__(self, scope, construct_id, *, msk_bus: bool, env=ENV) -> None:
        super().__init__(scope, construct_id, env=env)
        self.vpc = ec2.Vpc(
            self,
            "Vpc",
            ip_addresses=ec2.IpAddresses.cidr("10.40.0.0/16"),
            availability_zones=[f"{REGION}a", f"{REGION}b"],
            nat_gateways=1,
            subnet_configuration=[
                # /20s leave the top of the range to the Outpost's subnet (10.40.240.0/24)
                ec2.SubnetConfiguration(
                    name="Public", subnet_type=ec2.SubnetType.PUBLIC, cidr_mask=20
                ),
                ec2.SubnetConfiguration(
                    name="Private", subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS, cidr_mask=20
                ),
            ],
        )
        self.vpc.add_flow_log("FlowLogs")
        self.data_key = kms.Key(self, "DataKey", enable_key_rotation=True)
        self.logs_key = kms.Key(self, "LogsKey", enable_key_rotation=True)
        self.bus = events.EventBus(self, "Bus")
        self.tables = {
            name: dynamodb.Table(
                self,
                name,
                partition_key=dynamodb.Attribute(name="pk", type=dynamodb.AttributeType.STRING),
                encryption=dynamodb.TableEncryption.CUSTOMER_MANAGED,
                encryption_key=self.data_key,
                point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
                    point_in_time_recovery_enabled=True
                ),
            )
            for name in ("orders", "products", "process_plans")
        }
        self.database_sg = ec2.SecurityGroup(self, "DatabaseSg", vpc=self.vpc)
        self.kafka_sg = ec2.SecurityGroup(self, "KafkaSg", vpc=self.vpc) if msk_bus else None
        self.deploy_sg = ec2.SecurityGroup(self, "DeploySg", vpc=self.vpc)  # the pipeline's


@dataclass
class Case:
    plant: Plant
    stack: ContainersStack
    template: Template
    assembly: Assembly
    directory: Path
    edge: EdgeSiteStack | None


def _plant(demo_plant: Plant, **changes) -> Plant:
    document = demo_plant.model_dump(mode="json")
    with_containers(
        document,
        edge_site=changes.pop("edge_site", "outposts"),
        bus=changes.pop("bus", "msk"),
    )
    document["containers"].update(changes)
    return Plant.model_validate(document)


PLANTS = {
    "private": lambda demo: _plant(
        demo,
        edge_site="none",
        bus="https",
        endpoint_access="private",
        public_access_cidrs=[],
        domain=None,
    ),
    "full": lambda demo: _plant(demo, cluster_admin_arns=[ADMIN]),
}


_CASES: dict[str, Case] = {}


def containers_stack(app, plant: Plant, deps, kafka_cluster_arn: str | None) -> ContainersStack:
    """The stack under test on the stub dependencies."""
    return ContainersStack(
        app,
        "Containers",
        env=ENV,
        plant=plant,
        vpc=deps.vpc,
        data_key=deps.data_key,
        logs_key=deps.logs_key,
        event_bus=deps.bus,
        enterprise_tables=deps.tables,
        database_resource_id=DATABASE_RESOURCE_ID,
        database_security_group=deps.database_sg,
        kafka_cluster_arn=kafka_cluster_arn,
        kafka_client_security_group=deps.kafka_sg,
    )


def case(name: str, demo_plant: Plant) -> Case:
    """The app of case ``name``, synthesized once a process (tests/stacks/test_edge_site.py
    reads the "full" one too)."""
    if name not in _CASES:
        _CASES[name] = _synthesize(name, demo_plant)
    return _CASES[name]


def _synthesize(name: str, demo_plant: Plant) -> Case:
    plant = PLANTS[name](demo_plant)
    directory = Path(tempfile.mkdtemp(prefix=f"containers-{name}-"))
    atexit.register(shutil.rmtree, directory, True)
    app = cdk.App(outdir=str(directory), context=cli_context())
    msk_bus = plant.containers.service_bus.value == "msk"
    deps = Dependencies(app, "Deps", msk_bus=msk_bus)
    stack = containers_stack(app, plant, deps, KAFKA_ARN if msk_bus else None)
    edge = None
    if name == "full":
        stack.services_cluster.admit_api_clients("DeployToApi", deps.deploy_sg)
    if plant.deployment.edge_site.value == "outposts":
        edge = EdgeSiteStack(
            app,
            "EdgeSite",
            env=ENV,
            plant=plant,
            vpc=deps.vpc,
            data_key=deps.data_key,
            logs_key=deps.logs_key,
        )
    add_compliance_gates(app)
    app.synth()  # raises on any unacknowledged cdk-nag finding
    return Case(plant, stack, Template.from_stack(stack), Assembly(directory), directory, edge)


@pytest.fixture(scope="module", params=["private", "full"])
def each(request, demo_plant) -> Case:
    return case(request.param, demo_plant)


@pytest.fixture(scope="module")
def private(demo_plant) -> Case:
    return case("private", demo_plant)


@pytest.fixture(scope="module")
def full(demo_plant) -> Case:
    return case("full", demo_plant)


def resources(case_: Case, kind: str) -> dict[str, dict]:
    return case_.template.find_resources(kind)


def the_cluster(case_: Case) -> dict:
    (cluster,) = resources(case_, CLUSTER).values()
    return cluster


def output_name(value) -> str:
    """The Deps output a cross-stack reference reads."""
    return value["Fn::GetStackOutput"]["OutputName"]


# --- the cluster ---


def test_the_cluster_is_auto_mode_with_the_built_in_pools_and_minimal_node_role(each):
    properties = the_cluster(each)["Properties"]
    assert properties["Version"] == "1.34"
    compute = properties["ComputeConfig"]
    assert compute["Enabled"] is True and compute["NodePools"] == ["system", "general-purpose"]
    node_role = resources(each, "AWS::IAM::Role")[compute["NodeRoleArn"]["Fn::GetAtt"][0]]
    policies = [p["Fn::Join"][1][-1] for p in node_role["Properties"]["ManagedPolicyArns"]]
    assert policies == [
        ":iam::aws:policy/AmazonEKSWorkerNodeMinimalPolicy",
        ":iam::aws:policy/AmazonEC2ContainerRegistryPullOnly",
    ]
    assert node_role["Properties"]["AssumeRolePolicyDocument"]["Statement"] == [
        {
            "Action": "sts:AssumeRole",
            "Effect": "Allow",
            "Principal": {"Service": "ec2.amazonaws.com"},
        }
    ]


def test_the_endpoint_is_private_or_public_only_for_the_configured_networks(private, full):
    private_vpc = the_cluster(private)["Properties"]["ResourcesVpcConfig"]
    assert private_vpc["EndpointPrivateAccess"] is True
    assert private_vpc["EndpointPublicAccess"] is False
    assert "PublicAccessCidrs" not in private_vpc
    public_vpc = the_cluster(full)["Properties"]["ResourcesVpcConfig"]
    assert public_vpc["EndpointPrivateAccess"] is True and public_vpc["EndpointPublicAccess"]
    assert public_vpc["PublicAccessCidrs"] == full.plant.containers.public_access_cidrs
    assert public_vpc["PublicAccessCidrs"] == ["203.0.113.0/24", "198.51.100.16/28"]


def test_the_control_plane_runs_in_the_private_subnets(each):
    subnets = the_cluster(each)["Properties"]["ResourcesVpcConfig"]["SubnetIds"]
    names = [output_name(subnet) for subnet in subnets]
    assert len(names) == 2 and all("VpcPrivateSubnet" in name for name in names), names


def test_every_control_plane_log_type_goes_to_an_encrypted_log_group_kept_as_configured(each):
    cluster = the_cluster(each)
    types = [t["Type"] for t in cluster["Properties"]["Logging"]["ClusterLogging"]["EnabledTypes"]]
    assert types == ["api", "audit", "authenticator", "controllerManager", "scheduler"]
    (logical_id, log_group), *others = resources(each, "AWS::Logs::LogGroup").items()
    assert not others
    name = cluster["Properties"]["Name"]
    assert log_group["Properties"]["LogGroupName"] == f"/aws/eks/{name}/cluster"
    assert "LogsKey" in output_name(log_group["Properties"]["KmsKeyId"])
    assert log_group["Properties"]["RetentionInDays"] == each.plant.retention.log_days
    assert logical_id in cluster["DependsOn"]  # EKS must find it, not make its own


def test_kubernetes_secrets_are_encrypted_with_the_data_key(each):
    (encryption,) = the_cluster(each)["Properties"]["EncryptionConfig"]
    assert encryption["Resources"] == ["secrets"]
    assert "DataKey" in output_name(encryption["Provider"]["KeyArn"])


def test_access_is_by_access_entries_and_only_named_admins_get_one(private, full):
    for case_ in (private, full):
        assert the_cluster(case_)["Properties"]["AccessConfig"] == {
            "AuthenticationMode": "API",
            "BootstrapClusterCreatorAdminPermissions": False,
        }
    assert not resources(private, "AWS::EKS::AccessEntry")
    (entry,) = resources(full, "AWS::EKS::AccessEntry").values()
    assert entry["Properties"]["PrincipalArn"] == ADMIN
    (policy,) = entry["Properties"]["AccessPolicies"]
    assert policy["AccessScope"] == {"Type": "cluster"}
    assert policy["PolicyArn"]["Fn::Join"][1][-1].endswith("/AmazonEKSClusterAdminPolicy")


def test_the_metrics_server_add_on_serves_the_autoscalers_of_this_cluster(each):
    (addon,) = resources(each, "AWS::EKS::Addon").values()
    properties = addon["Properties"]
    assert properties["AddonName"] == METRICS_SERVER_ADDON == "metrics-server"
    (cluster_id,) = resources(each, CLUSTER)
    assert properties["ClusterName"] == {"Ref": cluster_id}
    # A community add-on without IAM: no role, no Pod Identity association for it.
    assert not {"ServiceAccountRoleArn", "PodIdentityAssociations"} & set(properties)
    # The manifests' autoscalers are what need it (HorizontalPodAutoscaler reads metrics.k8s.io).
    base = (PROJECT_ROOT / "services" / "k8s" / "base").glob("*.yaml")
    assert any("kind: HorizontalPodAutoscaler" in path.read_text() for path in base)


def test_no_kubectl_provider_lambda_or_custom_resource(each):
    kinds = {r["Type"] for r in each.template.to_json()["Resources"].values()}
    assert not {k for k in kinds if k.startswith("Custom::") or k.startswith("AWS::Lambda::")}
    assert "AWS::CloudFormation::Stack" not in kinds  # aws_eks's kubectl provider is nested


def test_pods_reach_postgresql_and_msk_from_the_cluster_security_group(private, full):
    def rules(case_):
        found = {}
        for rule in resources(case_, "AWS::EC2::SecurityGroupIngress").values():
            properties = rule["Properties"]
            if properties["FromPort"] == 443:
                continue  # into the cluster, below
            assert properties["SourceSecurityGroupId"] == {
                "Fn::GetAtt": [the_logical_id(case_), "ClusterSecurityGroupId"]
            }
            assert properties["FromPort"] == properties["ToPort"]
            found[properties["FromPort"]] = output_name(properties["GroupId"])
        return found

    assert rules(private) == {5432: rules(private)[5432]}
    assert "DatabaseSg" in rules(private)[5432]
    assert set(rules(full)) == {5432, 9098} and "KafkaSg" in rules(full)[9098]


def test_a_deploy_security_group_can_be_admitted_to_the_api_endpoint(full):
    (rule,) = [
        r["Properties"]
        for r in resources(full, "AWS::EC2::SecurityGroupIngress").values()
        if r["Properties"]["FromPort"] == 443
    ]
    assert rule["GroupId"] == {"Fn::GetAtt": [the_logical_id(full), "ClusterSecurityGroupId"]}
    assert "DeploySg" in output_name(rule["SourceSecurityGroupId"]) and rule["ToPort"] == 443


def the_logical_id(case_: Case) -> str:
    (logical_id,) = resources(case_, CLUSTER)
    return logical_id


# --- the pods' identities ---


def test_each_service_account_of_the_namespace_has_its_own_pod_identity_role(each):
    associations = resources(each, "AWS::EKS::PodIdentityAssociation").values()
    by_account = {a["Properties"]["ServiceAccount"]: a["Properties"] for a in associations}
    assert set(by_account) == {service.name for service in SERVICES}
    roles = resources(each, "AWS::IAM::Role")
    role_ids = set()
    for association in by_account.values():
        assert association["Namespace"] == NAMESPACE == "mes"
        assert association["ClusterName"] == {"Ref": the_logical_id(each)}
        role_id = association["RoleArn"]["Fn::GetAtt"][0]
        role_ids.add(role_id)
        trust = roles[role_id]["Properties"]["AssumeRolePolicyDocument"]["Statement"]
        assert trust == [
            {
                "Action": ["sts:AssumeRole", "sts:TagSession"],
                "Condition": {"StringEquals": {"aws:SourceAccount": ACCOUNT}},
                "Effect": "Allow",
                "Principal": {"Service": "pods.eks.amazonaws.com"},
            }
        ]
    assert len(role_ids) == len(SERVICES)
    assert set(each.stack.service_roles) == set(by_account)


def grants(case_: Case, service: str) -> dict[str, list]:
    """action -> resources of the service's role, resolved to deployed values."""
    role = case_.stack.service_roles[service]
    role_id = case_.stack.resolve(role.node.default_child.logical_id)
    template = case_.assembly.stacks["Containers"]
    found: dict[str, list] = {}
    for resource in template.resources.values():
        if resource["Type"] != "AWS::IAM::Policy":
            continue
        if {"Ref": role_id} not in resource["Properties"]["Roles"]:
            continue
        for statement in resource["Properties"]["PolicyDocument"]["Statement"]:
            assert statement["Effect"] == "Allow" and "Condition" not in statement
            for action in as_list(statement["Action"]):
                resolved = case_.assembly.resolve(template, as_list(statement["Resource"]))
                found.setdefault(action, []).extend(resolved)
    return found


BUS = f"arn:aws:events:{REGION}:{ACCOUNT}:event-bus/"


def test_each_role_is_allowed_only_what_its_service_calls(private, full):
    prefix = f"arn:aws:rds-db:{REGION}:{ACCOUNT}:dbuser:{DATABASE_RESOURCE_ID}"
    for case_ in (private, full):
        inventory = grants(case_, "inventory")
        assert set(inventory) == {"events:PutEvents", "rds-db:connect"}
        assert inventory["rds-db:connect"] == [f"{prefix}/inventory"]
        (bus,) = inventory["events:PutEvents"]
        assert bus.startswith(BUS)
        production = grants(case_, "production-execution")
        assert production["rds-db:connect"] == [f"{prefix}/production_execution"]
        tables = sorted(
            re.sub(r"[0-9A-F]{8}$", "", arn.split("/")[1].split("-")[1])
            for arn in production["dynamodb:GetItem"]
        )
        assert tables == ["orders", "processplans", "products"]
        (key,) = production["kms:Decrypt"]
        assert key.startswith(f"arn:aws:kms:{REGION}:{ACCOUNT}:key/")
    kafka = {a: r for a, r in grants(full, "production-execution").items() if "kafka" in a}
    assert not {a for a in grants(private, "production-execution") if "kafka" in a}
    on = f"arn:aws:kafka:{REGION}:{ACCOUNT}:"
    cluster = "MesDemo-sync/*"  # Connect, on the one cluster, confines them to its UUID
    assert kafka == {
        "kafka-cluster:Connect": [KAFKA_ARN],
        "kafka-cluster:WriteDataIdempotently": [KAFKA_ARN],
        "kafka-cluster:CreateTopic": [f"{on}topic/{cluster}/mes-sync.*"],
        "kafka-cluster:DescribeTopic": [f"{on}topic/{cluster}/mes-sync.*"],
        "kafka-cluster:WriteData": [f"{on}topic/{cluster}/mes-sync.*"],
        "kafka-cluster:ReadData": [f"{on}topic/{cluster}/mes-sync.*"],
        "kafka-cluster:AlterGroup": [f"{on}group/{cluster}/mes-sync.*"],
        "kafka-cluster:DescribeGroup": [f"{on}group/{cluster}/mes-sync.*"],
    }


def test_the_roles_resources_match_the_arn_formats_of_their_actions(each):
    template = each.assembly.stacks["Containers"]
    found, checked = [], 0
    for logical_id, document in policy_documents(template):
        for statement in statements(document):
            if "Action" not in statement or "Resource" not in statement:
                continue
            resources_ = [
                str(r) for r in each.assembly.resolve(template, as_list(statement["Resource"]))
            ]
            found += _check_statement(logical_id, as_list(statement["Action"]), resources_)
            checked += 1
    assert checked >= 5 and not found, found


def test_the_kafka_wildcards_are_acknowledged_when_the_cluster_arn_is_a_reference(tmp_path):
    """In the app the MSK cluster's ARN comes from the ContainersData stack and the stacks may
    have no account or region (the demo plant's): the IAM5 acknowledgements must name the
    findings as cdk-nag writes them then."""
    app = cdk.App(outdir=str(tmp_path), context=cli_context())
    deps = Dependencies(app, "Deps", msk_bus=True, env=None)
    bus = msk.CfnServerlessCluster(
        deps,
        "ServiceBus",
        cluster_name="MesDemo-sync",
        client_authentication=msk.CfnServerlessCluster.ClientAuthenticationProperty(
            sasl=msk.CfnServerlessCluster.SaslProperty(
                iam=msk.CfnServerlessCluster.IamProperty(enabled=True)
            )
        ),
        vpc_configs=[
            msk.CfnServerlessCluster.VpcConfigProperty(
                subnet_ids=[s.subnet_id for s in deps.vpc.private_subnets],
                security_groups=[deps.kafka_sg.security_group_id],
            )
        ],
    )
    stack = cdk.Stack(app, "Pods")
    ServiceIdentities(
        stack,
        "Identities",
        cluster=eks.Cluster.from_cluster_attributes(stack, "Cluster", cluster_name="mes"),
        event_bus=deps.bus,
        enterprise_tables=deps.tables,
        database_resource_id=DATABASE_RESOURCE_ID,
        kafka=KafkaAccess(bus.attr_arn, "MesDemo-sync"),
    )
    add_compliance_gates(app)
    app.synth()  # an unacknowledged IAM5 finding would raise
    policy = Template.from_stack(stack).find_resources("AWS::IAM::Policy")
    assert "PublishOutputFnGetAttServiceBusArn" in json.dumps(policy)  # Connect's resource


# --- the certificate, the refusals, the lint ---


def test_the_domain_gets_a_dns_validated_certificate_and_no_domain_none(private, full):
    assert private.stack.certificate is None
    assert not resources(private, "AWS::CertificateManager::Certificate")
    (certificate,) = resources(full, "AWS::CertificateManager::Certificate").values()
    domain = full.plant.containers.domain
    assert certificate["Properties"]["DomainName"] == domain.record_name
    assert certificate["Properties"]["ValidationMethod"] == "DNS"
    assert certificate["Properties"]["DomainValidationOptions"] == [
        {"DomainName": domain.record_name, "HostedZoneId": domain.hosted_zone_id}
    ]


def test_every_template_of_the_apps_is_cfn_lint_clean(private, full):
    # The stub Deps stack is not under test.
    templates = [
        *sorted(private.directory.glob("[CE]*.template.json")),
        *sorted(full.directory.glob("[CE]*.template.json")),
    ]
    assert len(templates) == 3  # Containers twice, EdgeSite
    result = lint(templates)
    findings = [line for line in result.stdout.splitlines() if ":E" in line or ":W" in line]
    assert findings == [] and result.returncode in (0, 8), result.stdout + result.stderr


def test_kubernetes_versions_map_to_cdk_constants_and_unknown_ones_are_refused():
    assert kubernetes_version("1.34").version == eks.KubernetesVersion.V1_34.version == "1.34"
    assert kubernetes_version("1.30").version == "1.30"
    for unknown in ("1.99", "2.1", "1.3x"):
        with pytest.raises(UnsupportedKubernetesVersion, match="1.34"):
            kubernetes_version(unknown)


def test_the_longest_prefix_still_names_a_valid_cluster():
    longest = "M" + "p" * 63  # Deployment.stack_prefix allows 64 characters
    assert len(cluster_name(longest)) <= 100 and cluster_name("MesDemo") == "MesDemo-services"


def test_kafka_arguments_must_match_the_service_bus(demo_plant):
    plant = PLANTS["private"](demo_plant)
    app = cdk.App()
    deps = Dependencies(app, "Deps", msk_bus=True)
    with pytest.raises(ValueError, match="exactly when containers.service_bus is msk"):
        containers_stack(app, plant, deps, KAFKA_ARN)


def test_every_acknowledgement_hides_a_finding_that_is_really_there(private, full):
    for case_ in (private, full):
        app = load_acknowledgements(case_.directory)
        assert any(a.path.startswith("Containers/") for a in app.acknowledgements)
        problems = [
            problem
            for problem in [
                *misplaced(app),
                *iam_mismatches(app),
                *iam_acknowledged_elsewhere(app),
                *idle_others(app),
            ]
            if not problem.startswith("Deps")  # the stub stack is not under test
        ]
        assert not problems, problems
