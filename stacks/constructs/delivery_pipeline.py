"""The MES services' delivery pipeline: CodePipeline (V2) from the configured source, a CodeBuild
stage that runs the services' tests and pushes their images to ECR, a manual approval, and a
CodeBuild stage in the VPC that deploys the cloud overlay to the EKS cluster (then, on Outposts,
the edge overlay to the local cluster).

The buildspecs are pipeline/build.yml and pipeline/deploy.yml, read at synth into the template:
the images are built by CodeBuild, never at synth.

What the composing stack wires besides the arguments:
- each cluster's private endpoint admits ``deploy_security_group`` on 443 (the cluster
  security group's rule, made by the cluster's owner: ServicesCluster.admit_api_clients,
  OutpostsCluster.admit_api_clients);
- ``edge_deploy_project.role`` is mapped into the edge site's local cluster's aws-auth once
  after its first deploy (local clusters take no access entries: README, "The edge site on AWS
  Outposts"); the cloud cluster's access entry is made here;
- ``deploy_project`` and ``edge_deploy_project`` run in the VPC's private subnets, which reach
  ECR, STS, EKS, Route 53 and (MSK service bus) the MSK API through NAT or VPC endpoints, and
  dl.k8s.io and the RDS trust store (kubectl and the RDS CA bundle) through NAT.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from pathlib import Path

import yaml
from aws_cdk import ArnFormat, Aws, Duration, RemovalPolicy, Stack
from aws_cdk import aws_codebuild as codebuild
from aws_cdk import aws_codepipeline as codepipeline
from aws_cdk import aws_codepipeline_actions as actions
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_ecr as ecr
from aws_cdk import aws_eks_v2 as eks
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_secretsmanager as secretsmanager
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from constructs import Construct

from mes_domain.containers import NAMESPACE, SERVICES, DomainSettings, ServiceBus, SourceProvider
from mes_domain.plant import Plant
from stacks.compliance import acknowledge, nag_resource
from stacks.constructs.buckets import DataBucket
from stacks.plant_config import DEFAULT_PLANT_CONFIG, PLANT_CONTEXT_KEY

PROJECT_ROOT = Path(__file__).resolve().parents[2]
PIPELINE_DIR = PROJECT_ROOT / "pipeline"
BUILD_SPEC = PIPELINE_DIR / "build.yml"
DEPLOY_SPEC = PIPELINE_DIR / "deploy.yml"
# The object an S3 source uploads: a zip of the repository's tree.
SOURCE_OBJECT_KEY = "mes-source.zip"
# Ubuntu 22.04 with Docker and Python 3.11 (the services' Python): a pinned image version, not
# "latest" (CodeBuild user guide, "Docker images provided by CodeBuild").
BUILD_IMAGE = codebuild.LinuxBuildImage.STANDARD_7_0
LOG_RETENTION = logs.RetentionDays.ONE_YEAR
# The buildspec reads these; the platform's MES_* values may not shadow them.
RESERVED_VARIABLES = frozenset(
    {
        "CLUSTER_NAME",
        "OVERLAY",
        "NAMESPACE",
        "KUBECTL_VERSION",
        "SERVICE_IMAGES",
        "IMAGE_TAG",
        "PGHOST",
        "PGPORT",
        "PGUSER",
        "PGPASSWORD",
        "HOSTED_ZONE_ID",
        "RECORD_NAME",
        "PLANT_CONFIG",
        "CERTIFICATE_ARN",
        "VPC_CIDR",
        "CLUSTER_KUSTOMIZATION",
        "KAFKA_CLUSTER_ARN",
    }
)
# Platform values the deploy stage finds out itself (pipeline/deploy.yml), not the project's.
LOOKED_UP_AT_DEPLOY = frozenset({"MES_KAFKA_BOOTSTRAP_SERVERS"})
# The cloud cluster's own settings (EKS Auto Mode's network policy controller), relative to the
# repository root; the deploy stage applies them before the overlay.
CLUSTER_KUSTOMIZATION = "services/k8s/cluster"
# GetBootstrapBrokers has no resource type in the Service Authorization Reference (Amazon
# Managed Streaming for Apache Kafka: "Grants permission to get connection details for the
# brokers in an MSK cluster", Read, no resource types), so only "Resource": "*" grants it.
GET_BOOTSTRAP_BROKERS = "kafka:GetBootstrapBrokers"
# The pods' database host and port where no PGHOST is (the edge site's own PostgreSQL):
# deploy_overlay.py --database-host/--database-port.
DATABASE_VARIABLES = frozenset({"DATABASE_HOST", "DATABASE_PORT"})
# A plaintext CodeBuild variable is shown in the console and the API (CodeBuild API reference,
# EnvironmentVariable): nothing that looks like a credential goes there.
SECRET_LOOKING = re.compile(r"PASSWORD|SECRET|TOKEN|CREDENTIAL|PRIVATE", re.IGNORECASE)


def load_buildspec(path: Path) -> codebuild.BuildSpec:
    """The buildspec file as an object, so the template carries it (no file in the source)."""
    return codebuild.BuildSpec.from_object(yaml.safe_load(path.read_text()))


def service_images(scope: Construct, repositories: Mapping[str, ecr.IRepository]) -> str:
    """``"<service>=<repository uri> ..."`` for every service, in SERVICES' order.

    The URI is built from this stack's account and region (the repositories are in the same
    ones) rather than the repository's own repository_uri, which splits its ARN: an Fn::Split of
    a cross-stack reference that cfn-lint cannot type (E1022)."""
    missing = [service.name for service in SERVICES if service.name not in repositories]
    if missing:
        raise ValueError(f"no ECR repository for the services {missing}")
    stack = Stack.of(scope)
    registry = f"{stack.account}.dkr.ecr.{stack.region}.{stack.url_suffix}"
    return " ".join(f"{s.name}={registry}/{repositories[s.name].repository_name}" for s in SERVICES)


def _plaintext(values: Mapping[str, str]) -> dict[str, codebuild.BuildEnvironmentVariable]:
    return {name: codebuild.BuildEnvironmentVariable(value=value) for name, value in values.items()}


def check_platform_environment(values: Mapping[str, str]) -> None:
    """The pods' values: MES_* (and the database's host and port), plaintext, so nothing
    secret, and no variable of the buildspec's own."""
    for name in values:
        if name in LOOKED_UP_AT_DEPLOY:
            raise ValueError(f"{name}: the deploy stage looks it up, the project does not set it")
        mes = name.startswith("MES_") and name not in RESERVED_VARIABLES
        if not (mes or name in DATABASE_VARIABLES):
            raise ValueError(f"{name}: the platform environment holds MES_* variables only")
        if SECRET_LOOKING.search(name):
            raise ValueError(f"{name}: plaintext CodeBuild variables hold nothing secret")


