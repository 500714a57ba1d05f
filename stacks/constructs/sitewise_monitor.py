"""The opt-in SiteWise Monitor portal: one project per site and dashboards of OEE, A/P/Q and
good and bad parts for the site, each line and each station.

AWS closed SiteWise Monitor to new customers on 7 November 2025; accounts that already use it
turn this on with ``kpi.sitewise_monitor`` in the plant config. The portal authenticates with
IAM: CloudFormation can grant IAM users and roles access in the same template, while IAM
Identity Center needs an organisation instance and users that CloudFormation cannot create.

Dashboards name properties by id, which CloudFormation can neither set nor return for asset
models, so a custom resource looks them up per model when the stack deploys.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import partial

from aws_cdk import CustomResource, NestedStack, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_iotsitewise as sitewise
from aws_cdk import aws_kms as kms
from constructs import Construct

from lambdas.sitewise_property_ids.contract import MODEL_ID, PROPERTY_NAMES
from mes_domain.plant import Plant
from mes_domain.sitewise import (
    AVAILABILITY,
    BAD_PARTS,
    GOOD_PARTS,
    OEE,
    PERFORMANCE,
    QUALITY,
)
from stacks.compliance import acknowledge
from stacks.constructs.lambda_packaging import LambdaPackaging
from stacks.constructs.mes_function import TRACING_REASON, MesFunction
from stacks.constructs.sitewise_assets import STATIONS_PER_DASHBOARD, LineAssets, SiteAssets

RATIOS = (OEE, AVAILABILITY, PERFORMANCE, QUALITY)
PARTS = (GOOD_PARTS, BAD_PARTS)
DASHBOARD_PROPERTIES = (*RATIOS, *PARTS)
MAX_STATIONS_PER_DASHBOARD = STATIONS_PER_DASHBOARD
WIDGET_WIDTH = 3  # two widgets side by side on Monitor's six-column grid
WIDGET_HEIGHT = 3
PROPERTY_IDS_RESOURCE_TYPE = "Custom::SiteWisePropertyIds"


@dataclass(frozen=True)
class Metric:
    """One asset property on a widget; ids may be deploy-time tokens."""

    label: str
    asset_id: str
    property_id: str


@dataclass(frozen=True)
class Widget:
    kind: str  # sc-line-chart, sc-bar-chart, ...
    title: str
    metrics: tuple[Metric, ...]


def dashboard_definition(widgets: Sequence[Widget]) -> dict:
    """The classic Monitor definition: widgets in rows of two on the six-column grid."""
    return {
        "widgets": [
            {
                "type": widget.kind,
                "title": widget.title,
                "x": (index % 2) * WIDGET_WIDTH,
                "y": (index // 2) * WIDGET_HEIGHT,
                "width": WIDGET_WIDTH,
                "height": WIDGET_HEIGHT,
                "metrics": [
                    {
                        "label": metric.label,
                        "type": "iotsitewise",
                        "assetId": metric.asset_id,
                        "propertyId": metric.property_id,
                        "dataType": "DOUBLE",
                    }
                    for metric in widget.metrics
                ],
            }
            for index, widget in enumerate(widgets)
        ]
    }


def kpi_widgets(title: str, asset_id: str, ids: dict[str, str]) -> tuple[Widget, Widget]:
    """OEE with A/P/Q as a line chart, good and bad parts as a bar chart, for one asset."""
    return (
        Widget("sc-line-chart", f"{title}: OEE, A, P, Q", tuple(
            Metric(name, asset_id, ids[name]) for name in RATIOS
        )),
        Widget("sc-bar-chart", f"{title}: good and bad parts", tuple(
            Metric(name, asset_id, ids[name]) for name in PARTS
        )),
    )  # fmt: skip


def chunks(items: Sequence, size: int) -> Iterator[Sequence]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


class PropertyIdResolver(Construct):
    """The custom resource's function: property ids of an asset model, by name."""

    def __init__(
        self,
        scope: Construct,
        construct_id_: str,
        *,
        plant: Plant,
        packaging: LambdaPackaging,
        logs_key: kms.IKey,
    ) -> None:
        super().__init__(scope, construct_id_)
        self._function = MesFunction(
            self,
            "Resolver",
            handler="lambdas.sitewise_property_ids.handler.lambda_handler",
            description="Custom resource: SiteWise asset model property ids for dashboards",
            packaging=packaging,
            logs_key=logs_key,
            log_retention_days=plant.retention.log_days,
            memory_size=256,
            timeout_seconds=120,
            environment={"POWERTOOLS_SERVICE_NAME": "sitewise_property_ids"},
        )
        stack = Stack.of(self)
        self._function.role.add_to_policy(
            iam.PolicyStatement(
                actions=["iotsitewise:ListAssetModelProperties"],
                resources=[
                    stack.format_arn(
                        service="iotsitewise", resource="asset-model", resource_name="*"
                    )
                ],
            )
        )
        self.service_token = self._function.function.function_arn
        self._resolved: dict[str, dict[str, str]] = {}
        self._function.acknowledge_policy(
            {
                "AwsSolutions-IAM5[Resource::*]": TRACING_REASON,
                "AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:iotsitewise:<AWS::Region>:"
                "<AWS::AccountId>:asset-model/*]": (
                    "Read-only listing of property names and ids of this account's asset "
                    "models; the models' ids exist only after they deploy."
                ),
            }
        )
        acknowledge(
            self._function.function.node.default_child,
            "Serverless-LambdaDLQ",
            "Invoked synchronously by CloudFormation, never asynchronously; every request "
            "is answered, a failure with its reason, so there is nothing to dead-letter.",
        )

    def property_ids(self, model: sitewise.CfnAssetModel, user: Construct) -> dict[str, str]:
        """The dashboard properties' ids of ``model``, resolved at deploy time by a custom
        resource in the stack of ``user`` (one per model and stack): a stack then takes one
        parameter, the model's id, from another stack rather than six property ids."""
        stack = Stack.of(user)
        path = f"{model.node.path}@{stack.node.path}"
        if path not in self._resolved:
            lookup = CustomResource(
                stack,
                f"PropertyIds-{model.node.id}",
                service_token=self.service_token,
                resource_type=PROPERTY_IDS_RESOURCE_TYPE,
                properties={
                    MODEL_ID: model.attr_asset_model_id,
                    PROPERTY_NAMES: list(DASHBOARD_PROPERTIES),
                },
            )
            self._resolved[path] = {
                name: lookup.get_att_string(name) for name in DASHBOARD_PROPERTIES
            }
        return self._resolved[path]


