"""MQTT from a plant broker (awscrt MQTT 5): JSON messages mapped to points by a path.

* Each binding's topic filter is subscribed (QoS 1) on **every** connection success: the client
  starts clean, so a broker restart or a new session loses nothing it could give back.
* A message is parsed once; each binding whose filter matches takes its value at ``path``
  (``$.a.b[0]``) and its time at ``timestamp_path`` (epoch ms), else the arrival time.
* A message that is not JSON, or lacks a binding's path, is a ``SourceError`` naming the station
  and point, logged at most once a minute per point and kind.
* TLS when ``ca_file`` is set (with ``certificate``/``private_key``: mutual TLS); user name login
  with the password read from ``password_file``. awscrt reconnects by itself with exponential
  backoff and jitter; a lost or refused connection is logged once until it is back.

Not built on ``common.mqtt5_transport.Mqtt5Transport``: that one is our link to AWS IoT Core
(mutual TLS only, no user name login); a plant broker needs server-only TLS and passwords.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import re
import threading
import uuid
from pathlib import Path

from awscrt import io, mqtt5

from data_collector.readings import Binding, Reading, Sink, Source, Value
from data_collector.sources._common import Backoff, PointErrors, now_ms
from greengrass_components.common.transport import topic_matches
from mes_domain.collection import MqttConnection

log = logging.getLogger(__name__)

_STEP = re.compile(r"\.([A-Za-z_][A-Za-z0-9_-]*)|\[(\d+)\]")
_MISSING = object()


def compile_path(path: str) -> tuple[str | int, ...]:
    """``$.a.b[0]`` -> ("a", "b", 0); the config model has validated the syntax."""
    if not path.startswith("$"):
        raise ValueError(f"{path!r} is not a JSON path")
    steps, pos = [], 1
    while pos < len(path):
        match = _STEP.match(path, pos)
        if match is None:
            raise ValueError(f"{path!r} is not a JSON path (at {pos})")
        steps.append(match.group(1) if match.group(1) is not None else int(match.group(2)))
        pos = match.end()
    return tuple(steps)


def pick(document, steps: tuple[str | int, ...]):
    """The value at ``steps`` in ``document``, or ``_MISSING``."""
    node = document
    for step in steps:
        if isinstance(step, int):
            if not isinstance(node, list) or step >= len(node):
                return _MISSING
        elif not isinstance(node, dict) or step not in node:
            return _MISSING
        node = node[step]
    return node


class MqttSource(Source):
    min_reconnect_delay_ms = 250
    max_reconnect_delay_ms = 30_000
    connect_timeout_s = 10.0

    def __init__(self, connection: MqttConnection, bindings: list[Binding]) -> None:
        super().__init__(connection, bindings)
        self.errors = PointErrors(connection.name)
        self._paths = [
            (
                b,
                compile_path(b.address.path),
                compile_path(b.address.timestamp_path) if b.address.timestamp_path else None,
            )
            for b in bindings
        ]
        self.filters = list(dict.fromkeys(b.address.topic for b in bindings))
        self.connections = 0
        self.subscribed = threading.Event()  # every filter acknowledged on this connection
        self._sink: Sink | None = None
        self._client_ref: mqtt5.Client | None = None
        self._down_logged = False
        self._pending = 0
        self._lock = threading.Lock()

    # -- client ------------------------------------------------------------------------------

    def _client(self, stopped: threading.Event) -> mqtt5.Client:
        c = self.connection
        tls_ctx = None
        if c.ca_file is not None or c.certificate is not None:
            if c.certificate is not None:
                options = io.TlsContextOptions.create_client_with_mtls_from_path(
                    c.certificate, c.private_key
                )
            else:
                options = io.TlsContextOptions()
            if c.ca_file is not None:
                options.override_default_trust_store_from_path(None, c.ca_file)
            tls_ctx = io.ClientTlsContext(options)
        password = None
        if c.password_file is not None:
            password = Path(c.password_file).read_bytes().rstrip(b"\r\n")
        return mqtt5.Client(
            mqtt5.ClientOptions(
                host_name=c.host,
                port=c.port,
                tls_ctx=tls_ctx,
                connect_options=mqtt5.ConnectPacket(
                    client_id=f"mes-collector-{c.name}-{uuid.uuid4().hex[:8]}",
                    keep_alive_interval_sec=30,
                    username=c.username,
                    password=password,
                ),
                session_behavior=mqtt5.ClientSessionBehaviorType.CLEAN,
                retry_jitter_mode=mqtt5.ExponentialBackoffJitterMode.FULL,
                min_reconnect_delay_ms=self.min_reconnect_delay_ms,
                max_reconnect_delay_ms=self.max_reconnect_delay_ms,
                on_publish_callback_fn=self._on_publish,
                on_lifecycle_event_connection_success_fn=self._on_connected,
                on_lifecycle_event_connection_failure_fn=self._on_failure,
                on_lifecycle_event_disconnection_fn=self._on_disconnected,
                on_lifecycle_event_stopped_fn=lambda _: stopped.set(),
            )
        )

    async def run(self, sink: Sink) -> None:
        self._sink = sink
        stopped = threading.Event()
        backoff = Backoff(self.min_reconnect_delay_ms / 1000, self.max_reconnect_delay_ms / 1000)
        while True:
            try:
                self._client_ref = client = self._client(stopped)
                break
            except Exception as exc:  # TLS files or password file missing or unreadable
                for binding in self.bindings:
                    self.errors.report(binding, "config", f"cannot set up the MQTT client: {exc}")
                await asyncio.sleep(backoff.next_delay())  # the files may be deployed later
        client.start()
        try:
            await asyncio.Event().wait()  # awscrt runs and reconnects on its own threads
        finally:
            client.stop()
            await asyncio.to_thread(stopped.wait, 5.0)

    # -- lifecycle (awscrt's thread: never block) --------------------------------------------

    def _on_connected(self, _data) -> None:
        c = self.connection
        self.connections += 1
        if self._down_logged:
            log.info("MQTT %s at %s:%d: connected again", c.name, c.host, c.port)
        self._down_logged = False
        self.subscribed.clear()
        with self._lock:
            self._pending = len(self.filters)
        for topic in self.filters:
            future = self._client_ref.subscribe(
                mqtt5.SubscribePacket(
                    subscriptions=[
                        mqtt5.Subscription(topic_filter=topic, qos=mqtt5.QoS.AT_LEAST_ONCE)
                    ]
                )
            )
            future.add_done_callback(lambda f, t=topic: self._on_suback(f, t))

    def _on_suback(self, future, topic: str) -> None:
        try:
            suback = future.result()
            refused = [code for code in suback.reason_codes if code.value >= 0x80]
        except Exception as exc:  # the link dropped: the next connection subscribes again
            log.warning("MQTT %s: subscribing to %s failed: %s", self.connection.name, topic, exc)
            return
        if refused:
            for binding in self.bindings:
                if binding.address.topic == topic:
                    self.errors.report(binding, "subscribe", f"broker refused {topic}: {refused}")
            return
        with self._lock:
            self._pending -= 1
            if self._pending == 0:
                self.subscribed.set()

    def _on_failure(self, data) -> None:
        self._log_down("unreachable or refused", data.exception)

    def _on_disconnected(self, data) -> None:
        self.subscribed.clear()
        if data.exception is not None and "USER_REQUESTED" not in str(data.exception):
            self._log_down("lost", data.exception)

    def _log_down(self, what: str, exc) -> None:
        if not self._down_logged:
            c = self.connection
            log.error(
                "MQTT %s at %s:%d %s (%s); reconnecting with backoff up to %g s",
                c.name, c.host, c.port, what, exc, self.max_reconnect_delay_ms / 1000,
            )  # fmt: skip
            self._down_logged = True

    # -- messages ----------------------------------------------------------------------------

    def _on_publish(self, data) -> None:
        packet = data.publish_packet
        self.handle(packet.topic, bytes(packet.payload or b""))

    def handle(self, topic: str, payload: bytes) -> None:
        """One message: a reading for each binding whose filter matches ``topic``."""
        arrived = now_ms()
        targets = [p for p in self._paths if topic_matches(p[0].address.topic, topic)]
        if not targets:
            return
        try:
            document = json.loads(payload)
        except (ValueError, UnicodeDecodeError) as exc:
            for binding, _, _ in targets:
                self.errors.report(binding, "json", f"message on {topic} is not JSON: {exc}")
            return
        for binding, path, ts_path in targets:
            raw = pick(document, path)
            if raw is _MISSING:
                self.errors.report(
                    binding, "path", f"message on {topic} has no {binding.address.path}"
                )
                continue
            value: Value
            if raw is None or isinstance(raw, bool | int | str):
                value = raw
            elif isinstance(raw, float) and math.isfinite(raw):
                value = raw
            else:
                self.errors.report(
                    binding, "type", f"{binding.address.path} on {topic} is a {type(raw).__name__}"
                )
                continue
            ts = arrived
            if ts_path is not None:
                stamp = pick(document, ts_path)
                if isinstance(stamp, int | float) and not isinstance(stamp, bool):
                    ts = int(stamp)
                else:
                    self.errors.report(
                        binding,
                        "timestamp",
                        f"message on {topic}: {binding.address.timestamp_path} is not epoch ms; "
                        "using the arrival time",
                    )
            self.errors.recovered(binding)
            self._sink(Reading(binding.station, binding.point, ts, value))
