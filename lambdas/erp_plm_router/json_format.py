"""JSON documents: one object, or a list of objects (``.json`` files and API bodies), and JSON
Lines (``.jsonl``, ``.ndjson``: one object per line, read as a stream).

A ``.json`` file is read whole: a syntax error anywhere makes it unreadable, and none of it
loads. In JSON Lines, a line that is not JSON is one rejected document; the others load.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator

from lambdas.erp_plm_router.documents import FieldError, RawDocument, UnreadableFile

_decoder = json.JSONDecoder()
_WHITESPACE = " \t\n\r"


def _skip(text: str, pos: int) -> int:
    while pos < len(text) and text[pos] in _WHITESPACE:
        pos += 1
    return pos


def _decode(text: str) -> list[tuple[int, object]]:
    """Each document with the line it starts on."""
    text = text.removeprefix("\ufeff")
    found: list[tuple[int, object]] = []
    line, counted = 1, 0

    def line_at(pos: int) -> int:
        nonlocal line, counted
        line += text.count("\n", counted, pos)
        counted = pos
        return line

    pos = _skip(text, 0)
    if pos == len(text):
        raise UnreadableFile("the file is empty", 1)
    if text[pos] == "[":
        pos = _skip(text, pos + 1)
        while pos < len(text) and text[pos] != "]":
            value, end = _decoder.raw_decode(text, pos)
            found.append((line_at(pos), value))
            pos = _skip(text, end)
            if pos < len(text) and text[pos] == ",":
                pos = _skip(text, pos + 1)
            elif pos < len(text) and text[pos] != "]":
                raise json.JSONDecodeError("Expecting ',' delimiter", text, pos)
        if pos == len(text):
            raise json.JSONDecodeError("Expecting ']' to close the list", text, pos)
        end = pos + 1
    else:
        value, end = _decoder.raw_decode(text, pos)
        found.append((line_at(pos), value))
    if _skip(text, end) != len(text):
        raise json.JSONDecodeError("Extra data after the JSON value", text, _skip(text, end))
    return found


def parse_json(text: str) -> Iterator[RawDocument]:
    """The documents of a JSON text; ``UnreadableFile`` if it is not JSON."""
    try:
        documents = _decode(text)
    except json.JSONDecodeError as err:
        raise UnreadableFile(
            f"not JSON: {err.msg} (line {err.lineno}, column {err.colno})", err.lineno
        ) from None
    except RecursionError:
        raise UnreadableFile("JSON nested too deeply") from None
    for index, (line, value) in enumerate(documents, start=1):
        yield RawDocument(index=index, data=value, raw=value, line=line)


def parse_json_lines(lines: Iterable[str]) -> Iterator[RawDocument]:
    """One document per non-blank line; a line that is not JSON is rejected alone."""
    index = 0
    for number, text in enumerate(lines, start=1):
        if not text.strip():
            continue
        index += 1
        try:
            value = json.loads(text)
        except (json.JSONDecodeError, RecursionError) as err:
            reason = f"not JSON: {getattr(err, 'msg', err)}"
            yield RawDocument(
                index,
                None,
                text.rstrip("\r\n"),
                number,
                problems=[FieldError("(document)", reason, number)],
            )
            continue
        yield RawDocument(index=index, data=value, raw=text.rstrip("\r\n"), line=number)
