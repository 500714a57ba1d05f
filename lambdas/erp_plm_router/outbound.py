"""Outbound events for ERP and PLM as EventBridge PutEvents entries; the bus's rules and API
destinations deliver them. The entry is built in ``mes_domain.enterprise`` (the MES services
build the same entries from their outboxes); the detail types and sources are its
``OUTBOUND_EVENTS``, and the Detail carries ``schema_version`` (``docs/schemas/``)."""

from __future__ import annotations

from mes_domain.enterprise import MAX_ENTRY_BYTES, EventTooLarge, to_event_entry

__all__ = ["MAX_ENTRY_BYTES", "EventTooLarge", "to_event_entry"]
