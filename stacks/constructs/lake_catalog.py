"""The lake's Glue catalog: a database, one table per ``mes_domain.lake`` table (declared, with
partition projection), and a crawler for the ERP/PLM landing zone, whose files have no schema
known in advance.

The catalog's own encryption (``AWS::Glue::DataCatalogEncryptionSettings``) is one setting per
account and region, shared with every other catalog user of the account, so this app does not
own it; the table definitions hold no data, and the data is encrypted in S3 with the data key.
"""

from __future__ import annotations

from collections.abc import Sequence

import jsii
from aws_cdk import ArnFormat, Stack
from aws_cdk import aws_glue as glue
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from constructs import Construct, IConstruct, IValidation

from mes_domain import lake
from stacks.compliance import acknowledge, nag_resource

PARQUET_INPUT = "org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat"
PARQUET_OUTPUT = "org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat"
PARQUET_SERDE = "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe"
# Once a day, after the night's ERP exports (UTC).
CRAWLER_SCHEDULE = "cron(30 3 * * ? *)"
LANDING_TABLE_PREFIX = "landing_"


@jsii.implements(IValidation)
class AcknowledgeWhenPrepared:
    """Acknowledges an IAM5 finding on a resource ARN that names another stack's resource:
    validations run after the app is prepared, when the reference has its final form, and
    before the cdk-nag plugins read the acknowledgements."""

    def __init__(self, policy: IConstruct, resource: str, reason: str) -> None:
        self._policy, self._resource, self._reason = policy, resource, reason

    def validate(self) -> list[str]:
        finding = nag_resource(Stack.of(self._policy).resolve(self._resource))
        acknowledge(self._policy, f"AwsSolutions-IAM5[Resource::{finding}]", self._reason)
        return []


def table_input(table: lake.LakeTable, bucket_name: str, site_ids: Sequence[str]) -> dict:
    """The Glue TableInput of a lake table: external Parquet, partitioned by site and day."""
    return {
        "name": table.name,
        "description": table.description,
        "tableType": "EXTERNAL_TABLE",
        "parameters": {
            "classification": "parquet",
            "EXTERNAL": "TRUE",
            **table.projection(bucket_name, site_ids),
        },
        "partitionKeys": [{"name": c.name, "type": c.type} for c in table.partition_keys],
        "storageDescriptor": {
            "columns": [{"name": c.name, "type": c.type} for c in table.columns],
            "location": table.location(bucket_name),
            "inputFormat": PARQUET_INPUT,
            "outputFormat": PARQUET_OUTPUT,
            "serdeInfo": {
                "serializationLibrary": PARQUET_SERDE,
                "parameters": {"serialization.format": "1"},
            },
            "compressed": False,  # Parquet compresses its pages itself (GZIP)
            "storedAsSubDirectories": False,
        },
    }


