"""The edge fleet: fleet provisioning by claim, what a gateway needs at run time, one Greengrass
deployment per gateway thing group, and gateway health alarms.

Names come from ``mes_domain.fleet`` (shared with ``python -m mes_gateway``); the deployments'
components and configuration from ``mes_domain.edge_deployment`` and ``mes_domain.edge_spooler``
(the same documents ``python -m greengrass_components.deployments`` writes).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml
from aws_cdk import CfnOutput, CustomResource, Duration, Stack
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_greengrassv2 as greengrass
from aws_cdk import aws_iam as iam
from aws_cdk import aws_iot as iot
from aws_cdk import aws_kms as kms
from aws_cdk import aws_secretsmanager as secretsmanager
from aws_cdk import aws_sns as sns
from aws_cdk import aws_ssm as ssm
from constructs import Construct

import lambdas.claim_certificate.contract as claim_contract
from lambdas.gateway_health.contract import EnvVar as HealthEnv
from lambdas.provisioning_hook.contract import EnvVar as HookEnv
from mes_domain import fleet, naming
from mes_domain.edge_deployment import DATA_COLLECTOR, QUALITY_INSPECTION, line_deployments
from mes_domain.edge_spooler import with_disk_spooler
from mes_domain.fleet import AllowListAttribute, TemplateParameter
from mes_domain.plant import Plant
from stacks.compliance import acknowledge
from stacks.constructs.component_versions import ComponentVersions
from stacks.constructs.gateway_policy import check_role_alias
from stacks.constructs.lambda_packaging import LambdaPackaging
from stacks.constructs.mes_function import TRACING_REASON, MesFunction
from stacks.constructs.queues import dead_letter_queue
from stacks.constructs.tables import S, data_table, grant_table

REPO = Path(__file__).resolve().parent.parent.parent
RECIPES = {
    DATA_COLLECTOR: REPO / "greengrass_components" / "data_collector" / "recipe.yaml",
    QUALITY_INSPECTION: REPO / "greengrass_components" / "quality_inspection" / "recipe.yaml",
}
# The only payload version of pre-provisioning hooks (API_ProvisioningHook.html).
HOOK_PAYLOAD_VERSION = "2020-04-01"
# CreateRoleAlias credentialDurationSeconds: 900 to 43200 (API_CreateRoleAlias.html).
CREDENTIAL_DURATION_RANGE_S = (900, 43_200)
CREDENTIAL_DURATION_S = 3600
# Greengrass deployment status events (greengrass/v2/developerguide/
# deployment-health-notifications.html): a device's deployment FAILED or REJECTED; a component
# BROKEN (the core device's status becomes UNHEALTHY).
DEPLOYMENT_EVENT = "Greengrass V2 Effective Deployment Status Change"
COMPONENT_EVENT = "Greengrass V2 Installed Component Status Change"
FAILED_DEPLOYMENT = ["FAILED", "REJECTED"]
BROKEN_COMPONENT = ["BROKEN"]


def recipe_versions() -> dict[str, str]:
    """Our components' versions, as their recipes state them (read as YAML, not imported)."""
    return {
        name: str(yaml.safe_load(path.read_text(encoding="utf-8"))["ComponentVersion"])
        for name, path in RECIPES.items()
    }


def fleet_deployments(plant: Plant) -> list[dict[str, Any]]:
    """Every gateway group's deployment: each line's documents from mes_domain.edge_deployment,
    with the nucleus' spool on disk (mes_domain.edge_spooler). No model component: the model
    pipeline deploys it to the station's model group (mes_domain.fleet)."""
    versions = recipe_versions()
    found = []
    for site in plant.sites:
        for line in site.lines:
            document = with_disk_spooler(
                line_deployments(plant, site.id, line.id, versions),
                fleet.NUCLEUS_VERSION,
                fleet.DISK_SPOOLER_VERSION,
            )
            for deployment in document["deployments"]:
                found.append({"site": site.id, "line": line.id, **deployment})
    return found


