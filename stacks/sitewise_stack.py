"""SiteWiseStack: asset models and assets for every site, line and station, with OEE metrics,
and the opt-in SiteWise Monitor portal with their dashboards."""

from __future__ import annotations

from typing import Any

from aws_cdk import CfnOutput, Stack
from aws_cdk import aws_kms as kms
from constructs import Construct

from mes_domain.plant import Plant
from stacks.constructs.lambda_packaging import LambdaPackaging
from stacks.constructs.sitewise_assets import SiteAssets
from stacks.constructs.sitewise_models import design_plant
from stacks.constructs.sitewise_monitor import SiteWiseMonitor


class SiteWiseStack(Stack):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        plant: Plant,
        packaging: LambdaPackaging,
        logs_key: kms.IKey,
        **kwargs: Any,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        # Checked against SiteWise's expression limits here, at synth, not at deploy.
        self.design = design_plant(plant)
        self.sites = {
            site.site: SiteAssets(self, f"Site-{site.site}", design=site)
            for site in self.design.sites
        }
        for site_id, site in self.sites.items():
            CfnOutput(
                self,
                f"SiteAssetId{site_id.replace('-', '').replace('_', '')}",
                description=f"SiteWise asset of site {site_id}",
                value=site.asset.attr_asset_id,
            )
        self.monitor: SiteWiseMonitor | None = None
        if plant.kpi.sitewise_monitor.enabled:
            self.monitor = SiteWiseMonitor(
                self,
                "Monitor",
                plant=plant,
                sites=self.sites,
                packaging=packaging,
                logs_key=logs_key,
            )
            CfnOutput(
                self,
                "PortalStartUrl",
                description="SiteWise Monitor portal (IAM sign-in)",
                value=self.monitor.portal.attr_portal_start_url,
            )
