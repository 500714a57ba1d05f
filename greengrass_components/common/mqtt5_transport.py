"""MQTT 5 transport (``awscrt.mqtt5``): a plain Linux gateway, AWS IoT Core, tests on Mosquitto.

What it guarantees, by design:

* **At most one copy per publish call.** awscrt's default offline queue keeps a QoS 1 publish
  that the caller already gave up on and sends it at the next connection, beside the caller's
  own retry (a 40 s outage gave 12 messages for 8 parts). Here the queue behaviour is
  ``FAIL_ALL_ON_DISCONNECT``: a publish made while offline fails at once, one queued at a
  disconnect fails, and awscrt's ``ack_timeout_sec`` fails one the broker never acknowledged;
  the call waits for that outcome, so a ``TransportError`` means no copy is left behind. The only
  packet sent again is one already on the wire when the link dropped (MQTT requires it), and
  its call is still waiting for its PUBACK then.
* **Subscriptions survive reconnects.** Every subscription is made again on each connection
  success (a broker that lost its state, a clean start), and the session is kept across
  reconnects while the process lives (``REJOIN_POST_SUCCESS`` with a session expiry), so the
  broker also queues QoS 1 messages for a short blip.
* **Start-up never gives up.** The client retries forever with exponential backoff and full
  jitter between ``min_reconnect_delay_ms`` and ``max_reconnect_delay_ms``, logging each failed
  attempt; ``connect_timeout_s=None`` returns at once and ``wait_ready`` tells when it is up.
* **Mutual TLS** (``TlsFiles``): a client certificate and key and the CA that signed the
  broker's certificate, on 8883; on 443 with the ALPN protocol AWS IoT Core needs there.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path

from awscrt import io, mqtt5

from greengrass_components.common.transport import (
    Callback,
    Transport,
    TransportError,
    safe_callback,
    topic_matches,
)

log = logging.getLogger(__name__)

# AWS IoT Core takes MQTT with an X.509 client certificate on 8883, or on 443 when the TLS
# ClientHello offers this ALPN protocol name.
# https://docs.aws.amazon.com/iot/latest/developerguide/protocols.html
IOT_CORE_MQTT_ALPN = "x-amzn-mqtt-ca"
MQTT_TLS_PORT = 8883
HTTPS_PORT = 443


@dataclass(frozen=True)
class TlsFiles:
    """Mutual TLS: our certificate and private key, and the CA file to trust for the broker
    (AWS IoT Core: AmazonRootCA1.pem). ``alpn`` None: the IoT Core protocol on port 443, none
    elsewhere."""

    cert: Path
    key: Path
    ca: Path | None = None
    alpn: tuple[str, ...] | None = None

    def alpn_for(self, port: int) -> tuple[str, ...]:
        if self.alpn is not None:
            return self.alpn
        return (IOT_CORE_MQTT_ALPN,) if port == HTTPS_PORT else ()

    def context_options(self, port: int) -> io.TlsContextOptions:
        for label, path in (("certificate", self.cert), ("private key", self.key), ("CA", self.ca)):
            if path is not None and not Path(path).is_file():
                raise TransportError(f"TLS {label} file {path} does not exist")
        options = io.TlsContextOptions.create_client_with_mtls_from_path(
            str(self.cert), str(self.key)
        )
        if self.ca is not None:
            options.override_default_trust_store_from_path(None, str(self.ca))
        alpn = self.alpn_for(port)
        if alpn:
            options.alpn_list = list(alpn)
        return options


class Mqtt5Transport(Transport):
    """QoS 1 publishes that wait for the broker's PUBACK, so "published" means accepted.

    ``connect_timeout_s`` bounds the wait for the first connection (None: return at once, the
    client keeps trying); ``timeout_s`` bounds a SUBACK and, rounded up, a PUBACK (awscrt's ack
    timeout).
    """

    def __init__(
        self,
        host: str,
        port: int,
        client_id: str,
        *,
        tls: TlsFiles | None = None,
        timeout_s: float = 10.0,
        connect_timeout_s: float | None = 10.0,
        min_reconnect_delay_ms: int = 200,
        max_reconnect_delay_ms: int = 10_000,
        session_expiry_s: int = 3600,
        keep_alive_s: int = 30,
    ) -> None:
        self.host, self.port = host, port
        self._timeout_s = timeout_s
        self._ack_timeout_s = max(1, math.ceil(timeout_s))
        self._subscriptions: list[tuple[str, Callback]] = []
        self._lock = threading.Lock()
        self._ready = threading.Event()  # connected, and every subscription acknowledged
        self._connected = threading.Event()
        self._generation = 0
        self._pending_subacks = 0
        self._stopped = threading.Event()
        self._closing = False
        self.connections = 0
        self.failed_attempts = 0
        tls_ctx = io.ClientTlsContext(tls.context_options(port)) if tls else None
        self._client = mqtt5.Client(
            mqtt5.ClientOptions(
                host_name=host,
                port=port,
                tls_ctx=tls_ctx,
                connect_options=mqtt5.ConnectPacket(
                    client_id=client_id,
                    keep_alive_interval_sec=keep_alive_s,
                    session_expiry_interval_sec=session_expiry_s,
                ),
                session_behavior=mqtt5.ClientSessionBehaviorType.REJOIN_POST_SUCCESS,
                offline_queue_behavior=(
                    mqtt5.ClientOperationQueueBehaviorType.FAIL_ALL_ON_DISCONNECT
                ),
                ack_timeout_sec=self._ack_timeout_s,
                retry_jitter_mode=mqtt5.ExponentialBackoffJitterMode.FULL,
                min_reconnect_delay_ms=min_reconnect_delay_ms,
                max_reconnect_delay_ms=max_reconnect_delay_ms,
                on_publish_callback_fn=self._on_publish,
                on_lifecycle_event_connection_success_fn=self._on_connected,
                on_lifecycle_event_connection_failure_fn=self._on_failure,
                on_lifecycle_event_disconnection_fn=self._on_disconnected,
                on_lifecycle_event_stopped_fn=lambda _: self._stopped.set(),
            )
        )
        self._client.start()
        if connect_timeout_s is not None and not self._connected.wait(connect_timeout_s):
            self.close()
            raise TransportError(
                f"cannot connect to MQTT broker {host}:{port} within {connect_timeout_s:g} s"
            )

    # -- lifecycle (awscrt's event-loop thread: never block here) --------------------------

    def _on_connected(self, data: mqtt5.LifecycleConnectSuccessData) -> None:
        with self._lock:
            self.connections += 1
            self._generation += 1
            generation = self._generation
            topics = list(dict.fromkeys(t for t, _ in self._subscriptions))
            self._pending_subacks = len(topics)
            if not topics:
                self._ready.set()
        if self.connections > 1 or self.failed_attempts:
            rejoined = bool(data.negotiated_settings and data.negotiated_settings.rejoined_session)
            log.info(
                "MQTT connected to %s:%d (session %s); subscribing to %d filters again",
                self.host, self.port, "resumed" if rejoined else "new", len(topics),
            )  # fmt: skip
        self._connected.set()
        for topic in topics:
            self._send_subscribe(topic).add_done_callback(
                lambda fut, t=topic: self._on_resubscribed(fut, t, generation)
            )

    def _on_resubscribed(self, future: Future, topic: str, generation: int) -> None:
        try:
            self._check_suback(future.result(), topic)
        except Exception as exc:  # the next connection success tries again
            log.error("re-subscribing to %s failed: %s", topic, exc)
            return
        with self._lock:
            if generation == self._generation:
                self._pending_subacks -= 1
                if self._pending_subacks <= 0:
                    self._ready.set()

    def _on_failure(self, data: mqtt5.LifecycleConnectFailureData) -> None:
        self.failed_attempts += 1
        log.warning(
            "MQTT broker %s:%d unreachable (attempt %d), retrying with backoff: %s",
            self.host, self.port, self.failed_attempts, data.exception,
        )  # fmt: skip

    def _on_disconnected(self, data: mqtt5.LifecycleDisconnectData) -> None:
        self._ready.clear()
        self._connected.clear()
        if not self._closing:
            log.warning("MQTT link to %s:%d lost: %s", self.host, self.port, data.exception)

    def _on_publish(self, data: mqtt5.PublishReceivedData) -> None:
        packet = data.publish_packet
        payload = bytes(packet.payload or b"")
        with self._lock:
            targets = [cb for f, cb in self._subscriptions if topic_matches(f, packet.topic)]
        for callback in targets:
            callback(packet.topic, payload)

    # -- the interface ---------------------------------------------------------------------

    def wait_ready(self, timeout_s: float | None = None) -> bool:
        """True once connected with every subscription in place (False after ``timeout_s``)."""
        return self._ready.wait(timeout_s)

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    def publish(self, topic: str, payload: bytes) -> None:
        packet = mqtt5.PublishPacket(topic=topic, payload=payload, qos=mqtt5.QoS.AT_LEAST_ONCE)
        future = self._client.publish(packet)
        try:
            # awscrt completes it: PUBACK, ack timeout, disconnect or offline rejection. The
            # bound only guards against a client that never answers.
            completion = future.result(3 * self._ack_timeout_s + 5)
        except Exception as exc:
            raise TransportError(f"publish to {topic} failed: {exc or type(exc).__name__}") from exc
        puback = completion.puback
        if puback is None or puback.reason_code.value >= 0x80:
            code = puback.reason_code.name if puback else "no PUBACK"
            raise TransportError(f"broker refused publish to {topic}: {code}")

    def subscribe(self, topic: str, callback: Callback) -> None:
        """Take messages of ``topic`` from now on. While offline the subscription is made at
        the next connection; when connected, the broker's refusal raises ``TransportError``."""
        with self._lock:
            new_filter = all(t != topic for t, _ in self._subscriptions)
            self._subscriptions.append((topic, safe_callback(callback)))
        if not new_filter or not self._connected.is_set():
            return
        try:
            self._check_suback(self._send_subscribe(topic).result(self._timeout_s), topic)
        except TransportError:
            raise
        except Exception as exc:
            if self._connected.is_set():
                raise TransportError(f"subscribe to {topic} failed: {exc}") from exc
            log.warning("subscribe to %s deferred to the next connection: %s", topic, exc)

    def _send_subscribe(self, topic: str) -> Future:
        return self._client.subscribe(
            mqtt5.SubscribePacket(
                subscriptions=[mqtt5.Subscription(topic_filter=topic, qos=mqtt5.QoS.AT_LEAST_ONCE)]
            )
        )

    @staticmethod
    def _check_suback(suback: mqtt5.SubackPacket, topic: str) -> None:
        if any(code.value >= 0x80 for code in suback.reason_codes):
            raise TransportError(f"broker refused subscription to {topic}: {suback.reason_codes}")

    def close(self) -> None:
        if self._closing:
            return
        self._closing = True
        self._client.stop()
        self._stopped.wait(self._timeout_s)


def parse_alpn(value: str | Sequence[str] | None) -> tuple[str, ...] | None:
    """A comma-separated list (or a list) of ALPN names; None or "auto" keeps the default."""
    if value is None or value == "auto":
        return None
    names = value.split(",") if isinstance(value, str) else list(value)
    return tuple(n.strip() for n in names if n.strip())
