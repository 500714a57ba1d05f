"""Files dropped in ``inbound/{erp|plm}/{type}/``: S3 notifications through SQS, one object per
record. A file that failed for a reason other than its content is a batch item failure: SQS
retries it and, after its receive limit, moves it to the dead-letter queue.
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

from lambdas.erp_plm_router.adapters import DynamoStore, LandingBucket, OrderEvents, table_names
from lambdas.erp_plm_router.files import import_file, landed_objects
from lambdas.erp_plm_router.settings import Settings

logger = Logger(service="erp_plm_router")
processor = BatchProcessor(event_type=EventType.SQS)


@cache
def settings() -> Settings:
    return Settings.from_environ()


@cache
def store() -> DynamoStore:
    return DynamoStore(
        table_names(settings()),
        settings().idempotency_table,
        OrderEvents(settings().event_bus_name),
    )


def handle(record: SQSRecord) -> None:
    landing = LandingBucket(settings().landing_bucket)
    for landed in landed_objects(record.body):
        if landed.bucket != landing.name:
            logger.warning("not the landing bucket", extra={"bucket": landed.bucket})
            continue
        summary = import_file(landed, landing, store(), now_ms=int(time.time() * 1000))
        counts = {k: v for k, v in summary.items() if k not in ("errors", "superseded_ids")}
        logger.info(
            "file imported", extra={"summary": counts, "errors": summary.get("errors", [])[:20]}
        )


@logger.inject_lambda_context
def lambda_handler(event: dict[str, Any], context: Any) -> dict:
    store().register(context)
    return process_partial_response(
        event=event, record_handler=handle, processor=processor, context=context
    )