def provisioning_template_body(prefix: str) -> dict[str, Any]:
    """The fleet provisioning template (iot/latest/developerguide/provision-template.html): the
    thing with its site, line and serial attributes in the hook's two groups, the device's new
    certificate activated, the Greengrass core policy and its line's gateway policy attached to
    it (named by Fn::Join, which templates support outside Mappings)."""

    def ref(p: TemplateParameter) -> dict[str, str]:
        return {"Ref": p.value}

    return {
        "Parameters": {p.value: {"Type": "String"} for p in TemplateParameter},
        "Resources": {
            "thing": {
                "Type": "AWS::IoT::Thing",
                "Properties": {
                    "ThingName": ref(TemplateParameter.THING_NAME),
                    "AttributePayload": {
                        fleet.THING_ATTRIBUTE_SITE: ref(TemplateParameter.SITE),
                        fleet.THING_ATTRIBUTE_LINE: ref(TemplateParameter.LINE),
                        fleet.THING_ATTRIBUTE_SERIAL: ref(TemplateParameter.SERIAL_NUMBER),
                    },
                    "ThingGroups": [
                        ref(TemplateParameter.THING_GROUP),
                        ref(TemplateParameter.SECOND_THING_GROUP),
                    ],
                },
                "OverrideSettings": {
                    "AttributePayload": "REPLACE",
                    "ThingGroups": "REPLACE",
                },
            },
            "certificate": {
                "Type": "AWS::IoT::Certificate",
                "Properties": {
                    "CertificateId": ref(TemplateParameter.CERTIFICATE_ID),
                    "Status": "ACTIVE",
                },
            },
            "corePolicy": {
                "Type": "AWS::IoT::Policy",
                "Properties": {"PolicyName": fleet.core_device_policy_name(prefix)},
            },
            "gatewayPolicy": {
                "Type": "AWS::IoT::Policy",
                "Properties": {
                    # naming.gateway_line_policy_name of the site and line the hook granted
                    "PolicyName": {
                        "Fn::Join": [
                            "@",
                            [
                                naming.gateway_policy_name(prefix),
                                ref(TemplateParameter.SITE),
                                ref(TemplateParameter.LINE),
                            ],
                        ]
                    }
                },
            },
        },
    }


