"""Firehose processor: the telemetry stream's records -> rows of this stream's lake table."""

from __future__ import annotations

import base64
from functools import cache
from typing import Any

from aws_lambda_powertools import Logger

from lambdas.lake_flattener.rows import SourceRecord, transform
from lambdas.lake_flattener.settings import Settings
from mes_domain import lake

logger = Logger(service="lake_flattener")


@cache
def table() -> lake.LakeTable:
    return lake.TABLES_BY_NAME[Settings.from_environ().lake_table]


@logger.inject_lambda_context
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    records = [
        SourceRecord(
            r["recordId"],
            base64.b64decode(r["data"]),
            r.get("kinesisRecordMetadata", {}).get("partitionKey", ""),
        )
        for r in event.get("records", [])
    ]
    outcome = transform(table(), records)
    if outcome.failures:
        logger.warning("records failed", extra={"failures": outcome.failures[:20]})
    return {"records": outcome.results}
