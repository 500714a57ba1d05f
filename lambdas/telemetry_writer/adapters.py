"""Adapters: the only code here that touches boto3."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from lambdas.common.aws import client
from lambdas.common.timestream import TimestreamRecordWriter
from lambdas.telemetry_writer.contract import DEAD_LETTER_PREFIX
from lambdas.telemetry_writer.records import DeadLetter

logger = logging.getLogger(__name__)

SQS_BATCH_LIMIT = 10  # messages per SendMessageBatch (SQS message quotas)
# SQS has accepted messages of up to 1 MiB since August 2025, but a queue takes no more than its
# MaximumMessageSize, which still defaults to 262,144 bytes (SetQueueAttributes); the writer's
# queues keep that default. A larger letter goes to S3, and the message carries a pointer.
SQS_MAX_BYTES = 256 * 1024  # per message, and per SendMessageBatch request here

__all__ = ["DeadLetterStore", "SqsDeadLetterSink", "TimestreamRecordWriter", "letter_message"]


def letter_message(letter: DeadLetter) -> dict[str, Any]:
    """The whole dead letter: its id, stream item, reason, readings and what was refused."""
    return {
        "letter_id": letter.letter_id,
        "source_id": letter.source_id,
        "reason": letter.reason,
        "readings": letter.readings,
        **letter.body,
    }


class DeadLetterStore:
    """Full dead letters too large for a queue message, one S3 object each under a key derived
    from the letter id, so a retry overwrites the same object instead of adding one."""

    def __init__(self, bucket: str, s3: Any | None = None) -> None:
        self.bucket = bucket
        self._client = s3

    def key(self, letter_id: str) -> str:
        if not letter_id:
            raise ValueError("a stored dead letter needs its letter id")
        return f"{DEAD_LETTER_PREFIX}/{letter_id.replace(':', '/')}.json"

    def put(self, letter_id: str, body: bytes) -> str:
        key = self.key(letter_id)
        s3 = self._client or client("s3")
        s3.put_object(Bucket=self.bucket, Key=key, Body=body, ContentType="application/json")
        return key


class SqsDeadLetterSink:
    """Sends dead letters, in order, in SendMessageBatch calls within both SQS limits: 10
    messages and ``SQS_MAX_BYTES`` per request. A letter larger than one message is stored whole
    in S3 and its message points there (bucket, key, bytes) with its reason and readings: no
    letter is ever truncated."""

    def __init__(self, queue_url: str, store: DeadLetterStore, sqs: Any | None = None) -> None:
        self._queue_url = queue_url
        self._store = store
        self._client = sqs

    def send(self, letters: Sequence[DeadLetter]) -> int:
        """Return how many letters, from the first, were delivered; the rest wait for a retry."""
        bodies = []
        for letter in letters:
            try:
                bodies.append(self.body(letter))
            except (ClientError, BotoCoreError) as err:
                logger.warning("dead-letter store unavailable: %s", err)
                break
        sqs = self._client or client("sqs")
        delivered = 0
        for chunk in _size_bounded_chunks(bodies):
            entries = [{"Id": str(i), "MessageBody": body} for i, body in enumerate(chunk)]
            try:
                response = sqs.send_message_batch(QueueUrl=self._queue_url, Entries=entries)
            except (ClientError, BotoCoreError) as err:
                logger.warning("dead-letter queue unavailable: %s", err)
                return delivered
            failed = sorted(int(f["Id"]) for f in response.get("Failed", []))
            if failed:
                logger.warning("dead-letter queue refused %d message(s)", len(failed))
                return delivered + failed[0]
            delivered += len(chunk)
        return delivered

    def body(self, letter: DeadLetter) -> str:
        message = letter_message(letter)
        body = json.dumps(message)
        size = len(body.encode())
        if size <= SQS_MAX_BYTES:
            return body
        key = self._store.put(letter.letter_id, body.encode())
        pointer = {k: message[k] for k in ("letter_id", "source_id", "reason", "readings")}
        pointer["payload"] = {"bucket": self._store.bucket, "key": key, "bytes": size}
        return json.dumps(pointer)


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
