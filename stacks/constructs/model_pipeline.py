"""The quality model pipeline: validate the dataset, train, evaluate against the gate, register,
wait for a quality expert's approval, publish the model as a Greengrass component version and
deploy it to the camera station's own gateway group (never the line's group).

The state machine is built from CDK task constructs; each step is a function of its own, with a
role that holds only what that step touches (``lambdas/model_pipeline``).
"""

from __future__ import annotations

from collections.abc import Mapping

from aws_cdk import ArnFormat, Duration, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_stepfunctions as sfn
from aws_cdk import aws_stepfunctions_tasks as tasks
from constructs import Construct

from lambdas.model_pipeline.contract import EnvVar
from mes_domain.fleet import model_thing_group_name
from mes_domain.naming import model_pipeline_name
from mes_domain.plant import Plant
from stacks.compliance import acknowledge
from stacks.constructs.lambda_packaging import LambdaPackaging
from stacks.constructs.log_groups import retained_log_group
from stacks.constructs.mes_function import TRACING_REASON, MesFunction
from stacks.constructs.plant_config_layer import PlantConfigLayer
from stacks.constructs.quality_storage import QualityStorage
from stacks.constructs.tables import grant_table

# Caught by class name: retrying cannot mend these.
DATASET_INVALID = "DatasetInvalid"
MODEL_REJECTED = "ModelRejected"
COMPONENT_FAILED = "ComponentFailed"
COMPONENT_NOT_READY = "ComponentNotReady"
APPROVAL_DAYS = 7  # an expert decides within a week, or the run fails
APPROVAL_TIMEOUT = Duration.days(APPROVAL_DAYS)
KMS_REASON = (
    "From grant_put on the KMS-encrypted model bucket: S3 encrypts the model it writes with the "
    "platform data key, the only key in that statement."
)


def model_components(plant: Plant) -> list[str]:
    """The Greengrass component names of the plant's camera stations' models."""
    return sorted(
        {ref.station.camera.model_component for ref in plant.stations() if ref.station.camera}
    )


def component_arn(stack: Stack, name: str, *, version: str | None = None) -> str:
    """``arn:...:greengrass:REGION:ACCOUNT:components:NAME[:versions:VERSION]``."""
    suffix = f"{name}:versions:{version}" if version is not None else name
    return stack.format_arn(
        service="greengrass",
        resource="components",
        resource_name=suffix,
        arn_format=ArnFormat.COLON_RESOURCE_NAME,
    )


def station_thing_groups(stack: Stack, prefix: str) -> str:
    """The ARN pattern of the camera stations' model groups, where models are released: the
    naming function with "*" for the ids. It ends in ":models" after two ":", so it matches no
    station, line or site group, whose deployments the EdgeFleet stack owns."""
    return stack.format_arn(
        service="iot",
        resource="thinggroup",
        resource_name=model_thing_group_name(prefix, "*", "*", "*"),
    )


def deployment_statements(
    stack: Stack, prefix: str, *, write: bool = False
) -> list[iam.PolicyStatement]:
    """GetDeployment (on ``deployments:ID``) and the IoT actions Greengrass takes for the
    caller on the camera station groups' jobs: the Service Authorization Reference lists
    iot:DescribeJob and iot:DescribeThingGroup for GetDeployment, and for CreateDeployment also
    iot:CreateJob, iot:UpdateJob and iot:CancelJob (``write``). Its thing and shadow actions
    serve deployments to a single core device, which the pipeline never targets."""
    thing_groups = station_thing_groups(stack, prefix)
    jobs = stack.format_arn(service="iot", resource="job", resource_name="*")
    statements = [
        iam.PolicyStatement(
            actions=["greengrass:GetDeployment"],
            resources=[
                stack.format_arn(
                    service="greengrass",
                    resource="deployments",
                    resource_name="*",
                    arn_format=ArnFormat.COLON_RESOURCE_NAME,
                )
            ],
        ),
        iam.PolicyStatement(actions=["iot:DescribeThingGroup"], resources=[thing_groups]),
        iam.PolicyStatement(actions=["iot:DescribeJob"], resources=[jobs]),
    ]
    if write:
        statements += [
            # A job for a thing group is authorized on the job and on its target group.
            iam.PolicyStatement(actions=["iot:CreateJob"], resources=[jobs, thing_groups]),
            iam.PolicyStatement(actions=["iot:UpdateJob", "iot:CancelJob"], resources=[jobs]),
        ]
    return statements


