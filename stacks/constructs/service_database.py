"""RDS for PostgreSQL of the containerised MES services: one instance, a database and login role
per service (made by the deploy stage's ``services.bootstrap_database``), pods signing in with
IAM database authentication."""

from __future__ import annotations

from aws_cdk import Duration, Fn, RemovalPolicy, Stack
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_rds as rds
from constructs import Construct

from mes_domain.containers import DB_INSTANCE_IDENTIFIER, DatabaseSettings
from stacks.compliance import acknowledge
from stacks.constructs.log_groups import retained_log_group

# RDS for PostgreSQL 17, the newest major in aws-cdk-lib 2.275's PostgresEngineVersion, at its
# newest minor there (cfn-lint W3691 lists the bare major "17" among versions RDS no longer
# creates). Auto minor version upgrade moves it on to newer minors in the maintenance window.
ENGINE_VERSION = rds.PostgresEngineVersion.VER_17_9
POSTGRES_PORT = 5432
# Only the deploy stage signs in as the master user, to create the services' databases and roles.
MASTER_USERNAME = "mes_admin"
# "Log exports: postgresql, upgrade" are the RDS for PostgreSQL log types (RDS user guide,
# USER_LogAccess.Concepts.PostgreSQL.html); RDS writes them to these log groups.
LOG_EXPORTS = ("postgresql", "upgrade")
# Storage autoscaling and a gp3 volume; the services' OLTP load at one plant is small.
STORAGE_TYPE = rds.StorageType.GP3


def log_group_name(identifier: str, log_type: str) -> str:
    """Where RDS publishes ``log_type`` of instance ``identifier``: /aws/rds/instance/<id>/<type>
    (RDS user guide, "Publishing database logs to Amazon CloudWatch Logs")."""
    return f"/aws/rds/instance/{identifier}/{log_type}"


