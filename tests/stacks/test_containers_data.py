"""The ContainersData stack (issue 17): VPC, RDS PostgreSQL, ECR and MSK Serverless, as
synthesized.

One app holds a stub platform stack (the real KMS keys construct), the stack twice and a stack
that uses it like the cluster stack will: the plant with every option on (MSK, multi-AZ) and a
plant with MSK and multi-AZ off, a smaller VPC and two NAT gateways. The app is synthesized with
the cdk-nag gates (a finding fails the synth) and its templates are linted with cfn-lint.
"""

from __future__ import annotations

import ipaddress
import json
from pathlib import Path

import aws_cdk as cdk
import pytest
import yaml
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk.assertions import Template

from mes_domain import containers
from mes_domain.containers import DatabaseSettings
from mes_domain.plant import Plant
from stacks.compliance import add_compliance_gates
from stacks.constructs.platform_keys import PlatformKeys
from stacks.constructs.service_bus import IAM_PORT, ServiceBus
from stacks.constructs.service_database import POSTGRES_PORT, ServiceDatabase
from stacks.constructs.service_images import KEEP_IMAGES, UNTAGGED_DAYS, ServiceImages
from stacks.constructs.service_network import ServiceNetwork, subnet_masks
from stacks.containers_data_stack import ContainersDataStack
from tests.conftest import DEMO_PLANT, cli_context
from tests.stacks.assembly import PSEUDO, Assembly, as_list
from tests.stacks.plants import with_containers
from tests.stacks.test_cfn_lint import lint

FULL, LEAN = "MesDemo", "MesLean"
LEAN_VPC = "10.50.0.0/18"
WRITE_TOPIC, READ_TOPIC, GROUP = "mes-sync.cloud", "mes-sync.plant-a", "mes-sync.cloud.plant-a"
CLUSTER_ARN = f"arn:aws:kafka:eu-central-1:123456789012:cluster/{FULL}-sync/{'ab12' * 9}-s1"
DB_RESOURCE_ID = "db-ABCDEFGHIJKLMNOPQRSTUVWXY"


def _plants() -> dict[str, Plant]:
    document = yaml.safe_load(DEMO_PLANT.read_text())
    full = with_containers(json.loads(json.dumps(document)), edge_site="none")
    lean = json.loads(json.dumps(document))
    lean["deployment"]["stack_prefix"] = LEAN
    lean["capabilities"] = {"eks": True}
    lean["containers"] = {
        "vpc_cidr": LEAN_VPC,
        "nat_gateways": 2,
        "service_bus": "https",
        "database": {"multi_az": False, "backup_retention_days": 14},
    }
    return {FULL: Plant.model_validate(full), LEAN: Plant.model_validate(lean)}


@pytest.fixture(scope="module")
def synthesized(tmp_path_factory):
    """(plants, stacks by prefix, platform stack, assembly directory)."""
    plants = _plants()
    outdir = tmp_path_factory.mktemp("containers-data.out")
    app = cdk.App(outdir=str(outdir), context=cli_context())
    platform = cdk.Stack(app, "Platform")
    keys = PlatformKeys(platform, "Keys", alias_prefix=FULL)
    stacks = {
        prefix: ContainersDataStack(
            app,
            f"{prefix}-ContainersData",
            plant=plant,
            data_key=keys.data_key,
            logs_key=keys.logs_key,
        )
        for prefix, plant in plants.items()
    }
    # What the cluster stack does with it: a pod role that connects as one database user and
    # syncs over the bus, and a client security group that reaches the database.
    consumer = cdk.Stack(app, "Consumer")
    role = iam.Role(consumer, "PodRole", assumed_by=iam.ServicePrincipal("pods.eks.amazonaws.com"))
    full = stacks[FULL]
    full.service_database.grant_connect(role, "inventory")
    deploy = iam.Role(
        consumer, "Deploy", assumed_by=iam.ServicePrincipal("codebuild.amazonaws.com")
    )
    full.service_database.grant_master_secret_read(deploy)
    full.service_bus.grant_kafka(
        role, "InventorySync", write_topics=[WRITE_TOPIC], read_topics=[READ_TOPIC], groups=[GROUP]
    )
    nodes = ec2.SecurityGroup(consumer, "Nodes", vpc=full.vpc, description="Cluster nodes")
    full.service_database.allow_client(nodes, "PostgreSQL from the cluster")
    full.service_bus.allow_client(nodes, "Kafka over IAM from the cluster")
    add_compliance_gates(app)
    assembly = app.synth()
    return plants, stacks, platform, Path(assembly.directory)