class ModelPipeline(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        plant: Plant,
        storage: QualityStorage,
        packaging: LambdaPackaging,
        logs_key: kms.IKey,
        min_auroc: float = 0.9,
        min_defect_recall: float = 0.8,
        min_good_images: int = 20,
    ) -> None:
        super().__init__(scope, construct_id)
        stack = Stack.of(self)
        prefix = plant.deployment.stack_prefix
        self._plant, self._packaging, self._logs_key = plant, packaging, logs_key
        self._plant_layer = PlantConfigLayer(self, "Plant", plant=plant).layer
        # Up to the group name, which the functions take from mes_domain.naming.
        thing_groups = stack.format_arn(service="iot", resource="thinggroup", resource_name="")
        datasets, models, table = storage.dataset_bucket, storage.model_bucket, storage.models_table
        environment = {
            EnvVar.DATASET_BUCKET: datasets.bucket_name,
            EnvVar.MODEL_BUCKET: models.bucket_name,
            EnvVar.MODELS_TABLE: table.table_name,
            EnvVar.MIN_AUROC: str(min_auroc),
            EnvVar.MIN_DEFECT_RECALL: str(min_defect_recall),
            EnvVar.MIN_GOOD_IMAGES: str(min_good_images),
            EnvVar.THING_GROUP_ARN_PREFIX: thing_groups,
        }

        def step(name: str, needs: tuple[EnvVar, ...], **options) -> MesFunction:
            return self._function(name, {key: environment[key] for key in needs}, **options)

        validate = step("validate_dataset", (EnvVar.DATASET_BUCKET,), plant_layer=True)
        datasets.grant_read(validate.role, "datasets/*")

        train = step(
            "train_model",
            (EnvVar.DATASET_BUCKET, EnvVar.MODEL_BUCKET, EnvVar.MIN_GOOD_IMAGES),
            vision=True,
            memory_size=3008,
            timeout_seconds=900,
        )
        datasets.grant_read(train.role, "datasets/*")
        models.grant_put(train.role, "models/*")

        evaluate = step("evaluate_model", (EnvVar.MIN_AUROC, EnvVar.MIN_DEFECT_RECALL))

        register = step("register_model", (EnvVar.MODEL_BUCKET, EnvVar.MODELS_TABLE))
        grant_table(table, register.role, "dynamodb:PutItem", "dynamodb:GetItem")

        approval = step("request_approval", (EnvVar.MODELS_TABLE,))
        grant_table(table, approval.role, "dynamodb:UpdateItem", "dynamodb:GetItem")

        publish = step(
            "publish_component",
            (EnvVar.MODELS_TABLE, EnvVar.THING_GROUP_ARN_PREFIX),
            plant_layer=True,
        )
        grant_table(table, publish.role, "dynamodb:GetItem")
        # Greengrass checks that the caller can read the artifacts it names.
        models.grant_read(publish.role, "models/*")
        names = model_components(plant)
        if names:
            # Per the Service Authorization Reference, CreateComponentVersion acts on a
            # component and DescribeComponent on a component version.
            publish.role.add_to_policy(
                iam.PolicyStatement(
                    actions=["greengrass:CreateComponentVersion"],
                    resources=[component_arn(stack, name) for name in names],
                )
            )
            publish.role.add_to_policy(
                iam.PolicyStatement(
                    actions=["greengrass:DescribeComponent"],
                    resources=[component_arn(stack, name, version="*") for name in names],
                )
            )

        deploy = step(
            "deploy_model",
            (EnvVar.MODELS_TABLE, EnvVar.THING_GROUP_ARN_PREFIX),
            plant_layer=True,  # the camera gateway's deployment is generated from the plant
        )
        grant_table(table, deploy.role, "dynamodb:GetItem", "dynamodb:UpdateItem")
        deploy.role.add_to_policy(
            iam.PolicyStatement(
                # Neither takes a resource type in the Service Authorization Reference.
                actions=["greengrass:ListDeployments", "greengrass:CreateDeployment"],
                resources=["*"],
            )
        )
        for statement in deployment_statements(stack, prefix, write=True):
            deploy.role.add_to_policy(statement)

        self.functions = {
            "validate_dataset": validate,
            "train_model": train,
            "evaluate_model": evaluate,
            "register_model": register,
            "request_approval": approval,
            "publish_component": publish,
            "deploy_model": deploy,
        }
        self.state_machine = self._state_machine(prefix)
        self._acknowledge(storage, prefix)

    def _function(
        self,
        name: str,
        environment: Mapping[EnvVar, str],
        *,
        plant_layer: bool = False,
        vision: bool = False,
        memory_size: int = 512,
        timeout_seconds: int = 120,
    ) -> MesFunction:
        title = "".join(word.title() for word in name.split("_"))
        return MesFunction(
            self,
            title,
            handler=f"lambdas.model_pipeline.{name}.lambda_handler",
            description=f"Quality model pipeline: {name.replace('_', ' ')}",
            packaging=self._packaging,
            logs_key=self._logs_key,
            log_retention_days=self._plant.retention.log_days,
            memory_size=memory_size,
            timeout_seconds=timeout_seconds,
            extra_layers=[self._plant_layer] if plant_layer else [],
            vision=vision,
            environment={
                **{key.value: value for key, value in environment.items()},
                "POWERTOOLS_SERVICE_NAME": "model_pipeline",
            },
        )

    def _task(self, name: str, result_key: str, **options) -> tasks.LambdaInvoke:
        # The step's return value alone goes under its key (a callback task returns its output).
        options.setdefault("payload_response_only", "integration_pattern" not in options)
        task = tasks.LambdaInvoke(
            self,
            name.replace("_", " ").title(),
            lambda_function=self.functions[name].function,
            result_path=f"$.{result_key}",
            **options,
        )
        # LambdaInvoke retries Lambda's service faults itself; throttles are retried here too.
        task.add_retry(
            errors=["Lambda.TooManyRequestsException"],
            interval=Duration.seconds(5),
            max_attempts=4,
            backoff_rate=2,
        )
        return task

    def _state_machine(self, prefix: str) -> sfn.StateMachine:
        invalid = sfn.Fail(
            self, "Dataset Invalid", error=DATASET_INVALID, cause_path="$.error.Cause"
        )
        gate_failed = sfn.Fail(
            self,
            "Quality Gate Failed",
            error="QualityGateFailed",
            cause="The model missed the AUROC or recall gate; it is registered as REJECTED.",
        )
        rejected = sfn.Fail(
            self, "Rejected By Expert", error=MODEL_REJECTED, cause_path="$.error.Cause"
        )
        publish_failed = sfn.Fail(
            self, "Publish Failed", error=COMPONENT_FAILED, cause_path="$.error.Cause"
        )

        validate = self._task("validate_dataset", "dataset")
        validate.add_catch(invalid, errors=[DATASET_INVALID], result_path="$.error")
        train = self._task("train_model", "training")
        train.add_catch(invalid, errors=[DATASET_INVALID], result_path="$.error")
        evaluate = self._task("evaluate_model", "evaluation")
        register = self._task("register_model", "registration")
        wait = self._task(
            "request_approval",
            "approval",
            integration_pattern=sfn.IntegrationPattern.WAIT_FOR_TASK_TOKEN,
            payload=sfn.TaskInput.from_object(
                {
                    "task_token": sfn.JsonPath.task_token,
                    "site": sfn.JsonPath.string_at("$.site"),
                    "line": sfn.JsonPath.string_at("$.line"),
                    "station": sfn.JsonPath.string_at("$.station"),
                    # Bracket notation: CDK's path scanner rejects "_" in dot notation (Step
                    # Functions allows it) and writes InvalidJsonPathExpression to error.txt.
                    "model_version": sfn.JsonPath.string_at("$.training['model_version']"),
                }
            ),
            task_timeout=sfn.Timeout.duration(APPROVAL_TIMEOUT),
        )
        wait.add_catch(rejected, errors=[MODEL_REJECTED], result_path="$.error")
        publish = self._task("publish_component", "component")
        publish.add_retry(
            errors=[COMPONENT_NOT_READY], interval=Duration.seconds(30), max_attempts=5
        )
        publish.add_catch(publish_failed, errors=[COMPONENT_FAILED], result_path="$.error")
        deploy = self._task("deploy_model", "deployment")

        definition = (
            validate.next(train)
            .next(evaluate)
            .next(register)
            .next(
                sfn.Choice(self, "Passed The Gate?")
                .when(
                    sfn.Condition.string_equals("$.registration.status", "REJECTED"),
                    gate_failed,
                )
                .otherwise(wait.next(publish).next(deploy).next(sfn.Succeed(self, "Deployed")))
            )
        )
        log_group = retained_log_group(
            self, "Logs", logs_key=self._logs_key, retention_days=self._plant.retention.log_days
        )
        machine = sfn.StateMachine(
            self,
            "StateMachine",
            state_machine_name=model_pipeline_name(prefix),
            definition_body=sfn.DefinitionBody.from_chainable(definition),
            timeout=Duration.days(APPROVAL_DAYS + 1),  # approval plus the steps around it
            tracing_enabled=True,
            logs=sfn.LogOptions(destination=log_group, level=sfn.LogLevel.ALL),
        )
        # CDK adds DependsOn the role it also references with GetAtt: harmless, as in MesFunction.
        machine.node.default_child.add_metadata(
            "cfn-lint", {"config": {"ignore_checks": ["W3005"]}}
        )
        return machine

    def _acknowledge(self, storage: QualityStorage, prefix: str) -> None:
        """Each role's wildcard findings, named one by one with the reason they are needed."""
        stack = Stack.of(self)

        def arn(construct) -> str:
            return f"<{stack.get_logical_id(construct.node.default_child)}.Arn>"

        iam5 = "AwsSolutions-IAM5"
        account = "<AWS::Partition>:{}:<AWS::Region>:<AWS::AccountId>"
        read = {
            f"{iam5}[Action::s3:GetBucket*]": "From grant_read: reads the configuration "
            "(location, versioning, policy, ACL...) of the one bucket this step reads; no "
            "object, nothing written.",
            f"{iam5}[Action::s3:GetObject*]": "From grant_read: reads objects under the step's "
            "prefix only, with their versions, tags and ACLs.",
            f"{iam5}[Action::s3:List*]": "From grant_read: lists the keys, versions and "
            "multipart uploads of the whole bucket this step reads (no prefix condition); it "
            "reads objects of its prefix only.",
        }
        datasets = {
            f"{iam5}[Resource::{arn(storage.dataset_bucket)}/datasets/*]": "The images of "
            "every camera station's dataset, under datasets/ of the dataset bucket only."
        }
        models = {
            f"{iam5}[Resource::{arn(storage.model_bucket)}/models/*]": "Trained models, "
            "under models/ of the model bucket only; a version's key is known only at run time."
        }
        greengrass = f"arn:{account.format('greengrass')}"
        station_groups = model_thing_group_name(prefix, "*", "*", "*")
        component_versions = {
            f"{iam5}[Resource::{greengrass}:components:{name}:versions:*]": "Versions of the "
            f"configured model component {name}: a version is the model's, known at run time."
            for name in model_components(self._plant)
        }
        jobs = {
            f"{iam5}[Resource::arn:{account.format('iot')}:job/*]": "Greengrass runs a "
            "thing-group deployment as an IoT job whose id it chooses at run time.",
        }
        findings = {
            "validate_dataset": {**read, **datasets},
            "train_model": {
                **read,
                **datasets,
                **models,
                f"{iam5}[Action::kms:GenerateDataKey*]": KMS_REASON,
                f"{iam5}[Action::kms:ReEncrypt*]": KMS_REASON,
                f"{iam5}[Action::s3:Abort*]": "From grant_put: abort a failed multipart upload "
                "of a model, under models/ only.",
            },
            "evaluate_model": {},
            "register_model": {},
            "request_approval": {},
            "publish_component": {**read, **models, **component_versions},
            "deploy_model": {
                **jobs,
                f"{iam5}[Resource::{greengrass}:deployments:*]": "Reads the camera gateway's "
                "current deployment, whose id is found at run time by its target thing group.",
                f"{iam5}[Resource::arn:{account.format('iot')}:thinggroup/{station_groups}]": (
                    "The camera stations' model groups only, named "
                    "<prefix>-<site>-<line>:<station>:models; no station, line or site group "
                    "name ends so."
                ),
            },
        }
        state_machine_policy = self.state_machine.role.node.find_child("DefaultPolicy")
        for name, function in self.functions.items():
            policy = function.role.node.find_child("DefaultPolicy")
            reasons = {f"{iam5}[Resource::*]": TRACING_REASON, **findings[name]}
            if name == "deploy_model":
                reasons[f"{iam5}[Resource::*]"] += (
                    " greengrass:ListDeployments and greengrass:CreateDeployment take no "
                    "resource type either (Service Authorization Reference)."
                )
            for finding, reason in reasons.items():
                acknowledge(policy, finding, reason)
            acknowledge(
                function.function.node.default_child,
                "Serverless-LambdaDLQ",
                "Invoked synchronously by the state machine, which retries and catches its "
                "errors; nothing is invoked asynchronously.",
            )
            acknowledge(
                state_machine_policy,
                f"{iam5}[Resource::{arn(function.function)}:*]",
                "The state machine invokes this step's function, any of its versions.",
            )
        acknowledge(
            state_machine_policy,
            f"{iam5}[Resource::*]",
            "Step Functions' X-Ray and log delivery actions support no resource-level permissions.",
        )