class ServiceDatabase(Construct):
    """``instance``, its ``security_group`` (no ingress until a client is allowed), the
    ``master_secret`` that RDS manages and rotates, and ``resource_id`` for rds-db:connect."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        vpc: ec2.IVpc,
        subnets: ec2.SubnetSelection,
        settings: DatabaseSettings,
        identifier: str,
        data_key: kms.IKey,
        logs_key: kms.IKey,
        log_retention_days: int,
    ) -> None:
        super().__init__(scope, construct_id)
        problem = DB_INSTANCE_IDENTIFIER.problem(identifier)
        if problem:
            raise ValueError(f"RDS DB instance identifier {identifier!r}: {problem}")
        self.security_group = ec2.SecurityGroup(
            self,
            "SecurityGroup",
            vpc=vpc,
            description="PostgreSQL of the MES services: 5432 from the clients allowed explicitly",
            allow_all_outbound=False,
        )
        engine = rds.DatabaseInstanceEngine.postgres(version=ENGINE_VERSION)
        parameters = rds.ParameterGroup(
            self,
            "Parameters",
            engine=engine,
            description="MES services: TLS required for every connection",
            # "rds.force_ssl ... set to 1 (on) to require SSL/TLS" (RDS user guide,
            # PostgreSQL.Concepts.General.SSL.html, "Requiring an SSL connection").
            parameters={"rds.force_ssl": "1"},
        )
        # RDS creates the export log groups unencrypted and kept forever; made here first, they
        # are encrypted with the logs key and expire with the plant's log retention.
        log_groups = []
        for log_type in LOG_EXPORTS:
            group = retained_log_group(
                self,
                f"{log_type.capitalize()}Logs",
                log_group_name=log_group_name(identifier, log_type),
                logs_key=logs_key,
                retention_days=log_retention_days,
            )
            log_groups.append(group)

        self.instance = rds.DatabaseInstance(
            self,
            "Instance",
            instance_identifier=identifier,
            engine=engine,
            instance_type=ec2.InstanceType(settings.instance_class.removeprefix("db.")),
            vpc=vpc,
            vpc_subnets=subnets,
            security_groups=[self.security_group],
            port=POSTGRES_PORT,
            publicly_accessible=False,
            multi_az=settings.multi_az,
            parameter_group=parameters,
            # RDS generates the master password, keeps it in Secrets Manager encrypted with the
            # data key, and rotates it itself ("RDS manages the secret's settings, and rotates it
            # every seven days by default": RDS user guide, rds-secrets-manager.html).
            manage_master_user_password=True,
            credentials=rds.Credentials.from_username(MASTER_USERNAME, encryption_key=data_key),
            iam_authentication=True,
            storage_encrypted=True,
            storage_encryption_key=data_key,
            storage_type=STORAGE_TYPE,
            allocated_storage=settings.allocated_storage_gib,
            max_allocated_storage=settings.max_allocated_storage_gib,
            backup_retention=Duration.days(settings.backup_retention_days),
            delete_automated_backups=False,
            deletion_protection=True,
            removal_policy=RemovalPolicy.SNAPSHOT,
            copy_tags_to_snapshot=True,
            auto_minor_version_upgrade=True,
            allow_major_version_upgrade=False,
            ca_certificate=rds.CaCertificate.RDS_CA_RSA2048_G1,
            cloudwatch_logs_exports=list(LOG_EXPORTS),
            # 7 days of Performance Insights are free; its data encrypted with the data key.
            enable_performance_insights=True,
            performance_insight_retention=rds.PerformanceInsightRetention.DEFAULT,
            performance_insight_encryption_key=data_key,
        )
        for group in log_groups:
            self.instance.node.add_dependency(group)
        self.master_secret = self.instance.secret
        self._secret_key = data_key
        self.resource_id = self.instance.instance_resource_id

        cfn = self.instance.node.default_child
        acknowledge(
            cfn,
            "AwsSolutions-RDS11",
            "The default port 5432 is kept: the instance is in isolated subnets, its security "
            "group admits only the clients allowed explicitly, every connection needs TLS and "
            "an IAM token, so a non-default port would hide nothing; the pods' MES_DATABASE_URL "
            "names 5432.",
        )
        if not settings.multi_az:
            acknowledge(
                cfn,
                "AwsSolutions-RDS3",
                "Multi-AZ is the plant config's switch containers.database.multi_az, off for this "
                "plant: a single-AZ instance restored from its automated backups is the accepted "
                "recovery for it.",
            )

    def grant_master_secret_read(self, grantee: iam.IGrantable) -> None:
        """Read the master secret (the deploy stage, to bootstrap databases and roles), in the
        grantee's own policy only: the secret's grant_read would also add the grantee to the
        data key's policy in the platform stack, a cyclic reference for a grantee in a stack
        built on this one. The key policy lets IAM policies of the account grant its use."""
        stack = Stack.of(self)
        iam.Grant.add_to_principal(
            grantee=grantee,
            actions=["secretsmanager:GetSecretValue", "secretsmanager:DescribeSecret"],
            resource_arns=[self.master_secret.secret_arn],
        )
        iam.Grant.add_to_principal(
            grantee=grantee,
            actions=["kms:Decrypt"],
            resource_arns=[self._secret_key.key_arn],
            conditions={
                "StringEquals": {"kms:ViaService": f"secretsmanager.{stack.region}.amazonaws.com"}
            },
        )

    def allow_client(self, peer: ec2.ISecurityGroup, description: str) -> None:
        """Admit ``peer`` on 5432. The rule is made in the peer's stack (``remote_rule``), so a
        stack built on this one can call it without a cyclic reference."""
        self.security_group.add_ingress_rule(
            peer, ec2.Port.tcp(POSTGRES_PORT), description, remote_rule=True
        )

    def grant_connect(self, grantee: iam.IGrantable, database_user: str) -> iam.Grant:
        """rds-db:connect as ``database_user`` only:
        arn:${Partition}:rds-db:${Region}:${Account}:dbuser:${DbiResourceId}/${DbUserName}
        (RDS user guide, UsingWithRDS.IAMDBAuth.IAMPolicy.html)."""
        stack = Stack.of(self)
        user_arn = Fn.join(
            "",
            [
                f"arn:{stack.partition}:rds-db:{stack.region}:{stack.account}:dbuser:",
                self.resource_id,
                f"/{database_user}",
            ],
        )
        return iam.Grant.add_to_principal(
            grantee=grantee, actions=["rds-db:connect"], resource_arns=[user_arn]
        )
