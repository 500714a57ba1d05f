"""One small interface to the message broker, and its in-memory implementation.

Components see only ``publish``, ``subscribe`` and ``close``; ``main`` picks the implementation
(Greengrass IPC, MQTT 5 or in-memory) once and injects it. Subscriber callbacks run on the
transport's threads, so every callback is wrapped: an exception is logged, never raised into
the transport, where it would end the subscription stream.
"""

from __future__ import annotations

import logging
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass

log = logging.getLogger(__name__)

Callback = Callable[[str, bytes], None]


class TransportError(RuntimeError):
    """A publish or subscribe that the broker did not confirm."""


def topic_matches(topic_filter: str, topic: str) -> bool:
    """MQTT filter matching with ``+`` (one level) and ``#`` (the rest)."""
    filter_levels = topic_filter.split("/")
    levels = topic.split("/")
    for i, level in enumerate(filter_levels):
        if level == "#":
            return True
        if i >= len(levels) or (level != "+" and level != levels[i]):
            return False
    return len(levels) == len(filter_levels)


def safe_callback(callback: Callback) -> Callback:
    """``callback`` that logs its exceptions instead of raising them into the transport."""

    def guarded(topic: str, payload: bytes) -> None:
        try:
            callback(topic, payload)
        except Exception:
            log.exception("subscriber of %s failed; message dropped", topic)

    return guarded


class Transport(ABC):
    @abstractmethod
    def publish(self, topic: str, payload: bytes) -> None:
        """Send ``payload`` at least once; raise ``TransportError`` if it was not accepted."""

    @abstractmethod
    def subscribe(self, topic: str, callback: Callback) -> None:
        """Call ``callback(topic, payload)`` for each message matching the filter ``topic``."""

    @abstractmethod
    def close(self) -> None:
        """Release the connection; idempotent."""

    def wait_ready(self, timeout_s: float | None = None) -> bool:
        """True once connected with every subscription in place; a transport without a link
        of its own (in-memory, Greengrass IPC) is always ready."""
        return True


@dataclass(frozen=True)
class Message:
    topic: str
    payload: bytes


class InMemoryTransport(Transport):
    """Delivers synchronously to matching subscribers and records every publish (for tests)."""

    def __init__(self) -> None:
        self.published: list[Message] = []
        self._subscriptions: list[tuple[str, Callback]] = []
        self._lock = threading.Lock()
        self.fail_publishes = False  # a test sets this to simulate a broker that is down
        self.closed = False

    def publish(self, topic: str, payload: bytes) -> None:
        if self.closed:
            raise TransportError("transport is closed")
        if self.fail_publishes:
            raise TransportError(f"publish to {topic} failed (simulated)")
        with self._lock:
            self.published.append(Message(topic, bytes(payload)))
            targets = [cb for f, cb in self._subscriptions if topic_matches(f, topic)]
        for callback in targets:
            callback(topic, bytes(payload))

    def subscribe(self, topic: str, callback: Callback) -> None:
        with self._lock:
            self._subscriptions.append((topic, safe_callback(callback)))

    def close(self) -> None:
        self.closed = True

    def on(self, topic: str) -> list[bytes]:
        """Payloads published on exactly ``topic``, in order."""
        with self._lock:
            return [m.payload for m in self.published if m.topic == topic]
