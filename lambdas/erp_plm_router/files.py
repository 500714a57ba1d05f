"""What one landed file becomes: archived, read as a stream, routed, its rejects quarantined.

Only a failure that is not the file's fault (S3 or DynamoDB errors, throttling) raises, so the
queue retries the message; a retry re-reads the same object version, and what was stored the
first time counts as duplicates. Validation failures are quarantined and never retried.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass
from typing import IO, Any, Protocol
from urllib.parse import unquote_plus

from lambdas.erp_plm_router.documents import UnknownInbox, UnreadableFile, inbox
from lambdas.erp_plm_router.parsers import format_of, read_documents
from lambdas.erp_plm_router.quarantine import (
    NotInbound,
    error_report,
    inbound_key,
    rejected_content,
)
from lambdas.erp_plm_router.routing import DocumentStore, route_documents


class Landing(Protocol):
    def open(self, key: str, version_id: str | None) -> IO[bytes]: ...

    def copy(self, key: str, version_id: str | None, to_key: str) -> None: ...

    def put(self, key: str, body: bytes, content_type: str) -> None: ...


@dataclass(frozen=True, slots=True)
class LandedObject:
    bucket: str
    key: str
    version_id: str | None


def landed_objects(body: str) -> Iterator[LandedObject]:
    """The objects of an S3 event notification (an SQS message body); none for a test event."""
    event = json.loads(body)
    for record in event.get("Records", []):
        if not record.get("eventName", "").startswith("ObjectCreated:"):
            continue
        s3 = record["s3"]
        yield LandedObject(
            bucket=s3["bucket"]["name"],
            key=unquote_plus(s3["object"]["key"]),  # notifications URL-encode keys
            version_id=s3["object"].get("versionId"),
        )


def import_file(
    landed: LandedObject, landing: Landing, store: DocumentStore, *, now_ms: int
) -> dict[str, Any]:
    """Import one landed file; the summary says where everything went."""
    try:
        inbound = inbound_key(landed.key)
    except NotInbound as err:
        return {"original_key": landed.key, "ignored": str(err)}
    landing.copy(landed.key, landed.version_id, inbound.archive_key)

    def quarantine_whole(report: dict[str, Any]) -> dict[str, Any]:
        landing.copy(landed.key, landed.version_id, inbound.quarantine_key)
        landing.put(inbound.error_key, json.dumps(report, indent=2).encode(), "application/json")
        return report

    try:
        source, doc_type = inbox(inbound.source, inbound.doc_type)
        fmt = format_of(inbound.name)
    except (UnknownInbox, UnreadableFile) as err:
        return quarantine_whole(
            error_report(inbound, landed.version_id, None, whole_file=True, reason=str(err))
        )
    with closing(landing.open(landed.key, landed.version_id)) as body:
        report = route_documents(
            source,
            doc_type,
            read_documents(fmt, body, doc_type),
            store,
            now_ms=now_ms,
        )
    if report.file_error is not None:
        return quarantine_whole(error_report(inbound, landed.version_id, report, whole_file=True))
    summary = error_report(inbound, landed.version_id, report, whole_file=False)
    if report.rejections:
        content = rejected_content(fmt, inbound.doc_type, report.rejected_documents)
        landing.put(inbound.quarantine_key, content, "application/octet-stream")
        landing.put(inbound.error_key, json.dumps(summary, indent=2).encode(), "application/json")
    return summary
