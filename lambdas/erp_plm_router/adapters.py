"""DynamoDB and S3 behind the router.

Writes: BatchWriteItem has no conditions, and the supersede rule needs one (two files with
revisions 1 and 2 of a new order, processed at once, must leave revision 2). So each document is
one conditional PutItem (``attribute_not_exists(document_id) OR revision < :rev``), run under
Powertools idempotency (key: source, type, document id and content hash; prefix
``erp-plm-router`` in both handlers, so a document sent by file and then by API is recognised).
Before writing, one BatchGetItem per batch of 25 reads the stored revisions and hashes: a
duplicate or stale document costs 1/25 of a read and no write, so a file dropped twice is cheap.
Production orders about to be written go to the platform bus first, for the data lake
(``OrderEvents``, ``lake_events``): one PutEvents per 10 orders, none for a duplicate.
A new or newer document costs three writes (idempotency record in progress, item, record
complete); eight threads write a batch's documents at once. ``benchmarks/erp_import.py`` counts
the calls per document.
"""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import IO, Any

from aws_lambda_powertools.utilities.idempotency import (
    DynamoDBPersistenceLayer,
    IdempotencyConfig,
    idempotent_function,
)
from boto3.dynamodb.types import TypeSerializer
from botocore.exceptions import ClientError

from lambdas.common.aws import client
from lambdas.erp_plm_router.documents import TABLES, DocType, Prepared
from lambdas.erp_plm_router.lake_events import order_entries, put_batches
from lambdas.erp_plm_router.routing import Outcome, decide
from lambdas.erp_plm_router.settings import EnvVar, StoreSettings

IDEMPOTENCY_KEY_PREFIX = "erp-plm-router"
IDEMPOTENCY_EXPIRY_S = 7 * 24 * 3600
SUPERSEDE_CONDITION = "attribute_not_exists(document_id) OR revision < :rev"
WRITERS = 8  # below botocore's 10 pooled connections per client
MAX_ATTEMPTS = 8

_serializer = TypeSerializer()


class StoreBusy(RuntimeError):
    """DynamoDB left keys unprocessed after every retry; the file is retried later."""


class EventsBusy(RuntimeError):
    """EventBridge rejected entries after every retry; the file or request is retried later."""


class RevisionConflict(RuntimeError):
    """The same revision is stored with other content (raised so Powertools keeps no record)."""


def _backoff(attempt: int) -> None:
    """Exponential backoff with full jitter: 50 ms, 100 ms, ... capped at 2 s."""
    time.sleep(random.uniform(0, min(2.0, 0.05 * 2**attempt)))


def _attributes(item: Mapping[str, Any]) -> dict[str, dict]:
    return {name: _serializer.serialize(value) for name, value in item.items() if value is not None}


def table_names(settings: StoreSettings) -> dict[DocType, str]:
    by_var = {
        EnvVar.ORDERS_TABLE: settings.orders_table,
        EnvVar.PRODUCTS_TABLE: settings.products_table,
        EnvVar.PROCESS_PLANS_TABLE: settings.process_plans_table,
        EnvVar.INVENTORY_TABLE: settings.inventory_table,
    }
    return {doc_type: by_var[var] for doc_type, var in TABLES.items()}


@dataclass(frozen=True, slots=True)
class OrderEvents:
    """Puts production orders on the platform bus as lake rows (``lake_events``)."""

    bus_name: str

    def publish(self, documents: Sequence[Any]) -> int:
        """Puts the production orders among ``documents``; returns how many. Entries EventBridge
        rejects (throttled, say) are put again, as PutEvents asks; ``EventsBusy`` if some are
        still rejected after every attempt."""
        entries = order_entries(documents, self.bus_name)
        for batch in put_batches(entries):
            self._put(batch)
        return len(entries)

    def _put(self, batch: list[dict[str, Any]]) -> None:
        for attempt in range(MAX_ATTEMPTS):
            response = client("events").put_events(Entries=batch)
            if not response.get("FailedEntryCount"):
                return
            results = response["Entries"]
            failed = [e for e, r in zip(batch, results, strict=True) if r.get("ErrorCode")]
            error = next(r for r in results if r.get("ErrorCode"))
            batch = failed
            _backoff(attempt)
        raise EventsBusy(
            f"{len(batch)} production order event(s) rejected after {MAX_ATTEMPTS} attempts: "
            f"{error.get('ErrorCode')} {error.get('ErrorMessage')}"
        )


