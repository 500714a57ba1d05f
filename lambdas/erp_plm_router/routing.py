"""The router: validate each document and send it to its store. One code path for files and
API requests; ``DocumentStore`` is the only way out (an adapter, or a stub in tests).

Every document read ends in exactly one count: ``stored``, ``duplicates`` (this revision with
this content is already stored), ``superseded`` (a newer revision is stored; the older one is
dropped) or ``rejected`` (with its errors; quarantined by the caller). A file that cannot be
read from some point on counts that rest as one more rejected unit (``file_error``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol

from pydantic import ValidationError

from lambdas.erp_plm_router.documents import (
    MODELS,
    DocType,
    FieldError,
    Prepared,
    RawDocument,
    Source,
    UnreadableFile,
    inbox,
    prepare,
)
from mes_domain.contracts import NOW_MS_CONTEXT_KEY, SCHEMA_VERSION

CHUNK_SIZE = 25  # documents per store call: DynamoDB's BatchWriteItem/TransactWriteItems unit


class Outcome(StrEnum):
    STORED = "STORED"
    DUPLICATE = "DUPLICATE"
    SUPERSEDED = "SUPERSEDED"
    CONFLICT = "CONFLICT"  # this revision is stored with other content


class DocumentStore(Protocol):
    def apply(self, batch: Sequence[Prepared]) -> list[Outcome]:
        """Store each document unless a newer or the same revision is stored; one outcome each.
        The batch has at most one document per store key. Raises on failures worth a retry."""
        ...


def decide(prepared: Prepared, stored_revision: int | None, stored_hash: str | None):
    """The outcome of storing ``prepared`` over what is stored, or None if it is to be written."""
    if stored_revision is None or stored_revision < prepared.revision:
        return None
    if stored_revision > prepared.revision:
        return Outcome.SUPERSEDED
    return Outcome.DUPLICATE if stored_hash == prepared.content_hash else Outcome.CONFLICT


@dataclass(frozen=True, slots=True)
class Rejection:
    index: int
    line: int | None
    document_id: str | None
    errors: tuple[FieldError, ...]


def error_entries(rejection: Rejection) -> list[dict[str, Any]]:
    """One entry per field error: where (index, line), which document, field, reason."""
    return [
        {
            "index": rejection.index,
            "line": error.line if error.line is not None else rejection.line,
            "document_id": rejection.document_id,
            "field": error.field,
            "reason": error.reason,
        }
        for error in rejection.errors
    ]


def file_error_entry(error: FieldError) -> dict[str, Any]:
    return {
        "index": None,
        "line": error.line,
        "document_id": None,
        "field": error.field,
        "reason": error.reason,
    }


RejectSink = Callable[[Rejection, RawDocument], None]


@dataclass
class RouteReport:
    """Counts, and the rejections: each handed to ``sink`` (files: quarantine) as it happens,
    and kept in memory up to ``keep`` (all if None), so memory need not grow with the number
    of rejects."""

    source: Source
    doc_type: DocType
    received: int = 0
    stored: int = 0
    duplicates: int = 0
    superseded: int = 0
    conflicts: int = 0  # rejected because the revision is stored with other content
    withheld: int = 0  # valid, but not stored because another document of the request failed
    rejections: list[Rejection] = field(default_factory=list)
    superseded_ids: list[str] = field(default_factory=list)
    file_error: FieldError | None = None
    sink: RejectSink | None = None
    keep: int | None = None
    rejected_documents: int = 0
    error_count: int = 0  # field errors of all rejected documents, kept or not

    @property
    def rejected(self) -> int:
        return self.rejected_documents + (self.file_error is not None)

    @property
    def invalid(self) -> int:
        """Rejected for what they are (not for what is stored): the sender must fix them."""
        return self.rejected - self.conflicts

    def reject(self, raw: RawDocument, errors: Iterable[FieldError]) -> None:
        rejection = Rejection(raw.index, raw.line, raw.document_id, tuple(errors))
        self.rejected_documents += 1
        self.error_count += len(rejection.errors)
        if self.sink is not None:
            self.sink(rejection, raw)
        if self.keep is None or len(self.rejections) < self.keep:
            self.rejections.append(rejection)

    def errors(self, limit: int | None = None) -> list[dict[str, Any]]:
        """The field errors of the rejections kept, then the file's, at most ``limit``."""
        found = [entry for rejection in self.rejections for entry in error_entries(rejection)]
        if self.file_error is not None:
            found.append(file_error_entry(self.file_error))
        return found[:limit]

    def counts(self) -> dict[str, Any]:
        return {
            "source": self.source.value,
            "type": self.doc_type.value,
            "received": self.received,
            "stored": self.stored,
            "duplicates": self.duplicates,
            "superseded": self.superseded,
            "rejected": self.rejected,
            "conflicts": self.conflicts,
            "withheld": self.withheld,
            "superseded_ids": self.superseded_ids,
        }

    def summary(self, limit: int | None = None) -> dict[str, Any]:
        """The counts and the errors listed; ``errors_not_listed`` counts the others."""
        errors = self.errors(limit)
        total = self.error_count + (self.file_error is not None)
        return {**self.counts(), "errors": errors, "errors_not_listed": total - len(errors)}


