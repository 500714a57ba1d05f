"""The delivery pipeline construct (stacks/constructs/delivery_pipeline.py) in a small app of its
own: a stub data stack (VPC, keys, repositories, the master secret, the database's security
group) and two pipeline stacks on an imported cluster, one per plant: S3 source without domain
or edge site, and CodeConnections with a domain, approval e-mails and an Outposts edge cluster.
One synth with the cdk-nag gates (a finding fails it), cfn-lint, then assertions."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from mes_domain.containers import NAMESPACE, SERVICES
from mes_domain.plant import Plant
from tests.conftest import DEMO_PLANT, cli_context
from tests.stacks.assembly import Assembly, Template
from tests.stacks.plants import CONNECTION_ARN, with_containers
from tests.stacks.test_cfn_lint import lint

ENV = {"account": "123456789012", "region": "eu-central-1"}
CLUSTER_NAME = "mes-cluster"
EDGE_CLUSTER_NAME = "mes-edge"
DATABASE_HOST = "mes.cluster-abc.eu-central-1.rds.amazonaws.com"
CLOUD_ENVIRONMENT = {"MES_AWS_REGION": "eu-central-1", "MES_INSTANCE_ID": "cloud"}
EDGE_ENVIRONMENT = {
    "MES_AWS_REGION": "eu-central-1",
    "MES_INSTANCE_ID": "berlin",
    "DATABASE_HOST": "postgres.berlin.example.internal",
}
CERTIFICATE = (
    "arn:aws:acm:eu-central-1:123456789012:certificate/0123abcd-4567-89ef-0123-456789abcdef"
)
PIPELINE = Path(__file__).resolve().parents[2] / "pipeline"
KAFKA_CLUSTER_ARN = (
    "arn:aws:kafka:eu-central-1:123456789012:cluster/MesDemo-sync/"
    "0a1b2c3d-4e5f-6a7b-8c9d-0e1f2a3b4c5d-s1"
)


def _plants(demo_plant: Plant) -> dict[str, Plant]:
    s3_source = demo_plant.model_dump(mode="json")
    s3_source["capabilities"] = {"eks": True}
    full = with_containers(demo_plant.model_dump(mode="json"), edge_site="outposts")
    return {"S3Source": Plant.model_validate(s3_source), "Full": Plant.model_validate(full)}


@pytest.fixture(scope="module")
def synthesized(demo_plant, tmp_path_factory):
    import aws_cdk as cdk
    from aws_cdk import aws_ec2 as ec2
    from aws_cdk import aws_ecr as ecr
    from aws_cdk import aws_eks_v2 as eks
    from aws_cdk import aws_kms as kms
    from aws_cdk import aws_secretsmanager as secretsmanager

    from stacks.compliance import acknowledge, add_compliance_gates
    from stacks.constructs.buckets import AccessLogBucket
    from stacks.constructs.delivery_pipeline import DeliveryPipeline

    outdir = tmp_path_factory.mktemp("delivery.out")
    app = cdk.App(outdir=str(outdir), context=cli_context(plant=str(DEMO_PLANT)))
    env = cdk.Environment(**ENV)
    data = cdk.Stack(app, "Data", env=env)
    vpc = ec2.Vpc(data, "Vpc", max_azs=2, nat_gateways=1)
    acknowledge(
        vpc.node.default_child, "AwsSolutions-VPC7", "A stub VPC: the data stack's has flow logs."
    )
    data_key = kms.Key(data, "DataKey", enable_key_rotation=True)
    logs_key = kms.Key(data, "LogsKey", enable_key_rotation=True)
    access_logs = AccessLogBucket(data, "AccessLogs", expire_after_days=30).bucket
    repositories = {
        service.name: ecr.Repository(
            data,
            service.name,
            image_tag_mutability=ecr.TagMutability.IMMUTABLE,
            image_scan_on_push=True,
        )
        for service in SERVICES
    }
    secret = secretsmanager.Secret(data, "MasterSecret")
    acknowledge(
        secret.node.default_child,
        "AwsSolutions-SMG4",
        "A stub of the RDS-managed master secret, which RDS itself rotates.",
    )
    database_group = ec2.SecurityGroup(data, "DatabaseSecurityGroup", vpc=vpc)
    pipelines = {}
    for name, plant in _plants(demo_plant).items():
        stack = cdk.Stack(app, name, env=env)
        cluster_group = ec2.SecurityGroup(stack, "ClusterSecurityGroup", vpc=vpc)
        cluster = eks.Cluster.from_cluster_attributes(
            stack,
            "Cluster",
            cluster_name=CLUSTER_NAME,
            cluster_security_group_id=cluster_group.security_group_id,
            vpc=vpc,
        )
        outposts = name == "Full"
        pipelines[name] = DeliveryPipeline(
            stack,
            "Delivery",
            plant=plant,
            vpc=vpc,
            cluster=cluster,
            repositories=repositories,
            database_endpoint=DATABASE_HOST,
            database_port="5432",
            master_secret=secret,
            database_security_group=database_group,
            platform_environment=CLOUD_ENVIRONMENT,
            data_key=data_key,
            logs_key=logs_key,
            access_logs=access_logs,
            domain=plant.containers.domain,
            edge_cluster_name=EDGE_CLUSTER_NAME if outposts else None,
            edge_platform_environment=EDGE_ENVIRONMENT if outposts else None,
            certificate_arn=CERTIFICATE if plant.containers.domain else None,
            # with_containers' plant (Full) has the MSK service bus, the S3 source one HTTPS
            kafka_cluster_arn=KAFKA_CLUSTER_ARN if outposts else None,
        )
    add_compliance_gates(app)
    assembly = app.synth()
    return Assembly(assembly.directory), pipelines


@pytest.fixture(scope="module")
def assembly(synthesized) -> Assembly:
    return synthesized[0]


def resources(template: Template, kind: str) -> dict[str, dict]:
    return {lid: r for lid, r in template.resources.items() if r["Type"] == kind}


def only(template: Template, kind: str) -> tuple[str, dict]:
    (item,) = resources(template, kind).items()
    return item


def project(template: Template, path_part: str) -> dict:
    (properties,) = [
        r["Properties"]
        for r in resources(template, "AWS::CodeBuild::Project").values()
        if f"/Delivery/{path_part}/" in r["Metadata"]["aws:cdk:path"]
    ]
    return properties


def variables(properties: dict) -> dict[str, dict]:
    return {v["Name"]: v for v in properties["Environment"]["EnvironmentVariables"]}


def role_statements(assembly: Assembly, template: Template, role_arn) -> list[dict]:
    role = assembly.target(template, role_arn).logical_id
    return [
        statement
        for policy in resources(template, "AWS::IAM::Policy").values()
        if {"Ref": role} in policy["Properties"]["Roles"]
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]
    ]


def service_images(assembly: Assembly, template: Template, value) -> dict[str, str]:
    """SERVICE_IMAGES as {service: uri}, references as <AWS::Pseudo> or <RepositoryLogicalId>."""
    text = ""
    for part in value["Fn::Join"][1]:
        if isinstance(part, str):
            text += part
        elif "Ref" in part:
            text += f"<{part['Ref']}>"
        else:
            text += f"<{assembly.target(template, part).logical_id}>"
    return dict(pair.split("=", 1) for pair in text.split())


def target_type(assembly: Assembly, template: Template, value) -> str:
    return assembly.target(template, value).type


@pytest.fixture(scope="module", params=["S3Source", "Full"])
def template(request, assembly) -> Template:
    return assembly.stacks[request.param]


def test_the_pipeline_stacks_are_cfn_lint_clean(assembly):
    # The pipeline stacks: the data stack is a stub.
    files = [assembly.directory / assembly.stacks[name].file for name in ("S3Source", "Full")]
    result = lint(files)
    findings = [line for line in result.stdout.splitlines() if ":E" in line or ":W" in line]
    assert findings == [] and result.returncode in (0, 8), result.stdout + result.stderr


def test_a_v2_pipeline_with_an_encrypted_logged_tls_only_artifact_bucket(assembly, template):
    _, pipeline = only(template, "AWS::CodePipeline::Pipeline")
    properties = pipeline["Properties"]
    assert properties["PipelineType"] == "V2"
    assert properties["RestartExecutionOnUpdate"] is False
    assert [s["Name"] for s in properties["Stages"]] == ["Source", "Build", "Approve", "Deploy"]
    store = properties["ArtifactStore"]
    assert store["EncryptionKey"]["Type"] == "KMS"
    assert target_type(assembly, template, store["EncryptionKey"]["Id"]) == "AWS::KMS::Key"
    bucket = assembly.target(template, store["Location"])
    encryption = bucket.properties["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]
    assert encryption["ServerSideEncryptionByDefault"]["SSEAlgorithm"] == "aws:kms"
    assert bucket.properties["LoggingConfiguration"]["DestinationBucketName"]
    assert set(bucket.properties["PublicAccessBlockConfiguration"].values()) == {True}
    (policy,) = [
        p
        for p in resources(template, "AWS::S3::BucketPolicy").values()
        if p["Properties"]["Bucket"] == store["Location"]
    ]
    denials = policy["Properties"]["PolicyDocument"]["Statement"]
    assert any(
        s["Effect"] == "Deny" and s["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
        for s in denials
    )


def stage(template: Template, name: str) -> list[dict]:
    _, pipeline = only(template, "AWS::CodePipeline::Pipeline")
    (found,) = [s for s in pipeline["Properties"]["Stages"] if s["Name"] == name]
    return found["Actions"]


def test_an_s3_source_starts_on_upload_through_eventbridge(assembly):
    template = assembly.stacks["S3Source"]
    (source,) = stage(template, "Source")
    configuration = source["Configuration"]
    assert source["ActionTypeId"]["Provider"] == "S3"
    assert configuration["PollForSourceChanges"] is False
    bucket = assembly.target(template, configuration["S3Bucket"])
    assert bucket.properties["VersioningConfiguration"] == {"Status": "Enabled"}
    assert bucket.properties["NotificationConfiguration"] == {
        "EventBridgeConfiguration": {"EventBridgeEnabled": True}
    }
    assert "KMSMasterKeyID" in json.dumps(bucket.properties["BucketEncryption"])
    _, rule = only(template, "AWS::Events::Rule")
    pattern = rule["Properties"]["EventPattern"]
    assert pattern["source"] == ["aws.s3"] and pattern["detail-type"] == ["Object Created"]
    assert pattern["detail"]["bucket"]["name"] == [configuration["S3Bucket"]]
    assert pattern["detail"]["object"]["key"] == [configuration["S3ObjectKey"]]
    (target,) = rule["Properties"]["Targets"]
    pipeline_id, _ = only(template, "AWS::CodePipeline::Pipeline")
    assert {"Ref": pipeline_id} in target["Arn"]["Fn::Join"][1]


def test_a_codeconnections_source_follows_the_configured_branch(assembly):
    template = assembly.stacks["Full"]
    (source,) = stage(template, "Source")
    assert source["ActionTypeId"]["Provider"] == "CodeStarSourceConnection"
    assert source["Configuration"] == {
        "ConnectionArn": CONNECTION_ARN,
        "FullRepositoryId": "acme/mes-platform",
        "BranchName": "main",
        "DetectChanges": True,
    }
    # The connection's own prefix (codeconnections) for a connection made since the rename.
    uses = [
        s
        for s in role_statements(assembly, template, source["RoleArn"])
        if "codeconnections:UseConnection" in s["Action"]
    ]
    assert [s["Resource"] for s in uses] == [CONNECTION_ARN]
    # The artifact bucket is the only bucket, and nothing but the connection starts it.
    assert len(resources(template, "AWS::S3::Bucket")) == 1
    assert resources(template, "AWS::Events::Rule") == {}


def test_the_build_runs_privileged_with_a_pinned_image_and_encrypted_logs(assembly, template):
    properties = project(template, "Build")
    environment = properties["Environment"]
    assert environment["Image"] == "aws/codebuild/standard:7.0"
    assert environment["PrivilegedMode"] is True
    assert target_type(assembly, template, properties["EncryptionKey"]) == "AWS::KMS::Key"
    assert "VpcConfig" not in properties
    group = assembly.target(template, properties["LogsConfig"]["CloudWatchLogs"]["GroupName"])
    assert group.properties["RetentionInDays"] == 365 and "KmsKeyId" in group.properties
    buildspec = json.loads(properties["Source"]["BuildSpec"])
    assert buildspec == yaml.safe_load((PIPELINE / "build.yml").read_text())


def test_the_build_pushes_every_service_to_its_own_repository_only(assembly, template):
    properties = project(template, "Build")
    images = service_images(assembly, template, variables(properties)["SERVICE_IMAGES"]["Value"])
    assert list(images) == [s.name for s in SERVICES]
    for service, uri in images.items():
        registry, _, repository = uri.partition("/")
        assert registry == "123456789012.dkr.ecr.eu-central-1.<AWS::URLSuffix>"
        logical_id = repository.strip("<>")
        assert logical_id in resources(assembly.stacks["Data"], "AWS::ECR::Repository")
        assert logical_id.startswith(service.replace("-", ""))
    statements = role_statements(assembly, template, properties["ServiceRole"])
    pushes = [s for s in statements if "ecr:PutImage" in s["Action"]]
    (push,) = pushes
    repositories = {assembly.target(template, r).logical_id for r in push["Resource"]}
    data = assembly.stacks["Data"]
    assert repositories == set(resources(data, "AWS::ECR::Repository"))
    assert "ecr:DescribeImages" in push["Action"]
    wildcard = [s for s in statements if s["Resource"] == "*"]
    assert [s["Action"] for s in wildcard] == ["ecr:GetAuthorizationToken"]


def test_a_manual_approval_notifies_an_encrypted_tls_only_topic(assembly, template):
    (approval,) = stage(template, "Approve")
    assert approval["ActionTypeId"] == {
        "Category": "Approval",
        "Owner": "AWS",
        "Provider": "Manual",
        "Version": "1",
    }
    topic = assembly.target(template, approval["Configuration"]["NotificationArn"])
    assert topic.type == "AWS::SNS::Topic"
    assert target_type(assembly, template, topic.properties["KmsMasterKeyId"]) == "AWS::KMS::Key"
    _, policy = only(template, "AWS::SNS::TopicPolicy")
    assert any(
        s["Effect"] == "Deny" and s["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
        for s in policy["Properties"]["PolicyDocument"]["Statement"]
    )
    subscribed = [
        s["Properties"]["Endpoint"] for s in resources(template, "AWS::SNS::Subscription").values()
    ]
    expected = ["release-manager@example.com"] if template.stack_name == "Full" else []
    assert subscribed == expected


def test_deploy_runs_in_the_private_subnets_with_the_master_secret_from_secrets_manager(
    assembly, template
):
    properties = project(template, "Deploy")
    assert properties["Environment"]["PrivilegedMode"] is False
    vpc_config = properties["VpcConfig"]
    subnets = [assembly.target(template, s) for s in vpc_config["Subnets"]]
    assert {s.logical_id for s in subnets} == {
        lid for lid in resources(assembly.stacks["Data"], "AWS::EC2::Subnet") if "Private" in lid
    }
    found = variables(properties)
    secret_id, _ = only(assembly.stacks["Data"], "AWS::SecretsManager::Secret")
    for name, key in (("PGUSER", "username"), ("PGPASSWORD", "password")):
        assert found[name]["Type"] == "SECRETS_MANAGER"
        parts = found[name]["Value"]["Fn::Join"][1]
        assert assembly.target(template, parts[0]).logical_id == secret_id
        assert parts[1:] == [f":{key}"]
    plaintext = {k: v for k, v in found.items() if v["Type"] == "PLAINTEXT"}
    assert {"CLUSTER_NAME", "PGHOST", "PGPORT", "SERVICE_IMAGES", "KUBECTL_VERSION"} <= set(
        plaintext
    )
    assert plaintext["CLUSTER_NAME"]["Value"] == CLUSTER_NAME
    assert plaintext["PGHOST"]["Value"] == DATABASE_HOST
    assert plaintext["OVERLAY"]["Value"] == "cloud" and plaintext["NAMESPACE"]["Value"] == NAMESPACE
    assert plaintext["KUBECTL_VERSION"]["Value"] == "1.34.0"
    # The plant config the app was synthesized from (an absolute path in the test's context).
    assert plaintext["PLANT_CONFIG"]["Value"] == "config/demo-plant.yaml"
    vpc_cidr = assembly.target(template, plaintext["VPC_CIDR"]["Value"])
    assert (vpc_cidr.type, vpc_cidr.attribute) == ("AWS::EC2::VPC", "CidrBlock")
    certificate = plaintext.get("CERTIFICATE_ARN", {}).get("Value")
    assert certificate == (CERTIFICATE if template.stack_name == "Full" else None)
    for name, value in CLOUD_ENVIRONMENT.items():
        assert plaintext[name]["Value"] == value
    assert not [n for n in plaintext if any(w in n for w in ("PASSWORD", "SECRET", "TOKEN"))]
    buildspec = json.loads(properties["Source"]["BuildSpec"])
    assert buildspec == yaml.safe_load((PIPELINE / "deploy.yml").read_text())


def test_the_deploy_role_reads_the_master_secret_and_describes_its_cluster_only(assembly, template):
    properties = project(template, "Deploy")
    statements = role_statements(assembly, template, properties["ServiceRole"])
    secret_id, _ = only(assembly.stacks["Data"], "AWS::SecretsManager::Secret")
    secret_reads = [s for s in statements if "secretsmanager:GetSecretValue" in s["Action"]]
    assert secret_reads
    for statement in secret_reads:
        resources_ = statement["Resource"]
        for resource in resources_ if isinstance(resources_, list) else [resources_]:
            assert assembly.target(template, resource).logical_id == secret_id
    (describe,) = [s for s in statements if s["Action"] == "eks:DescribeCluster"]
    assert describe["Resource"] == f"arn:aws:eks:eu-central-1:123456789012:cluster/{CLUSTER_NAME}"
    assert not [s for s in statements if "ecr:PutImage" in s["Action"]]


def test_the_deploy_role_has_a_cluster_scoped_admin_access_entry(assembly, template):
    _, entry = only(template, "AWS::EKS::AccessEntry")
    properties = entry["Properties"]
    assert properties["ClusterName"] == CLUSTER_NAME
    role = assembly.target(template, properties["PrincipalArn"])
    assert role.properties["AssumeRolePolicyDocument"]["Statement"][0]["Principal"] == {
        "Service": "codebuild.amazonaws.com"
    }
    assert {"Fn::GetAtt": [role.logical_id, "Arn"]} == project(template, "Deploy")["ServiceRole"]
    (policy,) = properties["AccessPolicies"]
    assert policy["AccessScope"] == {"Type": "cluster"}
    assert assembly.resolve(template, policy["PolicyArn"]) == (
        "arn:aws:eks::aws:cluster-access-policy/AmazonEKSClusterAdminPolicy"
    )


def test_the_deploy_reaches_the_database_and_https_only(assembly, template):
    group_id = project(template, "Deploy")["VpcConfig"]["SecurityGroupIds"][0]
    group = assembly.target(template, group_id)
    egress = [
        (r["IpProtocol"], r["FromPort"], r.get("CidrIp"))
        for r in group.properties["SecurityGroupEgress"]
    ]
    assert egress == [("tcp", 443, "0.0.0.0/0")]
    database_id, _ = only(assembly.stacks["Data"], "AWS::EC2::SecurityGroup")
    admitted = {
        (
            assembly.target(template, r["Properties"]["GroupId"]).logical_id,
            r["Properties"]["FromPort"],
        )
        for r in resources(template, "AWS::EC2::SecurityGroupIngress").values()
        if assembly.target(template, r["Properties"]["SourceSecurityGroupId"]).logical_id
        == group.logical_id
    }
    # The clusters' endpoints admit it where the clusters are made (admit_api_clients).
    assert admitted == {(database_id, 5432)}
    (to_database,) = resources(template, "AWS::EC2::SecurityGroupEgress").values()
    assert (
        assembly.target(
            template, to_database["Properties"]["DestinationSecurityGroupId"]
        ).logical_id
        == database_id
    )


def test_with_a_domain_the_deploy_may_upsert_only_the_record_cname(assembly, template):
    properties = project(template, "Deploy")
    statements = role_statements(assembly, template, properties["ServiceRole"])
    route53 = [s for s in statements if "route53" in json.dumps(s["Action"])]
    found = variables(properties)
    if template.stack_name == "S3Source":
        assert route53 == [] and "RECORD_NAME" not in found
        return
    (statement,) = route53
    assert statement["Action"] == "route53:ChangeResourceRecordSets"
    assert assembly.resolve(template, statement["Resource"]) == (
        "arn:aws:route53:::hostedzone/Z0123456789ABCDEFGHIJ"
    )
    assert statement["Condition"] == {
        "ForAllValues:StringEquals": {
            "route53:ChangeResourceRecordSetsNormalizedRecordNames": ["api.mes.example.com"],
            "route53:ChangeResourceRecordSetsRecordTypes": ["CNAME"],
            "route53:ChangeResourceRecordSetsActions": ["UPSERT"],
        }
    }
    assert found["RECORD_NAME"]["Value"] == "api.mes.example.com"
    assert found["HOSTED_ZONE_ID"]["Value"] == "Z0123456789ABCDEFGHIJ"


def test_the_images_deployed_are_the_ones_the_build_tagged(template):
    (build,) = stage(template, "Build")
    assert build["Namespace"] == "Build"
    for action in stage(template, "Deploy"):
        passed = json.loads(action["Configuration"]["EnvironmentVariables"])
        assert passed == [{"name": "IMAGE_TAG", "type": "PLAINTEXT", "value": "#{Build.IMAGE_TAG}"}]


def test_on_outposts_the_edge_overlay_deploys_after_the_cloud(assembly, template):
    deploys = stage(template, "Deploy")
    if template.stack_name == "S3Source":
        assert [a["Name"] for a in deploys] == ["DeployCloud"]
        return
    assert [(a["Name"], a["RunOrder"]) for a in deploys] == [("DeployCloud", 1), ("DeployEdge", 2)]
    properties = project(template, "DeployEdge")
    found = variables(properties)
    assert found["CLUSTER_NAME"]["Value"] == EDGE_CLUSTER_NAME
    assert found["OVERLAY"]["Value"] == "edge"
    # The local cluster's own Kubernetes version (containers.outpost.kubernetes_version).
    assert found["KUBECTL_VERSION"]["Value"] == "1.32.0"
    assert not {"CERTIFICATE_ARN", "VPC_CIDR"} & set(found)
    assert not {"PGHOST", "PGUSER", "PGPASSWORD", "RECORD_NAME"} & set(found)
    assert {n: found[n]["Value"] for n in EDGE_ENVIRONMENT} == EDGE_ENVIRONMENT
    statements = role_statements(assembly, template, properties["ServiceRole"])
    assert not [s for s in statements if "secretsmanager" in json.dumps(s["Action"])]
    (describe,) = [s for s in statements if s["Action"] == "eks:DescribeCluster"]
    assert describe["Resource"].endswith(f":cluster/{EDGE_CLUSTER_NAME}")


def test_the_cloud_deploy_applies_the_clusters_own_settings_and_the_edge_does_not(template):
    from stacks.constructs.delivery_pipeline import CLUSTER_KUSTOMIZATION

    cloud = variables(project(template, "Deploy"))
    assert cloud["CLUSTER_KUSTOMIZATION"]["Value"] == CLUSTER_KUSTOMIZATION
    # a kustomization of the repository, relative to its root as the buildspec runs there
    assert (PIPELINE.parent / CLUSTER_KUSTOMIZATION / "kustomization.yaml").is_file()
    if template.stack_name == "Full":
        assert "CLUSTER_KUSTOMIZATION" not in variables(project(template, "DeployEdge"))


def test_with_msk_both_deploys_read_the_bootstrap_brokers_of_the_cluster(assembly, template):
    deploys = ["Deploy", "DeployEdge"] if template.stack_name == "Full" else ["Deploy"]
    for name in deploys:
        properties = project(template, name)
        found = variables(properties)
        statements = role_statements(assembly, template, properties["ServiceRole"])
        kafka = [s for s in statements if "kafka" in json.dumps(s["Action"])]
        if template.stack_name == "S3Source":  # the HTTPS service bus
            assert kafka == [] and "KAFKA_CLUSTER_ARN" not in found
            continue
        assert found["KAFKA_CLUSTER_ARN"] == {
            "Name": "KAFKA_CLUSTER_ARN",
            "Type": "PLAINTEXT",
            "Value": KAFKA_CLUSTER_ARN,
        }
        # No resource type in the Service Authorization Reference: "*" is all that grants it,
        # and the statement holds nothing else.
        assert kafka == [
            {"Action": "kafka:GetBootstrapBrokers", "Effect": "Allow", "Resource": "*"}
        ]


def test_kafka_cluster_arn_must_match_the_service_bus(demo_plant):
    import aws_cdk as cdk

    from stacks.constructs.delivery_pipeline import DeliveryPipeline

    plants = _plants(demo_plant)
    for plant, arn in ((plants["S3Source"], KAFKA_CLUSTER_ARN), (plants["Full"], None)):
        stack = cdk.Stack(cdk.App(), "Pipeline")
        with pytest.raises(ValueError, match="kafka_cluster_arn is given exactly when"):
            DeliveryPipeline(
                stack, "Delivery", plant=plant, kafka_cluster_arn=arn,
                **dict.fromkeys(UNUSED_BEFORE_THE_CHECK),
            )  # fmt: skip


UNUSED_BEFORE_THE_CHECK = (
    "vpc", "cluster", "repositories", "database_endpoint", "database_port", "master_secret",
    "database_security_group", "platform_environment", "data_key", "logs_key", "access_logs",
)  # fmt: skip


def test_platform_values_are_plaintext_mes_variables_only():
    from stacks.constructs.delivery_pipeline import check_platform_environment

    check_platform_environment({"MES_EVENT_BUS_NAME": "bus", "DATABASE_HOST": "db.site"})
    for name in (
        "MES_DATABASE_PASSWORD",
        "PGHOST",
        "CLUSTER_NAME",
        "AWS_SECRET_ACCESS_KEY",
        "MES_KAFKA_BOOTSTRAP_SERVERS",  # looked up by the deploy stage
    ):
        with pytest.raises(ValueError, match=name):
            check_platform_environment({name: "x"})


def test_the_plant_config_must_be_in_the_repository(tmp_path):
    import aws_cdk as cdk

    from stacks.constructs.delivery_pipeline import plant_config_path

    app = cdk.App(context={"plant": str(DEMO_PLANT)})
    assert plant_config_path(app) == "config/demo-plant.yaml"
    assert plant_config_path(app, "config/demo-plant-containers.yaml") == (
        "config/demo-plant-containers.yaml"
    )
    with pytest.raises(ValueError, match="outside the repository"):
        plant_config_path(app, str(tmp_path / "plant.yaml"))


def test_every_acknowledgement_hides_a_finding_of_its_own_resource(assembly):
    """As tests/stacks/test_acknowledgements.py checks the whole app: the pipeline's IAM5
    acknowledgements are computed from its policies, so they must equal cdk-nag's findings."""
    from tests.stacks.test_acknowledgements import (
        _load,
        iam_acknowledged_elsewhere,
        iam_mismatches,
        idle_others,
        misplaced,
    )

    app = _load(assembly.directory)
    ours = [a for a in app.acknowledgements if "/Delivery/" in a.path]
    assert {a.rule.split("[")[0] for a in ours} >= {"AwsSolutions-IAM5", "Serverless-EventBusDLQ"}
    problems = misplaced(app) + iam_mismatches(app) + iam_acknowledged_elsewhere(app)
    problems += idle_others(app)
    assert [p for p in problems if "/Delivery/" in p] == []