class EdgeFleet(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        plant: Plant,
        line_groups: dict[tuple[str, ...], iot.CfnThingGroup],
        camera_line_roles: dict[tuple[str, str], iam.IRole],
        data_key: kms.IKey,
        logs_key: kms.IKey,
        alarm_topic: sns.ITopic,
        packaging: LambdaPackaging,
    ) -> None:
        super().__init__(scope, construct_id)
        stack = Stack.of(self)
        prefix = plant.deployment.stack_prefix
        self._stack = stack
        log_days = plant.retention.log_days

        def iot_arn(resource: str, name: str) -> str:
            return f"arn:{stack.partition}:iot:{stack.region}:{stack.account}:{resource}/{name}"

        self.iot_arn = iot_arn

        # --- the allow-list and the pre-provisioning hook ---
        self.allow_list = data_table(
            self,
            "AllowList",
            data_key=data_key,
            partition=(AllowListAttribute.SERIAL.value, S),
        )
        template_name = fleet.provisioning_template_name(prefix)
        template_arn = iot_arn("provisioningtemplate", template_name)
        self.hook = MesFunction(
            self,
            "ProvisioningHook",
            handler="lambdas.provisioning_hook.handler.lambda_handler",
            description="Fleet provisioning: allows only allow-listed gateway serials, once",
            packaging=packaging,
            logs_key=logs_key,
            log_retention_days=log_days,
            environment={
                HookEnv.ALLOW_LIST_TABLE.value: self.allow_list.table_name,
                HookEnv.STACK_PREFIX.value: prefix,
            },
            timeout_seconds=5,
        )
        grant_table(self.allow_list, self.hook.role, "dynamodb:GetItem", "dynamodb:UpdateItem")
        # Only IoT, for this account's template, may call it (confused deputy:
        # iot/latest/developerguide/pre-provisioning-hook.html).
        self.hook.function.add_permission(
            "IotProvisioning",
            principal=iam.ServicePrincipal("iot.amazonaws.com"),
            source_arn=template_arn,
            source_account=stack.account,
        )
        self.hook.acknowledge_policy({"AwsSolutions-IAM5[Resource::*]": TRACING_REASON})
        acknowledge(
            self.hook.function.node.default_child,
            "Serverless-LambdaDLQ",
            "Invoked synchronously by AWS IoT during RegisterThing, never asynchronously; a "
            "failure fails that provisioning request, which the device retries.",
        )

        # --- the Greengrass core device policy (attached by the template) ---
        self.core_policy = iot.CfnPolicy(
            self,
            "CorePolicy",
            policy_name=fleet.core_device_policy_name(prefix),
            policy_document=self._core_policy_document(prefix),
        )

        # --- the claim: its policy, the certificate made at deploy time, its secret ---
        self.claim_policy = iot.CfnPolicy(
            self,
            "ClaimPolicy",
            policy_name=fleet.claim_policy_name(prefix),
            policy_document=self._claim_policy_document(template_name),
        )
        self.operator_role = iam.Role(
            self,
            "OperatorRole",
            description=f"{prefix} gateway onboarding (python -m mes_gateway): allow-list, "
            "claim credentials, fleet status",
            assumed_by=iam.AccountRootPrincipal(),
            max_session_duration=Duration.hours(1),
        )
        self.claim_secret = secretsmanager.CfnSecret(
            self,
            "ClaimSecret",
            name=fleet.claim_secret_name(prefix),
            description="The fleet's claim certificate and private key (JSON), written at deploy "
            "time by the ClaimCertificate custom resource",
            kms_key_id=data_key.key_arn,
        )
        acknowledge(
            self.claim_secret,
            "AwsSolutions-SMG4",
            "Holds an IoT claim certificate and key, not a password Secrets Manager could "
            "rotate; it is replaced by updating the ClaimCertificate resource and revoked once "
            "the fleet is onboarded.",
        )
        secretsmanager.CfnResourcePolicy(
            self,
            "ClaimSecretPolicy",
            secret_id=self.claim_secret.ref,
            block_public_policy=True,
            resource_policy={
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Sid": "OnlyTheOperatorRoleReadsTheClaim",
                        "Effect": "Deny",
                        "Principal": {"AWS": "*"},
                        "Action": "secretsmanager:GetSecretValue",
                        "Resource": "*",
                        "Condition": {
                            "ArnNotEquals": {"aws:PrincipalArn": self.operator_role.role_arn}
                        },
                    }
                ],
            },
        )
        self.operator_role.add_to_policy(
            iam.PolicyStatement(
                actions=["secretsmanager:GetSecretValue"], resources=[self.claim_secret.ref]
            )
        )
        data_key.grant_decrypt(self.operator_role)
        self.claim_function = MesFunction(
            self,
            "ClaimCertificateFunction",
            handler="lambdas.claim_certificate.handler.lambda_handler",
            description="Custom resource: the fleet's claim certificate, its key into the secret",
            packaging=packaging,
            logs_key=logs_key,
            log_retention_days=log_days,
            environment={},
            timeout_seconds=60,
        )
        certificates = iot_arn("cert", "*")
        self.claim_function.role.add_to_policy(
            # Neither acts on a resource ARN (Service Authorization Reference).
            iam.PolicyStatement(
                actions=["iot:CreateKeysAndCertificate", "iot:ListAttachedPolicies"],
                resources=["*"],
            )
        )
        self.claim_function.role.add_to_policy(
            iam.PolicyStatement(
                actions=[
                    "iot:DescribeCertificate",
                    "iot:UpdateCertificate",
                    "iot:DeleteCertificate",
                    "iot:DetachPolicy",
                    "iot:AttachPolicy",
                ],
                resources=[certificates],
            )
        )
        self.claim_function.role.add_to_policy(
            iam.PolicyStatement(
                actions=["secretsmanager:PutSecretValue"], resources=[self.claim_secret.ref]
            )
        )
        data_key.grant(self.claim_function.role, "kms:GenerateDataKey", "kms:Decrypt")
        self.claim_function.acknowledge_policy(
            {
                "AwsSolutions-IAM5[Resource::*]": "X-Ray trace writes and "
                "iot:CreateKeysAndCertificate and iot:ListAttachedPolicies, which take no "
                "resource ARN.",
                "AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:iot:<AWS::Region>:"
                "<AWS::AccountId>:cert/*]": "The claim certificate's id is chosen by IoT at "
                "deploy time; the function attaches, detaches and retires only certificates.",
            }
        )
        acknowledge(
            self.claim_function.function.node.default_child,
            "Serverless-LambdaDLQ",
            "Invoked synchronously by CloudFormation, never asynchronously; every request is "
            "answered, a failure with its reason, so there is nothing to dead-letter.",
        )
        self.claim_certificate = CustomResource(
            self,
            "ClaimCertificate",
            service_token=self.claim_function.function.function_arn,
            resource_type="Custom::IotClaimCertificate",
            properties={
                claim_contract.POLICY_NAME: self.claim_policy.ref,
                claim_contract.SECRET_ARN: self.claim_secret.ref,
            },
        )

        # `python -m mes_gateway revoke-claim/restore-claim/bundle`: this certificate only.
        self.operator_role.add_to_policy(
            iam.PolicyStatement(
                actions=["iot:DescribeCertificate", "iot:UpdateCertificate"],
                resources=[self.claim_certificate.get_att_string(claim_contract.CERTIFICATE_ARN)],
            )
        )

        # --- provisioning role and template ---
        self.provisioning_role = iam.Role(
            self,
            "ProvisioningRole",
            description="AWS IoT fleet provisioning: registers gateway things and certificates",
            assumed_by=iam.ServicePrincipal("iot.amazonaws.com"),
            managed_policies=[
                iam.ManagedPolicy.from_aws_managed_policy_name(
                    "service-role/AWSIoTThingsRegistration"
                )
            ],
        )
        acknowledge(
            self.provisioning_role,
            "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/"
            "AWSIoTThingsRegistration]",
            "The AWS managed role policy that fleet provisioning templates are documented to "
            "use; it follows the registry actions IoT takes while provisioning.",
        )
        self.template = iot.CfnProvisioningTemplate(
            self,
            "ProvisioningTemplate",
            template_name=template_name,
            description=f"{prefix} gateways: fleet provisioning by claim, allow-listed serials",
            enabled=True,
            provisioning_role_arn=self.provisioning_role.role_arn,
            template_body=json.dumps(provisioning_template_body(prefix)),
            pre_provisioning_hook=iot.CfnProvisioningTemplate.ProvisioningHookProperty(
                target_arn=self.hook.function.function_arn,
                payload_version=HOOK_PAYLOAD_VERSION,
            ),
        )
        self.template.node.add_dependency(self.core_policy)
        # IoT may invoke the hook before the template is created with it.
        self.template.node.add_dependency(self.hook.function.node.find_child("IotProvisioning"))

        # --- token exchange roles and role aliases ---
        self.role_aliases: dict[tuple[str, str], str] = {}
        roles: list[iam.IRole] = []
        for site in plant.sites:
            for line in site.lines:
                alias = check_role_alias(fleet.role_alias_name(prefix, site.id, line.id))
                self.role_aliases[(site.id, line.id)] = alias
                if (site.id, line.id) in camera_line_roles:  # the quality stack's, same alias
                    roles.append(camera_line_roles[(site.id, line.id)])
                    continue
                role = iam.Role(
                    self,
                    f"TokenExchange-{site.id}-{line.id}",
                    description=f"Token exchange role of the gateways of line {site.id}/{line.id}",
                    assumed_by=iam.ServicePrincipal("credentials.iot.amazonaws.com"),
                )
                iot.CfnRoleAlias(
                    self,
                    f"RoleAlias-{site.id}-{line.id}",
                    role_alias=alias,
                    role_arn=role.role_arn,
                    credential_duration_seconds=CREDENTIAL_DURATION_S,
                )
                roles.append(role)
        # Our components, published with their artifacts uploaded as CDK file assets, which
        # the roles may read (stacks/constructs/component_versions.py); the deployments below
        # wait for them.
        self.components = ComponentVersions(self, "Components", recipes=RECIPES, readers=roles)

        # --- camera station groups, model groups and the deployments ---
        self.station_groups: dict[tuple[str, str, str], iot.CfnThingGroup] = {}
        for ref in plant.stations():
            if ref.station.camera is None:
                continue
            key = ref.path
            group = iot.CfnThingGroup(
                self,
                f"Camera-{'-'.join(key)}",
                thing_group_name=fleet.camera_thing_group_name(prefix, *key),
                thing_group_properties={
                    "thingGroupDescription": f"Camera gateway of station {'/'.join(key)}"
                },
            )
            iot.CfnThingGroup(
                self,
                f"Models-{'-'.join(key)}",
                thing_group_name=fleet.model_thing_group_name(prefix, *key),
                thing_group_properties={
                    "thingGroupDescription": f"Model of station {'/'.join(key)} (model pipeline)"
                },
            )
            self.station_groups[key] = group
        self.deployments: list[greengrass.CfnDeployment] = []
        for index, spec in enumerate(fleet_deployments(plant)):
            target = spec["targetThingGroupName"]
            deployment = greengrass.CfnDeployment(
                self,
                f"Deployment{index}",
                target_arn=iot_arn("thinggroup", target),
                deployment_name=spec["deploymentName"],
                components={
                    name: greengrass.CfnDeployment.ComponentDeploymentSpecificationProperty(
                        component_version=component["componentVersion"],
                        configuration_update=(
                            greengrass.CfnDeployment.ComponentConfigurationUpdateProperty(
                                merge=component["configurationUpdate"]["merge"]
                            )
                            if "configurationUpdate" in component
                            else None
                        ),
                    )
                    for name, component in spec["components"].items()
                },
            )
            for name in spec["components"]:
                if name in self.components.published:
                    deployment.node.add_dependency(self.components.published[name])
            line_group = line_groups.get((spec["site"], spec["line"]))
            if line_group is not None and target == line_group.thing_group_name:
                deployment.node.add_dependency(line_group)
            for group in self.station_groups.values():
                if group.thing_group_name == target:
                    deployment.node.add_dependency(group)
            self.deployments.append(deployment)

        # --- gateway health: to the alarm topic ---
        # EventBridge may publish to the KMS-encrypted alarm topic and dead-letter queue only if
        # the key's policy lets it (sns/latest/dg/sns-key-management.html).
        if isinstance(data_key, kms.Key):
            data_key.add_to_resource_policy(
                iam.PolicyStatement(
                    sid="AllowEventBridgeToPublishToEncryptedTopicsAndQueues",
                    principals=[iam.ServicePrincipal("events.amazonaws.com")],
                    actions=["kms:Decrypt", "kms:GenerateDataKey*"],
                    resources=["*"],
                    conditions={"StringEquals": {"aws:SourceAccount": stack.account}},
                )
            )
        self.health_undelivered = dead_letter_queue(
            self,
            "HealthUndelivered",
            encryption_key=data_key,
            holds="gateway health events EventBridge could not publish to the alarm topic",
        )
        self.health_undelivered.grant_send_messages(iam.ServicePrincipal("events.amazonaws.com"))
        health_target = targets.SnsTopic(
            alarm_topic, dead_letter_queue=self.health_undelivered, retry_attempts=8
        )

        def to_alarm_topic(
            rule_id: str, description: str, detail_type: str, detail: dict
        ) -> events.Rule:
            """A rule sending the Greengrass events of ``detail_type`` that match ``detail``."""
            return events.Rule(
                self,
                rule_id,
                description=description,
                event_pattern=events.EventPattern(
                    source=["aws.greengrass"], detail_type=[detail_type], detail=detail
                ),
                targets=[health_target],
            )

        self.failed_deployments = to_alarm_topic(
            "FailedDeployments",
            "A gateway's Greengrass deployment FAILED or was REJECTED",
            DEPLOYMENT_EVENT,
            {"coreDeviceExecutionStatus": FAILED_DEPLOYMENT},
        )
        self.broken_components = to_alarm_topic(
            "BrokenComponents",
            "A component on a gateway is BROKEN: the core device is UNHEALTHY",
            COMPONENT_EVENT,
            {"components": {"lifecycleState": BROKEN_COMPONENT}},
        )

        # --- gateway health: the plant dashboard's online, unhealthy and offline counts ---
        self._gateway_census(prefix, data_key, logs_key, log_days, packaging)

        # --- what the onboarding CLI needs ---
        grant_table(
            self.allow_list,
            self.operator_role,
            "dynamodb:GetItem",
            "dynamodb:PutItem",
            "dynamodb:UpdateItem",
            "dynamodb:Scan",
        )
        self.operator_role.add_to_policy(
            iam.PolicyStatement(
                actions=[
                    "iot:DescribeEndpoint",
                    "greengrass:ListCoreDevices",
                    "greengrass:GetCoreDevice",
                    "greengrass:ListInstalledComponents",
                ],
                resources=["*"],
            )
        )
        parameters = {
            fleet.Parameter.ALLOW_LIST_TABLE: self.allow_list.table_name,
            fleet.Parameter.PROVISIONING_TEMPLATE: template_name,
            fleet.Parameter.CLAIM_SECRET_ARN: self.claim_secret.ref,
        }
        for key, value in parameters.items():
            ssm.StringParameter(
                self,
                f"Parameter-{key.value}",
                parameter_name=fleet.ssm_parameter_name(prefix, key),
                string_value=value,
            )
        self.operator_role.add_to_policy(
            iam.PolicyStatement(
                actions=["ssm:GetParameter", "ssm:GetParameters"],
                resources=[
                    stack.format_arn(
                        service="ssm",
                        resource="parameter",
                        resource_name=fleet.ssm_parameter_name(prefix, key).lstrip("/"),
                    )
                    for key in parameters
                ],
            )
        )
        policy = self.operator_role.node.find_child("DefaultPolicy")
        acknowledge(
            policy,
            "AwsSolutions-IAM5[Resource::*]",
            "iot:DescribeEndpoint and the Greengrass core device listings (ListCoreDevices, "
            "GetCoreDevice, ListInstalledComponents) support no resource-level permissions.",
        )
        outputs = {
            fleet.Output.ALLOW_LIST_TABLE: self.allow_list.table_name,
            fleet.Output.PROVISIONING_TEMPLATE: template_name,
            fleet.Output.CLAIM_SECRET_ARN: self.claim_secret.ref,
            fleet.Output.CLAIM_CERTIFICATE_ID: self.claim_certificate.get_att_string(
                claim_contract.CERTIFICATE_ID
            ),
            fleet.Output.OPERATOR_ROLE_ARN: self.operator_role.role_arn,
        }
        for output, value in outputs.items():
            CfnOutput(stack, output.value, value=value)

    def _gateway_census(
        self,
        prefix: str,
        data_key: kms.IKey,
        logs_key: kms.IKey,
        log_days: int,
        packaging: LambdaPackaging,
    ) -> None:
        """lambdas/gateway_health: AWS IoT's connect/disconnect lifecycle events of our gateways
        (on by default, possibly out of order or repeated: iot/latest/developerguide/
        life-cycle-events.html) keep each one's connectivity in the allow-list; every
        CENSUS_INTERVAL_MINUTES it writes the online, unhealthy and offline counts as metrics
        (mes_domain.fleet.HEALTH_METRIC) that the KPI stack's plant dashboard shows."""
        stack = self._stack
        self.health_failures = dead_letter_queue(
            self,
            "HealthFailures",
            encryption_key=data_key,
            holds="gateway presence events and census runs that failed every retry",
            of_queue_or_function=True,
        )
        self.health = MesFunction(
            self,
            "GatewayHealth",
            handler="lambdas.gateway_health.handler.lambda_handler",
            description="Gateway connectivity from IoT lifecycle events; online, unhealthy and "
            "offline gateways as metrics",
            packaging=packaging,
            logs_key=logs_key,
            log_retention_days=log_days,
            environment={
                HealthEnv.ALLOW_LIST_TABLE.value: self.allow_list.table_name,
                HealthEnv.STACK_PREFIX.value: prefix,
                "POWERTOOLS_SERVICE_NAME": "gateway_health",
            },
            timeout_seconds=60,
            dead_letter_queue=self.health_failures,
        )
        grant_table(self.allow_list, self.health.role, "dynamodb:UpdateItem", "dynamodb:Scan")
        self.health.role.add_to_policy(
            iam.PolicyStatement(actions=["greengrass:ListCoreDevices"], resources=["*"])
        )
        self.health.acknowledge_policy(
            {
                "AwsSolutions-IAM5[Resource::*]": "X-Ray trace writes and "
                "greengrass:ListCoreDevices support no resource-level permissions."
            }
        )
        interval = Duration.minutes(fleet.CENSUS_INTERVAL_MINUTES)
        self.census_schedule = events.Rule(
            self,
            "GatewayCensus",
            description=f"Every {fleet.CENSUS_INTERVAL_MINUTES} minutes: count the gateways "
            "online, unhealthy and offline",
            schedule=events.Schedule.rate(interval),
            targets=[
                targets.LambdaFunction(
                    self.health.function,
                    retry_attempts=2,
                    max_event_age=interval,
                    dead_letter_queue=self.health_failures,
                )
            ],
        )
        presence_errors = iam.Role(
            self,
            "PresenceErrors",
            description="The gateway presence rule's error action: into the health failures queue",
            assumed_by=iam.ServicePrincipal("iot.amazonaws.com"),
        )
        self.health_failures.grant_send_messages(presence_errors)
        for action in ("kms:GenerateDataKey*", "kms:ReEncrypt*"):
            acknowledge(
                presence_errors.node.find_child("DefaultPolicy"),
                f"AwsSolutions-IAM5[Action::{action}]",
                "From grant_send_messages on the KMS-encrypted health failures queue; scoped "
                "to the platform data key only.",
            )
        self.presence_rule = iot.CfnTopicRule(
            self,
            "GatewayPresence",
            topic_rule_payload={
                "sql": f"SELECT * FROM '{fleet.PRESENCE_TOPIC_FILTER}' "
                f"WHERE startswith(clientId, '{naming.gateway_thing_prefix(prefix)}')",
                "awsIotSqlVersion": "2016-03-23",
                "ruleDisabled": False,
                "description": f"Connect and disconnect events of the {prefix} gateways",
                "actions": [{"lambda": {"functionArn": self.health.function.function_arn}}],
                "errorAction": {
                    "sqs": {
                        "queueUrl": self.health_failures.queue_url,
                        "roleArn": presence_errors.role_arn,
                        "useBase64": False,
                    }
                },
            },
        )
        self.health.function.add_permission(
            "IotPresence",
            principal=iam.ServicePrincipal("iot.amazonaws.com"),
            source_arn=self.presence_rule.attr_arn,
            source_account=stack.account,
        )

    def _claim_policy_document(self, template_name: str) -> dict[str, Any]:
        """Only the fleet provisioning MQTT API: create a certificate (with or without a CSR)
        and call RegisterThing with our template (iot/latest/developerguide/
        fleet-provision-api.html); nothing else, not even the MES topics."""
        iot_arn = self.iot_arn
        topics = [
            "$aws/certificates/create/*",
            "$aws/certificates/create-from-csr/*",
            f"$aws/provisioning-templates/{template_name}/provision/*",
        ]
        return {
            "Version": "2012-10-17",
            "Statement": [
                {"Effect": "Allow", "Action": "iot:Connect", "Resource": iot_arn("client", "*")},
                {
                    "Effect": "Allow",
                    "Action": ["iot:Publish", "iot:Receive"],
                    "Resource": [iot_arn("topic", t) for t in topics],
                },
                {
                    "Effect": "Allow",
                    "Action": "iot:Subscribe",
                    "Resource": [iot_arn("topicfilter", t) for t in topics],
                },
            ],
        }

    def _core_policy_document(self, prefix: str) -> dict[str, Any]:
        """What every gateway needs as a Greengrass core device: connect, its health, jobs and
        shadow topics, its shadows, and the component and deployment downloads
        (greengrass/v2/developerguide/device-auth.html, minimal IoT policy). Core device
        policies support no thing policy variables, so "its" is any thing named like a gateway
        (the documented wildcard on similar names), which also admits the nucleus' extra
        client ids (``<thing>#<n>``). The MES topics and role alias are the line's gateway
        policy's (stacks/constructs/gateway_policy.py), which the template attaches too."""
        iot_arn = self.iot_arn
        gateways = f"{naming.gateway_thing_prefix(prefix)}*"
        own = f"$aws/things/{gateways}"
        topics = [f"{own}/greengrass/health/json", f"{own}/greengrassv2/health/json"]
        wild = [f"{own}/jobs/*", f"{own}/shadow/*"]
        return {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Sid": "ConnectAsAGateway",
                    "Effect": "Allow",
                    "Action": "iot:Connect",
                    "Resource": iot_arn("client", gateways),
                },
                {
                    "Sid": "GatewayHealthJobsAndShadows",
                    "Effect": "Allow",
                    "Action": ["iot:Publish", "iot:Receive"],
                    "Resource": [iot_arn("topic", t) for t in topics + wild],
                },
                {
                    "Sid": "SubscribeGatewayJobsAndShadows",
                    "Effect": "Allow",
                    "Action": "iot:Subscribe",
                    "Resource": [iot_arn("topicfilter", t) for t in wild],
                },
                {
                    "Sid": "GatewayShadows",
                    "Effect": "Allow",
                    "Action": [
                        "iot:GetThingShadow",
                        "iot:UpdateThingShadow",
                        "iot:DeleteThingShadow",
                    ],
                    "Resource": iot_arn("thing", gateways),
                },
                {
                    # The minimal core device policy's Greengrass actions, on "*" as it gives
                    # them: without GetDeploymentConfiguration a deployment document over 31 KB
                    # stays IN_PROGRESS for ever (nucleus 2.3.0+); without
                    # ListThingGroupsForCoreDevice a gateway moved out of a group keeps its
                    # components (nucleus 2.5.0+) (greengrass/v2/developerguide/device-auth.html,
                    # troubleshooting.html).
                    "Sid": "GreengrassDeployments",
                    "Effect": "Allow",
                    "Action": list(fleet.CORE_DEVICE_GREENGRASS_ACTIONS),
                    "Resource": "*",
                },
            ],
        }
