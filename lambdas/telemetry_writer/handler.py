"""Kinesis -> Timestream: parse the stream batch, ingest it, report the items to retry."""

from __future__ import annotations

import base64
from functools import cache
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.batch import (
    BatchProcessor,
    EventType,
    process_partial_response,
)
from aws_lambda_powertools.utilities.data_classes.kinesis_stream_event import KinesisStreamRecord

from lambdas.telemetry_writer.adapters import SqsDeadLetterSink, TimestreamRecordWriter
from lambdas.telemetry_writer.ingest import StreamItem, ingest
from lambdas.telemetry_writer.settings import Settings

logger = Logger(service="telemetry_writer")
processor = BatchProcessor(event_type=EventType.KinesisDataStreams)


class RetryLater(Exception):
    """Raised for a stream item whose records could not be written or dead-lettered yet."""


@cache
def ports() -> tuple[TimestreamRecordWriter, TimestreamRecordWriter, SqsDeadLetterSink]:
    """Telemetry writer, events writer and dead-letter sink, built once per container."""
    settings = Settings.from_environ()
    return (
        TimestreamRecordWriter(settings.timestream_database, settings.timestream_table),
        TimestreamRecordWriter(settings.timestream_database, settings.events_table),
        SqsDeadLetterSink(settings.dead_letter_queue_url),
    )


@logger.inject_lambda_context
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    writer, event_writer, dead_letters = ports()
    items = [
        StreamItem(
            r["kinesis"]["sequenceNumber"],
            base64.b64decode(r["kinesis"]["data"]),
            r["kinesis"].get("partitionKey", ""),
        )
        for r in event.get("Records", [])
    ]
    outcome = ingest(items, writer, dead_letters, event_writer=event_writer)
    logger.info("ingested", extra={k: v for k, v in vars(outcome).items() if k != "failed_sources"})

    def settle(record: KinesisStreamRecord) -> None:
        if record.kinesis.sequence_number in outcome.failed_sources:
            raise RetryLater(record.kinesis.sequence_number)

    return process_partial_response(
        event=event, record_handler=settle, processor=processor, context=context
    )
