"""The CloudWatch dashboard people look at, and the alarms on the pipeline's health.

Plant KPIs come from the KPI calculator's metrics (namespace ``MES/KPI``, dimensions site, line
and station); pipeline health from the stream, the functions and the dead-letter queues.
Alarms go to the platform's alarm topic.
"""

from __future__ import annotations

from collections.abc import Mapping

from aws_cdk import Duration
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as actions
from aws_cdk import aws_kinesis as kinesis
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from mes_domain.fleet import (
    CENSUS_INTERVAL_MINUTES,
    FLEET_METRICS_DIMENSION,
    FLEET_METRICS_NAMESPACE,
    HEALTH_METRIC,
    GatewayHealth,
)
from mes_domain.naming import plant_dashboard_name
from mes_domain.plant import Plant

ITERATOR_AGE_ALARM = Duration.minutes(5)  # telemetry older than this is not "live" any more
PERIOD = Duration.minutes(5)


class PlantDashboard(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        plant: Plant,
        namespace: str,
        stream: kinesis.IStream,
        functions: Mapping[str, lambda_.IFunction],
        dead_letter_queues: Mapping[str, sqs.IQueue],
        alarm_topic: sns.ITopic,
    ) -> None:
        super().__init__(scope, construct_id)
        window = Duration.minutes(plant.kpi.window_minutes)
        prefix = plant.deployment.stack_prefix
        self.dashboard = cloudwatch.Dashboard(
            self,
            "Dashboard",
            dashboard_name=plant_dashboard_name(prefix),
            default_interval=Duration.hours(8),
        )

        def kpi(name: str, label: str, statistic: str = "Average", **dimensions: str):
            return cloudwatch.Metric(
                namespace=namespace,
                metric_name=name,
                dimensions_map=dimensions,
                statistic=statistic,
                period=window,
                label=label,
            )

        self.dashboard.add_widgets(cloudwatch.TextWidget(markdown=f"# {plant.name}", width=24))
        for site in plant.sites:
            lines = [line.id for line in site.lines]
            self.dashboard.add_widgets(
                cloudwatch.GraphWidget(
                    title=f"{site.id}: OEE by line (%)",
                    left=[kpi("OEE", line, site=site.id, line=line) for line in lines],
                    width=12,
                ),
                cloudwatch.GraphWidget(
                    title=f"{site.id}: availability, performance, quality (%)",
                    left=[
                        kpi(name, name, site=site.id)
                        for name in ("Availability", "Performance", "Quality")
                    ],
                    width=12,
                ),
            )
            self.dashboard.add_widgets(
                cloudwatch.GraphWidget(
                    title=f"{site.id}: good and bad parts by line",
                    left=[
                        kpi("GoodParts", f"{line} good", "Sum", site=site.id, line=line)
                        for line in lines
                    ],
                    right=[
                        kpi("BadParts", f"{line} bad", "Sum", site=site.id, line=line)
                        for line in lines
                    ],
                    width=12,
                ),
                cloudwatch.GraphWidget(
                    title=f"{site.id}: downtime by line (s)",
                    left=[kpi("Downtime", line, "Sum", site=site.id, line=line) for line in lines],
                    width=12,
                ),
            )
            for line in site.lines:
                stations = [station.id for station in line.stations]
                dims = {"site": site.id, "line": line.id}
                self.dashboard.add_widgets(
                    cloudwatch.GraphWidget(
                        title=f"{site.id}/{line.id}: OEE by station (%)",
                        left=[kpi("OEE", s, **dims, station=s) for s in stations],
                        width=12,
                    ),
                    cloudwatch.GraphWidget(
                        title=f"{site.id}/{line.id}: good and bad parts by station",
                        left=[
                            kpi("GoodParts", f"{s} good", "Sum", **dims, station=s)
                            for s in stations
                        ],
                        right=[
                            kpi("BadParts", f"{s} bad", "Sum", **dims, station=s) for s in stations
                        ],
                        width=12,
                    ),
                )

        # The EdgeFleet stack's census writes these every CENSUS_INTERVAL_MINUTES
        # (lambdas/gateway_health); by name, so this stack needs nothing of that one.
        def gateways(health: GatewayHealth) -> cloudwatch.Metric:
            return cloudwatch.Metric(
                namespace=FLEET_METRICS_NAMESPACE,
                metric_name=HEALTH_METRIC[health],
                dimensions_map={FLEET_METRICS_DIMENSION: prefix},
                statistic="Maximum",
                period=Duration.minutes(CENSUS_INTERVAL_MINUTES),
                label=health.value.lower(),
            )

        census = [gateways(health) for health in GatewayHealth]
        self.dashboard.add_widgets(
            cloudwatch.TextWidget(markdown="## Gateways", width=24),
            cloudwatch.SingleValueWidget(
                title="Gateways online, unhealthy, offline (now)", metrics=census, width=8
            ),
            cloudwatch.GraphWidget(title="Gateways by health", left=census, width=16),
        )

        iterator_age = stream.metric_get_records_iterator_age_milliseconds(
            statistic="Maximum", period=PERIOD
        )
        self.dashboard.add_widgets(
            cloudwatch.TextWidget(markdown="## Pipeline health", width=24),
            cloudwatch.GraphWidget(
                title="Telemetry stream iterator age (ms)", left=[iterator_age], width=8
            ),
            cloudwatch.GraphWidget(
                title="Lambda errors and throttles",
                left=[
                    f.metric_errors(period=PERIOD, label=f"{n} errors")
                    for n, f in functions.items()
                ],
                right=[
                    f.metric_throttles(period=PERIOD, label=f"{n} throttles")
                    for n, f in functions.items()
                ],
                width=8,
            ),
            cloudwatch.GraphWidget(
                title="Dead-letter queue depth",
                left=[self._depth(queue, name) for name, queue in dead_letter_queues.items()],
                width=8,
            ),
        )

        action = actions.SnsAction(alarm_topic)
        self.alarms: dict[str, cloudwatch.Alarm] = {}
        self.alarms["IteratorAge"] = iterator_age.create_alarm(
            self,
            "IteratorAgeAlarm",
            alarm_description="Telemetry is processed more than 5 minutes late",
            threshold=ITERATOR_AGE_ALARM.to_milliseconds(),
            evaluation_periods=1,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )
        for name, queue in dead_letter_queues.items():
            self.alarms[name] = self._depth(queue, name).create_alarm(
                self,
                f"{name}Alarm",
                alarm_description=f"Messages wait in the {name} dead-letter queue",
                threshold=1,
                evaluation_periods=1,
                comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
                treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
            )
        for alarm in self.alarms.values():
            alarm.add_alarm_action(action)
            alarm.add_ok_action(action)

    @staticmethod
    def _depth(queue: sqs.IQueue, name: str) -> cloudwatch.Metric:
        return queue.metric_approximate_number_of_messages_visible(
            statistic="Maximum", period=PERIOD, label=name
        )