def plant_config_path(scope: Construct, path: str | None = None) -> str:
    """The plant config the stacks are synthesized from, relative to the repository root: the
    deploy stage gives the same file to deploy_overlay.py (the services' mes-plant ConfigMap)."""
    given = Path(path or scope.node.try_get_context(PLANT_CONTEXT_KEY) or DEFAULT_PLANT_CONFIG)
    absolute = given if given.is_absolute() else PROJECT_ROOT / given
    try:
        relative = absolute.resolve().relative_to(PROJECT_ROOT)
    except ValueError:
        raise ValueError(
            f"plant config {given} is outside the repository, which the pipeline deploys from"
        ) from None
    return relative.as_posix()


class DeliveryPipeline(Construct):
    """Source -> Build (tests, images) -> Approve -> Deploy (cloud, then the Outposts edge).

    Attributes: ``pipeline``, ``artifact_bucket``, ``source_bucket`` (S3 source only: upload
    ``SOURCE_OBJECT_KEY`` to it), ``build_project``, ``approval_topic``, ``deploy_project``,
    ``deploy_security_group`` (both deploy projects'), ``access_entry`` (the cloud cluster's),
    ``edge_deploy_project`` (with an edge cluster).

    ``kafka_cluster_arn``: the MSK Serverless cluster's ARN, given exactly when
    containers.service_bus is msk; the deploy stages read its bootstrap brokers for the pods.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        plant: Plant,
        vpc: ec2.IVpc,
        cluster: eks.ICluster,
        repositories: Mapping[str, ecr.IRepository],
        database_endpoint: str,
        database_port: str,
        master_secret: secretsmanager.ISecret,
        database_security_group: ec2.ISecurityGroup,
        platform_environment: Mapping[str, str],
        data_key: kms.IKey,
        logs_key: kms.IKey,
        access_logs: s3.IBucket,
        domain: DomainSettings | None = None,
        edge_cluster_name: str | None = None,
        edge_platform_environment: Mapping[str, str] | None = None,
        master_secret_grant: Callable[[iam.IGrantable], object] | None = None,
        certificate_arn: str | None = None,
        plant_config: str | None = None,
        kafka_cluster_arn: str | None = None,
    ) -> None:
        super().__init__(scope, construct_id)
        if (edge_cluster_name is None) != (edge_platform_environment is None):
            raise ValueError("edge_cluster_name and edge_platform_environment go together")
        msk = plant.containers.service_bus is ServiceBus.MSK
        if msk != (kafka_cluster_arn is not None):
            raise ValueError(
                "kafka_cluster_arn is given exactly when containers.service_bus is msk (it is "
                f"{plant.containers.service_bus.value})"
            )
        kafka = {"KAFKA_CLUSTER_ARN": kafka_cluster_arn} if kafka_cluster_arn else {}
        check_platform_environment(platform_environment)
        check_platform_environment(edge_platform_environment or {})
        self._data_key = data_key
        self._logs_key = logs_key
        settings = plant.containers
        images = service_images(self, repositories)
        config_path = plant_config_path(self, plant_config)

        self.artifact_bucket = DataBucket(
            self, "Artifacts", encryption_key=data_key, access_logs=access_logs
        ).bucket
        source_output = codepipeline.Artifact("Source")
        source_action, self.source_bucket = self._source(
            plant, source_output, data_key=data_key, access_logs=access_logs
        )

        # --- Build: the services' tests, then an image per service ---
        self.build_project = self._project(
            "Build",
            description="MES services: run their tests, build and push their images",
            build_spec=load_buildspec(BUILD_SPEC),
            compute_type=codebuild.ComputeType.MEDIUM,
            # docker build: "If you use Docker in your build container, your build must run in
            # privileged mode" (CodeBuild user guide, "Runtime versions in buildspec file
            # sample"). cdk-nag 3's AwsSolutions pack has no CB3 (privileged mode) any more, so
            # there is nothing to acknowledge; the deploy stage is not privileged.
            privileged=True,
            environment={"SERVICE_IMAGES": images},
            timeout=Duration.minutes(60),
        )
        for service in SERVICES:
            repository = repositories[service.name]
            repository.grant_pull_push(self.build_project)
            # The immutable-tag check before a push (pipeline/build.yml).
            repository.grant(self.build_project, "ecr:DescribeImages")
        build_action = actions.CodeBuildAction(
            action_name="TestAndPushImages",
            project=self.build_project,
            input=source_output,
            variables_namespace="Build",
        )

        # --- Approval before production ---
        self.approval_topic = sns.Topic(
            self,
            "ApprovalTopic",
            display_name=f"{plant.deployment.stack_prefix} MES release approvals",
            master_key=data_key,
            enforce_ssl=True,
        )
        for email in settings.pipeline.approval_emails:
            subscription = self.approval_topic.add_subscription(
                subscriptions.EmailSubscription(email)
            )
            acknowledge(
                subscription.node.default_child,
                "Serverless-SNSRedrivePolicy",
                "An approval notice SNS cannot deliver leaves the release waiting in the "
                "pipeline's Approve stage, where the console shows it; after 7 days CodePipeline "
                "fails the approval (user guide, 'Approve or reject an approval action') and the "
                "release is started again. A queue would hold the same notice, unread.",
            )
        approval_action = actions.ManualApprovalAction(
            action_name="ApproveRelease",
            notification_topic=self.approval_topic,
            additional_information=(
                "The services' tests passed and their images are pushed: approve to deploy them "
                "to production."
            ),
        )

        # --- Deploy: in the VPC, as a role with an access entry on the cluster ---
        self.deploy_security_group = ec2.SecurityGroup(
            self,
            "DeploySecurityGroup",
            vpc=vpc,
            description="MES deploy stage: the cluster API, the database, AWS APIs over HTTPS",
            allow_all_outbound=False,
        )
        self.deploy_security_group.add_egress_rule(
            ec2.Peer.any_ipv4(),
            ec2.Port.tcp(443),
            "HTTPS: EKS, ECR, STS, Route 53 APIs and the kubectl and RDS CA downloads",
        )
        self.deploy_security_group.connections.allow_to(
            database_security_group,
            ec2.Port.tcp(5432),
            "Deploy stage bootstraps the services' databases and roles",
        )
        # kubectl of the cluster's minor version: within one minor of the API server (Kubernetes
        # version skew policy). The first patch release of a minor always exists.
        kubectl_version = f"{settings.kubernetes_version}.0"
        cloud_environment = {
            **platform_environment,
            "CLUSTER_NAME": cluster.cluster_name,
            "OVERLAY": "cloud",
            "NAMESPACE": NAMESPACE,
            "KUBECTL_VERSION": kubectl_version,
            "SERVICE_IMAGES": images,
            "PLANT_CONFIG": config_path,
            "VPC_CIDR": vpc.vpc_cidr_block,
            "PGHOST": database_endpoint,
            "PGPORT": database_port,
            "CLUSTER_KUSTOMIZATION": CLUSTER_KUSTOMIZATION,
            **kafka,
        }
        if certificate_arn is not None:
            cloud_environment["CERTIFICATE_ARN"] = certificate_arn
        if domain is not None:
            cloud_environment |= {
                "HOSTED_ZONE_ID": domain.hosted_zone_id,
                "RECORD_NAME": domain.record_name,
            }
        self.deploy_project = self._project(
            "Deploy",
            description="MES services: bootstrap the databases, deploy the cloud overlay",
            build_spec=load_buildspec(DEPLOY_SPEC),
            compute_type=codebuild.ComputeType.SMALL,
            privileged=False,
            environment=cloud_environment,
            secrets={
                # secret-id:json-key (CodeBuild buildspec reference, env/secrets-manager)
                "PGUSER": f"{master_secret.secret_arn}:username",
                "PGPASSWORD": f"{master_secret.secret_arn}:password",
            },
            vpc=vpc,
            timeout=Duration.minutes(30),
        )
        # CodeBuild reads the secret for PGUSER/PGPASSWORD with the project's role. The data
        # stack's own grant (ServiceDatabase.grant_master_secret_read) keeps the key grant in
        # this role's policy, where the secret's grant_read would edit the key's policy.
        (master_secret_grant or master_secret.grant_read)(self.deploy_project)
        self._describe_cluster(self.deploy_project, cluster.cluster_name)
        if kafka:
            self._read_bootstrap_brokers(self.deploy_project)
        self.access_entry = eks.AccessEntry(
            self,
            "DeployAccess",
            cluster=cluster,
            principal=self.deploy_project.role.role_arn,
            # Cluster-scoped admin: kubectl apply -k applies cluster-scoped objects (Namespace,
            # IngressClass, IngressClassParams) besides the namespace's, which the
            # namespace-scoped AmazonEKSAdminPolicy/EditPolicy do not allow (EKS user guide,
            # "Review access policy permissions").
            access_policies=[
                eks.AccessPolicy.from_access_policy_name(
                    "AmazonEKSClusterAdminPolicy", access_scope_type=eks.AccessScopeType.CLUSTER
                )
            ],
        )
        if domain is not None:
            self._grant_record_upsert(self.deploy_project, domain)
        deploy_actions: list[actions.CodeBuildAction] = [
            actions.CodeBuildAction(
                action_name="DeployCloud",
                project=self.deploy_project,
                input=source_output,
                environment_variables={
                    "IMAGE_TAG": codebuild.BuildEnvironmentVariable(
                        value=build_action.variable("IMAGE_TAG")
                    )
                },
                run_order=1,
            )
        ]

        # --- The edge overlay on the Outposts local cluster, after the cloud's ---
        self.edge_deploy_project: codebuild.PipelineProject | None = None
        if edge_cluster_name is not None and edge_platform_environment is not None:
            outpost = settings.outpost
            edge_version = outpost.kubernetes_version if outpost else settings.kubernetes_version
            self.edge_deploy_project = self._project(
                "DeployEdge",
                description="MES services: deploy the edge overlay to the Outposts local cluster",
                build_spec=load_buildspec(DEPLOY_SPEC),
                compute_type=codebuild.ComputeType.SMALL,
                privileged=False,
                environment={
                    **edge_platform_environment,
                    "CLUSTER_NAME": edge_cluster_name,
                    "OVERLAY": "edge",
                    "NAMESPACE": NAMESPACE,
                    # The local cluster runs the Outposts' own, older versions.
                    "KUBECTL_VERSION": f"{edge_version}.0",
                    "SERVICE_IMAGES": images,
                    "PLANT_CONFIG": config_path,
                    # The Outpost is in the VPC: its pods sync over the same MSK cluster.
                    **kafka,
                },
                vpc=vpc,
                timeout=Duration.minutes(30),
            )
            self._describe_cluster(self.edge_deploy_project, edge_cluster_name)
            if kafka:
                self._read_bootstrap_brokers(self.edge_deploy_project)
            deploy_actions.append(
                actions.CodeBuildAction(
                    action_name="DeployEdge",
                    project=self.edge_deploy_project,
                    input=source_output,
                    environment_variables={
                        "IMAGE_TAG": codebuild.BuildEnvironmentVariable(
                            value=build_action.variable("IMAGE_TAG")
                        )
                    },
                    run_order=2,
                )
            )

        self.pipeline = codepipeline.Pipeline(
            self,
            "Pipeline",
            pipeline_type=codepipeline.PipelineType.V2,
            artifact_bucket=self.artifact_bucket,
            # A stack update that changes the pipeline does not restart a release waiting for
            # approval or deploying; the next source change starts the new definition.
            restart_execution_on_update=False,
            cross_account_keys=False,
            stages=[
                codepipeline.StageProps(stage_name="Source", actions=[source_action]),
                codepipeline.StageProps(stage_name="Build", actions=[build_action]),
                codepipeline.StageProps(stage_name="Approve", actions=[approval_action]),
                codepipeline.StageProps(stage_name="Deploy", actions=deploy_actions),
            ],
        )
        # CDK adds DependsOn the role it also references with GetAtt: harmless, as in MesFunction.
        self.pipeline.node.default_child.add_metadata(
            "cfn-lint", {"config": {"ignore_checks": ["W3005"]}}
        )
        if self.source_bucket is not None:
            self._start_on_upload(self.source_bucket)
        else:
            self._use_connection(plant.containers.pipeline.source.connection_arn)
        self._acknowledge_wildcards()

    # --- parts ---

    def _source(
        self,
        plant: Plant,
        output: codepipeline.Artifact,
        *,
        data_key: kms.IKey,
        access_logs: s3.IBucket,
    ) -> tuple[codepipeline.IAction, s3.Bucket | None]:
        source = plant.containers.pipeline.source
        if source.provider is SourceProvider.CODECONNECTIONS:
            assert source.connection_arn is not None and source.repository is not None
            owner, _, repository = source.repository.partition("/")
            action = actions.CodeStarConnectionsSourceAction(
                action_name="Source",
                connection_arn=source.connection_arn,
                owner=owner,
                repo=repository,
                branch=source.branch,
                output=output,
                # A push to the branch starts the pipeline.
                trigger_on_push=True,
            )
            return action, None
        bucket = DataBucket(self, "Source", encryption_key=data_key, access_logs=access_logs).bucket
        # S3 sends its events to EventBridge itself (S3 user guide, "Using EventBridge"; no
        # extra permission), so an upload starts the pipeline within seconds without the
        # CloudTrail trail of S3 data events that S3Trigger.EVENTS relies on, and without the
        # polling (S3Trigger.POLL) that CodePipeline recommends migrating away from. Set on the
        # L1: the L2's event_bridge_enabled deploys a custom-resource Lambda for it.
        cfn_bucket: s3.CfnBucket = bucket.node.default_child  # type: ignore[assignment]
        cfn_bucket.notification_configuration = s3.CfnBucket.NotificationConfigurationProperty(
            event_bridge_configuration=s3.CfnBucket.EventBridgeConfigurationProperty(
                event_bridge_enabled=True
            )
        )
        action = actions.S3SourceAction(
            action_name="Source",
            bucket=bucket,
            bucket_key=SOURCE_OBJECT_KEY,
            output=output,
            trigger=actions.S3Trigger.NONE,  # the EventBridge rule of _start_on_upload
        )
        return action, bucket

    def _use_connection(self, connection_arn: str | None) -> None:
        """CDK grants codestar-connections:UseConnection on the connection; for a connection
        made since the rename, arn:...:codeconnections:..., IAM needs the action of that
        prefix: "the service prefix needs to match that of the resource" (Developer Tools
        console user guide, "Connections rename - Summary of changes")."""
        if connection_arn is None or ":codeconnections:" not in connection_arn:
            return
        source_stage = self.pipeline.node.find_child("Source")
        role = source_stage.node.find_child("Source").node.find_child("CodePipelineActionRole")
        role.add_to_principal_policy(
            iam.PolicyStatement(
                actions=["codeconnections:UseConnection"], resources=[connection_arn]
            )
        )

    def _start_on_upload(self, bucket: s3.IBucket) -> None:
        self.source_rule = events.Rule(
            self,
            "StartOnUpload",
            description="An upload of the source zip starts the MES delivery pipeline",
            event_pattern=events.EventPattern(
                source=["aws.s3"],
                detail_type=["Object Created"],
                detail={
                    "bucket": {"name": [bucket.bucket_name]},
                    "object": {"key": [SOURCE_OBJECT_KEY]},
                },
            ),
            targets=[targets.CodePipeline(self.pipeline)],
        )
        acknowledge(
            self.source_rule.node.default_child,
            "Serverless-EventBusDLQ",
            "EventBridge retries a failed start for 24 hours; a start still lost shows as an "
            "upload without its execution, and the release is started again by hand or by "
            "uploading again. A queue would only hold that same event.",
        )

    def _project(
        self,
        construct_id: str,
        *,
        description: str,
        build_spec: codebuild.BuildSpec,
        compute_type: codebuild.ComputeType,
        privileged: bool,
        environment: Mapping[str, str],
        timeout: Duration,
        secrets: Mapping[str, str] | None = None,
        vpc: ec2.IVpc | None = None,
    ) -> codebuild.PipelineProject:
        log_group = logs.LogGroup(
            self,
            f"{construct_id}Logs",
            encryption_key=self._logs_key,
            retention=LOG_RETENTION,
            removal_policy=RemovalPolicy.RETAIN,
        )
        variables = _plaintext(environment)
        for name, reference in (secrets or {}).items():
            variables[name] = codebuild.BuildEnvironmentVariable(
                value=reference, type=codebuild.BuildEnvironmentVariableType.SECRETS_MANAGER
            )
        network = {}
        if vpc is not None:
            network = {
                "vpc": vpc,
                "subnet_selection": ec2.SubnetSelection(
                    subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS
                ),
                "security_groups": [self.deploy_security_group],
            }
        return codebuild.PipelineProject(
            self,
            construct_id,
            description=description,
            build_spec=build_spec,
            environment=codebuild.BuildEnvironment(
                build_image=BUILD_IMAGE, compute_type=compute_type, privileged=privileged
            ),
            environment_variables=variables,
            encryption_key=self._data_key,
            logging=codebuild.LoggingOptions(
                cloud_watch=codebuild.CloudWatchLoggingOptions(log_group=log_group)
            ),
            # No test reports are published, so no report-group permissions.
            grant_report_group_permissions=False,
            check_secrets_in_plain_text_env_variables=True,
            timeout=timeout,
            **network,
        )

    def _describe_cluster(self, project: codebuild.PipelineProject, cluster_name: str) -> None:
        """``aws eks update-kubeconfig`` reads the cluster's endpoint and CA: DescribeCluster."""
        project.add_to_role_policy(
            iam.PolicyStatement(
                actions=["eks:DescribeCluster"],
                resources=[
                    Stack.of(self).format_arn(
                        service="eks",
                        resource="cluster",
                        resource_name=cluster_name,
                        arn_format=ArnFormat.SLASH_RESOURCE_NAME,
                    )
                ],
            )
        )

    def _read_bootstrap_brokers(self, project: codebuild.PipelineProject) -> None:
        """``aws kafka get-bootstrap-brokers`` (pipeline/deploy.yml): on "*", the only resource
        the action takes (GET_BOOTSTRAP_BROKERS)."""
        project.add_to_role_policy(
            iam.PolicyStatement(actions=[GET_BOOTSTRAP_BROKERS], resources=["*"])
        )

    def _grant_record_upsert(
        self, project: codebuild.PipelineProject, domain: DomainSettings
    ) -> None:
        """UPSERT of the one CNAME in the one zone: the Route 53 condition keys limit the names
        (lowercase, no trailing dot, as DomainSettings holds them), the type and the action
        (Route 53 developer guide, "Using IAM policy conditions for fine-grained access
        control")."""
        project.add_to_role_policy(
            iam.PolicyStatement(
                actions=["route53:ChangeResourceRecordSets"],
                resources=[
                    Stack.of(self).format_arn(
                        service="route53",
                        region="",
                        account="",
                        resource="hostedzone",
                        resource_name=domain.hosted_zone_id,
                    )
                ],
                conditions={
                    "ForAllValues:StringEquals": {
                        "route53:ChangeResourceRecordSetsNormalizedRecordNames": [
                            domain.record_name
                        ],
                        "route53:ChangeResourceRecordSetsRecordTypes": ["CNAME"],
                        "route53:ChangeResourceRecordSetsActions": ["UPSERT"],
                    }
                },
            )
        )

    def _acknowledge_wildcards(self) -> None:
        """Acknowledge each wildcard cdk-nag finds in the pipeline's and projects' policies,
        each with its reason; a wildcard without a reason here fails the synth."""
        stack = Stack.of(self)
        artifacts = _nag_resource(self.artifact_bucket, f"{self.artifact_bucket.bucket_arn}/*")
        reasons = {
            f"Resource::{artifacts}": (
                "The pipeline's artifact bucket, made for this pipeline alone: each execution "
                "writes and reads its artifacts under keys CodePipeline chooses."
            ),
            "Action::s3:GetObject*": ARTIFACTS_REASON,
            "Action::s3:GetBucket*": ARTIFACTS_REASON,
            "Action::s3:List*": ARTIFACTS_REASON,
            "Action::s3:DeleteObject*": ARTIFACTS_REASON,
            "Action::s3:Abort*": ARTIFACTS_REASON,
            "Action::kms:GenerateDataKey*": KMS_REASON,
            "Action::kms:ReEncrypt*": KMS_REASON,
            "Resource::*": (
                "ecr:GetAuthorizationToken (build), the network-interface describes and "
                "creates of a CodeBuild project in a VPC (deploy) and kafka:GetBootstrapBrokers "
                "(deploy, MSK service bus: read-only broker endpoints) support no resource-level "
                "permissions (Service Authorization Reference: Amazon ECR, Amazon EC2, Amazon "
                "Managed Streaming for Apache Kafka)."
            ),
            f"Resource::{_nag_resource(self.deploy_project, self._network_interfaces())}": (
                "CodeBuild in the VPC creates a network interface per build, whose id is not "
                "known beforehand; CreateNetworkInterfacePermission is conditioned on the "
                "deploy stage's own subnets."
            ),
        }
        projects = [self.build_project, self.deploy_project, self.edge_deploy_project]
        for project in filter(None, projects):
            default_logs = stack.format_arn(
                service="logs",
                resource="log-group",
                resource_name=f"/aws/codebuild/{project.project_name}",
                arn_format=ArnFormat.COLON_RESOURCE_NAME,
            )
            reasons[f"Resource::{_nag_resource(project, default_logs + ':*')}"] = (
                "CodeBuild's default log group of this project (/aws/codebuild/<project>), which "
                "CDK grants with every project: ':*' is its log streams, one per build."
            )
        policies = [
            child
            for construct in self.node.find_all()
            for child in construct.node.children
            if isinstance(child, iam.Policy)
        ]
        for policy in policies:
            for finding in sorted(_wildcard_findings(policy)):
                if finding not in reasons:
                    raise ValueError(f"{policy.node.path}: no reason for the wildcard {finding}")
                acknowledge(
                    policy.node.default_child, f"AwsSolutions-IAM5[{finding}]", reasons[finding]
                )

    def _network_interfaces(self) -> str:
        # As CodeBuild's VPC policy writes it (pseudo parameters, whatever the stack's env).
        return f"arn:{Aws.PARTITION}:ec2:{Aws.REGION}:{Aws.ACCOUNT_ID}:network-interface/*"


ARTIFACTS_REASON = (
    "CodePipeline's and CodeBuild's artifact grants on the pipeline's own artifact bucket: the "
    "actions read and write whole artifacts (objects, versions, multipart uploads) there only."
)
KMS_REASON = (
    "The artifacts, the approval topic and the build logs are encrypted with the platform data "
    "key: the only key in that statement, used through S3, SNS and CodeBuild."
)


def _nag_resource(scope: Construct, value: str) -> str:
    """A resource as cdk-nag writes it in a finding."""
    return nag_resource(Stack.of(scope).resolve(value))


def _wildcard_findings(policy: iam.Policy) -> set[str]:
    """The IAM5 findings of ``policy`` as cdk-nag names them: wildcard actions and resources."""
    document = Stack.of(policy).resolve(policy.document)
    findings = set()
    for statement in document.get("Statement", []):
        for action in _as_list(statement.get("Action")):
            if "*" in action:
                findings.add(f"Action::{action}")
        for resource in _as_list(statement.get("Resource")):
            text = nag_resource(resource)
            if "*" in text:
                findings.add(f"Resource::{text}")
    return findings


def _as_list(value) -> list:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]
