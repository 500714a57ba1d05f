"""Outbound events for ERP and PLM as EventBridge PutEvents entries; the bus's rules and API
destinations deliver them. The detail types and sources are ``mes_domain.enterprise``'s
``OUTBOUND_EVENTS``; the Detail carries ``schema_version`` (``docs/schemas/``)."""

from __future__ import annotations

import json
from typing import Any

from mes_domain.enterprise import OUTBOUND_EVENTS, EnterpriseDocument, event_detail

MAX_ENTRY_BYTES = 256 * 1024  # PutEvents' limit per entry


class EventTooLarge(ValueError):
    pass


def to_event_entry(event_model: EnterpriseDocument, bus_name: str) -> dict[str, Any]:
    """The PutEvents entry of a production confirmation, order status change or non-conformance;
    ``KeyError`` for a model that is not an outbound event."""
    route = OUTBOUND_EVENTS[type(event_model)]
    entry = {
        "Source": route.source.value,
        "DetailType": route.detail_type,
        "Detail": json.dumps(event_detail(event_model), sort_keys=True),
        "EventBusName": bus_name,
    }
    size = sum(len(str(value).encode()) for value in entry.values())
    if size > MAX_ENTRY_BYTES:
        raise EventTooLarge(f"{route.detail_type} {event_model.document_id}: {size} bytes")
    return entry
