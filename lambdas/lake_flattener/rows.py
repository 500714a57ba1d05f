"""Pure logic: Kinesis records of the telemetry stream -> Firehose results for one lake table.

The stream carries telemetry batches (partition key ``site/line/station``) and the state changes
and part counts the IIoT rules add (partition key: the whole topic). A record of this stream's
table becomes its rows as JSON documents, one per line, in one output record (Firehose's format
conversion reads several JSON documents in a record: "{"a":1}{"a":2}" is valid input,
docs.aws.amazon.com/firehose/latest/dev/record-format-conversion.html); a record of another
table is ``Dropped``; a record that breaks its contract is ``ProcessingFailed`` and lands under
the stream's error prefix with the reason, never silently.

Firehose wants exactly one result per input record, so a batch's rows share one set of
partition keys: its site and the UTC day of its first reading. A batch that straddles midnight
stays whole in its first day's partition (its rows keep their exact ``ts``).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from mes_domain import lake
from mes_domain.contracts import (
    PayloadTooLarge,
    TelemetryBatch,
    TopicMismatch,
    parse_station_message,
)
from mes_domain.topics import MessageKind, StationTopic, TopicError, parse_topic

OK, DROPPED, FAILED = "Ok", "Dropped", "ProcessingFailed"

TABLE_OF_KIND = {
    MessageKind.TELEMETRY: lake.TELEMETRY,
    MessageKind.STATE: lake.STATE_CHANGES,
    MessageKind.COUNT: lake.PART_COUNTS,
}


@dataclass(frozen=True, slots=True)
class SourceRecord:
    record_id: str
    data: bytes
    partition_key: str


def topic_of(partition_key: str) -> StationTopic:
    """A telemetry batch's key is ``site/line/station``; a state or count's is its topic."""
    levels = partition_key.split("/")
    if len(levels) == 3:
        return StationTopic(*levels, MessageKind.TELEMETRY)
    return parse_topic(partition_key).topic


def rows_of(topic: StationTopic, payload: bytes) -> list[dict[str, Any]]:
    message = parse_station_message(topic, payload)
    if isinstance(message, TelemetryBatch):
        return lake.telemetry_rows(message)
    table = TABLE_OF_KIND[topic.kind]
    return [lake.station_row(table, message, topic.site, topic.line, topic.station)]


def _result(
    record_id: str, result: str, data: bytes, keys: dict[str, str] | None = None
) -> dict[str, Any]:
    out: dict[str, Any] = {
        "recordId": record_id,
        "result": result,
        "data": base64.b64encode(data).decode(),
    }
    if keys is not None:
        out["metadata"] = {"partitionKeys": keys}
    return out


@dataclass(frozen=True, slots=True)
class Outcome:
    results: list[dict[str, Any]]  # one per input record, in order
    failures: list[dict[str, str]]  # why each ProcessingFailed record failed, for the log


def transform(table: lake.LakeTable, records: Iterable[SourceRecord]) -> Outcome:
    results: list[dict[str, Any]] = []
    failures: list[dict[str, str]] = []
    for record in records:
        try:
            topic = topic_of(record.partition_key)
            if TABLE_OF_KIND.get(topic.kind) is not table:
                results.append(_result(record.record_id, DROPPED, record.data))
                continue
            rows = rows_of(topic, record.data)
        except (TopicError, ValidationError, PayloadTooLarge, TopicMismatch, ValueError) as err:
            # The original bytes stay: Firehose writes them under the processing-failed prefix.
            results.append(_result(record.record_id, FAILED, record.data))
            failures.append(
                {"recordId": record.record_id, "error": type(err).__name__, "detail": str(err)}
            )
            continue
        body = "".join(json.dumps(row, separators=(",", ":")) + "\n" for row in rows)
        keys = {lake.SITE: rows[0][lake.SITE], lake.DT: rows[0][lake.DT]}
        results.append(_result(record.record_id, OK, body.encode(), keys))
    return Outcome(results, failures)
