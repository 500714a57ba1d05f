"""Ingest logic: validate stream items, write records in groups, dead-letter what is refused.

Pure apart from the injected ports, so tests drive it with moto, stubs or recorders.

Items are settled in stream order. Kinesis re-delivers a batch from the lowest sequence number
the handler reports, so the first item that could not be settled (its write failed, or its dead
letters could not be sent) is reported and nothing after it is dead-lettered in this invocation:
the retry settles those items, and each dead letter is sent once. Rewriting identical records is
idempotent in Timestream. A send whose answer was lost can still repeat a letter, so each carries
a ``letter_id`` that is the same on every retry (the stream item's shard and sequence number and
the letter's place in the item), by which a consumer drops the repeat.

A stream item is a telemetry batch, unless its partition key is an MES ``state`` or ``count``
topic: the state and count rules put ``${topic()}`` there, so the device's payload reaches the
writer unchanged. Each event counts as one reading in the accounting.

A telemetry batch's partition key is the site/line/station of the topic it was published on (the
telemetry rule writes ``${topic(3)}/${topic(4)}/${topic(5)}``), which the gateway's IoT policy
restricts; a batch naming another station than its key is dead-lettered, never written.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
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
from mes_domain.contracts import PayloadTooLarge, TopicMismatch, parse_station_message
from mes_domain.topics import MessageKind, StationTopic, TopicError, parse_topic

EVENT_KINDS = (MessageKind.STATE, MessageKind.COUNT)


class StreamItem(NamedTuple):
    source_id: str  # the Kinesis sequence number, reported for retry
    data: bytes
    partition_key: str
    event_id: str = ""  # "<shard id>:<sequence number>", unique in the stream

    @property
    def origin(self) -> str:
        return self.event_id or self.source_id


class RecordWriter(Protocol):
    def write(self, records: list[dict]) -> list[Rejection]: ...


class DeadLetterSink(Protocol):
    def send(self, letters: Sequence[DeadLetter]) -> int:
        """Send in order; return how many, from the first, were delivered."""
        ...


@dataclass
class IngestOutcome:
    """readings_in = readings_written + readings_dead_lettered + readings_retried."""

    readings_in: int = 0
    readings_written: int = 0
    readings_dead_lettered: int = 0
    readings_retried: int = 0
    write_calls: int = 0
    retry_from: str | None = None  # the first item Kinesis must deliver again
    failed_sources: set[str] = field(default_factory=set)  # retry_from and every item after it


@dataclass
class _Parsed:
    item: StreamItem
    readings: int
    records: list[SourcedRecord] = field(default_factory=list)
    letters: list[DeadLetter] = field(default_factory=list)


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


def telemetry_topic(partition_key: str) -> StationTopic | None:
    """The telemetry topic whose site/line/station the telemetry rule put in the key."""
    levels = partition_key.split("/")
    if len(levels) != 3:
        return None
    try:
        return StationTopic(*levels, MessageKind.TELEMETRY)
    except TopicError:
        return None


def _parse_event(item: StreamItem, topic: StationTopic, now_ms: int | None) -> _Parsed:
    parsed = _Parsed(item, readings=1)
    try:
        event = parse_station_message(topic, item.data, now_ms=now_ms)
    except (ValidationError, PayloadTooLarge) as err:
        reason = (
            _validation_reason(err, f"{topic.kind.value} message on {topic}")
            if isinstance(err, ValidationError)
            else f"{topic.kind.value} message on {topic}: {err}"
        )
        body = {"topic": str(topic), "data": item.data.decode("utf-8", errors="replace")}
        parsed.letters.append(DeadLetter(item.source_id, reason, body, readings=1))
    else:
        parsed.records.append(event_to_record(topic, event, item.source_id))
    return parsed


def _parse_telemetry(item: StreamItem, now_ms: int | None) -> _Parsed:
    topic = telemetry_topic(item.partition_key)
    if topic is None:
        reason = (
            f"partition key {item.partition_key!r} names no station; the telemetry rule keys "
            "a batch by its topic's site/line/station"
        )
    else:
        try:
            batch = parse_station_message(topic, item.data, now_ms=now_ms)
        except ValidationError as err:
            reason = _validation_reason(err)
        except (PayloadTooLarge, TopicMismatch) as err:
            reason = f"telemetry batch rejected: {err}"
        else:
            records, letters = batch_to_records(batch, item.source_id)
            return _Parsed(item, len(batch.readings), records, letters)
    claimed = raw_reading_count(item.data)  # parsed again only on this rare path
    body = {"partition_key": item.partition_key, "data": item.data.decode("utf-8", "replace")}
    return _Parsed(item, claimed, letters=[DeadLetter(item.source_id, reason, body, claimed)])


def _parse(item: StreamItem, index: int, now_ms: int | None) -> _Parsed:
    topic = event_topic(item.partition_key)
    parsed = _parse_telemetry(item, now_ms) if topic is None else _parse_event(item, topic, now_ms)
    parsed.records = [replace(r, item=index, slot=k) for k, r in enumerate(parsed.records)]
    parsed.letters = [
        replace(letter, letter_id=f"{item.origin}:p{k}") for k, letter in enumerate(parsed.letters)
    ]
    return parsed


def ingest(
    items: Iterable[tuple[str, bytes, str] | tuple[str, bytes, str, str]],
    writer: RecordWriter,
    dead_letters: DeadLetterSink,
    *,
    event_writer: RecordWriter | None = None,
    now_ms: int | None = None,
) -> IngestOutcome:
    """``writer`` writes telemetry records, ``event_writer`` state and count records."""
    parsed = [_parse(StreamItem(*item), i, now_ms) for i, item in enumerate(items)]
    outcome = IngestOutcome(readings_in=sum(p.readings for p in parsed))
    writers = {Table.TELEMETRY: writer, Table.EVENTS: event_writer}
    cutoff = len(parsed)  # items from here on are retried, not settled
    rejected: list[tuple[SourcedRecord, str]] = []

    for group in write_groups([r for p in parsed for r in p.records]):
        if min(r.item for r in group) >= cutoff:
            continue  # Kinesis delivers these again anyway
        group_writer = writers[group[0].table]
        if group_writer is None:
            raise ValueError(f"no writer for the {group[0].table.value} table")
        outcome.write_calls += 1
        try:
            rejections = group_writer.write([r.record for r in group])
        except WriteFailed:
            cutoff = min(cutoff, min(r.item for r in group))
            continue
        rejected += [(group[r.index], r.reason) for r in rejections if 0 <= r.index < len(group)]

    letters = [list(p.letters) for p in parsed]
    for sourced, reason in rejected:
        origin = parsed[sourced.item].item.origin
        letters[sourced.item].append(
            DeadLetter(
                sourced.source_id,
                f"Timestream rejected the record: {reason}",
                {"record": sourced.record},
                sourced.readings,
                letter_id=f"{origin}:r{sourced.slot}",
            )
        )

    pending = [(i, letter) for i in range(cutoff) for letter in letters[i]]
    if pending:
        delivered = dead_letters.send([letter for _, letter in pending])
        if delivered < len(pending):
            cutoff = min(cutoff, pending[delivered][0])

    for i, p in enumerate(parsed):
        if i >= cutoff:
            outcome.readings_retried += p.readings
            outcome.failed_sources.add(p.item.source_id)
            continue
        dead = sum(letter.readings for letter in letters[i])
        outcome.readings_dead_lettered += dead
        outcome.readings_written += p.readings - dead
    if cutoff < len(parsed):
        outcome.retry_from = parsed[cutoff].item.source_id
    return outcome
