"""What the quality-results consumer shares with the CDK app: its environment keys and the
field the quality rule adds to each device message (the CDK app imports only this module)."""

from __future__ import annotations

from enum import StrEnum

TOPIC_FIELD = "mqtt_topic"  # added by the quality rule's SQL: SELECT *, topic() AS mqtt_topic


class EnvVar(StrEnum):
    RECORDS_TABLE = "RECORDS_TABLE"
    COUNTS_TABLE = "COUNTS_TABLE"
    NONCONFORMANCES_TABLE = "NONCONFORMANCES_TABLE"
    EVENT_BUS_NAME = "EVENT_BUS_NAME"
    WINDOW_MINUTES = "WINDOW_MINUTES"
    TIMESTREAM_DATABASE = "TIMESTREAM_DATABASE"
    EVENTS_TABLE = "EVENTS_TABLE"
