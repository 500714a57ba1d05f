"""The telemetry writer's environment keys, shared with its construct (which imports only this)."""

from __future__ import annotations

from enum import StrEnum


class EnvVar(StrEnum):
    TIMESTREAM_DATABASE = "TIMESTREAM_DATABASE"
    TIMESTREAM_TABLE = "TIMESTREAM_TABLE"
    EVENTS_TABLE = "EVENTS_TABLE"
    DEAD_LETTER_QUEUE_URL = "DEAD_LETTER_QUEUE_URL"
