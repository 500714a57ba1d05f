"""Inspection results from the quality queue: records, counts and non-conformances, once each.

A message that fails is reported as a batch item failure; SQS redelivers it and, after five
receives, moves it to the dead-letter queue, so no result is lost.
"""

from __future__ import annotations

import time
from functools import cache
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.batch import (
    BatchProcessor,
    EventType,
    process_partial_response,
)
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from lambdas.quality_results.adapters import (
    CountSinks,
    QualityStore,
    publish_inspection,
    publish_nonconformance,
)
from lambdas.quality_results.results import ncr_id, nonconformance, parse_message
from lambdas.quality_results.settings import Settings
from mes_domain.contracts import Verdict

logger = Logger(service="quality_results")
processor = BatchProcessor(event_type=EventType.SQS)


@cache
def settings() -> Settings:
    return Settings.from_environ()


@cache
def store() -> QualityStore:
    config = settings()
    return QualityStore(config.records_table, config.counts_table, config.nonconformances_table)


@cache
def counts() -> CountSinks:
    return CountSinks(settings().timestream_database, settings().events_table)


def handle(record: SQSRecord) -> str:
    now_ms = int(time.time() * 1000)
    item = parse_message(record.body, now_ms=now_ms)
    # First, so a failure leaves nothing done: the redelivery does it all (the lake may get the
    # row twice, never none).
    publish_inspection(settings().event_bus_name, item)
    defect = item.result.verdict is Verdict.DEFECT
    report = nonconformance(item, issued_at_ms=now_ms) if defect else None
    counted = item
    if not store().record(item, settings().window_minutes, report):
        logger.info("duplicate result", extra={"station": item.station_key})
        # A redelivery, or another result for the same part: what was recorded first stands.
        # Its count is sent again (idempotent) and its report if that is still unsent.
        counted = store().stored_result(item)
        report = store().unpublished_report(ncr_id(item))
    if counted.counts:
        counts().add(counted)
    if report is not None:
        publish_nonconformance(settings().event_bus_name, report)
        store().mark_published(report.ncr_id)
    return item.result.verdict.value


@logger.inject_lambda_context
def lambda_handler(event: dict[str, Any], context: Any) -> dict:
    return process_partial_response(
        event=event, record_handler=handle, processor=processor, context=context
    )
