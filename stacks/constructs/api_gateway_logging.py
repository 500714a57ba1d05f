"""API Gateway's account-wide CloudWatch Logs role setting, owned by exactly one stack.

"You should only have one AWS::ApiGateway::Account resource per region per account", or a
deploy overwrites another's role; deleting the stack leaves the setting in place:
https://docs.aws.amazon.com/AWSCloudFormation/latest/TemplateReference/aws-resource-apigateway-account.html
Stages with execution logging need it set before they deploy:
https://docs.aws.amazon.com/apigateway/latest/developerguide/set-up-logging.html
"""

from __future__ import annotations

from aws_cdk import RemovalPolicy
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_iam as iam
from constructs import Construct

from stacks.compliance import acknowledge

PUSH_TO_CLOUDWATCH_POLICY = "service-role/AmazonAPIGatewayPushToCloudWatchLogs"


class ApiGatewayLogging(Construct):
    """The role API Gateway writes execution logs with, set as the region's account setting."""

    def __init__(self, scope: Construct, construct_id: str) -> None:
        super().__init__(scope, construct_id)
        self.role = iam.Role(
            self,
            "Role",
            assumed_by=iam.ServicePrincipal("apigateway.amazonaws.com"),
            description="API Gateway's CloudWatch Logs role for every REST API of the region",
            managed_policies=[
                iam.ManagedPolicy.from_aws_managed_policy_name(PUSH_TO_CLOUDWATCH_POLICY)
            ],
        )
        self.account = apigw.CfnAccount(self, "Account", cloud_watch_role_arn=self.role.role_arn)
        # The setting outlives the stack, so its role must too, or the region's execution
        # logging (any API's) would point at a deleted role.
        for resource in (self.role, self.account):
            resource.apply_removal_policy(RemovalPolicy.RETAIN)
        acknowledge(
            self.role,
            f"AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/{PUSH_TO_CLOUDWATCH_POLICY}]",
            "API Gateway's account-wide logging role writes execution logs of every REST API "
            "of the region, whose log groups API Gateway names and creates; AWS documents this "
            "managed policy as the permissions it needs. It lets the role create, write, list "
            "and read any log group of the account, and only API Gateway may assume it.",
        )
