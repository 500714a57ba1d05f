"""What one landed file becomes: archived, read as a stream, routed, its rejects quarantined.

Only a failure that is not the file's fault (S3 or DynamoDB errors, throttling) raises, so the
queue retries the message; a retry re-reads the same object version, and what was stored the
first time counts as duplicates. Validation failures are quarantined and never retried.

Rejects go to quarantine as they are found, through uploads that hold one part in memory, so a
file of any size and any number of rejects is quarantined with bounded memory (a 50 MB file of
invalid rows used to need about 1.9 GB and never got its report).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass
from typing import IO, Any, Protocol
from urllib.parse import unquote_plus

from lambdas.erp_plm_router.documents import RawDocument, UnknownInbox, UnreadableFile, inbox
from lambdas.erp_plm_router.parsers import Format, format_of, read_documents
from lambdas.erp_plm_router.quarantine import (
    ErrorReport,
    InboundKey,
    NotInbound,
    RejectedContent,
    error_report,
    inbound_key,
)
from lambdas.erp_plm_router.routing import (
    DocumentStore,
    Rejection,
    RouteReport,
    error_entries,
    file_error_entry,
    route_documents,
)

LISTED_ERRORS = 20  # in the summary the handler logs; quarantine's error report has them all


class Upload(Protocol):
    """An object being written: bytes in order, then ``close`` makes it, ``abort`` drops it."""

    def write(self, data: bytes, /) -> object: ...

    def close(self) -> None: ...

    def abort(self) -> None: ...


class Landing(Protocol):
    def open(self, key: str, version_id: str | None) -> IO[bytes]: ...

    def copy(self, key: str, version_id: str | None, to_key: str) -> None: ...

    def put(self, key: str, body: bytes, content_type: str) -> None: ...

    def create(self, key: str, content_type: str) -> Upload: ...


class _Text:
    """Text into an upload, as UTF-8 (what cannot be encoded is escaped, never an error)."""

    def __init__(self, upload: Upload) -> None:
        self.upload = upload

    def write(self, text: str) -> None:
        self.upload.write(text.encode("utf-8", "backslashreplace"))


class Quarantine:
    """The rejects of one file and its error report, each streamed into its object from the
    first reject on; nothing is written for a file without rejects."""

    def __init__(
        self, landing: Landing, inbound: InboundKey, version_id: str | None, fmt: Format
    ) -> None:
        self.landing, self.inbound, self.version_id, self.fmt = landing, inbound, version_id, fmt
        self._content_upload: Upload | None = None
        self._report_upload: Upload | None = None
        self._content: RejectedContent | None = None
        self._report: ErrorReport | None = None

    def _open_report(self) -> ErrorReport:
        if self._report is None:
            self._report_upload = self.landing.create(self.inbound.error_key, "application/json")
            self._report = ErrorReport(self.inbound, self.version_id, _Text(self._report_upload))
        return self._report

    def add(self, rejection: Rejection, raw: RawDocument) -> None:
        if self._content is None:
            self._content_upload = self.landing.create(
                self.inbound.quarantine_key, "application/octet-stream"
            )
            self._content = RejectedContent(
                self.fmt, self.inbound.doc_type, _Text(self._content_upload)
            )
        self._content.add(raw)
        self._open_report().add(error_entries(rejection))

    def finish(self, report: RouteReport) -> None:
        """Complete both objects; a file unreadable from some point on is quarantined whole."""
        whole_file = report.file_error is not None
        if self._content_upload is not None:
            if whole_file:
                self._content_upload.abort()
            else:
                self._content.close()
                self._content_upload.close()
        if whole_file:
            self.landing.copy(self.inbound.key, self.version_id, self.inbound.quarantine_key)
        if not report.rejected:
            return
        errors = self._open_report()
        if report.file_error is not None:
            errors.add([file_error_entry(report.file_error)])
        errors.close(report.counts(), whole_file=whole_file)
        self._report_upload.close()

    def abort(self) -> None:
        for upload in (self._content_upload, self._report_upload):
            if upload is not None:
                upload.abort()


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
    quarantine = Quarantine(landing, inbound, landed.version_id, fmt)
    try:
        with closing(landing.open(landed.key, landed.version_id)) as body:
            report = route_documents(
                source,
                doc_type,
                read_documents(fmt, body, doc_type),
                store,
                now_ms=now_ms,
                sink=quarantine.add,
                keep=LISTED_ERRORS,
            )
        quarantine.finish(report)
    except BaseException:
        quarantine.abort()  # the retry writes quarantine again from the start
        raise
    # The summary lists the first errors only; the error report in quarantine has them all.
    whole_file = report.file_error is not None
    return error_report(inbound, landed.version_id, report, whole_file=whole_file)
