"""A station's spooled readings as one ``TelemetryBatch`` payload, measured as it is built.

Each spooled telemetry row already is a ``contracts.Reading`` as compact JSON, so a batch is
the header, the rows joined by commas and the closing brackets: the size is known exactly
before any serialisation, and the batch is cut at ``max_bytes`` (at most IoT Core's 128 KB).
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from data_collector.spool import Spooled
from mes_domain.contracts import SCHEMA_VERSION

TAIL = b"]}"


def header(site: str, line: str, station: str, batch_id: str) -> bytes:
    fields = {"v": SCHEMA_VERSION, "site": site, "line": line, "station": station}
    fields["batch_id"] = batch_id
    return json.dumps(fields, separators=(",", ":")).encode()[:-1] + b',"readings":['


def fit(rows: Sequence[Spooled], header_bytes: int, max_bytes: int) -> int:
    """How many of ``rows``, in order, fit one payload of at most ``max_bytes`` (at least one:
    a single reading is far below the limit)."""
    size = header_bytes + len(TAIL)
    for count, row in enumerate(rows):
        size += len(row.body) + (1 if count else 0)
        if size > max_bytes:
            return max(count, 1)
    return len(rows)


def telemetry_payload(site: str, line: str, station: str, batch_id: str, rows) -> bytes:
    return header(site, line, station, batch_id) + b",".join(r.body for r in rows) + TAIL


def header_size(site: str, line: str, station: str, session: str) -> int:
    """The header's size with the longest batch id this session can give (both row ids at
    their 19-digit maximum), so a batch cut with it fits whatever its ids."""
    return len(header(site, line, station, f"{session}-{'9' * 19}-{'9' * 19}"))
