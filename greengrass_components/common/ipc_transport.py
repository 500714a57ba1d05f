"""Greengrass IPC transport: results go to AWS IoT Core through the nucleus (``mqttproxy``),
triggers arrive on local publish/subscribe (``pubsub``), as the recipe's accessControl allows.

The nucleus spools IoT Core publishes while the gateway is offline, so a publish that the
nucleus accepted is not lost to a network outage. By default that spool is 2.5 MB in memory
and drops its oldest messages when full; our deployments put it on disk
(``mes_domain.edge_spooler``).
"""

from __future__ import annotations

import json
import logging
from typing import Any

from greengrass_components.common.transport import (
    Callback,
    Transport,
    TransportError,
    safe_callback,
)

log = logging.getLogger(__name__)


class IpcTransport(Transport):
    def __init__(self, client: Any, *, timeout_s: float = 10.0) -> None:
        """``client`` is a ``GreengrassCoreIPCClientV2``, built once in ``main``."""
        self._client = client
        self._operations: list[Any] = []
        self._timeout_s = timeout_s
        self._closed = False

    def publish(self, topic: str, payload: bytes) -> None:
        from awsiot.greengrasscoreipc.model import QOS

        try:
            self._client.publish_to_iot_core(
                topic_name=topic, qos=QOS.AT_LEAST_ONCE, payload=payload
            )
        except Exception as exc:
            raise TransportError(f"IPC publish to {topic} failed: {exc}") from exc

    def subscribe(self, topic: str, callback: Callback) -> None:
        guarded = safe_callback(callback)

        def on_event(event: Any) -> None:
            try:
                if event.binary_message is not None:
                    message = event.binary_message
                    payload = bytes(message.message or b"")
                elif event.json_message is not None:
                    message = event.json_message
                    payload = json.dumps(message.message).encode()
                else:
                    return
                context = getattr(message, "context", None)
                guarded(getattr(context, "topic", None) or topic, payload)
            except Exception:
                log.exception("malformed IPC message on %s", topic)

        def on_error(error: Exception) -> bool:
            log.error("IPC subscription to %s failed: %s", topic, error)
            return False  # keep the stream open

        try:
            _, operation = self._client.subscribe_to_topic(
                topic=topic, on_stream_event=on_event, on_stream_error=on_error
            )
        except Exception as exc:
            raise TransportError(f"IPC subscribe to {topic} failed: {exc}") from exc
        self._operations.append(operation)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for operation in self._operations:
            try:
                operation.close()
            except Exception:
                log.debug("closing an IPC stream failed", exc_info=True)
        self._client.close()
