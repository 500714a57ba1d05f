"""EdgeFleetStack: gateway onboarding by claim, the gateways' run-time access, their Greengrass
deployments per thing group and their health alarms (stacks/constructs/edge_fleet.py)."""

from __future__ import annotations

from typing import Any

from aws_cdk import Stack
from aws_cdk import aws_kms as kms
from aws_cdk import aws_sns as sns
from constructs import Construct

from mes_domain.plant import Plant
from stacks.constructs.edge_fleet import EdgeFleet
from stacks.constructs.lambda_packaging import LambdaPackaging
from stacks.iiot_stack import IiotStack
from stacks.quality_inspection_stack import QualityInspectionStack


class EdgeFleetStack(Stack):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        plant: Plant,
        iiot: IiotStack,
        quality: QualityInspectionStack,
        data_key: kms.IKey,
        logs_key: kms.IKey,
        alarm_topic: sns.ITopic,
        packaging: LambdaPackaging,
        **kwargs: Any,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        self.fleet = EdgeFleet(
            self,
            "Fleet",
            plant=plant,
            line_groups=iiot.thing_groups,
            camera_line_roles=dict(quality.gateways.roles),
            data_key=data_key,
            logs_key=logs_key,
            alarm_topic=alarm_topic,
            packaging=packaging,
        )
        # The template attaches the line gateway policies and the deployments target the line
        # groups, all the IIoT stack's, by name.
        self.add_dependency(iiot, "the gateway policies and line thing groups exist first")
