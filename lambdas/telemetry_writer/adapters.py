"""Adapters: the only code here that touches boto3."""

from __future__ import annotations

import json
from collections.abc import Sequence
from functools import cache
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from lambdas.telemetry_writer.ingest import Rejection, WriteFailed
from lambdas.telemetry_writer.records import DeadLetter

# botocore's standard retry mode backs off exponentially, with jitter, on throttling.
RETRY_CONFIG = Config(retries={"mode": "standard", "max_attempts": 8})
SQS_BATCH_LIMIT = 10


@cache
def client(service: str) -> Any:
    """Created on first use, never at import time, so moto intercepts it in tests."""
    return boto3.client(service, config=RETRY_CONFIG)


class TimestreamRecordWriter:
    def __init__(self, database: str, table: str, timestream: Any | None = None) -> None:
        self._database = database
        self._table = table
        self._client = timestream

    def write(self, records: list[dict]) -> list[Rejection]:
        timestream = self._client or client("timestream-write")
        try:
            timestream.write_records(
                DatabaseName=self._database, TableName=self._table, Records=records
            )
        except ClientError as err:
            if err.response.get("Error", {}).get("Code") == "RejectedRecordsException":
                return [
                    Rejection(r["RecordIndex"], r.get("Reason", "no reason given"))
                    for r in err.response.get("RejectedRecords", [])
                ]
            raise WriteFailed(str(err)) from err
        except BotoCoreError as err:
            raise WriteFailed(str(err)) from err
        return []


class SqsDeadLetterSink:
    def __init__(self, queue_url: str, sqs: Any | None = None) -> None:
        self._queue_url = queue_url
        self._client = sqs

    def send(self, letters: Sequence[DeadLetter]) -> None:
        sqs = self._client or client("sqs")
        for start in range(0, len(letters), SQS_BATCH_LIMIT):
            chunk = letters[start : start + SQS_BATCH_LIMIT]
            entries = [
                {
                    "Id": str(i),
                    "MessageBody": json.dumps(
                        {"source_id": d.source_id, "reason": d.reason, **d.body}
                    ),
                }
                for i, d in enumerate(chunk)
            ]
            try:
                response = sqs.send_message_batch(QueueUrl=self._queue_url, Entries=entries)
            except (ClientError, BotoCoreError) as err:
                raise WriteFailed(f"dead-letter queue unavailable: {err}") from err
            if response.get("Failed"):
                raise WriteFailed(f"dead-letter queue refused {len(response['Failed'])} message(s)")
