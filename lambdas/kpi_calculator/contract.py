"""The KPI calculator's environment keys, shared with its construct (which imports only this)."""

from __future__ import annotations

from enum import StrEnum


class EnvVar(StrEnum):
    TIMESTREAM_DATABASE = "TIMESTREAM_DATABASE"
    EVENTS_TABLE = "EVENTS_TABLE"
    KPI_TABLE = "KPI_TABLE"
    IDEMPOTENCY_TABLE = "IDEMPOTENCY_TABLE"
    METRICS_NAMESPACE = "METRICS_NAMESPACE"
    PLANT_FILE = "PLANT_FILE"
    EVENT_BUS_NAME = "EVENT_BUS_NAME"  # optional: closed windows' rows go to the data lake
