"""Pure logic: station messages to Timestream multi-measure records, grouped for WriteRecords.

Readings of one station that share a timestamp and quality become one multi-measure record,
so a batch of N readings costs far fewer than N records, and records are sent in groups of at
most ``MAX_RECORDS_PER_WRITE`` (the WriteRecords limit). A record holds at most
``MAX_MEASURES_PER_RECORD`` measures and ``MAX_MEASURE_VALUE_BYTES`` of values; more readings at
one timestamp become several records, the first named ``telemetry``, the next ``telemetry_2`` and
so on (Timestream keys a record by dimensions, time and measure name, so parts must differ).
State changes and part counts become one record each in the events table.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from lambdas.common.timestream import (
    MAX_MEASURE_VALUE_BYTES,
    MAX_MEASURES_PER_RECORD,
    MAX_RECORDS_PER_WRITE,
    event_record,
    measure_value_bytes,
)
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
    item: int = 0  # position of its stream item in the batch
    slot: int = 0  # position among its stream item's records


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """Something that could not be written, with the reason; it goes to the DLQ, never away."""

    source_id: str
    reason: str
    body: dict[str, Any] = field(default_factory=dict)
    readings: int = 0
    letter_id: str = ""  # stable across retries: shard, sequence number and place in the item


def _measure_value(value: bool | int | float | str) -> tuple[str, str]:
    """Timestream type and string value; bool first, since bool is an int in Python."""
    if isinstance(value, bool):
        return "BOOLEAN", "true" if value else "false"
    if isinstance(value, int):
        return "BIGINT", str(value)
    if isinstance(value, float):
        return "DOUBLE", repr(value)
    return "VARCHAR", value


def measure_name(part: int) -> str:
    """``telemetry`` for a timestamp's first record, ``telemetry_2`` for its second, ..."""
    return MEASURE_NAME if part == 0 else f"{MEASURE_NAME}_{part + 1}"


def _parts(measures: list[dict[str, str]]) -> list[list[dict[str, str]]]:
    """Consecutive parts within both per-record limits; a value too large for any record goes
    alone, and Timestream's rejection of it is dead-lettered."""
    parts: list[list[dict[str, str]]] = []
    size = 0
    for measure in measures:
        value_size = measure_value_bytes(measure["Type"], measure["Value"])
        if (
            not parts
            or len(parts[-1]) == MAX_MEASURES_PER_RECORD
            or size + value_size > MAX_MEASURE_VALUE_BYTES
        ):
            parts.append([])
            size = 0
        parts[-1].append(measure)
        size += value_size
    return parts


def batch_to_records(
    batch: TelemetryBatch, source_id: str
) -> tuple[list[SourcedRecord], list[DeadLetter]]:
    """Group a batch's readings by (ts, quality) into multi-measure records.

    An exact duplicate reading counts once; a second, different value for the same tag and
    timestamp is dead-lettered rather than silently overwriting the first.
    """
    groups: dict[tuple[int, str], dict[str, Reading]] = {}
    held: dict[tuple[int, str], dict[str, int]] = {}  # readings per tag, exact duplicates too
    dead: list[DeadLetter] = []
    for reading in batch.readings:
        key = (reading.ts, reading.quality.value)
        group = groups.setdefault(key, {})
        earlier = group.get(reading.tag)
        if earlier is None or earlier == reading:
            group[reading.tag] = reading
            counts = held.setdefault(key, {})
            counts[reading.tag] = counts.get(reading.tag, 0) + 1
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
        for part, part_measures in enumerate(_parts(measures)):
            record = {
                "Dimensions": [
                    {"Name": "site", "Value": batch.site},
                    {"Name": "line", "Value": batch.line},
                    {"Name": "station", "Value": batch.station},
                    {"Name": "quality", "Value": quality},
                ],
                "MeasureName": measure_name(part),
                "MeasureValueType": "MULTI",
                "MeasureValues": part_measures,
                "Time": str(ts),
                "TimeUnit": "MILLISECONDS",
            }
            count = sum(held[(ts, quality)][m["Name"]] for m in part_measures)
            records.append(SourcedRecord(source_id, record, readings=count))
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
