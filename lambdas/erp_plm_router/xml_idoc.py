"""SAP IDoc XML: production orders (LOIPRO) and material master (MATMAS), read as a stream.

The parser is defusedxml's: a file with a DTD, an entity declaration or an external reference
is refused before any of it is read (no entity expansion bombs, no external entities, no DTD
retrieval); IDoc files never carry one.

Each ``<IDOC>`` is one document. ``EDI_DC40/DOCNUM`` is its revision (the sender numbers IDocs
increasingly), ``CREDAT``/``CRETIM`` its ``issued_at`` (UTC). Material numbers and order numbers
lose their leading zeros (SAP's ALPHA conversion), so ``000001000123`` is order ``1000123``.

LOIPRO ``E1AFKOL``: ``AUFNR`` order (and document id), ``MATNR`` material, ``GAMNG`` quantity,
``GMEIN`` unit, ``WERKS`` plant (site), ``GSTRS``+``GSUZS`` planned start, ``GLTRS``+``GLUZS``
planned end, ``PLNNR`` routing, ``STLNR`` BOM; ``E1JSTKL/STAT`` system statuses: I0076
(deletion flag) cancels, I0045/I0046 (technically complete, closed) completes, I0043 (locked)
holds, else RELEASED.

MATMAS ``E1MARAM``: ``MATNR`` material (and document id), ``MTART`` type (ROH raw, HALB semi-
finished, FERT finished, VERP packaging, ERSA spare), ``MEINS`` base unit, ``E1MAKTM/MAKTX``
the description (in English, ``SPRAS_ISO`` EN, when there is one).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import IO

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import iterparse

from lambdas.erp_plm_router.documents import DocType, FieldError, RawDocument, UnreadableFile

MATERIAL_TYPES = {
    "ROH": "RAW",
    "HALB": "SEMI_FINISHED",
    "FERT": "FINISHED",
    "VERP": "PACKAGING",
    "ERSA": "SPARE",
}
# System statuses of an order, strongest first.
ORDER_STATUSES = (
    ("I0076", "CANCELLED"),
    ("I0046", "COMPLETED"),
    ("I0045", "COMPLETED"),
    ("I0043", "ON_HOLD"),
)


def _text(element: ET.Element | None, path: str) -> str | None:
    found = element.find(path) if element is not None else None
    text = (found.text or "").strip() if found is not None else ""
    return text or None


def _alpha(value: str | None) -> str | None:
    """SAP's ALPHA conversion out: numeric keys lose their leading zeros."""
    if value is not None and value.isdigit():
        return value.lstrip("0") or "0"
    return value


def _timestamp(date: str | None, time: str | None) -> int | str | None:
    """Epoch ms of an IDoc date (YYYYMMDD) and time (HHMMSS), taken as UTC."""
    if date is None:
        return None
    try:
        parsed = datetime.strptime(date + (time or "000000"), "%Y%m%d%H%M%S")
    except ValueError:
        return f"{date} {time or ''}".strip()  # left for pydantic to reject, with the field
    return int(parsed.replace(tzinfo=UTC).timestamp() * 1000)


def _control(idoc: ET.Element, expected: str) -> tuple[dict, dict, list[FieldError]]:
    control = idoc.find("EDI_DC40")
    problems = []
    kind = _text(control, "IDOCTYP") or _text(control, "MESTYP") or ""
    if not kind.startswith(expected):
        problems.append(
            FieldError("EDI_DC40/IDOCTYP", f"{kind or 'no'} IDoc where {expected} was expected")
        )
    docnum = _text(control, "DOCNUM")
    data = {
        "revision": int(docnum) if docnum and docnum.isdigit() else docnum,
        "issued_at": _timestamp(_text(control, "CREDAT"), _text(control, "CRETIM")),
    }
    labels = {"revision": "EDI_DC40/DOCNUM", "issued_at": "EDI_DC40/CREDAT+CRETIM"}
    return data, labels, problems


