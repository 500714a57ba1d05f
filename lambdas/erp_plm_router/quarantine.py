"""Quarantine and archive layout of the landing bucket, and what quarantine holds.

``inbound/{source}/{type}/{name}`` is archived to ``archive/{source}/{type}/{name}`` before it is
read. Rejected documents go to ``quarantine/{source}/{type}/{name}`` in the file's own format
(the rows with the CSV header, a JSON list, JSON lines, IDocs under the IDoc type's root), with
``{name}.error.json`` beside them naming index, line, document, field and reason. A file that
cannot be read is copied there whole, with the same report. The bucket is versioned, so a file
dropped twice under one name keeps both versions. Both are written as the rejects come, so a
file of any size is quarantined in bounded memory.
"""

from __future__ import annotations

import json
import textwrap
from dataclasses import dataclass
from typing import Any, Protocol

from lambdas.erp_plm_router.documents import DocType, RawDocument
from lambdas.erp_plm_router.parsers import Format
from lambdas.erp_plm_router.routing import RouteReport
from mes_domain.csv_safety import safe_writer

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


class TextOut(Protocol):
    def write(self, text: str, /) -> object: ...


class RejectedContent:
    """The rejected documents in the file's own format, to fix and drop again, written as they
    come. CSV goes through ``mes_domain.csv_safety``: a cell that would run as a spreadsheet
    formula gains a leading quote."""

    def __init__(self, fmt: Format, doc_type: str, out: TextOut) -> None:
        self.fmt, self.out, self.count = fmt, out, 0
        self._csv = safe_writer(out, lineterminator="\n") if fmt is Format.CSV else None
        self._root = IDOC_ROOTS.get(DocType(doc_type), "IDOCS") if fmt is Format.XML else ""

    def add(self, document: RawDocument) -> None:
        first = self.count == 0
        self.count += 1
        match self.fmt:
            case Format.CSV:
                header, rows = document.raw
                if first:
                    self._csv.writerow(header)
                self._csv.writerows(rows)
            case Format.JSON_LINES:
                self.out.write(f"{document.raw}\n")
            case Format.XML:
                if first:
                    self.out.write(f'<?xml version="1.0" encoding="UTF-8"?>\n<{self._root}>')
                self.out.write(document.raw)
            case Format.JSON:
                item = textwrap.indent(json.dumps(document.raw, indent=2), "  ")
                self.out.write(("[\n" if first else ",\n") + item)

    def close(self) -> None:
        if self.count and self.fmt is Format.XML:
            self.out.write(f"</{self._root}>\n")
        elif self.count and self.fmt is Format.JSON:
            self.out.write("\n]\n")


def _head(source: InboundKey, version_id: str | None) -> dict[str, Any]:
    return {
        "original_key": source.key,
        "original_version_id": version_id,
        "archive_key": source.archive_key,
        "quarantine_key": source.quarantine_key,
    }


class ErrorReport:
    """The ``.error.json`` written as errors come: its head, then ``errors`` one per line,
    then the counts and ``whole_file`` once the file is read. The same JSON object as
    ``error_report`` gives; only the order of its keys differs."""

    def __init__(self, source: InboundKey, version_id: str | None, out: TextOut) -> None:
        self.out, self.count = out, 0
        head = json.dumps(_head(source, version_id))
        out.write(head[:-1] + ', "errors": [')

    def add(self, entries: list[dict[str, Any]]) -> None:
        for entry in entries:
            self.out.write(("\n" if self.count == 0 else ",\n") + json.dumps(entry))
            self.count += 1

    def close(self, counts: dict[str, Any], *, whole_file: bool) -> None:
        tail = json.dumps({"whole_file": whole_file, **counts})
        self.out.write("\n], " + tail[1:] + "\n")


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
    return {**_head(source, version_id), "whole_file": whole_file, **summary}