class LakeCatalog(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        database_name: str,
        curated: s3.IBucket,
        site_ids: Sequence[str],
        landing_bucket: s3.IBucket,
        landing_prefix: str,
        data_key: kms.IKey,
        logs_key: kms.IKey,
    ) -> None:
        super().__init__(scope, construct_id)
        stack = Stack.of(self)
        self.database_name = database_name
        self.database = glue.CfnDatabase(
            self,
            "Database",
            catalog_id=stack.account,
            database_input={
                "name": database_name,
                "description": "The MES data lake: Parquet tables from the mes_domain contracts",
            },
        )
        self.tables: dict[str, glue.CfnTable] = {}
        for table in lake.TABLES:
            cfn_table = glue.CfnTable(
                self,
                f"Table-{table.name}",
                catalog_id=stack.account,
                database_name=database_name,
                table_input=table_input(table, curated.bucket_name, site_ids),
            )
            cfn_table.node.add_dependency(self.database)
            self.tables[table.name] = cfn_table
        self._crawler(database_name, landing_bucket, landing_prefix, data_key, logs_key)

    def table_arn(self, name: str) -> str:
        return Stack.of(self).format_arn(
            service="glue", resource="table", resource_name=f"{self.database_name}/{name}"
        )

    @property
    def database_arn(self) -> str:
        return Stack.of(self).format_arn(
            service="glue", resource="database", resource_name=self.database_name
        )

    @property
    def catalog_arn(self) -> str:
        return Stack.of(self).format_arn(service="glue", resource="catalog")

    def _crawler(
        self,
        database_name: str,
        landing_bucket: s3.IBucket,
        landing_prefix: str,
        data_key: kms.IKey,
        logs_key: kms.IKey,
    ) -> None:
        stack = Stack.of(self)
        security = glue.CfnSecurityConfiguration(
            self,
            "CrawlerSecurity",
            name=f"{database_name}-landing-crawler",
            encryption_configuration={
                "cloudWatchEncryption": {
                    "cloudWatchEncryptionMode": "SSE-KMS",
                    "kmsKeyArn": logs_key.key_arn,
                },
                "jobBookmarksEncryption": {
                    "jobBookmarksEncryptionMode": "CSE-KMS",
                    "kmsKeyArn": data_key.key_arn,
                },
                "s3Encryptions": [{"s3EncryptionMode": "SSE-KMS", "kmsKeyArn": data_key.key_arn}],
            },
        )
        self.crawler_role = iam.Role(
            self, "CrawlerRole", assumed_by=iam.ServicePrincipal("glue.amazonaws.com")
        )
        role = self.crawler_role
        landing_objects = landing_bucket.arn_for_objects(f"{landing_prefix}*")
        role.add_to_policy(
            iam.PolicyStatement(actions=["s3:GetObject"], resources=[landing_objects])
        )
        role.add_to_policy(
            iam.PolicyStatement(
                actions=["s3:ListBucket"],
                resources=[landing_bucket.bucket_arn],
                conditions={"StringLike": {"s3:prefix": [f"{landing_prefix}*"]}},
            )
        )
        data_key.grant_decrypt(role)
        landing_tables = self.table_arn(f"{LANDING_TABLE_PREFIX}*")
        role.add_to_policy(
            iam.PolicyStatement(
                actions=[
                    "glue:GetDatabase",
                    "glue:GetTable",
                    "glue:GetTables",
                    "glue:CreateTable",
                    "glue:UpdateTable",
                    "glue:GetPartition",
                    "glue:GetPartitions",
                    "glue:BatchGetPartition",
                    "glue:CreatePartition",
                    "glue:BatchCreatePartition",
                    "glue:UpdatePartition",
                ],
                resources=[self.catalog_arn, self.database_arn, landing_tables],
            )
        )
        role.add_to_policy(
            iam.PolicyStatement(
                actions=["glue:GetSecurityConfiguration"],
                resources=["*"],  # security configurations have no ARN in IAM
            )
        )
        crawler_logs = stack.format_arn(
            service="logs",
            resource="log-group",
            resource_name="/aws-glue/crawlers*",
            arn_format=ArnFormat.COLON_RESOURCE_NAME,
        )
        role.add_to_policy(
            iam.PolicyStatement(
                actions=[
                    "logs:CreateLogGroup",
                    "logs:CreateLogStream",
                    "logs:PutLogEvents",
                    "logs:AssociateKmsKey",
                ],
                resources=[crawler_logs],
            )
        )
        self.crawler = glue.CfnCrawler(
            self,
            "LandingCrawler",
            role=role.role_arn,
            database_name=database_name,
            description="ERP/PLM files as they land: their schema is the crawler's guess",
            table_prefix=LANDING_TABLE_PREFIX,
            targets={
                "s3Targets": [{"path": f"s3://{landing_bucket.bucket_name}/{landing_prefix}"}]
            },
            schedule={"scheduleExpression": CRAWLER_SCHEDULE},
            crawler_security_configuration=security.ref,
            schema_change_policy={"updateBehavior": "UPDATE_IN_DATABASE", "deleteBehavior": "LOG"},
        )
        self.crawler.node.add_dependency(self.database)
        policy = role.node.find_child("DefaultPolicy")
        # The exchange bucket is another stack's: its ARN takes its final form (a reference to
        # that stack's output) only once the app is prepared, so acknowledge it then.
        policy.node.add_validation(
            AcknowledgeWhenPrepared(
                policy,
                landing_objects,
                "The crawler reads every file that lands under the exchange bucket's inbound/ "
                "prefix (any source, type and name), nothing else of the bucket.",
            )
        )
        acknowledge(
            policy,
            "AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:glue:<AWS::Region>:"
            f"<AWS::AccountId>:table/{database_name}/{LANDING_TABLE_PREFIX}*]",
            "The crawler creates and updates the landing_ tables it finds in the landing zone; "
            "their names come from the folders it finds.",
        )
        acknowledge(
            policy,
            "AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:logs:<AWS::Region>:"
            "<AWS::AccountId>:log-group:/aws-glue/crawlers*]",
            "Glue names the crawler's log group after the crawler and its security "
            "configuration at run time, always under /aws-glue/crawlers.",
        )
        acknowledge(
            policy,
            "AwsSolutions-IAM5[Resource::*]",
            "glue:GetSecurityConfiguration takes no resource ARN (Glue's service authorization "
            "reference lists no resource type for it).",
        )