@pytest.fixture(scope="module")
def templates(synthesized):
    _, _, _, directory = synthesized
    return {
        prefix: json.loads((directory / f"{prefix}-ContainersData.template.json").read_text())
        for prefix in (FULL, LEAN)
    } | {"Consumer": json.loads((directory / "Consumer.template.json").read_text())}


def resources(template: dict, kind: str) -> dict[str, dict]:
    return {k: r for k, r in template["Resources"].items() if r["Type"] == kind}


def only(template: dict, kind: str) -> dict:
    (resource,) = resources(template, kind).values()
    return resource


def refers_to(value, logical_id: str) -> bool:
    """``value`` names ``logical_id`` (a Ref, GetAtt or a cross-stack output of it)."""
    return logical_id in json.dumps(value)


def key_id(synthesized, purpose: str) -> str:
    _, _, platform, _ = synthesized
    keys = platform.node.find_child("Keys")
    key = keys.data_key if purpose == "data" else keys.logs_key
    return platform.get_logical_id(key.node.default_child)


# --- the gates ---


def test_cdk_nag_passes_and_hides_only_the_two_acknowledged_rds_findings(synthesized):
    _, _, _, directory = synthesized
    report = json.loads((directory / "validation-report.json").read_text())
    hidden = {
        (violation["ruleName"], construct["constructPath"])
        for plugin in report["pluginReports"]
        for violation in plugin["suppressedViolations"]
        for construct in violation["violatingConstructs"]
    }
    assert all(plugin["violations"] == [] for plugin in report["pluginReports"])
    instance = "{}-ContainersData/Database/Instance/Resource"
    assert hidden == {
        ("AwsSolutions-RDS11", instance.format(FULL)),
        ("AwsSolutions-RDS11", instance.format(LEAN)),
        ("AwsSolutions-RDS3", instance.format(LEAN)),  # multi_az off: the config's choice
    }


def test_templates_are_cfn_lint_clean(synthesized):
    _, _, _, directory = synthesized
    result = lint(sorted(directory.glob("*.template.json")))
    findings = [line for line in result.stdout.splitlines() if ":E" in line or ":W" in line]
    assert findings == [] and result.returncode in (0, 8), result.stdout + result.stderr


# --- network ---


@pytest.mark.parametrize("prefix", [FULL, LEAN])
def test_vpc_has_two_azs_of_public_private_and_isolated_subnets(synthesized, templates, prefix):
    plants, *_ = synthesized
    settings = plants[prefix].containers
    template = templates[prefix]
    assert only(template, "AWS::EC2::VPC")["Properties"]["CidrBlock"] == settings.vpc_cidr
    subnets = resources(template, "AWS::EC2::Subnet").values()
    kinds: dict[str, list] = {}
    for subnet in subnets:
        tags = {t["Key"]: t["Value"] for t in subnet["Properties"]["Tags"]}
        kinds.setdefault(tags["aws-cdk:subnet-type"], []).append(subnet["Properties"])
    assert {kind: len(found) for kind, found in kinds.items()} == {
        "Public": 2,
        "Private": 2,
        "Isolated": 2,
    }
    load_balancer_tags = {
        kind: {
            t["Key"]
            for s in subnets
            for t in s["Properties"]["Tags"]
            if t["Key"].startswith("kubernetes.io/role/")
            and t["Value"] == "1"
            and {"Key": "aws-cdk:subnet-type", "Value": kind} in s["Properties"]["Tags"]
        }
        for kind in kinds
    }
    assert load_balancer_tags == {
        "Public": {"kubernetes.io/role/elb"},
        "Private": {"kubernetes.io/role/internal-elb"},  # the internal ALB of the Ingress
        "Isolated": set(),
    }
    for found in kinds.values():  # one of each kind per AZ
        assert sorted(s["AvailabilityZone"]["Fn::Select"][0] for s in found) == [0, 1]
    vpc = ipaddress.ip_network(settings.vpc_cidr)
    blocks = [ipaddress.ip_network(s["CidrBlock"]) for f in kinds.values() for s in f]
    assert all(block.subnet_of(vpc) for block in blocks)
    # the upper half stays free, e.g. for the Outpost's subnet (plants.py: 10.40.240.0/24)
    upper = list(vpc.subnets(prefixlen_diff=1))[1]
    assert not any(block.overlaps(upper) for block in blocks)
    assert len(resources(template, "AWS::EC2::NatGateway")) == settings.nat_gateways


