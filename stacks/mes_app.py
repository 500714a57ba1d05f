"""Compose the MES stacks for one plant. ``app.py`` and the tests both start here."""

from __future__ import annotations

from dataclasses import dataclass

import aws_cdk as cdk

from mes_domain import naming
from mes_domain.plant import Plant
from stacks.constructs.lambda_packaging import LambdaPackaging
from stacks.datalake_stack import DataLakeStack
from stacks.edge_fleet_stack import EdgeFleetStack
from stacks.enterprise_stack import EnterpriseStack
from stacks.iiot_stack import IiotStack
from stacks.kpi_stack import KpiStack
from stacks.platform_stack import PlatformStack
from stacks.quality_inspection_stack import QualityInspectionStack
from stacks.sitewise_stack import SiteWiseStack


@dataclass(frozen=True)
class MesStacks:
    platform: PlatformStack
    iiot: IiotStack
    sitewise: SiteWiseStack
    kpi: KpiStack
    quality: QualityInspectionStack
    enterprise: EnterpriseStack
    edge_fleet: EdgeFleetStack
    datalake: DataLakeStack


def stack_name(plant: Plant, capability: str) -> str:
    return naming.stack_name(plant.deployment.stack_prefix, capability)


def compose_stacks(
    app: cdk.App, plant: Plant, packaging: LambdaPackaging | None = None
) -> MesStacks:
    """Create every stack of ``plant`` in ``app``; stacks take what they need as arguments."""
    deployment = plant.deployment
    packaging = packaging or LambdaPackaging()
    env = cdk.Environment(account=deployment.account, region=deployment.region)
    common = {"env": env, "termination_protection": deployment.termination_protection}

    platform = PlatformStack(
        app,
        stack_name(plant, "Platform"),
        plant=plant,
        description=f"{plant.name}: KMS keys, access logs and alarms of the MES platform",
        **common,
    )

    iiot = IiotStack(
        app,
        stack_name(plant, "Iiot"),
        plant=plant,
        data_key=platform.data_key,
        logs_key=platform.logs_key,
        access_logs=platform.access_logs,
        packaging=packaging,
        description=f"{plant.name}: thing groups, telemetry stream and time-series store",
        **common,
    )

    sitewise = SiteWiseStack(
        app,
        stack_name(plant, "SiteWise"),
        plant=plant,
        packaging=packaging,
        logs_key=platform.logs_key,
        description=f"{plant.name}: SiteWise models and assets of every site, line and station",
        **common,
    )

    quality = QualityInspectionStack(
        app,
        stack_name(plant, "Quality"),
        plant=plant,
        iiot=iiot,
        data_key=platform.data_key,
        logs_key=platform.logs_key,
        access_logs=platform.access_logs,
        event_bus=platform.event_bus,
        packaging=packaging,
        description=f"{plant.name}: quality datasets, model pipeline and inspection results",
        **common,
    )

    enterprise = EnterpriseStack(
        app,
        stack_name(plant, "Enterprise"),
        plant=plant,
        data_key=platform.data_key,
        logs_key=platform.logs_key,
        access_logs=platform.access_logs,
        event_bus=platform.event_bus,
        packaging=packaging,
        description=f"{plant.name}: ERP and PLM documents in, MES events out",
        **common,
    )

    # Their REST API stages log with the API Gateway account setting the platform owns.
    for with_rest_api in (quality, enterprise):
        with_rest_api.add_stack_dependency(platform, "API Gateway's CloudWatch role is set first")

    kpi = KpiStack(
        app,
        stack_name(plant, "Kpi"),
        plant=plant,
        iiot=iiot,
        data_key=platform.data_key,
        logs_key=platform.logs_key,
        alarm_topic=platform.alarm_topic,
        packaging=packaging,
        watched_functions={
            "QualityResults": quality.results.function,
            "DocumentRouter": enterprise.router.s3_function,
        },
        watched_dead_letters={
            "EnterpriseArrivalsDeadLetters": enterprise.storage.arrivals_dead_letters,
            "EnterpriseUndelivered": enterprise.outbound.dead_letters,
            **platform.dead_letter_queues,
        },
        description=f"{plant.name}: KPI calculator, plant dashboard and pipeline alarms",
        **common,
    )

    datalake = DataLakeStack(
        app,
        stack_name(plant, "DataLake"),
        plant=plant,
        iiot=iiot,
        enterprise=enterprise,
        event_bus=platform.event_bus,
        data_key=platform.data_key,
        logs_key=platform.logs_key,
        access_logs=platform.access_logs,
        packaging=packaging,
        description=f"{plant.name}: Parquet data lake, Glue catalog and Athena queries",
        **common,
    )

    edge_fleet = EdgeFleetStack(
        app,
        stack_name(plant, "EdgeFleet"),
        plant=plant,
        iiot=iiot,
        quality=quality,
        data_key=platform.data_key,
        logs_key=platform.logs_key,
        alarm_topic=platform.alarm_topic,
        packaging=packaging,
        description=f"{plant.name}: gateway onboarding, Greengrass deployments, gateway health",
        **common,
    )

    for key, value in deployment.tags.items():
        cdk.Tags.of(app).add(key, value)
    return MesStacks(
        platform=platform,
        iiot=iiot,
        sitewise=sitewise,
        kpi=kpi,
        quality=quality,
        enterprise=enterprise,
        edge_fleet=edge_fleet,
        datalake=datalake,
    )
