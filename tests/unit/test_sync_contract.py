"""The messages between service instances: batches are one origin's consecutive sequences, and
an origin whose clock runs ahead still syncs (a future check would stall it for good)."""

from __future__ import annotations

import time

import pytest
from pydantic import ValidationError

from mes_domain.production import SyncBatch, SyncMessage


def message(sequence: int, origin: str = "berlin", created_at: int | None = None) -> dict:
    now = int(time.time() * 1000)
    return {
        "origin": origin,
        "sequence": sequence,
        "kind": "OperationChanged",
        "payload": {},
        "created_at": now if created_at is None else created_at,
    }


def test_a_message_from_a_clock_an_hour_ahead_is_accepted():
    ahead = int(time.time() * 1000) + 3_600_000
    assert SyncMessage.model_validate(message(1, created_at=ahead)).created_at == ahead


def test_a_batch_is_one_origin_in_consecutive_order():
    assert len(SyncBatch.model_validate({"messages": [message(4), message(5)]}).messages) == 2
    with pytest.raises(ValidationError, match="consecutive"):
        SyncBatch.model_validate({"messages": [message(4), message(6)]})
    with pytest.raises(ValidationError, match="one origin"):
        SyncBatch.model_validate({"messages": [message(1), message(2, origin="cloud")]})