def test_outpost_subnet_of_the_test_plant_is_free(templates):
    outpost = ipaddress.ip_network("10.40.240.0/24")
    blocks = [
        ipaddress.ip_network(s["Properties"]["CidrBlock"])
        for s in resources(templates[FULL], "AWS::EC2::Subnet").values()
    ]
    assert not any(outpost.overlaps(block) for block in blocks)


def test_nat_gateways_are_at_most_one_per_az():
    stack = cdk.Stack(cdk.App(), "Nat")
    ServiceNetwork(
        stack,
        "Network",
        vpc_cidr="10.0.0.0/16",
        nat_gateways=3,  # the config's maximum
        logs_key=kms.Key(stack, "Logs"),
        log_retention_days=7,
    )
    assert len(Template.from_stack(stack).find_resources("AWS::EC2::NatGateway")) == 2


def test_vpc_too_small_for_its_subnets_is_refused():
    assert subnet_masks("10.0.0.0/22") == {"Public": 28, "Private": 25, "Isolated": 28}
    with pytest.raises(ValueError, match="too small"):
        subnet_masks("10.0.0.0/23")


@pytest.mark.parametrize("prefix", [FULL, LEAN])
def test_flow_logs_of_all_traffic_go_to_a_log_group_encrypted_with_the_logs_key(
    synthesized, templates, prefix
):
    plants, *_ = synthesized
    template = templates[prefix]
    flow_log = only(template, "AWS::EC2::FlowLog")["Properties"]
    assert flow_log["ResourceType"] == "VPC" and flow_log["TrafficType"] == "ALL"
    assert flow_log["LogDestinationType"] == "cloud-watch-logs"
    (group_id,) = [
        k
        for k in resources(template, "AWS::Logs::LogGroup")
        if refers_to(flow_log["LogGroupName"], k)
    ]
    group = template["Resources"][group_id]
    assert refers_to(group["Properties"]["KmsKeyId"], key_id(synthesized, "logs"))
    assert group["Properties"]["RetentionInDays"] == plants[prefix].retention.log_days
    assert group["DeletionPolicy"] == "Retain"


def _service_name(endpoint: dict) -> str:
    name = endpoint["Properties"]["ServiceName"]
    if isinstance(name, str):
        return name
    return "".join(p if isinstance(p, str) else "${region}" for p in name["Fn::Join"][1])


def test_vpc_endpoints_replace_nat_traffic_to_the_aws_apis(templates):
    endpoints = resources(templates[FULL], "AWS::EC2::VPCEndpoint").values()
    by_type: dict[str, set[str]] = {}
    for endpoint in endpoints:
        kind = endpoint["Properties"].get("VpcEndpointType", "Gateway")
        by_type.setdefault(kind, set()).add(_service_name(endpoint).split(".", 3)[-1])
    assert by_type == {
        "Gateway": {"s3", "dynamodb"},
        "Interface": {
            "ecr.api",
            "ecr.dkr",
            "sts",
            "logs",
            "secretsmanager",
            "eks",
            "eks-auth",
            "events",
            "kms",
        },
    }
    interface = [e for e in endpoints if e["Properties"].get("VpcEndpointType") == "Interface"]
    assert all(e["Properties"]["PrivateDnsEnabled"] is True for e in interface)


