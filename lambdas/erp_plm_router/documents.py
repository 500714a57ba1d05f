"""What the router accepts, which store each document goes to, and under which key.

Inboxes: ERP sends ``production-order``, ``material-master``, ``bom`` and ``inventory``; PLM
sends ``routing`` (the bill of process with work instructions) and ``bom``.

Store items (every table: partition key ``pk`` (S), sort key ``sk`` (S)). One item per business
object holds its newest revision; its attributes are the document's fields (numbers as N, lists
and nested models as L/M) plus ``doc_type``, ``content_hash`` and ``stored_at`` (epoch ms):

================  ===================  ============================  ============================
document type     table (env var)      pk                            sk
================  ===================  ============================  ============================
production-order  ORDERS_TABLE         ``ORDER#<order_id>``          ``DOC``
material-master   PRODUCTS_TABLE       ``MAT#<material_id>``         ``DOC``
bom               PRODUCTS_TABLE       ``BOM#<bom_id>``              ``DOC``
routing           PROCESS_PLANS_TABLE  ``ROUTING#<routing_id>``      ``DOC``
inventory         INVENTORY_TABLE      ``INV#<site>#<material_id>``  ``LOC#<storage_location|->``
================  ===================  ============================  ============================

A routing is one item with its operations and their work instructions (a DynamoDB item holds
up to 400 KB; a larger document is rejected with that reason). ERP and PLM number the revisions
of one business object increasingly, whatever the ``document_id`` (an IDoc's DOCNUM serves).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from lambdas.erp_plm_router.contract import (  # noqa: F401 - re-exported for the handlers
    INBOXES,
    MODELS,
    DocType,
    EnvVar,
    Source,
    request_schema,
)
from mes_domain.enterprise import (
    STORE_SORT_KEY,
    EnterpriseDocument,
    bom_store_key,
    order_store_key,
    routing_store_key,
)

MAX_ITEM_BYTES = 380_000  # DynamoDB's 400 KB item limit, less room for attribute names and keys
_decimal_json = json.JSONDecoder(parse_float=Decimal)  # DynamoDB numbers: Decimal, never float


TABLES: dict[DocType, EnvVar] = {
    DocType.PRODUCTION_ORDER: EnvVar.ORDERS_TABLE,
    DocType.MATERIAL_MASTER: EnvVar.PRODUCTS_TABLE,
    DocType.BOM: EnvVar.PRODUCTS_TABLE,
    DocType.ROUTING: EnvVar.PROCESS_PLANS_TABLE,
    DocType.INVENTORY: EnvVar.INVENTORY_TABLE,
}


class UnknownInbox(ValueError):
    """No inbox for this source and document type."""


def inbox(source: str, doc_type: str) -> tuple[Source, DocType]:
    """The inbox named by a path, or ``UnknownInbox`` saying which ones exist."""
    try:
        known_source = Source(source)
    except ValueError:
        raise UnknownInbox(f"unknown source {source!r}; sources are {', '.join(Source)}") from None
    accepted = INBOXES[known_source]
    if doc_type not in accepted:
        raise UnknownInbox(
            f"{known_source.value} sends no {doc_type!r}; it sends {', '.join(accepted)}"
        )
    return known_source, DocType(doc_type)


def store_key(doc_type: DocType, document: Any) -> tuple[str, str]:
    """The (pk, sk) of the item that holds the business object's newest revision."""
    match doc_type:
        case DocType.PRODUCTION_ORDER:
            return order_store_key(document.order_id)
        case DocType.MATERIAL_MASTER:
            return f"MAT#{document.material_id}", STORE_SORT_KEY
        case DocType.BOM:
            return bom_store_key(document.bom_id)
        case DocType.ROUTING:
            return routing_store_key(document.routing_id)
        case DocType.INVENTORY:
            return (
                f"INV#{document.site}#{document.material_id}",
                f"LOC#{document.storage_location or '-'}",
            )
    raise AssertionError(doc_type)


@dataclass(frozen=True, slots=True)
class FieldError:
    field: str
    reason: str
    line: int | None = None


@dataclass(slots=True)
class RawDocument:
    """One document as a parser read it, before validation.

    ``index`` is its 1-based position in the file or request; ``line`` the line it starts on
    where the format has lines. ``lines`` maps a nested entry (e.g. ``("items", 2)``) to its own
    line, ``labels`` a model field to the source's name for it (e.g. an IDoc field). ``problems``
    are what the parser already found wrong; ``raw`` is what quarantine writes back.
    """

    index: int
    data: Any
    raw: Any
    line: int | None = None
    lines: dict[tuple[str | int, ...], int] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    problems: list[FieldError] = field(default_factory=list)
    header_from_path: bool = False  # CSV and IDocs: ``v`` and ``source_system`` come from the path

    @property
    def document_id(self) -> str | None:
        value = self.data.get("document_id") if isinstance(self.data, dict) else None
        return value if isinstance(value, str) else None

    def located(self, loc: tuple[str | int, ...], reason: str) -> FieldError:
        """A validation error at pydantic location ``loc``, with its line and source name."""
        line = self.line
        for end in range(len(loc), 0, -1):
            if loc[:end] in self.lines:
                line = self.lines[loc[:end]]
                break
        path = ".".join(str(part) for part in loc) or "(document)"
        label = self.labels.get(path)
        return FieldError(f"{path} ({label})" if label else path, reason, line)


@dataclass(frozen=True, slots=True)
class Prepared:
    """A valid document ready for its store."""

    raw: RawDocument
    doc_type: DocType
    document: EnterpriseDocument
    key: tuple[str, str]
    content_hash: str
    item: dict[str, Any]

    @property
    def revision(self) -> int:
        return self.document.revision

    @property
    def idempotency_key(self) -> dict[str, str]:
        """What Powertools hashes: the same document by file or by API has the same key."""
        return {
            "source": self.document.source_system.value,
            "type": self.doc_type.value,
            "document_id": self.document.document_id,
            "content_hash": self.content_hash,
        }


def prepare(doc_type: DocType, document: EnterpriseDocument, raw: RawDocument, now_ms: int):
    """The store item of a valid document, or the ``FieldError`` that keeps it out."""
    body = document.model_dump_json()
    if len(body) > MAX_ITEM_BYTES:
        return FieldError(
            "(document)",
            f"{len(body)} bytes of JSON exceed what one DynamoDB item holds (400 KB)",
            raw.line,
        )
    content_hash = hashlib.sha256(body.encode()).hexdigest()
    key = store_key(doc_type, document)
    item = {
        "pk": key[0],
        "sk": key[1],
        "doc_type": doc_type.value,
        "content_hash": content_hash,
        "stored_at": now_ms,
        **_decimal_json.decode(body),
    }
    return Prepared(raw, doc_type, document, key, content_hash, item)


class UnreadableFile(ValueError):
    """The file (or its rest, from ``line`` on) cannot be read as its format: it is quarantined
    whole. Documents read before the error are routed as usual."""

    def __init__(self, reason: str, line: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.line = line
