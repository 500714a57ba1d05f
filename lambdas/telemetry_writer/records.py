"""Pure logic: station messages to Timestream multi-measure records, grouped for WriteRecords.

Readings of one station that share a timestamp and quality become one multi-measure record,
so a batch of N readings costs far fewer than N records, and records are sent in groups of at
most ``MAX_RECORDS_PER_WRITE`` (the WriteRecords limit). State changes and part counts become
one record each in the events table, which the KPI engine reads.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from lambdas.common.timestream import MAX_RECORDS_PER_WRITE, event_record
from mes_domain.contracts import PartCount, Reading, StateChange, TelemetryBatch
from mes_domain.topics import StationTopic

MEASURE_NAME = "telemetry"


class Table(StrEnum):
    """Where a record goes; the writer maps each to a table of the time-series store."""

    TELEMETRY = "telemetry"
    EVENTS = "events"


@dataclass(frozen=True, slots=True)
class SourcedRecord:
    """A Timestream record with the stream item it came from and how many readings it holds."""

    source_id: str
    record: dict[str, Any]
    readings: int
    table: Table = Table.TELEMETRY


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


def event_to_record(
    topic: StationTopic, event: StateChange | PartCount, source_id: str
) -> SourcedRecord:
    """One multi-measure record named after the topic's kind (``state`` or ``count``)."""
    return SourcedRecord(source_id, event_record(topic, event), readings=1, table=Table.EVENTS)


def write_groups(
    records: Sequence[SourcedRecord], size: int = MAX_RECORDS_PER_WRITE
) -> Iterator[Sequence[SourcedRecord]]:
    """Per table, consecutive groups of at most ``size`` records: ceil(n / size) calls each."""
    if not 1 <= size <= MAX_RECORDS_PER_WRITE:
        raise ValueError(f"group size must be 1..{MAX_RECORDS_PER_WRITE}, not {size}")
    for table in Table:
        of_table = [r for r in records if r.table is table]
        for start in range(0, len(of_table), size):
            yield of_table[start : start + size]