def test_interface_endpoints_admit_only_https_from_the_vpc(templates):
    groups = resources(templates[FULL], "AWS::EC2::SecurityGroup")
    (endpoint_group,) = [g for k, g in groups.items() if k.startswith("NetworkEndpointSecurity")]
    assert endpoint_group["Properties"]["SecurityGroupIngress"] == [
        {
            "CidrIp": "10.40.0.0/16",
            "Description": "HTTPS from the VPC",
            "FromPort": 443,
            "IpProtocol": "tcp",
            "ToPort": 443,
        }
    ]


# --- database ---


@pytest.mark.parametrize("prefix", [FULL, LEAN])
def test_postgresql_is_encrypted_protected_backed_up_and_uses_iam_auth(
    synthesized, templates, prefix
):
    plants, *_ = synthesized
    settings = plants[prefix].containers.database
    template = templates[prefix]
    instance = only(template, "AWS::RDS::DBInstance")
    p = instance["Properties"]
    assert p["Engine"] == "postgres" and p["EngineVersion"].split(".")[0] == "17"
    assert p["DBInstanceIdentifier"] == containers.database_identifier(prefix)
    assert p["DBInstanceClass"] == settings.instance_class
    assert p["StorageEncrypted"] is True
    assert refers_to(p["KmsKeyId"], key_id(synthesized, "data"))
    assert p["DeletionProtection"] is True
    assert p["BackupRetentionPeriod"] == settings.backup_retention_days
    assert p["MultiAZ"] is settings.multi_az
    assert p["EnableIAMDatabaseAuthentication"] is True
    assert p["PubliclyAccessible"] is False
    assert p["AutoMinorVersionUpgrade"] is True and p["AllowMajorVersionUpgrade"] is False
    assert p["CopyTagsToSnapshot"] is True
    assert p["AllocatedStorage"] == str(settings.allocated_storage_gib)
    assert p["MaxAllocatedStorage"] == settings.max_allocated_storage_gib
    assert p["EnableCloudwatchLogsExports"] == ["postgresql", "upgrade"]
    assert p["EnablePerformanceInsights"] is True
    assert refers_to(p["PerformanceInsightsKMSKeyId"], key_id(synthesized, "data"))
    assert instance["DeletionPolicy"] == instance["UpdateReplacePolicy"] == "Snapshot"


@pytest.mark.parametrize("prefix", [FULL, LEAN])
def test_master_password_is_managed_and_rotated_by_rds_encrypted_with_the_data_key(
    synthesized, templates, prefix
):
    p = only(templates[prefix], "AWS::RDS::DBInstance")["Properties"]
    assert p["ManageMasterUserPassword"] is True
    assert "MasterUserPassword" not in p
    assert refers_to(p["MasterUserSecret"]["KmsKeyId"], key_id(synthesized, "data"))
    # no secret of CDK's own (and so no rotation Lambda): RDS keeps and rotates it
    assert resources(templates[prefix], "AWS::SecretsManager::Secret") == {}
    _, stacks, _, _ = synthesized
    stack = stacks[prefix]
    instance_id = stack.get_logical_id(stack.database.node.default_child)
    assert stack.resolve(stack.master_secret.secret_arn) == {
        "Fn::GetAtt": [instance_id, "MasterUserSecret.SecretArn"]
    }
    assert stack.resolve(stack.database_resource_id) == {
        "Fn::GetAtt": [instance_id, "DbiResourceId"]
    }


def test_every_connection_must_use_tls(templates):
    group = only(templates[FULL], "AWS::RDS::DBParameterGroup")["Properties"]
    assert group["Family"] == "postgres17" and group["Parameters"] == {"rds.force_ssl": "1"}


