"""Kinesis -> Timestream: parse the stream batch, ingest it, report where Kinesis must resume."""

from __future__ import annotations

import base64
from functools import cache
from typing import Any

from aws_lambda_powertools import Logger

from lambdas.telemetry_writer.adapters import (
    DeadLetterStore,
    SqsDeadLetterSink,
    TimestreamRecordWriter,
)
from lambdas.telemetry_writer.ingest import StreamItem, ingest
from lambdas.telemetry_writer.settings import Settings

logger = Logger(service="telemetry_writer")


@cache
def ports() -> tuple[TimestreamRecordWriter, TimestreamRecordWriter, SqsDeadLetterSink]:
    """Telemetry writer, events writer and dead-letter sink, built once per container."""
    settings = Settings.from_environ()
    return (
        TimestreamRecordWriter(settings.timestream_database, settings.timestream_table),
        TimestreamRecordWriter(settings.timestream_database, settings.events_table),
        SqsDeadLetterSink(
            settings.dead_letter_queue_url, DeadLetterStore(settings.dead_letter_bucket)
        ),
    )


@logger.inject_lambda_context
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    writer, event_writer, dead_letters = ports()
    items = [
        StreamItem(
            r["kinesis"]["sequenceNumber"],
            base64.b64decode(r["kinesis"]["data"]),
            r["kinesis"].get("partitionKey", ""),
            r.get("eventID", ""),
        )
        for r in event.get("Records", [])
    ]
    outcome = ingest(items, writer, dead_letters, event_writer=event_writer)
    logger.info("ingested", extra={k: v for k, v in vars(outcome).items() if k != "failed_sources"})
    # Kinesis resumes at the lowest sequence number reported: report only the first item that
    # was not settled, since everything after it was neither dead-lettered nor counted.
    failures = [] if outcome.retry_from is None else [{"itemIdentifier": outcome.retry_from}]
    return {"batchItemFailures": failures}
