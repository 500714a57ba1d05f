"""CSV documents: a header row, then one row per document, read as a stream.

Columns are the model's field names (``docs/schemas/``), except ``v`` and ``source_system``,
which come from the inbox path (a ``source_system`` column, if present, must match it).
Empty cells are absent values. Times (``issued_at``, ``planned_start``, ``planned_end``) are
epoch milliseconds or ISO 8601 with a UTC offset (``2025-11-22T06:00:00+01:00``).

Nested lists are repeated rows, consecutive rows with the same ``document_id`` being one
document whose document columns repeat on every row:

* ``bom``: one row per item: ``document_id, revision, issued_at, bom_id, material_id,
  base_quantity, position, component_id, quantity, uom``;
* ``routing``: one row per work instruction, its operation's columns repeated (an operation
  without instructions is one row with ``step`` empty): ``document_id, revision, issued_at,
  routing_id, material_id, operation_no, description, station_kind, standard_time_s, step,
  text, attachment_uri``.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime

from lambdas.erp_plm_router.documents import DocType, FieldError, RawDocument, UnreadableFile

TIME_COLUMNS = frozenset({"issued_at", "planned_start", "planned_end"})
HEADER_COLUMNS = ("source_system", "document_id", "revision", "issued_at")


@dataclass(frozen=True)
class Nested:
    """A list field spread over rows: ``columns`` of each entry; rows of one entry share
    ``key`` when the entry has a ``child`` list, else every row is an entry."""

    field: str
    key: str
    columns: tuple[str, ...]
    child: Nested | None = None

    def all_columns(self) -> tuple[str, ...]:
        return self.columns + (self.child.all_columns() if self.child else ())


@dataclass(frozen=True)
class Mapping:
    columns: tuple[str, ...]  # the document's own columns
    nested: Nested | None = None

    def known(self) -> frozenset[str]:
        nested = self.nested.all_columns() if self.nested else ()
        return frozenset(HEADER_COLUMNS + self.columns + nested)


MAPPINGS: dict[DocType, Mapping] = {
    DocType.PRODUCTION_ORDER: Mapping(
        (
            "order_id", "material_id", "quantity", "uom", "site", "line", "planned_start",
            "planned_end", "status", "bom_id", "routing_id",
        )
    ),
    DocType.MATERIAL_MASTER: Mapping(("material_id", "description", "material_type", "base_uom")),
    DocType.INVENTORY: Mapping(
        ("material_id", "site", "storage_location", "available_quantity", "uom")
    ),
    DocType.BOM: Mapping(
        ("bom_id", "material_id", "base_quantity"),
        Nested("items", "position", ("position", "component_id", "quantity", "uom")),
    ),
    DocType.ROUTING: Mapping(
        ("routing_id", "material_id"),
        Nested(
            "operations",
            "operation_no",
            ("operation_no", "description", "station_kind", "standard_time_s"),
            Nested("work_instructions", "step", ("step", "text", "attachment_uri")),
        ),
    ),
}  # fmt: skip


def _time(value: str) -> int | str:
    """Epoch milliseconds from either notation; anything else is left for pydantic to reject."""
    if value.isdigit():
        return int(value)
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return value
    if parsed.tzinfo is None:
        raise ValueError(f"{value!r} has no UTC offset")
    return int(parsed.timestamp() * 1000)


@dataclass
class _Row:
    line: int
    cells: list[str]
    values: dict[str, object]


def _values(header: list[str], cells: list[str], line: int) -> tuple[dict, list[FieldError]]:
    problems = []
    if len(cells) != len(header):
        problems.append(
            FieldError("(row)", f"{len(cells)} fields where the header has {len(header)}", line)
        )
    values: dict[str, object] = {}
    for name, cell in zip(header, cells, strict=False):
        cell = cell.strip()
        if not cell:
            continue
        if name in TIME_COLUMNS:
            try:
                values[name] = _time(cell)
            except ValueError as err:
                problems.append(FieldError(name, str(err), line))
                continue
        else:
            values[name] = cell
    return values, problems


def _entries(rows: list[_Row], nested: Nested, path: tuple, raw: RawDocument) -> list[dict]:
    """The list of ``nested`` entries spread over ``rows``, recording each entry's line."""
    entries: list[dict] = []
    if nested.child is None:
        groups = [[row] for row in rows]
    else:  # rows of one entry share its key, in order of first appearance
        by_key: dict[object, list[_Row]] = {}
        for row in rows:
            by_key.setdefault(row.values.get(nested.key, f"@{row.line}"), []).append(row)
        groups = list(by_key.values())
    for position, group in enumerate(groups):
        first = group[0]
        entry = {c: first.values[c] for c in nested.columns if c in first.values}
        raw.lines[(*path, nested.field, position)] = first.line
        if nested.child is not None:
            with_child = [
                row
                for row in group
                if nested.child.key in row.values
                or any(c in row.values for c in nested.child.columns)
            ]
            entry[nested.child.field] = _entries(
                with_child, nested.child, (*path, nested.field, position), raw
            )
        entries.append(entry)
    return entries