@pytest.mark.parametrize("prefix", [FULL, LEAN])
def test_database_lives_in_the_isolated_subnets(templates, prefix):
    template = templates[prefix]
    subnet_group = only(template, "AWS::RDS::DBSubnetGroup")["Properties"]
    isolated = {k for k in resources(template, "AWS::EC2::Subnet") if "Isolated" in k}
    assert {ref["Ref"] for ref in subnet_group["SubnetIds"]} == isolated


@pytest.mark.parametrize("prefix", [FULL, LEAN])
def test_log_exports_go_to_log_groups_of_the_stack_encrypted_with_the_logs_key(
    synthesized, templates, prefix
):
    plants, *_ = synthesized
    template = templates[prefix]
    identifier = containers.database_identifier(prefix)
    groups = {
        g["Properties"].get("LogGroupName"): (k, g)
        for k, g in resources(template, "AWS::Logs::LogGroup").items()
    }
    instance = only(template, "AWS::RDS::DBInstance")
    for log_type in ("postgresql", "upgrade"):
        logical_id, group = groups[f"/aws/rds/instance/{identifier}/{log_type}"]
        assert refers_to(group["Properties"]["KmsKeyId"], key_id(synthesized, "logs"))
        assert group["Properties"]["RetentionInDays"] == plants[prefix].retention.log_days
        assert logical_id in instance["DependsOn"]  # made before RDS would make it


def _consumer_ingress_to(templates, group_prefix: str) -> dict:
    groups = resources(templates[FULL], "AWS::EC2::SecurityGroup")
    (group,) = [k for k in groups if k.startswith(group_prefix)]
    assert "SecurityGroupIngress" not in groups[group]["Properties"]
    ingress = resources(templates["Consumer"], "AWS::EC2::SecurityGroupIngress").values()
    (rule,) = [r["Properties"] for r in ingress if refers_to(r["Properties"]["GroupId"], group)]
    assert refers_to(rule["SourceSecurityGroupId"], "Nodes")
    return rule


def test_service_bus_admits_a_client_group_of_a_later_stack_from_that_stack(templates):
    rule = _consumer_ingress_to(templates, "ServiceBusSecurityGroup")
    assert rule["FromPort"] == rule["ToPort"] == IAM_PORT


def test_database_admits_only_the_clients_allowed(templates):
    rule = _consumer_ingress_to(templates, "DatabaseSecurityGroup")
    assert rule["FromPort"] == rule["ToPort"] == POSTGRES_PORT


# --- what a pod role gets ---


def _evaluate(assembly: Assembly, template, value, attributes: dict[tuple[str, str], str]):
    """A policy value with the pseudo parameters and ``attributes`` (logical id, attribute)
    filled in, following cross-stack outputs."""
    template, value = assembly.follow(template, value)
    if isinstance(value, str):
        return value
    ((function, argument),) = value.items()
    if function == "Ref":
        return PSEUDO[argument]
    if function == "Fn::GetAtt":
        return attributes[tuple(argument)]
    if function == "Fn::Join":
        return argument[0].join(_evaluate(assembly, template, v, attributes) for v in argument[1])
    if function == "Fn::Split":
        return _evaluate(assembly, template, argument[1], attributes).split(argument[0])
    if function == "Fn::Select":
        return _evaluate(assembly, template, argument[1], attributes)[argument[0]]
    raise AssertionError(f"unexpected {function}")


