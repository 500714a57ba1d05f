"""Compose the MES stacks for one plant. ``app.py`` and the tests both start here."""

from __future__ import annotations

from dataclasses import dataclass

import aws_cdk as cdk

from mes_domain import naming
from mes_domain.plant import EdgeSite, Plant
from stacks.constructs.lambda_packaging import LambdaPackaging
from stacks.containers_data_stack import ContainersDataStack
from stacks.containers_stack import ContainersStack
from stacks.datalake_stack import DataLakeStack
from stacks.edge_fleet_stack import EdgeFleetStack
from stacks.edge_site_stack import EdgeSiteStack
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
    # The containers platform of the MES services (capabilities.eks), else None.
    containers_data: ContainersDataStack | None = None
    containers: ContainersStack | None = None
    edge_site: EdgeSiteStack | None = None  # deployment.edge_site outposts


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
        event_bus=platform.event_bus,  # closed windows' KPI rows, for the data lake
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

    containers = (
        compose_containers(app, plant, platform, enterprise, common)
        if plant.capabilities.eks
        else {}
    )

    for key, value in deployment.tags.items():
        cdk.Tags.of(app).add(key, value)
    return MesStacks(
        **containers,
        platform=platform,
        iiot=iiot,
        sitewise=sitewise,
        kpi=kpi,
        quality=quality,
        enterprise=enterprise,
        edge_fleet=edge_fleet,
        datalake=datalake,
    )


def compose_containers(
    app: cdk.App,
    plant: Plant,
    platform: PlatformStack,
    enterprise: EnterpriseStack,
    common: dict,
) -> dict[str, cdk.Stack]:
    """The containers platform: its stores and network, the cluster with the delivery pipeline,
    and the Outposts edge site when there is one."""
    data = ContainersDataStack(
        app,
        stack_name(plant, "ContainersData"),
        plant=plant,
        data_key=platform.data_key,
        logs_key=platform.logs_key,
        description=f"{plant.name}: network, PostgreSQL, image repositories and service bus",
        **common,
    )
    bus = data.service_bus
    storage = enterprise.storage
    containers = ContainersStack(
        app,
        stack_name(plant, "Containers"),
        plant=plant,
        vpc=data.vpc,
        data_key=platform.data_key,
        logs_key=platform.logs_key,
        event_bus=platform.event_bus,
        enterprise_tables={
            "orders": storage.orders_table,
            "products": storage.products_table,
            "process_plans": storage.process_plans_table,
        },
        database_resource_id=data.database_resource_id,
        database_security_group=data.database_security_group,
        # The brokers' group: the cluster's pods are admitted to it on 9098.
        kafka_cluster_arn=bus.cluster_arn if bus else None,
        kafka_client_security_group=bus.security_group if bus else None,
        description=f"{plant.name}: EKS Auto Mode cluster, pod roles and delivery pipeline",
        **common,
    )
    pipeline = containers.add_delivery_pipeline(
        vpc=data.vpc,
        repositories=data.repositories,
        database=data.database,
        master_secret=data.master_secret,
        master_secret_grant=data.service_database.grant_master_secret_read,
        database_security_group=data.database_security_group,
        access_logs=platform.access_logs,
    )
    stacks: dict[str, cdk.Stack] = {"containers_data": data, "containers": containers}
    if plant.deployment.edge_site is EdgeSite.OUTPOSTS:
        edge = EdgeSiteStack(
            app,
            stack_name(plant, "EdgeSite"),
            plant=plant,
            vpc=data.vpc,
            data_key=platform.data_key,
            logs_key=platform.logs_key,
            edge_deploy_role_arn=pipeline.edge_deploy_project.role.role_arn,
            description=f"{plant.name}: EKS local cluster of the MES services on the Outpost",
            **common,
        )
        # In the edge stack, after the pipeline exists: the pipeline names the edge cluster by
        # its fixed name, so neither stack references the other both ways.
        edge.edge.admit_api_clients("PipelineDeploy", pipeline.deploy_security_group)
        stacks["edge_site"] = edge
    return stacks