def validate(
    raw: RawDocument, source: Source, doc_type: DocType, now_ms: int
) -> Prepared | list[FieldError]:
    """The document ready for its store, or every reason it is not."""
    if raw.problems:
        return raw.problems
    if not isinstance(raw.data, dict):
        kind = type(raw.data).__name__
        return [FieldError("(document)", f"a document is an object, not {kind}", raw.line)]
    data = raw.data
    if raw.header_from_path:
        data = {"v": SCHEMA_VERSION, "source_system": source.system.value, **data}
    try:
        document = MODELS[doc_type].model_validate(data, context={NOW_MS_CONTEXT_KEY: now_ms})
    except ValidationError as err:
        return [
            raw.located(tuple(error["loc"]), error["msg"])
            for error in err.errors(include_url=False, include_context=False, include_input=False)
        ]
    if document.source_system is not source.system:
        reason = f"{document.source_system.value} document in the {source.value} inbox"
        return [raw.located(("source_system",), reason)]
    prepared = prepare(doc_type, document, raw, now_ms)
    return prepared if isinstance(prepared, Prepared) else [prepared]


def route_documents(
    source: str,
    doc_type: str,
    documents: Iterable[RawDocument],
    store: DocumentStore,
    *,
    now_ms: int,
    all_or_none: bool = False,
    sink: RejectSink | None = None,
    keep: int | None = None,
) -> RouteReport:
    """Validate and store every document; ``UnknownInbox`` for a source and type with no inbox.

    ``all_or_none`` (API requests): validate all first and store none if any is invalid.
    Store failures (throttling, outages) propagate so the caller can retry the whole input:
    what was stored already is a duplicate the second time. ``sink`` takes each rejection as
    it happens; ``keep`` bounds the rejections kept (see ``RouteReport``).
    """
    inbox_source, inbox_type = inbox(source, doc_type)
    report = RouteReport(inbox_source, inbox_type, sink=sink, keep=keep)
    pending: list[Prepared] = []
    keys: set[tuple[str, str]] = set()

    def flush() -> None:
        if pending:
            for prepared, outcome in zip(pending, store.apply(pending), strict=True):
                _count(report, prepared, outcome)
            pending.clear()
            keys.clear()

    def add(checked: Prepared) -> None:
        # A key twice in one batch would race itself: the second waits for the next batch.
        if checked.key in keys or len(pending) == CHUNK_SIZE:
            flush()
        pending.append(checked)
        keys.add(checked.key)

    valid: list[Prepared] = []
    try:
        for raw in documents:
            report.received += 1
            checked = validate(raw, inbox_source, inbox_type, now_ms)
            if not isinstance(checked, Prepared):
                report.reject(raw, checked)
            elif all_or_none:
                valid.append(checked)
            else:
                add(checked)
    except UnreadableFile as err:
        report.file_error = FieldError("(file)", err.reason, err.line)
    if all_or_none:
        if report.rejected:
            report.withheld = len(valid)
            return report
        for checked in valid:
            add(checked)
    flush()
    return report


def _count(report: RouteReport, prepared: Prepared, outcome: Outcome) -> None:
    match outcome:
        case Outcome.STORED:
            report.stored += 1
        case Outcome.DUPLICATE:
            report.duplicates += 1
        case Outcome.SUPERSEDED:
            report.superseded += 1
            report.superseded_ids.append(prepared.document.document_id)
        case Outcome.CONFLICT:
            report.conflicts += 1
            reason = (
                f"revision {prepared.revision} of {prepared.key[0]} is stored with other "
                "content; send the change as a new revision"
            )
            report.reject(prepared.raw, [FieldError("revision", reason, prepared.raw.line)])
