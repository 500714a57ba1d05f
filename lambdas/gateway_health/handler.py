"""Gateway health: the plant dashboard's online, unhealthy and offline gateways.

Two event sources, one function:

- AWS IoT's connect/disconnect lifecycle events of the gateways (a topic rule): the gateway's
  connectivity goes into its allow-list item, the latest event winning. The nucleus' main MQTT
  connection uses the thing name as client id; its extra connections (``<thing>#<n>``) get no
  lifecycle events (iot/latest/developerguide/life-cycle-events.html).
- A schedule (EventBridge, every ``CENSUS_INTERVAL_MINUTES``): counts the provisioned gateways
  by ``mes_domain.fleet.gateway_health``, with each core device's Greengrass status, and writes
  the three counts as CloudWatch metrics (EMF).
"""

from __future__ import annotations

import os
from typing import Any

from aws_lambda_powertools import Logger

from lambdas.gateway_health.adapters import AllowList, core_device_statuses, emit_census
from lambdas.gateway_health.contract import EnvVar
from mes_domain.fleet import PRESENCE_EVENT_TYPES, census, serial_of_thing

logger = Logger(service="gateway_health")


def on_presence(event: dict[str, Any], allow_list: AllowList, prefix: str) -> bool:
    """Record one lifecycle event; False for a client that is no gateway of ours, an unknown
    event type or a stale event."""
    connectivity = PRESENCE_EVENT_TYPES.get(str(event.get("eventType")))
    serial = serial_of_thing(prefix, str(event.get("clientId", "")))
    timestamp = event.get("timestamp")
    if connectivity is None or serial is None or not isinstance(timestamp, int):
        logger.info("presence event ignored", extra={"clientId": event.get("clientId")})
        return False
    recorded = allow_list.record_connectivity(serial, connectivity, timestamp)
    logger.info(
        "presence", extra={"serial": serial, "connectivity": connectivity, "recorded": recorded}
    )
    return recorded


def on_schedule(allow_list: AllowList, statuses: dict[str, str], prefix: str) -> dict[str, int]:
    counts = census(allow_list.gateways(), statuses)
    emit_census(counts, prefix)
    return {health.value: count for health, count in counts.items()}


@logger.inject_lambda_context
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    allow_list = AllowList(os.environ[EnvVar.ALLOW_LIST_TABLE.value])
    prefix = os.environ[EnvVar.STACK_PREFIX.value]
    if "eventType" in event:
        return {"recorded": on_presence(event, allow_list, prefix)}
    counts = on_schedule(allow_list, core_device_statuses(), prefix)
    logger.info("census", extra=counts)
    return counts