def _order(idoc: ET.Element) -> tuple[dict, dict, list[FieldError]]:
    data, labels, problems = _control(idoc, "LOIPRO")
    header = idoc.find("E1AFKOL")
    statuses = {status.text.strip() for status in idoc.iter("STAT") if status.text}
    status = next((name for code, name in ORDER_STATUSES if code in statuses), "RELEASED")
    fields = {
        "order_id": ("AUFNR", _alpha(_text(header, "AUFNR"))),
        "material_id": ("MATNR", _alpha(_text(header, "MATNR"))),
        "quantity": ("GAMNG", _text(header, "GAMNG")),
        "uom": ("GMEIN", _text(header, "GMEIN")),
        "site": ("WERKS", _text(header, "WERKS")),
        "planned_start": (
            "GSTRS+GSUZS",
            _timestamp(_text(header, "GSTRS"), _text(header, "GSUZS")),
        ),
        "planned_end": ("GLTRS+GLUZS", _timestamp(_text(header, "GLTRS"), _text(header, "GLUZS"))),
        "routing_id": ("PLNNR", _alpha(_text(header, "PLNNR"))),
        "bom_id": ("STLNR", _alpha(_text(header, "STLNR"))),
    }
    for name, (label, value) in fields.items():
        labels[name] = f"E1AFKOL/{label}"
        if value is not None:
            data[name] = value
    data["document_id"] = data.get("order_id")
    data["status"] = status
    labels["document_id"] = "E1AFKOL/AUFNR"
    return data, labels, problems


def _material(idoc: ET.Element) -> tuple[dict, dict, list[FieldError]]:
    data, labels, problems = _control(idoc, "MATMAS")
    header = idoc.find("E1MARAM")
    texts = header.findall("E1MAKTM") if header is not None else []
    english = [t for t in texts if _text(t, "SPRAS_ISO") == "EN"]
    described = english or texts
    mtart = _text(header, "MTART")
    fields = {
        "material_id": ("MATNR", _alpha(_text(header, "MATNR"))),
        "material_type": ("MTART", MATERIAL_TYPES.get(mtart or "", mtart)),
        "base_uom": ("MEINS", _text(header, "MEINS")),
        "description": ("E1MAKTM/MAKTX", _text(described[0], "MAKTX") if described else ""),
    }
    for name, (label, value) in fields.items():
        labels[name] = f"E1MARAM/{label}"
        if value is not None:
            data[name] = value
    data["document_id"] = data.get("material_id")
    labels["document_id"] = "E1MARAM/MATNR"
    return data, labels, problems


MAPPERS: dict[DocType, Callable[[ET.Element], tuple[dict, dict, list[FieldError]]]] = {
    DocType.PRODUCTION_ORDER: _order,
    DocType.MATERIAL_MASTER: _material,
}


def parse_idocs(stream: IO[bytes], doc_type: DocType) -> Iterator[RawDocument]:
    """The IDocs of an XML stream; ``UnreadableFile`` for XML that is refused or malformed."""
    mapper = MAPPERS.get(doc_type)
    if mapper is None:
        raise UnreadableFile(
            f"no IDoc mapping for {doc_type.value}; XML is read for "
            f"{' and '.join(t.value for t in MAPPERS)}"
        )
    index = 0
    try:
        for _, element in iterparse(
            stream, events=("end",), forbid_dtd=True, forbid_entities=True, forbid_external=True
        ):
            if element.tag != "IDOC":
                continue
            index += 1
            data, labels, problems = mapper(element)
            raw = ET.tostring(element, encoding="unicode")
            element.clear()  # keep memory flat over a long file
            yield RawDocument(
                index, data, raw, labels=labels, problems=problems, header_from_path=True
            )
    except DefusedXmlException as err:
        raise UnreadableFile(
            f"refused XML: {type(err).__name__} ({err}); IDoc files carry no DTD or entities, "
            "so this one may be an entity-expansion or external-entity attack"
        ) from None
    except ET.ParseError as err:
        line = err.position[0] if err.position else None
        raise UnreadableFile(f"not well-formed XML: {err}", line) from None
    if index == 0:
        raise UnreadableFile("no <IDOC> element in the file")
