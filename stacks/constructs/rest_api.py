"""A REST API as every API of the platform is deployed: one ``v1`` stage with X-Ray, metrics,
INFO execution logs (no request bodies), JSON access logs in an encrypted log group, and
stage throttling."""

from __future__ import annotations

from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_kms as kms
from constructs import Construct

from mes_domain.plant import Plant
from stacks.compliance import acknowledge
from stacks.constructs.log_groups import retained_log_group

STAGE = "v1"


class PlatformRestApi(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        plant: Plant,
        name: str,
        description: str,
        logs_key: kms.IKey,
        throttle_rate: int,
        throttle_burst: int,
        firewall_reason: str,
    ) -> None:
        """``firewall_reason``: why this API is acceptable without a WAF web ACL."""
        super().__init__(scope, construct_id)
        access_logs = retained_log_group(
            self, "AccessLogs", logs_key=logs_key, retention_days=plant.retention.log_days
        )
        self.api = apigw.RestApi(
            self,
            "Api",
            rest_api_name=f"{plant.deployment.stack_prefix}-{name}",
            description=description,
            # The account's CloudWatch role setting is the platform's (ApiGatewayLogging).
            cloud_watch_role=False,
            deploy_options=apigw.StageOptions(
                stage_name=STAGE,
                tracing_enabled=True,
                metrics_enabled=True,
                logging_level=apigw.MethodLoggingLevel.INFO,
                data_trace_enabled=False,  # bodies hold documents, upload URLs and comments
                throttling_rate_limit=throttle_rate,
                throttling_burst_limit=throttle_burst,
                access_log_destination=apigw.LogGroupLogDestination(access_logs),
                access_log_format=apigw.AccessLogFormat.json_with_standard_fields(
                    caller=True,
                    http_method=True,
                    ip=True,
                    protocol=True,
                    request_time=True,
                    resource_path=True,
                    response_length=True,
                    status=True,
                    user=True,
                ),
            ),
        )
        self.validator = self.api.add_request_validator(
            "Validator", validate_request_body=True, validate_request_parameters=True
        )
        acknowledge(
            self.api.deployment_stage.node.default_child, "AwsSolutions-APIG3", firewall_reason
        )

    def body_model(self, name: str, schema: dict) -> dict[str, apigw.IModel]:
        """``request_models`` that make API Gateway check a JSON body against ``schema``."""
        model = apigw.CfnModel(
            self,
            f"{name}Model",
            rest_api_id=self.api.rest_api_id,
            content_type="application/json",
            name=name,
            schema=schema,
        )
        return {"application/json": apigw.Model.from_model_name(self, name, model.ref)}
