"""The allow-list table, Greengrass core devices and CloudWatch metrics (EMF) for the gateway
health function."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.metrics import EphemeralMetrics, MetricUnit
from botocore.exceptions import ClientError

from lambdas.common.aws import client
from lambdas.common.dynamodb import Table, conditional_check_failed, string_attributes
from mes_domain.fleet import (
    FLEET_METRICS_DIMENSION,
    FLEET_METRICS_NAMESPACE,
    HEALTH_METRIC,
    Connectivity,
    GatewayHealth,
)
from mes_domain.fleet import AllowListAttribute as A


class AllowList(Table):
    def record_connectivity(self, serial: str, connectivity: Connectivity, at_ms: int) -> bool:
        """Set the serial's connectivity unless a later (or the same) event was recorded:
        lifecycle events may arrive out of order and twice. False when nothing changed (a
        stale or repeated event, or a serial not on the allow-list)."""
        try:
            self._db.update_item(
                TableName=self.table,
                Key={A.SERIAL.value: {"S": serial}},
                UpdateExpression="SET #c = :c, #at = :at",
                ConditionExpression="attribute_exists(#serial) AND "
                "(attribute_not_exists(#at) OR #at < :at)",
                ExpressionAttributeNames={
                    "#serial": A.SERIAL.value,
                    "#c": A.CONNECTIVITY.value,
                    "#at": A.CONNECTIVITY_AT.value,
                },
                ExpressionAttributeValues={
                    ":c": {"S": connectivity.value},
                    ":at": {"N": str(at_ms)},
                },
            )
        except ClientError as err:
            if conditional_check_failed(err):
                return False
            raise
        return True

    def gateways(self) -> list[dict[str, Any]]:
        """Every item's string attributes (the allow-list is one item per gateway)."""
        pages = self._db.get_paginator("scan").paginate(TableName=self.table)
        return [string_attributes(item) for page in pages for item in page.get("Items", [])]


def core_device_statuses(greengrass: Any | None = None) -> dict[str, str]:
    """Thing name -> HEALTHY or UNHEALTHY of every Greengrass core device of the account."""
    pages = (greengrass or client("greengrassv2")).get_paginator("list_core_devices").paginate()
    return {
        device["coreDeviceThingName"]: device.get("status", "")
        for page in pages
        for device in page.get("coreDevices", [])
    }


def emit_census(counts: dict[GatewayHealth, int], prefix: str) -> None:
    """One EMF document: the three counts, dimension ``Prefix``."""
    metrics = EphemeralMetrics(namespace=FLEET_METRICS_NAMESPACE)
    metrics.add_dimension(name=FLEET_METRICS_DIMENSION, value=prefix)
    for health, name in HEALTH_METRIC.items():
        metrics.add_metric(name=name, unit=MetricUnit.Count, value=counts[health])
    metrics.flush_metrics()
