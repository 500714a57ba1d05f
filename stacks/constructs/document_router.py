"""The ERP/PLM document router, twice over one code path: on files arriving in the exchange
bucket (through the arrivals queue) and behind ``POST /documents/{source}/{type}``.

The API is for ERP and PLM middleware, not people: callers sign with IAM (SigV4) and carry an
API key, whose usage plan throttles them. Each inbox is its own resource, so API Gateway checks
the body against that document type's JSON schema before the function runs.
"""

from __future__ import annotations

from aws_cdk import Stack
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_events as events
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from constructs import Construct

from lambdas.erp_plm_router.contract import INBOXES, EnvVar, request_schema
from mes_domain.plant import Plant
from stacks.compliance import acknowledge
from stacks.constructs.enterprise_storage import EnterpriseStorage
from stacks.constructs.lambda_packaging import LambdaPackaging
from stacks.constructs.mes_function import TRACING_REASON, MesFunction
from stacks.constructs.rest_api import PlatformRestApi
from stacks.constructs.tables import grant_table

ROUTER_TIMEOUT_S = 900  # a 100,000-row file is routed in one invocation
ARRIVALS_BATCH = 5
THROTTLE_RATE = 50  # documents requests per second across ERP and PLM
THROTTLE_BURST = 100
STORE_ACTIONS = ("dynamodb:BatchGetItem", "dynamodb:GetItem", "dynamodb:PutItem")
IDEMPOTENCY_ACTIONS = (
    "dynamodb:GetItem",
    "dynamodb:PutItem",
    "dynamodb:UpdateItem",
    "dynamodb:DeleteItem",
)


