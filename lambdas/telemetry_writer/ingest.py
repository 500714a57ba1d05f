"""Ingest logic: validate stream items, write records in groups, dead-letter what is refused.

Pure apart from the injected ports, so tests drive it with moto, stubs or recorders.
Outcome per stream item: written, dead-lettered with a reason, or failed (Kinesis retries it;
rewriting identical records to Timestream is idempotent).

A stream item is a telemetry batch, unless its partition key is an MES ``state`` or ``count``
topic: the state and count rules put ``${topic()}`` there, so the device's payload reaches the
writer unchanged. Each event counts as one reading in the accounting.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple, Protocol

from pydantic import ValidationError

from lambdas.common.timestream import Rejection, WriteFailed
from lambdas.telemetry_writer.records import (
    DeadLetter,
    SourcedRecord,
    Table,
    batch_to_records,
    event_to_record,
    write_groups,
)
from mes_domain.contracts import (
    NOW_MS_CONTEXT_KEY,
    PayloadTooLarge,
    TelemetryBatch,
    parse_station_message,
)
from mes_domain.topics import MessageKind, StationTopic, TopicError, parse_topic

EVENT_KINDS = (MessageKind.STATE, MessageKind.COUNT)


class StreamItem(NamedTuple):
    source_id: str  # the Kinesis sequence number
    data: bytes
    partition_key: str = ""


class RecordWriter(Protocol):
    def write(self, records: list[dict]) -> list[Rejection]: ...


class DeadLetterSink(Protocol):
    def send(self, letters: Sequence[DeadLetter]) -> None: ...


@dataclass
class IngestOutcome:
    readings_in: int = 0
    readings_written: int = 0
    readings_dead_lettered: int = 0
    write_calls: int = 0
    failed_sources: set[str] = field(default_factory=set)


def raw_reading_count(data: bytes) -> int:
    """Readings a payload claims to carry, even when it is invalid (for accounting)."""
    try:
        document = json.loads(data)
    except ValueError:
        return 0
    readings = document.get("readings") if isinstance(document, dict) else None
    return len(readings) if isinstance(readings, list) else 0


def _validation_reason(err: ValidationError, what: str = "telemetry batch") -> str:
    problems = "; ".join(
        f"{'.'.join(map(str, e['loc'])) or 'payload'}: {e['msg']}" for e in err.errors()[:5]
    )
    return f"malformed {what} ({err.error_count()} problem(s)): {problems}"


def event_topic(partition_key: str) -> StationTopic | None:
    """The state or count topic a rule put in the partition key; None for telemetry."""
    if not partition_key.startswith(("mes/", "$aws/rules/")):
        return None
    try:
        topic = parse_topic(partition_key).topic
    except TopicError:
        return None
    return topic if topic.kind in EVENT_KINDS else None


def ingest(
    items: Iterable[tuple[str, bytes] | tuple[str, bytes, str]],
    writer: RecordWriter,
    dead_letters: DeadLetterSink,
    *,
    event_writer: RecordWriter | None = None,
    now_ms: int | None = None,
) -> IngestOutcome:
    """``writer`` writes telemetry records, ``event_writer`` state and count records."""
    outcome = IngestOutcome()
    context = {NOW_MS_CONTEXT_KEY: now_ms} if now_ms is not None else None
    records: list[SourcedRecord] = []
    letters: list[DeadLetter] = []
    writers = {Table.TELEMETRY: writer, Table.EVENTS: event_writer}

    for source_id, data, partition_key in (StreamItem(*item) for item in items):
        topic = event_topic(partition_key)
        if topic is not None:
            outcome.readings_in += 1
            try:
                event = parse_station_message(topic, data, now_ms=now_ms)
            except (ValidationError, PayloadTooLarge) as err:
                reason = (
                    _validation_reason(err, f"{topic.kind.value} message on {topic}")
                    if isinstance(err, ValidationError)
                    else f"{topic.kind.value} message on {topic}: {err}"
                )
                body = {"topic": str(topic), "data": data.decode("utf-8", errors="replace")}
                letters.append(DeadLetter(source_id, reason, body, readings=1))
            else:
                records.append(event_to_record(topic, event, source_id))
            continue
        try:
            batch = TelemetryBatch.model_validate_json(data, context=context)
        except ValidationError as err:
            claimed = raw_reading_count(data)  # parsed again only on this rare path
            outcome.readings_in += claimed
            body = {"data": data.decode("utf-8", errors="replace")}
            letters.append(DeadLetter(source_id, _validation_reason(err), body, claimed))
            continue
        outcome.readings_in += len(batch.readings)
        batch_records, batch_letters = batch_to_records(batch, source_id)
        records += batch_records
        letters += batch_letters

    for group in write_groups(records):
        group_writer = writers[group[0].table]
        if group_writer is None:
            raise ValueError(f"no writer for the {group[0].table.value} table")
        outcome.write_calls += 1
        try:
            rejections = group_writer.write([r.record for r in group])
        except WriteFailed:
            outcome.failed_sources.update(r.source_id for r in group)
            continue
        rejected = {rejection.index: rejection.reason for rejection in rejections}
        for index, sourced in enumerate(group):
            if index in rejected:
                letters.append(
                    DeadLetter(
                        sourced.source_id,
                        f"Timestream rejected the record: {rejected[index]}",
                        {"record": sourced.record},
                        sourced.readings,
                    )
                )
            else:
                outcome.readings_written += sourced.readings

    if letters:
        try:
            dead_letters.send(letters)
        except WriteFailed:
            outcome.failed_sources.update(letter.source_id for letter in letters)
        else:
            outcome.readings_dead_lettered = sum(letter.readings for letter in letters)
    return outcome