class DynamoStore:
    """The ``DocumentStore`` of the handlers. ``order_events``: where production orders about
    to be stored are put for the data lake (none: they are not put anywhere)."""

    def __init__(
        self,
        tables: Mapping[DocType, str],
        idempotency_table: str,
        order_events: OrderEvents | None = None,
    ) -> None:
        self.tables = dict(tables)
        self.order_events = order_events
        self.config = IdempotencyConfig(
            event_key_jmespath="key",
            expires_after_seconds=IDEMPOTENCY_EXPIRY_S,
            raise_on_no_idempotency_key=True,
        )
        persistence = DynamoDBPersistenceLayer(
            table_name=idempotency_table, boto3_client=client("dynamodb")
        )
        self._write_once = idempotent_function(
            data_keyword_argument="claim",
            persistence_store=persistence,
            config=self.config,
            key_prefix=IDEMPOTENCY_KEY_PREFIX,
        )(self._write)
        self._pool = ThreadPoolExecutor(WRITERS, thread_name_prefix="store")

    def register(self, context: Any) -> None:
        """Lets Powertools expire an in-progress record when the invocation times out."""
        self.config.register_lambda_context(context)

    def apply(self, batch: Sequence[Prepared]) -> list[Outcome]:
        table = self.tables[batch[0].doc_type]
        stored = self._stored(table, [prepared.key for prepared in batch])
        outcomes: list[Outcome | None] = [
            decide(prepared, *stored.get(prepared.key, (None, None))) for prepared in batch
        ]
        to_write = [i for i, outcome in enumerate(outcomes) if outcome is None]
        if self.order_events is not None and to_write:
            # Before the writes: a failed put leaves nothing stored (lake_events).
            self.order_events.publish([batch[i].document for i in to_write])
        written = self._pool.map(lambda i: self._write_one(table, batch[i]), to_write)
        for i, outcome in zip(to_write, written, strict=True):
            outcomes[i] = outcome
        return outcomes  # type: ignore[return-value]

    def _write_one(self, table: str, prepared: Prepared) -> Outcome:
        attempt = uuid.uuid4().hex
        try:
            result = self._write_once(
                claim={"key": prepared.idempotency_key, "attempt": attempt},
                table=table,
                prepared=prepared,
            )
        except RevisionConflict:
            return Outcome.CONFLICT
        outcome = Outcome(result["outcome"])
        # Powertools answered from an earlier attempt's record: this one changed nothing.
        if result["attempt"] != attempt and outcome is Outcome.STORED:
            return Outcome.DUPLICATE
        return outcome

    def _write(self, claim: dict, table: str, prepared: Prepared) -> dict[str, str]:
        try:
            client("dynamodb").put_item(
                TableName=table,
                Item=_attributes(prepared.item),
                ConditionExpression=SUPERSEDE_CONDITION,
                ExpressionAttributeValues={":rev": {"N": str(prepared.revision)}},
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
            outcome = Outcome.STORED
        except ClientError as err:
            if err.response["Error"]["Code"] != "ConditionalCheckFailedException":
                raise
            old = err.response.get("Item") or client("dynamodb").get_item(
                TableName=table,
                Key={"pk": {"S": prepared.key[0]}, "sk": {"S": prepared.key[1]}},
                ConsistentRead=True,
            ).get("Item", {})
            outcome = decide(
                prepared, int(old["revision"]["N"]), old.get("content_hash", {}).get("S")
            )
        if outcome is Outcome.CONFLICT:
            raise RevisionConflict(prepared.key)
        assert outcome is not None, "the condition failed, so a revision at least as new is stored"
        return {"outcome": outcome.value, "attempt": claim["attempt"]}

    def _stored(self, table: str, keys: list[tuple[str, str]]) -> dict[tuple, tuple[int, str]]:
        """Revision and content hash of the stored items among ``keys``."""
        request: dict[str, Any] = {
            table: {
                "Keys": [{"pk": {"S": pk}, "sk": {"S": sk}} for pk, sk in keys],
                "ProjectionExpression": "pk, sk, revision, content_hash",
                "ConsistentRead": True,
            }
        }
        found: dict[tuple, tuple[int, str]] = {}
        for attempt in range(MAX_ATTEMPTS):
            response = client("dynamodb").batch_get_item(RequestItems=request)
            for item in response.get("Responses", {}).get(table, []):
                key = (item["pk"]["S"], item["sk"]["S"])
                found[key] = (int(item["revision"]["N"]), item.get("content_hash", {}).get("S"))
            request = response.get("UnprocessedKeys") or {}
            if not request:
                return found
            _backoff(attempt)
        raise StoreBusy(f"{table}: keys still unprocessed after {MAX_ATTEMPTS} attempts")


@dataclass(frozen=True, slots=True)
class LandingBucket:
    """The landing bucket: files are read by version, copied and written; never deleted."""

    name: str

    def open(self, key: str, version_id: str | None) -> IO[bytes]:
        extra = {"VersionId": version_id} if version_id else {}
        return client("s3").get_object(Bucket=self.name, Key=key, **extra)["Body"]

    def copy(self, key: str, version_id: str | None, to_key: str) -> None:
        source = {"Bucket": self.name, "Key": key}
        if version_id:
            source["VersionId"] = version_id
        client("s3").copy_object(Bucket=self.name, Key=to_key, CopySource=source)

    def put(self, key: str, body: bytes, content_type: str) -> None:
        client("s3").put_object(Bucket=self.name, Key=key, Body=body, ContentType=content_type)

    def create(self, key: str, content_type: str) -> S3Upload:
        return S3Upload(self.name, key, content_type)


# S3 multipart limits (https://docs.aws.amazon.com/AmazonS3/latest/userguide/qfacts.html): parts
# of 5 MiB to 5 GiB, the last one any size, at most 10,000 parts.
MIN_PART_BYTES = 5 * 1024 * 1024
MAX_PARTS = 10_000
PART_BYTES = 8 * 1024 * 1024  # memory held per object being written; 10,000 parts = 78 GiB


class S3Upload:
    """An object written as a stream: each ``PART_BYTES`` goes up as one multipart part as soon
    as it is full, so memory holds about one part whatever the object's size. An object that
    never fills a part is one PutObject. ``abort`` drops what was sent (the bucket's lifecycle
    also aborts incomplete uploads after 7 days)."""

    def __init__(
        self, bucket: str, key: str, content_type: str, part_bytes: int = PART_BYTES
    ) -> None:
        if part_bytes < MIN_PART_BYTES:
            raise ValueError(f"S3 parts but the last are at least {MIN_PART_BYTES} bytes")
        self.bucket, self.key, self.content_type, self.part_bytes = (
            bucket,
            key,
            content_type,
            part_bytes,
        )
        self._buffer = bytearray()
        self._upload_id: str | None = None
        self._parts: list[dict[str, Any]] = []
        self.done = False

    def write(self, data: bytes) -> int:
        self._buffer += data
        if len(self._buffer) >= self.part_bytes:
            self._send_part()
        return len(data)

    def _send_part(self) -> None:
        s3 = client("s3")
        if self._upload_id is None:
            self._upload_id = s3.create_multipart_upload(
                Bucket=self.bucket, Key=self.key, ContentType=self.content_type
            )["UploadId"]
        number = len(self._parts) + 1
        if number > MAX_PARTS:
            raise ValueError(f"{self.key}: more than {MAX_PARTS} parts of {self.part_bytes} bytes")
        body = bytes(self._buffer)
        self._buffer.clear()
        etag = s3.upload_part(
            Bucket=self.bucket,
            Key=self.key,
            UploadId=self._upload_id,
            PartNumber=number,
            Body=body,
        )["ETag"]
        self._parts.append({"ETag": etag, "PartNumber": number})

    def close(self) -> None:
        if self.done:
            return
        if self._upload_id is None:
            client("s3").put_object(
                Bucket=self.bucket,
                Key=self.key,
                Body=bytes(self._buffer),
                ContentType=self.content_type,
            )
        else:
            if self._buffer:
                self._send_part()
            client("s3").complete_multipart_upload(
                Bucket=self.bucket,
                Key=self.key,
                UploadId=self._upload_id,
                MultipartUpload={"Parts": self._parts},
            )
        self._buffer.clear()
        self.done = True

    def abort(self) -> None:
        if self.done:
            return
        self.done = True
        self._buffer.clear()
        if self._upload_id is not None:
            client("s3").abort_multipart_upload(
                Bucket=self.bucket, Key=self.key, UploadId=self._upload_id
            )
