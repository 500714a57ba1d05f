"""Which parser reads a file, by its extension, over a binary stream (an S3 body)."""

from __future__ import annotations

import codecs
import io
from collections.abc import Iterator
from enum import StrEnum
from typing import IO

from lambdas.erp_plm_router.csv_format import parse_csv
from lambdas.erp_plm_router.documents import DocType, RawDocument, UnreadableFile
from lambdas.erp_plm_router.json_format import parse_json, parse_json_lines
from lambdas.erp_plm_router.xml_idoc import parse_idocs

MAX_JSON_BYTES = 64 * 1024 * 1024  # a .json file is read whole; larger ones belong in CSV/JSONL


class Format(StrEnum):
    JSON = "json"
    JSON_LINES = "jsonl"
    CSV = "csv"
    XML = "xml"


EXTENSIONS = {
    ".json": Format.JSON,
    ".jsonl": Format.JSON_LINES,
    ".ndjson": Format.JSON_LINES,
    ".csv": Format.CSV,
    ".xml": Format.XML,
}


def format_of(name: str) -> Format:
    for extension, fmt in EXTENSIONS.items():
        if name.lower().endswith(extension):
            return fmt
    raise UnreadableFile(f"unknown file type {name!r}; extensions are {', '.join(EXTENSIONS)}")


def _text_lines(stream: IO[bytes]) -> Iterator[str]:
    """Lines decoded as they are read: never the whole file in memory. A byte-order mark is
    dropped; newlines inside quoted CSV fields are kept (``newline=""``)."""
    if isinstance(stream, io.IOBase):
        yield from io.TextIOWrapper(stream, encoding="utf-8-sig", newline="")
    else:
        yield from codecs.getreader("utf-8-sig")(stream)


def _guarded(documents: Iterator[RawDocument]) -> Iterator[RawDocument]:
    try:
        yield from documents
    except UnicodeDecodeError as err:
        raise UnreadableFile(f"not UTF-8 text: {err.reason}") from None


def read_documents(fmt: Format, stream: IO[bytes], doc_type: DocType) -> Iterator[RawDocument]:
    """The documents of a file, lazily; ``UnreadableFile`` from where it cannot be read."""
    match fmt:
        case Format.CSV:
            return _guarded(parse_csv(_text_lines(stream), doc_type))
        case Format.JSON_LINES:
            return _guarded(parse_json_lines(_text_lines(stream)))
        case Format.XML:
            return parse_idocs(stream, doc_type)
        case Format.JSON:
            return _guarded(_whole_json(stream))
    raise AssertionError(fmt)


def _whole_json(stream: IO[bytes]) -> Iterator[RawDocument]:
    body = stream.read(MAX_JSON_BYTES + 1)
    if len(body) > MAX_JSON_BYTES:
        raise UnreadableFile(
            f"a .json file is read whole and this one exceeds {MAX_JSON_BYTES >> 20} MiB; "
            "send large imports as CSV or JSON Lines"
        )
    yield from parse_json(body.decode("utf-8"))
