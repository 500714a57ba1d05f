"""The telemetry writer's environment keys, shared with its construct (which imports only this)."""

from __future__ import annotations

from enum import StrEnum


class EnvVar(StrEnum):
    TIMESTREAM_DATABASE = "TIMESTREAM_DATABASE"
    TIMESTREAM_TABLE = "TIMESTREAM_TABLE"
    EVENTS_TABLE = "EVENTS_TABLE"
    DEAD_LETTER_QUEUE_URL = "DEAD_LETTER_QUEUE_URL"
    DEAD_LETTER_BUCKET = "DEAD_LETTER_BUCKET"  # dead letters too large for a queue message


# Dead letters too large for a queue message are stored whole under this prefix of the bucket.
DEAD_LETTER_PREFIX = "dead-letters"
