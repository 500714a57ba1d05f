"""Adapters: the only code here that touches boto3."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from lambdas.common.aws import client
from lambdas.common.timestream import TimestreamRecordWriter, WriteFailed
from lambdas.telemetry_writer.records import DeadLetter

SQS_BATCH_LIMIT = 10  # messages per SendMessageBatch
SQS_MAX_BYTES = 256 * 1024  # per message and per SendMessageBatch request

__all__ = ["SqsDeadLetterSink", "TimestreamRecordWriter", "dead_letter_body"]


class SqsDeadLetterSink:
    """Sends dead letters in SendMessageBatch calls within both SQS limits: 10 messages and
    256 KiB per request. A body too large for one message keeps the reason and a truncated copy
    of its data, marked as such, rather than blocking the stream forever."""

    def __init__(self, queue_url: str, sqs: Any | None = None) -> None:
        self._queue_url = queue_url
        self._client = sqs

    def send(self, letters: Sequence[DeadLetter]) -> None:
        sqs = self._client or client("sqs")
        for chunk in _size_bounded_chunks([dead_letter_body(d) for d in letters]):
            entries = [{"Id": str(i), "MessageBody": body} for i, body in enumerate(chunk)]
            try:
                response = sqs.send_message_batch(QueueUrl=self._queue_url, Entries=entries)
            except (ClientError, BotoCoreError) as err:
                raise WriteFailed(f"dead-letter queue unavailable: {err}") from err
            if response.get("Failed"):
                raise WriteFailed(f"dead-letter queue refused {len(response['Failed'])} message(s)")


def dead_letter_body(letter: DeadLetter) -> str:
    body = json.dumps({"source_id": letter.source_id, "reason": letter.reason, **letter.body})
    if len(body.encode()) <= SQS_MAX_BYTES:
        return body
    original = json.dumps(letter.body)
    keep = SQS_MAX_BYTES // 2  # JSON escaping can double the kept text
    return json.dumps(
        {
            "source_id": letter.source_id,
            "reason": letter.reason,
            "truncated": True,
            "original_bytes": len(original.encode()),
            "data": original[:keep],
        }
    )


def _size_bounded_chunks(bodies: Sequence[str]) -> list[list[str]]:
    chunks: list[list[str]] = []
    size = 0
    for body in bodies:
        body_size = len(body.encode())
        if not chunks or len(chunks[-1]) == SQS_BATCH_LIMIT or size + body_size > SQS_MAX_BYTES:
            chunks.append([])
            size = 0
        chunks[-1].append(body)
        size += body_size
    return chunks
