"""The quality experts' REST API behind a Cognito user pool: upload URLs for dataset images,
start a training, list models with their cards, approve or reject, deployment status.

Request bodies are validated by API Gateway against the JSON schemas of the handler's own
pydantic models, so the gateway and the handler cannot disagree on what a valid body is.
"""

from __future__ import annotations

from aws_cdk import RemovalPolicy, Stack
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_cognito as cognito
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from lambdas.quality_api.contract import DecisionRequest, EnvVar, UploadRequest
from mes_domain.fleet import model_thing_group_name
from mes_domain.naming import approvers_group_name, quality_user_pool_name
from mes_domain.plant import Plant
from mes_domain.schemas import draft04
from stacks.compliance import acknowledge
from stacks.constructs.lambda_packaging import LambdaPackaging
from stacks.constructs.mes_function import TRACING_REASON, MesFunction
from stacks.constructs.model_pipeline import deployment_statements
from stacks.constructs.plant_config_layer import PlantConfigLayer
from stacks.constructs.quality_storage import QualityStorage
from stacks.constructs.rest_api import PlatformRestApi
from stacks.constructs.tables import grant_table

THROTTLE_RATE = 20  # requests per second: a handful of experts and their upload tools
THROTTLE_BURST = 40


class QualityApi(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        plant: Plant,
        storage: QualityStorage,
        state_machine: sfn.IStateMachine,
        packaging: LambdaPackaging,
        logs_key: kms.IKey,
    ) -> None:
        super().__init__(scope, construct_id)
        prefix = self._prefix = plant.deployment.stack_prefix
        self.user_pool = cognito.UserPool(
            self,
            "Experts",
            user_pool_name=quality_user_pool_name(prefix),
            self_sign_up_enabled=False,  # administrators invite the quality experts
            sign_in_aliases=cognito.SignInAliases(email=True),
            mfa=cognito.Mfa.REQUIRED,
            mfa_second_factor=cognito.MfaSecondFactor(otp=True, sms=False),
            password_policy=cognito.PasswordPolicy(
                min_length=12,
                require_digits=True,
                require_lowercase=True,
                require_uppercase=True,
                require_symbols=True,
            ),
            account_recovery=cognito.AccountRecovery.EMAIL_ONLY,
            removal_policy=RemovalPolicy.RETAIN,
        )
        acknowledge(  # cdk-nag 3 checks threat protection as COG8 (the Plus plan)
            self.user_pool.node.default_child,
            "AwsSolutions-COG8",
            "Threat protection needs Cognito's Plus plan; a pool of invited experts with "
            "required TOTP MFA and a 12-character policy covers this API's risk.",
        )
        # Who may decide on a site's models: the members of its approvers group (the API also
        # refuses an approval by the expert who requested the training).
        self.approver_groups = {
            site: cognito.CfnUserPoolGroup(
                self,
                f"Approvers-{site}",
                user_pool_id=self.user_pool.user_pool_id,
                group_name=approvers_group_name(site),
                description=f"Quality experts who may approve or reject models of site {site}",
            )
            for site in sorted({ref.site.id for ref in plant.stations() if ref.station.camera})
        }
        self.client = self.user_pool.add_client(
            "Console", auth_flows=cognito.AuthFlow(user_srp=True), generate_secret=False
        )

        self.handler = MesFunction(
            self,
            "Handler",
            handler="lambdas.quality_api.handler.lambda_handler",
            description="Quality experts' API: datasets, trainings, models, approvals",
            packaging=packaging,
            logs_key=logs_key,
            log_retention_days=plant.retention.log_days,
            extra_layers=[PlantConfigLayer(self, "Plant", plant=plant).layer],
            environment={
                EnvVar.DATASET_BUCKET.value: storage.dataset_bucket.bucket_name,
                EnvVar.MODELS_TABLE.value: storage.models_table.table_name,
                EnvVar.STATE_MACHINE_ARN.value: state_machine.state_machine_arn,
                "POWERTOOLS_SERVICE_NAME": "quality_api",
            },
        )
        role = self.handler.role
        # Pre-signed URLs carry this role's permission to put images, nothing else.
        storage.dataset_bucket.grant_put(role, "datasets/*")
        grant_table(
            storage.models_table, role, "dynamodb:GetItem", "dynamodb:Query", "dynamodb:UpdateItem"
        )
        state_machine.grant_start_execution(role)
        # SendTask* support no resource-level permissions (Service Authorization Reference,
        # list_awsstepfunctions): only "*" grants them; the task token names the execution.
        role.add_to_policy(
            iam.PolicyStatement(
                actions=["states:SendTaskSuccess", "states:SendTaskFailure"],
                resources=["*"],
            )
        )
        for statement in deployment_statements(Stack.of(self), prefix):
            role.add_to_policy(statement)

        rest = PlatformRestApi(
            self,
            "Rest",
            plant=plant,
            name="quality",
            description="Quality inspection: datasets, model training and approval",
            logs_key=logs_key,
            throttle_rate=THROTTLE_RATE,
            throttle_burst=THROTTLE_BURST,
            firewall_reason=(
                "A regional API for a few signed-in experts, throttled per stage; a WAF web ACL "
                "is the account's perimeter choice and can be associated without code changes."
            ),
        )
        self.api = rest.api
        authorizer = apigw.CognitoUserPoolsAuthorizer(
            self, "Authorizer", cognito_user_pools=[self.user_pool]
        )
        integration = apigw.LambdaIntegration(self.handler.function)
        options = {
            "authorizer": authorizer,
            "authorization_type": apigw.AuthorizationType.COGNITO,
            "request_validator": rest.validator,
        }

        def body_of(model, name: str) -> dict:
            return rest.body_model(name, draft04(model.model_json_schema()))

        station = (
            self.api.root.add_resource("stations")
            .add_resource("{site}")
            .add_resource("{line}")
            .add_resource("{station}")
        )
        station.add_resource("uploads").add_method(
            "POST", integration, request_models=body_of(UploadRequest, "UploadRequest"), **options
        )
        station.add_resource("trainings").add_method("POST", integration, **options)
        models = station.add_resource("models")
        models.add_method("GET", integration, **options)
        model = models.add_resource("{version}")
        model.add_method("GET", integration, **options)
        model.add_resource("decision").add_method(
            "POST",
            integration,
            request_models=body_of(DecisionRequest, "DecisionRequest"),
            **options,
        )
        model.add_resource("deployment").add_method("GET", integration, **options)
        self._acknowledge(storage)

    def _acknowledge(self, storage: QualityStorage) -> None:
        stack = Stack.of(self)
        policy = self.handler.role.node.find_child("DefaultPolicy")
        bucket = stack.get_logical_id(storage.dataset_bucket.node.default_child)
        for finding, reason in {
            "AwsSolutions-IAM5[Resource::*]": (
                f"{TRACING_REASON} states:SendTaskSuccess and SendTaskFailure (the expert's "
                "decision) support none either; only a caller holding the task token can answer."
            ),
            "AwsSolutions-IAM5[Action::kms:GenerateDataKey*]": (
                "From grant_put on the KMS-encrypted dataset bucket; the platform data key only."
            ),
            "AwsSolutions-IAM5[Action::kms:ReEncrypt*]": (
                "From grant_put on the KMS-encrypted dataset bucket; the platform data key only."
            ),
            "AwsSolutions-IAM5[Action::s3:Abort*]": (
                "From grant_put: a failed multipart upload of an image, under datasets/ only."
            ),
            f"AwsSolutions-IAM5[Resource::<{bucket}.Arn>/datasets/*]": (
                "Experts upload images of any camera station's dataset, under datasets/ only; "
                "the keys are made per upload."
            ),
            "AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:greengrass:<AWS::Region>:"
            "<AWS::AccountId>:deployments:*]": (
                "Read-only status of the deployment a model record names, known at run time."
            ),
            "AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:iot:<AWS::Region>:"
            "<AWS::AccountId>:job/*]": (
                "GetDeployment reads the deployment's IoT job, whose id Greengrass chose."
            ),
            "AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:iot:<AWS::Region>:"
            "<AWS::AccountId>:thinggroup/"
            f"{model_thing_group_name(self._prefix, '*', '*', '*')}]": (
                "GetDeployment describes its target, a camera station's model group "
                "(<prefix>-<site>-<line>:<station>:models), where models are released."
            ),
        }.items():
            acknowledge(policy, finding, reason)
        acknowledge(
            self.handler.function.node.default_child,
            "Serverless-LambdaDLQ",
            "Invoked synchronously by API Gateway, which returns its errors to the caller.",
        )
