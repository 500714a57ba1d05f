"""IiotStack: thing groups per site and line, the telemetry stream and the time-series store."""

from __future__ import annotations

from typing import Any

from aws_cdk import CfnOutput, Duration, Stack
from aws_cdk import aws_iot as iot
from aws_cdk import aws_kinesis as kinesis
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from constructs import Construct

from mes_domain.naming import rule_name, telemetry_database_name
from mes_domain.naming import thing_group_name as thing_group_name
from mes_domain.plant import Plant
from stacks.compliance import acknowledge
from stacks.constructs.buckets import DataBucket
from stacks.constructs.gateway_policy import GatewayPolicy
from stacks.constructs.ingest_rules import IngestRules
from stacks.constructs.lambda_packaging import LambdaPackaging
from stacks.constructs.quality_results import (
    QUEUE_VISIBILITY_TIMEOUT as QUALITY_RESULTS_VISIBILITY,
)
from stacks.constructs.queues import dead_letter_queue, encrypted_queue
from stacks.constructs.sitewise_edge import SiteWiseEdgeGateways
from stacks.constructs.telemetry_writer import TelemetryWriter
from stacks.constructs.timeseries_store import TimeSeriesStore


class IiotStack(Stack):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        plant: Plant,
        data_key: kms.IKey,
        logs_key: kms.IKey,
        access_logs: s3.IBucket,
        packaging: LambdaPackaging,
        **kwargs: Any,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        prefix = plant.deployment.stack_prefix

        self.thing_groups: dict[tuple[str, ...], iot.CfnThingGroup] = {}
        for site in plant.sites:
            site_group = iot.CfnThingGroup(
                self,
                f"Site-{site.id}",
                thing_group_name=thing_group_name(prefix, site.id),
                thing_group_properties={"thingGroupDescription": f"Gateways of site {site.id}"},
            )
            self.thing_groups[(site.id,)] = site_group
            for line in site.lines:
                line_group = iot.CfnThingGroup(
                    self,
                    f"Line-{site.id}-{line.id}",
                    thing_group_name=thing_group_name(prefix, site.id, line.id),
                    parent_group_name=site_group.thing_group_name,
                    thing_group_properties={
                        "thingGroupDescription": f"Gateways of line {site.id}/{line.id}"
                    },
                )
                line_group.node.add_dependency(site_group)
                self.thing_groups[(site.id, line.id)] = line_group

        settings = plant.iiot
        self.telemetry_stream = kinesis.Stream(
            self,
            "TelemetryStream",
            encryption=kinesis.StreamEncryption.KMS,
            encryption_key=data_key,
            stream_mode=(
                kinesis.StreamMode.ON_DEMAND
                if settings.telemetry_stream_shards is None
                else kinesis.StreamMode.PROVISIONED
            ),
            shard_count=settings.telemetry_stream_shards,
            retention_period=Duration.hours(settings.telemetry_stream_retention_hours),
        )
        acknowledge(
            self.telemetry_stream.node.default_child,
            "AwsSolutions-KDS3",
            "Telemetry is encrypted with the platform's customer-managed data key, so the "
            "platform owns its key policy and rotation instead of the aws/kinesis key.",
        )

        self.rejected_data = DataBucket(
            self, "TimeseriesRejected", encryption_key=data_key, access_logs=access_logs
        ).bucket
        self.timeseries = TimeSeriesStore(
            self,
            "TimeSeries",
            backend=settings.timeseries_store,
            database_name=telemetry_database_name(prefix),
            retention=plant.retention,
            encryption_key=data_key,
            rejected_data_bucket=self.rejected_data,
        )

        self.telemetry_writer = TelemetryWriter(
            self,
            "TelemetryWriter",
            stream=self.telemetry_stream,
            store=self.timeseries,
            packaging=packaging,
            data_key=data_key,
            logs_key=logs_key,
            log_retention_days=plant.retention.log_days,
            access_logs=access_logs,
        )

        # Inspection results wait here for the quality capability; poison messages move aside.
        self.quality_results_dead_letters = dead_letter_queue(
            self,
            "QualityResultsDeadLetters",
            encryption_key=data_key,
            holds="inspection results that failed processing five times",
            of_queue_or_function=True,
        )
        self.quality_results = encrypted_queue(
            self,
            "QualityResults",
            encryption_key=data_key,
            dead_letter_queue=self.quality_results_dead_letters,
            visibility_timeout=QUALITY_RESULTS_VISIBILITY,
        )
        self.ingest_errors = DataBucket(
            self, "IngestErrors", encryption_key=data_key, access_logs=access_logs
        ).bucket
        self.rules = IngestRules(
            self,
            "Rules",
            prefix=prefix,
            telemetry_stream=self.telemetry_stream,
            quality_queue=self.quality_results,
            error_bucket=self.ingest_errors,
        )

        # One per line (no thing policy variables on core devices: stacks/constructs/
        # gateway_policy.py); the provisioning template attaches a gateway's line's.
        self.gateway_policies: dict[tuple[str, str], GatewayPolicy] = {
            (site.id, line.id): GatewayPolicy(
                self,
                f"GatewayPolicy-{site.id}-{line.id}",
                prefix=prefix,
                site=site.id,
                line=line.id,
                # Every routed kind has only a rule as consumer, so each may skip the broker.
                basic_ingest_rules=[rule_name(prefix, kind) for kind in self.rules.rules],
            )
            for site in plant.sites
            for line in site.lines
        }

        self.sitewise_edge = (
            SiteWiseEdgeGateways(self, "SiteWiseEdge", plant=plant)
            if settings.opcua_to_sitewise
            else None
        )

        CfnOutput(self, "TelemetryStreamName", value=self.telemetry_stream.stream_name)
        CfnOutput(self, "TimeseriesDatabase", value=self.timeseries.database_name)
