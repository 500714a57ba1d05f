"""Every CSV the product writes goes through ``safe_writer``: a cell a spreadsheet would run
as a formula is written as text.

OWASP's CSV injection guidance (https://owasp.org/www-community/attacks/CSV_Injection): a cell
starting with ``=``, ``+``, ``-``, ``@``, tab (0x09), carriage return (0x0D) or, since August
2025, line feed (0x0A) is prefixed with a single quote, and cells are quoted as RFC 4180 says
(``csv`` does that for cells with a delimiter, quote or newline).

A plain decimal number (``-5``, ``+1.5``, ``-0.25``) is left alone: a spreadsheet reads it as a
number, never as a formula, so a negative quantity stays what it is. Anything else after the
sign (``-1+1``, ``-5)*A1``, ``+SUM(A1)``) is prefixed. To re-import a fixed file, remove the
quote the cells gained.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable
from typing import Any, Protocol

FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r", "\n")
PLAIN_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)")


class _TextOut(Protocol):
    def write(self, text: str, /) -> Any: ...


def neutralise(cell: Any) -> Any:
    """``cell`` as a spreadsheet will show it, never run it: a quote before a formula."""
    if isinstance(cell, str) and cell.startswith(FORMULA_TRIGGERS):
        if not PLAIN_NUMBER.fullmatch(cell):
            return "'" + cell
    return cell


class SafeWriter:
    """``csv.writer`` whose every cell passed ``neutralise``."""

    def __init__(self, out: _TextOut, **options: Any) -> None:
        self._writer = csv.writer(out, **options)

    def writerow(self, row: Iterable[Any]) -> Any:
        return self._writer.writerow([neutralise(cell) for cell in row])

    def writerows(self, rows: Iterable[Iterable[Any]]) -> None:
        for row in rows:
            self.writerow(row)


def safe_writer(out: _TextOut, **options: Any) -> SafeWriter:
    """The only CSV writer of the product (``tests/unit/test_csv_safety.py`` checks that)."""
    return SafeWriter(out, **options)