@pytest.fixture(scope="module")
def pod_grants(synthesized):
    """action -> resource ARNs of the consumer's pod role, as deployed."""
    _, stacks, _, directory = synthesized
    stack = stacks[FULL]
    attributes = {
        (stack.get_logical_id(stack.database.node.default_child), "DbiResourceId"): DB_RESOURCE_ID,
        (stack.get_logical_id(stack.service_bus.cluster), "Arn"): CLUSTER_ARN,
    }
    assembly = Assembly(directory)
    consumer = assembly.stacks["Consumer"]
    role_id = next(k for k in resources(consumer.body, "AWS::IAM::Role") if "PodRole" in k)
    role = consumer.body["Resources"][role_id]
    documents = [
        (consumer, p["Properties"]["PolicyDocument"])
        for p in resources(consumer.body, "AWS::IAM::Policy").values()
        if {"Ref": role_id} in p["Properties"]["Roles"]
    ]
    for attached in role["Properties"]["ManagedPolicyArns"]:  # made in the data stack
        target = assembly.target(consumer, attached)
        documents.append((target.template, target.properties["PolicyDocument"]))
    grants: dict[str, set[str]] = {}
    for template, document in documents:
        for statement in document["Statement"]:
            assert statement["Effect"] == "Allow"
            arns = statement["Resource"]
            arns = arns if isinstance(arns, list) else [arns]
            actions = statement["Action"]
            for action in actions if isinstance(actions, list) else [actions]:
                grants.setdefault(action, set()).update(
                    _evaluate(assembly, template, arn, attributes) for arn in arns
                )
    return grants


def test_pod_connects_to_postgresql_as_its_own_user_only(pod_grants):
    assert pod_grants["rds-db:connect"] == {
        f"arn:aws:rds-db:eu-central-1:123456789012:dbuser:{DB_RESOURCE_ID}/inventory"
    }


def test_pod_syncs_over_msk_on_its_topics_and_group_only(pod_grants):
    cluster_path = CLUSTER_ARN.split(":cluster/")[1]

    def arn(kind, name):
        return f"arn:aws:kafka:eu-central-1:123456789012:{kind}/{cluster_path}/{name}"

    kafka = {a: r for a, r in pod_grants.items() if a.startswith("kafka-cluster:")}
    assert kafka == {
        "kafka-cluster:Connect": {CLUSTER_ARN},
        "kafka-cluster:DescribeCluster": {CLUSTER_ARN},
        "kafka-cluster:WriteDataIdempotently": {CLUSTER_ARN},
        "kafka-cluster:WriteData": {arn("topic", WRITE_TOPIC)},
        "kafka-cluster:ReadData": {arn("topic", READ_TOPIC)},
        "kafka-cluster:DescribeTopic": {arn("topic", WRITE_TOPIC), arn("topic", READ_TOPIC)},
        "kafka-cluster:DescribeGroup": {arn("group", GROUP)},
        "kafka-cluster:AlterGroup": {arn("group", GROUP)},
    }


def test_deploy_stage_reads_the_master_secret_and_decrypts_it_only_through_secrets_manager(
    synthesized, templates
):
    _, stacks, _, _ = synthesized
    instance_id = stacks[FULL].get_logical_id(stacks[FULL].database.node.default_child)
    (policy,) = [
        p["Properties"]["PolicyDocument"]["Statement"]
        for p in resources(templates["Consumer"], "AWS::IAM::Policy").values()
        if refers_to(p["Properties"]["Roles"], "Deploy")
    ]
    by_action = {a: s for s in policy for a in as_list(s["Action"])}
    assert set(by_action) == {
        "secretsmanager:GetSecretValue",
        "secretsmanager:DescribeSecret",
        "kms:Decrypt",
    }
    assert refers_to(by_action["secretsmanager:GetSecretValue"]["Resource"], instance_id)
    decrypt = by_action["kms:Decrypt"]
    assert refers_to(decrypt["Resource"], key_id(synthesized, "data"))
    assert decrypt["Condition"]["StringEquals"]["kms:ViaService"] == {
        "Fn::Join": ["", ["secretsmanager.", {"Ref": "AWS::Region"}, ".amazonaws.com"]]
    }


# --- images ---


