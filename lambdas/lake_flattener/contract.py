"""The lake flattener's environment and the tables it serves, shared with its construct (the CDK
app imports only this module)."""

from __future__ import annotations

from enum import StrEnum


class EnvVar(StrEnum):
    LAKE_TABLE = "LAKE_TABLE"  # the mes_domain.lake table this function's stream delivers


# The tables fed from the telemetry stream, one Firehose stream and processor each: telemetry
# batches, and the state changes and part counts the IIoT rules also put on the stream.
STREAM_TABLES = ("telemetry", "state_changes", "part_counts")