def _document(index: int, header: list[str], rows: list[_Row], mapping: Mapping) -> RawDocument:
    first = rows[0]
    raw = RawDocument(
        index=index,
        data=None,
        raw=(header, [row.cells for row in rows]),
        line=first.line,
        header_from_path=True,
    )
    own = HEADER_COLUMNS + mapping.columns
    data = {c: first.values[c] for c in own if c in first.values}
    for row in rows[1:]:
        for column in own:
            if row.values.get(column) != first.values.get(column):
                raw.problems.append(
                    FieldError(
                        column,
                        f"differs from line {first.line}, the document's first row "
                        f"({row.values.get(column)!r} != {first.values.get(column)!r})",
                        row.line,
                    )
                )
    if mapping.nested is not None:
        data[mapping.nested.field] = _entries(rows, mapping.nested, (), raw)
    raw.data = data
    return raw


def parse_csv(lines: Iterable[str], doc_type: DocType) -> Iterator[RawDocument]:
    """The documents of a CSV text stream; ``UnreadableFile`` if its header or rows are not
    readable CSV of ``doc_type``."""
    mapping = MAPPINGS[doc_type]
    reader = csv.reader(lines)
    try:
        header = [name.strip() for name in next(reader)]
    except StopIteration:
        raise UnreadableFile("the file is empty", 1) from None
    except csv.Error as err:
        raise UnreadableFile(f"the header is not CSV: {err}", 1) from None
    unknown = [name for name in header if name not in mapping.known()]
    if unknown or "document_id" not in header or len(set(header)) != len(header):
        raise UnreadableFile(
            f"header of {doc_type.value} CSV: unknown columns {unknown}, duplicates or no "
            f"document_id; columns are {', '.join(sorted(mapping.known()))}",
            1,
        )
    index, group, last_line = 0, [], reader.line_num
    while True:
        try:
            cells = next(reader)
        except StopIteration:
            break
        except csv.Error as err:
            raise UnreadableFile(
                f"not CSV from line {last_line + 1}: {err}", last_line + 1
            ) from None
        line, last_line = last_line + 1, reader.line_num
        if not any(cell.strip() for cell in cells):
            continue
        values, problems = _values(header, cells, line)
        row = _Row(line, cells, values)
        if problems:  # a broken row is a document of its own, rejected with its problems
            if group:
                index += 1
                yield _document(index, header, group, mapping)
                group = []
            index += 1
            yield RawDocument(index, values, (header, [cells]), line, problems=problems)
            continue
        same = (
            group
            and mapping.nested
            and values.get("document_id") is not None
            and (values.get("document_id") == group[0].values.get("document_id"))
        )
        if group and not same:
            index += 1
            yield _document(index, header, group, mapping)
            group = []
        group.append(row)
    if group:
        index += 1
        yield _document(index, header, group, mapping)