@pytest.mark.parametrize("prefix", [FULL, LEAN])
def test_one_scanned_immutable_encrypted_repository_per_service(synthesized, templates, prefix):
    repositories = resources(templates[prefix], "AWS::ECR::Repository").values()
    by_name = {r["Properties"]["RepositoryName"]: r for r in repositories}
    assert set(by_name) == {s.repository_name(prefix) for s in containers.SERVICES}
    for repository in by_name.values():
        p = repository["Properties"]
        assert p["ImageScanningConfiguration"] == {"ScanOnPush": True}
        assert p["ImageTagMutability"] == "IMMUTABLE"
        assert p["EncryptionConfiguration"]["EncryptionType"] == "KMS"
        assert refers_to(p["EncryptionConfiguration"]["KmsKey"], key_id(synthesized, "data"))
        assert repository["DeletionPolicy"] == "Retain"
        rules = json.loads(p["LifecyclePolicy"]["LifecyclePolicyText"])["rules"]
        assert [(r["rulePriority"], r["selection"]) for r in rules] == [
            (
                1,
                {
                    "tagStatus": "untagged",
                    "countType": "sinceImagePushed",
                    "countNumber": UNTAGGED_DAYS,
                    "countUnit": "days",
                },
            ),
            (
                2,
                {"tagStatus": "any", "countType": "imageCountMoreThan", "countNumber": KEEP_IMAGES},
            ),
        ]
    _, stacks, _, _ = synthesized
    assert set(stacks[prefix].repositories) == {s.name for s in containers.SERVICES}


# --- service bus ---


def test_msk_serverless_with_iam_in_the_private_subnets_when_the_bus_is_msk(templates):
    template = templates[FULL]
    p = only(template, "AWS::MSK::ServerlessCluster")["Properties"]
    assert p["ClusterName"] == containers.service_bus_cluster_name(FULL)
    assert p["ClientAuthentication"] == {"Sasl": {"Iam": {"Enabled": True}}}
    (vpc_config,) = p["VpcConfigs"]
    private = {k for k in resources(template, "AWS::EC2::Subnet") if "Private" in k}
    assert {ref["Ref"] for ref in vpc_config["SubnetIds"]} == private
    (group_ref,) = vpc_config["SecurityGroups"]
    bus_group = template["Resources"][group_ref["Fn::GetAtt"][0]]["Properties"]
    assert "SecurityGroupIngress" not in bus_group
    (ingress,) = resources(template, "AWS::EC2::SecurityGroupIngress").values()
    assert ingress["Properties"]["GroupId"] == group_ref
    assert ingress["Properties"]["FromPort"] == ingress["Properties"]["ToPort"] == IAM_PORT
    client = ingress["Properties"]["SourceSecurityGroupId"]["Fn::GetAtt"][0]
    assert client.startswith("ServiceBusClientSecurityGroup")


def test_no_service_bus_when_the_services_sync_over_https(synthesized, templates):
    _, stacks, _, _ = synthesized
    assert stacks[LEAN].service_bus is None
    assert resources(templates[LEAN], "AWS::MSK::ServerlessCluster") == {}
    assert isinstance(stacks[FULL].service_bus, ServiceBus)


# --- names ---


def test_names_from_the_longest_prefix_are_refused_before_deploy():
    prefix = "M" + "x" * 63  # the longest stack_prefix the config allows
    problems = {
        rule.what: rule.problem(name)
        for rule, name in containers.containers_data_names(prefix, msk=True)
    }
    assert problems["ECR repository name"] is None
    assert "64" in problems["MSK cluster name"] and "63" in problems["RDS DB instance identifier"]
    stack = cdk.Stack(cdk.App(), "Names")
    vpc = ec2.Vpc(stack, "Vpc", max_azs=2)
    with pytest.raises(ValueError, match="MSK cluster name"):
        ServiceBus(
            stack,
            "Bus",
            vpc=vpc,
            subnets=ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS),
            cluster_name=containers.service_bus_cluster_name(prefix),
        )
    with pytest.raises(ValueError, match="ECR repository name"):
        ServiceImages(stack, "Images", stack_prefix="Mes--Demo", data_key=None)
    with pytest.raises(ValueError, match="RDS DB instance identifier"):
        ServiceDatabase(
            stack,
            "Database",
            vpc=vpc,
            subnets=ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS),
            settings=DatabaseSettings(),
            identifier=containers.database_identifier(prefix),
            data_key=None,
            logs_key=None,
            log_retention_days=7,
        )