class SiteWiseMonitor(Construct):
    """Portal, access policies, one project per site, and dashboards per site and line."""

    def __init__(
        self,
        scope: Construct,
        construct_id_: str,
        *,
        plant: Plant,
        sites: dict[str, SiteAssets],
        packaging: LambdaPackaging,
        logs_key: kms.IKey,
    ) -> None:
        super().__init__(scope, construct_id_)
        settings = plant.kpi.sitewise_monitor
        prefix = plant.deployment.stack_prefix
        self.resolver = PropertyIdResolver(
            self, "PropertyIds", plant=plant, packaging=packaging, logs_key=logs_key
        )
        self.role = self._portal_role()
        self.portal = sitewise.CfnPortal(
            self,
            "Portal",
            portal_name=f"{prefix}-plant",
            portal_description=f"OEE and good and bad parts of {plant.name}",
            portal_auth_mode="IAM",
            portal_contact_email=settings.contact_email,
            role_arn=self.role.role_arn,
        )
        self._grant(
            Construct(self, "Administrators"),
            "ADMINISTRATOR",
            settings.administrators,
            {"portal": {"id": self.portal.attr_portal_id}},
        )
        # A project per site and per line: a line's project and dashboards live in the line's
        # nested stack, beside its assets, so nothing in the parent waits for them twice.
        self.projects: dict[str, sitewise.CfnProject] = {}
        self.dashboards: list[sitewise.CfnDashboard] = []
        for site in plant.sites:
            assets = sites[site.id]
            site_title = site.name or site.id
            scope = Construct(self, f"Site-{site.id}")
            project = self._project(scope, site.id, site_title, assets.asset, settings.viewers)
            self._site_dashboard(scope, site_title, assets, project)
            for line in site.lines:
                line_assets = assets.lines[line.id]
                title = f"{site_title} / {line.name or line.id}"
                scope = Construct(line_assets, "Monitor")
                project = self._project(
                    scope, f"{site.id}/{line.id}", title, line_assets.line_asset, settings.viewers
                )
                self._line_dashboards(title, line_assets, project)

    def _portal_role(self) -> iam.Role:
        """What the portal reads and manages on its users' behalf, in this account only."""
        stack = Stack.of(self)
        role = iam.Role(
            self,
            "PortalRole",
            assumed_by=iam.ServicePrincipal("monitor.iotsitewise.amazonaws.com"),
            description="Assumed by the SiteWise Monitor portal for its users",
        )

        def arns(*resources: str) -> list[str]:
            return [
                stack.format_arn(service="iotsitewise", resource=r, resource_name="*")
                for r in resources
            ]

        role.add_to_policy(
            iam.PolicyStatement(
                actions=[
                    "iotsitewise:DescribeAsset",
                    "iotsitewise:DescribeAssetModel",
                    "iotsitewise:DescribeAssetProperty",
                    "iotsitewise:ListAssociatedAssets",
                    "iotsitewise:ListAssetRelationships",
                    "iotsitewise:GetAssetPropertyValue",
                    "iotsitewise:GetAssetPropertyValueHistory",
                    "iotsitewise:GetAssetPropertyAggregates",
                    "iotsitewise:GetInterpolatedAssetPropertyValues",
                    "iotsitewise:BatchGetAssetPropertyValue",
                    "iotsitewise:BatchGetAssetPropertyValueHistory",
                    "iotsitewise:BatchGetAssetPropertyAggregates",
                ],
                resources=arns("asset", "asset-model"),
            )
        )
        role.add_to_policy(
            iam.PolicyStatement(
                actions=[
                    "iotsitewise:DescribeProject",
                    "iotsitewise:ListProjectAssets",
                    "iotsitewise:ListDashboards",
                    "iotsitewise:CreateDashboard",
                    "iotsitewise:DescribeDashboard",
                    "iotsitewise:UpdateDashboard",
                    "iotsitewise:DeleteDashboard",
                    "iotsitewise:DescribeAccessPolicy",
                    "iotsitewise:ListAccessPolicies",
                ],
                resources=arns("portal", "project", "dashboard", "access-policy"),
            )
        )
        policy = role.node.find_child("DefaultPolicy")
        for resource in ("asset", "asset-model", "portal", "project", "dashboard", "access-policy"):
            acknowledge(
                policy,
                "AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:iotsitewise:<AWS::Region>:"
                f"<AWS::AccountId>:{resource}/*]",
                "The portal shows and edits whatever its IAM-authorised users may see, in "
                "this account and region only; per-asset access is decided by the projects.",
            )
        return role

    def _project(
        self,
        scope: Construct,
        key: str,
        title: str,
        asset: sitewise.CfnAsset,
        viewers: Sequence[str],
    ) -> sitewise.CfnProject:
        """A project of ``asset`` and its descendants, which ``viewers`` may see."""
        project = sitewise.CfnProject(
            scope,
            "Project",
            portal_id=self.portal.attr_portal_id,
            project_name=title[:256],
            project_description=f"OEE and parts of {key}",
            asset_ids=[asset.attr_asset_id],
        )
        self.projects[key] = project
        self._grant(scope, "VIEWER", viewers, {"project": {"id": project.attr_project_id}})
        return project

    def _grant(
        self, scope: Construct, permission: str, principals: Sequence[str], resource: dict
    ) -> None:
        for index, arn in enumerate(principals, start=1):
            kind = "iamRole" if ":role/" in arn else "iamUser"
            sitewise.CfnAccessPolicy(
                scope,
                f"{permission.title()}{index}",
                access_policy_identity={kind: {"arn": arn}},
                access_policy_permission=permission,
                access_policy_resource=resource,
            )

    def _dashboard(
        self,
        scope: Construct,
        construct_id_: str,
        name: str,
        project: sitewise.CfnProject,
        widgets: Sequence[Widget],
    ) -> None:
        self.dashboards.append(
            sitewise.CfnDashboard(
                scope,
                construct_id_,
                project_id=project.attr_project_id,
                dashboard_name=name[:256],
                dashboard_description="OEE, availability, performance, quality and parts",
                dashboard_definition=Stack.of(scope).to_json_string(dashboard_definition(widgets)),
            )
        )

    def _site_dashboard(
        self, scope: Construct, title: str, assets: SiteAssets, project: sitewise.CfnProject
    ) -> None:
        """The site's KPIs, then each line's."""
        resolve = partial(self.resolver.property_ids, user=scope)
        widgets = list(kpi_widgets(title, assets.asset.attr_asset_id, resolve(assets.model)))
        for line_id, line in assets.lines.items():
            line_asset = line.line_asset.attr_asset_id
            widgets += kpi_widgets(line_id, line_asset, resolve(line.line_model))
        self._dashboard(scope, "Dashboard", title, project, widgets)

    def _line_dashboards(self, title: str, line: LineAssets, project: sitewise.CfnProject) -> None:
        """The line's KPIs, then its stations', 20 to a dashboard."""
        pages = []
        for number, (target, plan) in enumerate(line.station_stacks, start=1):
            here = self._dashboards_scope(line, number, target)
            pages += [
                (here, stations) for stations in chunks(plan.assets, MAX_STATIONS_PER_DASHBOARD)
            ]
        for page_number, (here, stations) in enumerate(pages, start=1):
            resolve = partial(self.resolver.property_ids, user=here)
            line_asset = line.line_asset.attr_asset_id
            widgets = list(kpi_widgets(title, line_asset, resolve(line.line_model)))
            for station in stations:
                widgets += kpi_widgets(
                    station.key.rsplit("/", 1)[-1],
                    line.assets[station.key].attr_asset_id,
                    resolve(line.models[station.model]),
                )
            name = title if len(pages) == 1 else f"{title} ({page_number}/{len(pages)})"
            self._dashboard(here, f"Dashboard{page_number}", name, project, widgets)

    @staticmethod
    def _dashboards_scope(line: LineAssets, number: int, target: Construct) -> Construct:
        """Where a station stack's dashboards go: the line's own stack when it holds the
        stations; else a nested stack beside the station stack, because the dashboards read
        the line's asset, model and project, which read the station stack: in it they would
        make a cycle."""
        if target is line:
            return line.node.try_find_child("Monitor") or Construct(line, "Monitor")
        return NestedStack(
            line,
            f"Dashboards-{number}",
            description=f"SiteWise Monitor dashboards of {target.node.id} of line "
            f"{line.design.site}/{line.design.line}",
            suppress_template_indentation=True,
        )
