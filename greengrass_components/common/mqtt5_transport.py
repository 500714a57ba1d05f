"""MQTT 5 transport (``awscrt.mqtt5``): a plain Linux gateway, and tests against Mosquitto."""

from __future__ import annotations

import logging
import threading
from concurrent.futures import Future

from awscrt import io, mqtt5

from greengrass_components.common.transport import (
    Callback,
    Transport,
    TransportError,
    safe_callback,
    topic_matches,
)

log = logging.getLogger(__name__)


class Mqtt5Transport(Transport):
    """QoS 1 publishes that wait for the broker's PUBACK, so "published" means accepted.

    ``tls_ctx`` is for brokers such as AWS IoT Core (mutual TLS); a local broker needs none.
    """

    def __init__(
        self,
        host: str,
        port: int,
        client_id: str,
        *,
        tls_ctx: io.ClientTlsContext | None = None,
        timeout_s: float = 10.0,
    ) -> None:
        self._timeout_s = timeout_s
        self._subscriptions: list[tuple[str, Callback]] = []
        self._lock = threading.Lock()
        self._connected: Future = Future()
        self._stopped = threading.Event()
        self._client = mqtt5.Client(
            mqtt5.ClientOptions(
                host_name=host,
                port=port,
                tls_ctx=tls_ctx,
                connect_options=mqtt5.ConnectPacket(
                    client_id=client_id, keep_alive_interval_sec=30
                ),
                session_behavior=mqtt5.ClientSessionBehaviorType.CLEAN,
                min_reconnect_delay_ms=200,
                max_reconnect_delay_ms=10_000,
                on_publish_callback_fn=self._on_publish,
                on_lifecycle_event_connection_success_fn=self._on_connected,
                on_lifecycle_event_connection_failure_fn=self._on_failure,
                on_lifecycle_event_stopped_fn=lambda _: self._stopped.set(),
            )
        )
        self._client.start()
        try:
            self._connected.result(timeout_s)
        except Exception as exc:
            self.close()
            raise TransportError(f"cannot connect to MQTT broker {host}:{port}: {exc}") from exc

    def _on_connected(self, _data: mqtt5.LifecycleConnectSuccessData) -> None:
        if not self._connected.done():
            self._connected.set_result(True)

    def _on_failure(self, data: mqtt5.LifecycleConnectFailureData) -> None:
        log.warning("MQTT connection attempt failed: %s", data.exception)

    def _on_publish(self, data: mqtt5.PublishReceivedData) -> None:
        packet = data.publish_packet
        payload = bytes(packet.payload or b"")
        with self._lock:
            targets = [cb for f, cb in self._subscriptions if topic_matches(f, packet.topic)]
        for callback in targets:
            callback(packet.topic, payload)

    def publish(self, topic: str, payload: bytes) -> None:
        packet = mqtt5.PublishPacket(topic=topic, payload=payload, qos=mqtt5.QoS.AT_LEAST_ONCE)
        try:
            completion = self._client.publish(packet).result(self._timeout_s)
        except Exception as exc:
            raise TransportError(f"publish to {topic} failed: {exc}") from exc
        puback = completion.puback
        if puback is None or puback.reason_code.value >= 0x80:
            code = puback.reason_code.name if puback else "no PUBACK"
            raise TransportError(f"broker refused publish to {topic}: {code}")

    def subscribe(self, topic: str, callback: Callback) -> None:
        with self._lock:
            self._subscriptions.append((topic, safe_callback(callback)))
        packet = mqtt5.SubscribePacket(
            subscriptions=[mqtt5.Subscription(topic_filter=topic, qos=mqtt5.QoS.AT_LEAST_ONCE)]
        )
        try:
            suback = self._client.subscribe(packet).result(self._timeout_s)
        except Exception as exc:
            raise TransportError(f"subscribe to {topic} failed: {exc}") from exc
        if any(code.value >= 0x80 for code in suback.reason_codes):
            raise TransportError(f"broker refused subscription to {topic}: {suback.reason_codes}")

    def close(self) -> None:
        if self._stopped.is_set():
            return
        self._client.stop()
        self._stopped.wait(self._timeout_s)
