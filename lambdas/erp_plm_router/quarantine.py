"""Quarantine and archive layout of the landing bucket, and what quarantine holds.

``inbound/{source}/{type}/{name}`` is archived to ``archive/{source}/{type}/{name}`` before it is
read. Rejected documents go to ``quarantine/{source}/{type}/{name}`` in the file's own format
(the rows with the CSV header, a JSON list, JSON lines, IDocs under the IDoc type's root), with
``{name}.error.json`` beside them naming index, line, document, field and reason. A file that
cannot be read is copied there whole, with the same report. The bucket is versioned, so a file
dropped twice under one name keeps both versions.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from typing import Any

from lambdas.erp_plm_router.documents import DocType, RawDocument
from lambdas.erp_plm_router.parsers import Format
from lambdas.erp_plm_router.routing import RouteReport

INBOUND = "inbound/"
ARCHIVE = "archive/"
QUARANTINE = "quarantine/"
ERROR_SUFFIX = ".error.json"
IDOC_ROOTS = {DocType.PRODUCTION_ORDER: "LOIPRO01", DocType.MATERIAL_MASTER: "MATMAS05"}


class NotInbound(ValueError):
    """A key outside ``inbound/{source}/{type}/{name}``: not a file to import."""


@dataclass(frozen=True, slots=True)
class InboundKey:
    key: str
    source: str
    doc_type: str
    name: str  # the rest of the key, sub-folders included

    @property
    def relative(self) -> str:
        return f"{self.source}/{self.doc_type}/{self.name}"

    @property
    def archive_key(self) -> str:
        return ARCHIVE + self.relative

    @property
    def quarantine_key(self) -> str:
        return QUARANTINE + self.relative

    @property
    def error_key(self) -> str:
        return QUARANTINE + self.relative + ERROR_SUFFIX


def inbound_key(key: str) -> InboundKey:
    parts = key.split("/", 3)
    if len(parts) != 4 or parts[0] + "/" != INBOUND or not all(parts) or key.endswith("/"):
        raise NotInbound(f"{key!r} is not inbound/{{source}}/{{type}}/{{file}}")
    return InboundKey(key, parts[1], parts[2], parts[3])


def rejected_content(fmt: Format, doc_type: str, documents: list[RawDocument]) -> bytes:
    """The rejected documents in the file's own format, to fix and drop again."""
    match fmt:
        case Format.CSV:
            out = io.StringIO(newline="")
            writer = csv.writer(out, lineterminator="\n")
            header_written = False
            for document in documents:
                header, rows = document.raw
                if not header_written:
                    writer.writerow(header)
                    header_written = True
                writer.writerows(rows)
            return out.getvalue().encode()
        case Format.JSON_LINES:
            return "".join(f"{document.raw}\n" for document in documents).encode()
        case Format.XML:
            root = IDOC_ROOTS.get(DocType(doc_type), "IDOCS")
            body = "".join(document.raw for document in documents)
            return f'<?xml version="1.0" encoding="UTF-8"?>\n<{root}>{body}</{root}>\n'.encode()
        case Format.JSON:
            return json.dumps([document.raw for document in documents], indent=2).encode()
    raise AssertionError(fmt)


def error_report(
    source: InboundKey,
    version_id: str | None,
    report: RouteReport | None,
    *,
    whole_file: bool,
    reason: str | None = None,
) -> dict[str, Any]:
    """The ``.error.json`` beside quarantined documents."""
    if report is not None:
        summary = report.summary()
    else:  # never read: the file is the one rejected unit
        summary = {"source": source.source, "type": source.doc_type, "errors": []}
        summary |= dict.fromkeys(("received", "stored", "duplicates", "superseded"), 0)
        summary |= {"rejected": 1, "conflicts": 0, "withheld": 0, "superseded_ids": []}
    if reason is not None:
        summary["errors"].append(
            {"index": None, "line": None, "document_id": None, "field": "(file)", "reason": reason}
        )
    return {
        "original_key": source.key,
        "original_version_id": version_id,
        "archive_key": source.archive_key,
        "quarantine_key": source.quarantine_key,
        "whole_file": whole_file,
        **summary,
    }
