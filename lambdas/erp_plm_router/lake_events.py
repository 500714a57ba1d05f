"""Production orders to the data lake: the PutEvents entries of the orders about to be stored.

Each entry's Detail is the order's row of the lake's ``production_orders`` table
(``mes_domain.lake.document_row``); the DataLake stack's rule on the platform bus delivers the
detail to that table's Firehose stream. Only orders about to be stored for the first time (a
new order or a newer revision) are put, before they are written: an order whose put fails is
not stored either, so its file or request is retried whole; an order put and then not stored
(the write failed, or another request stored it first) is put again by the retry. At least
once, and once when nothing fails or races; the lake's queries take an order's latest
revision, so a second row changes no answer.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from mes_domain import lake
from mes_domain.enterprise import ProductionOrder

# "Entries: ... Array Members: Minimum number of 1 item. Maximum number of 10 items."
# (EventBridge API reference, PutEvents); an entry is at most 256 KB (enterprise.MAX_ENTRY_BYTES).
MAX_ENTRIES_PER_PUT = 10


def order_entry(order: ProductionOrder, bus_name: str) -> dict[str, Any]:
    """The PutEvents entry of one production order: its lake row as the Detail."""
    row = lake.document_row(lake.PRODUCTION_ORDERS, order)
    # A production order's fields are short and bounded: far below MAX_ENTRY_BYTES.
    return {
        "Source": lake.PRODUCTION_ORDER_EVENT_SOURCE,
        "DetailType": lake.PRODUCTION_ORDER_EVENT_DETAIL_TYPE,
        "Detail": json.dumps(row, separators=(",", ":")),
        "EventBusName": bus_name,
    }


def order_entries(documents: Iterable[Any], bus_name: str) -> list[dict[str, Any]]:
    """The entries of the production orders among ``documents`` (other types have none)."""
    return [order_entry(d, bus_name) for d in documents if isinstance(d, ProductionOrder)]


def put_batches(entries: Sequence[dict[str, Any]]) -> Iterator[list[dict[str, Any]]]:
    for start in range(0, len(entries), MAX_ENTRIES_PER_PUT):
        yield list(entries[start : start + MAX_ENTRIES_PER_PUT])