class DocumentRouter(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        plant: Plant,
        storage: EnterpriseStorage,
        packaging: LambdaPackaging,
        logs_key: kms.IKey,
        event_bus: events.IEventBus,
    ) -> None:
        """``event_bus``: the platform bus, where the router puts each production order it
        stores for the first time (``mes_domain.lake``; the DataLake stack's rule takes it)."""
        super().__init__(scope, construct_id)
        stores = {
            EnvVar.ORDERS_TABLE: storage.orders_table,
            EnvVar.PRODUCTS_TABLE: storage.products_table,
            EnvVar.PROCESS_PLANS_TABLE: storage.process_plans_table,
            EnvVar.INVENTORY_TABLE: storage.inventory_table,
        }
        environment = {
            **{key.value: table.table_name for key, table in stores.items()},
            EnvVar.IDEMPOTENCY_TABLE.value: storage.idempotency_table.table_name,
            EnvVar.EVENT_BUS_NAME.value: event_bus.event_bus_name,
            "POWERTOOLS_SERVICE_NAME": "erp_plm_router",
        }

        def router(construct_id_: str, handler: str, description: str, **options) -> MesFunction:
            function = MesFunction(
                self,
                construct_id_,
                handler=f"lambdas.erp_plm_router.{handler}.lambda_handler",
                description=description,
                packaging=packaging,
                logs_key=logs_key,
                log_retention_days=plant.retention.log_days,
                **options,
            )
            for table in stores.values():
                grant_table(table, function.role, *STORE_ACTIONS)
            grant_table(storage.idempotency_table, function.role, *IDEMPOTENCY_ACTIONS)
            event_bus.grant_put_events_to(function.role)
            return function

        bucket = storage.exchange_bucket
        self.files = router(
            "Files",
            "s3_handler",
            "ERP/PLM files from the exchange bucket -> the MES stores, or quarantine",
            memory_size=1024,
            timeout_seconds=ROUTER_TIMEOUT_S,
            environment={**environment, EnvVar.LANDING_BUCKET.value: bucket.bucket_name},
        )
        self.s3_function = self.files.function
        # Objects under inbound/ only: no bucket-level listing (grant_read would add List* and
        # GetBucket* on the whole bucket, which the router never calls).
        self.files.role.add_to_principal_policy(
            iam.PolicyStatement(
                actions=["s3:GetObject*"], resources=[bucket.arn_for_objects("inbound/*")]
            )
        )
        bucket.grant_put(self.files.role, "archive/*")
        bucket.grant_put(self.files.role, "quarantine/*")
        self.files.consume(storage.arrivals, batch_size=ARRIVALS_BATCH)

        self.documents = router(
            "Documents",
            "api_handler",
            "ERP/PLM documents posted to the API -> the MES stores",
            environment=environment,
        )
        self.api = self._api(plant, logs_key)
        self._acknowledge(storage)

    def _api(self, plant: Plant, logs_key: kms.IKey) -> apigw.RestApi:
        prefix = plant.deployment.stack_prefix
        rest = PlatformRestApi(
            self,
            "Rest",
            plant=plant,
            name="documents",
            description="ERP and PLM documents in: production orders, material master, BOMs, "
            "inventory, routings",
            logs_key=logs_key,
            throttle_rate=THROTTLE_RATE,
            throttle_burst=THROTTLE_BURST,
            firewall_reason=(
                "A regional API for two enterprise systems that sign with IAM and carry API "
                "keys, throttled by a usage plan; a WAF web ACL can be associated without code "
                "changes."
            ),
        )
        api = rest.api
        integration = apigw.LambdaIntegration(self.documents.function)
        documents = api.root.add_resource("documents")
        for source, doc_types in INBOXES.items():
            source_resource = documents.add_resource(source.value)
            for doc_type in doc_types:
                name = f"{source.value.title()}{doc_type.value.title().replace('-', '')}"
                source_resource.add_resource(doc_type.value).add_method(
                    "POST",
                    integration,
                    authorization_type=apigw.AuthorizationType.IAM,
                    api_key_required=True,
                    request_validator=rest.validator,
                    request_models=rest.body_model(name, request_schema(doc_type)),
                )
        plan = api.add_usage_plan(
            "UsagePlan",
            name=f"{prefix}-documents",
            throttle=apigw.ThrottleSettings(rate_limit=THROTTLE_RATE, burst_limit=THROTTLE_BURST),
            api_stages=[apigw.UsagePlanPerApiStage(api=api, stage=api.deployment_stage)],
        )
        for system in ("erp", "plm"):
            plan.add_api_key(
                api.add_api_key(f"{system.title()}Key", api_key_name=f"{prefix}-{system}")
            )
        return api

    def _acknowledge(self, storage: EnterpriseStorage) -> None:
        stack = Stack.of(self)
        for method in self.api.methods:
            acknowledge(
                method.node.default_child,
                "AwsSolutions-COG4",
                "Machine-to-machine: ERP and PLM middleware sign requests with IAM (SigV4), "
                "which API Gateway authorizes; there are no user sign-ins to pool.",
            )
        bucket = f"<{stack.get_logical_id(storage.exchange_bucket.node.default_child)}.Arn>"
        findings = {
            "AwsSolutions-IAM5[Resource::*]": TRACING_REASON,
            "AwsSolutions-IAM5[Action::kms:GenerateDataKey*]": (
                "From grant_put on the KMS-encrypted exchange bucket: S3 encrypts what the "
                "router writes to archive/ and quarantine/ with the platform data key, the only "
                "key in that statement."
            ),
            "AwsSolutions-IAM5[Action::kms:ReEncrypt*]": (
                "From grant_put on the KMS-encrypted exchange bucket; the platform data key only."
            ),
            "AwsSolutions-IAM5[Action::s3:GetObject*]": (
                "The arriving files under inbound/, by version, with their tags for the copy to "
                "archive/ and quarantine/; no other prefix."
            ),
            "AwsSolutions-IAM5[Action::s3:Abort*]": (
                "From grant_put: a quarantine object is a multipart upload, aborted when the "
                "import fails; under archive/ and quarantine/ only."
            ),
            f"AwsSolutions-IAM5[Resource::{bucket}/inbound/*]": (
                "Files arrive under inbound/{source}/{type}/ with names chosen by ERP and PLM."
            ),
            f"AwsSolutions-IAM5[Resource::{bucket}/archive/*]": (
                "Every original is copied to archive/ before it is routed."
            ),
            f"AwsSolutions-IAM5[Resource::{bucket}/quarantine/*]": (
                "Rejected documents and their error reports go to quarantine/."
            ),
        }
        files_policy = self.files.role.node.find_child("DefaultPolicy")
        for finding, reason in findings.items():
            acknowledge(files_policy, finding, reason)
        self.documents.acknowledge_policy({"AwsSolutions-IAM5[Resource::*]": TRACING_REASON})
        acknowledge(
            self.documents.function.node.default_child,
            "Serverless-LambdaDLQ",
            "Invoked synchronously by API Gateway, which returns its errors to the caller.",
        )
