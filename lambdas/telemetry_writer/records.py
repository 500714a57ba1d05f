"""Pure logic: telemetry batches to Timestream multi-measure records, grouped for WriteRecords.

Readings of one station that share a timestamp and quality become one multi-measure record,
so a batch of N readings costs far fewer than N records, and records are sent in groups of at
most ``MAX_RECORDS_PER_WRITE`` (the WriteRecords limit).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from mes_domain.contracts import Reading, TelemetryBatch

MAX_RECORDS_PER_WRITE = 100  # Timestream WriteRecords accepts at most 100 records per call
MEASURE_NAME = "telemetry"


@dataclass(frozen=True, slots=True)
class SourcedRecord:
    """A Timestream record with the stream item it came from and how many readings it holds."""

    source_id: str
    record: dict[str, Any]
    readings: int


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """Something that could not be written, with the reason; it goes to the DLQ, never away."""

    source_id: str
    reason: str
    body: dict[str, Any] = field(default_factory=dict)
    readings: int = 0


def _measure_value(value: bool | int | float | str) -> tuple[str, str]:
    """Timestream type and string value; bool first, since bool is an int in Python."""
    if isinstance(value, bool):
        return "BOOLEAN", "true" if value else "false"
    if isinstance(value, int):
        return "BIGINT", str(value)
    if isinstance(value, float):
        return "DOUBLE", repr(value)
    return "VARCHAR", value


def batch_to_records(
    batch: TelemetryBatch, source_id: str
) -> tuple[list[SourcedRecord], list[DeadLetter]]:
    """Group a batch's readings by (ts, quality) into multi-measure records.

    An exact duplicate reading counts once; a second, different value for the same tag and
    timestamp is dead-lettered rather than silently overwriting the first.
    """
    groups: dict[tuple[int, str], dict[str, Reading]] = {}
    held: dict[tuple[int, str], int] = {}  # readings per record, exact duplicates included
    dead: list[DeadLetter] = []
    for reading in batch.readings:
        key = (reading.ts, reading.quality.value)
        group = groups.setdefault(key, {})
        earlier = group.get(reading.tag)
        if earlier is None or earlier == reading:
            group[reading.tag] = reading
            held[key] = held.get(key, 0) + 1
        else:
            dead.append(
                DeadLetter(
                    source_id,
                    f"conflicting value for tag {reading.tag!r} at ts {reading.ts} "
                    f"in batch {batch.batch_id!r}",
                    {"batch_id": batch.batch_id, "reading": reading.model_dump(mode="json")},
                    readings=1,
                )
            )
    records = []
    for (ts, quality), readings in groups.items():
        measures = []
        for tag, reading in readings.items():
            value_type, value = _measure_value(reading.value)
            measures.append({"Name": tag, "Value": value, "Type": value_type})
        record = {
            "Dimensions": [
                {"Name": "site", "Value": batch.site},
                {"Name": "line", "Value": batch.line},
                {"Name": "station", "Value": batch.station},
                {"Name": "quality", "Value": quality},
            ],
            "MeasureName": MEASURE_NAME,
            "MeasureValueType": "MULTI",
            "MeasureValues": measures,
            "Time": str(ts),
            "TimeUnit": "MILLISECONDS",
        }
        records.append(SourcedRecord(source_id, record, readings=held[(ts, quality)]))
    return records, dead


def write_groups(
    records: Sequence[SourcedRecord], size: int = MAX_RECORDS_PER_WRITE
) -> Iterator[Sequence[SourcedRecord]]:
    """Consecutive groups of at most ``size`` records: ceil(len / size) WriteRecords calls."""
    if not 1 <= size <= MAX_RECORDS_PER_WRITE:
        raise ValueError(f"group size must be 1..{MAX_RECORDS_PER_WRITE}, not {size}")
    for start in range(0, len(records), size):
        yield records[start : start + size]
