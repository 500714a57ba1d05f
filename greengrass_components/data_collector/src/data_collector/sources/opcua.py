"""OPC UA (asyncua): subscriptions to a server's variables, with security and reconnects.

* **Subscriptions**: one per distinct sampling interval (its publishing interval), each point a
  monitored item with its own sampling interval and, if configured, a ``DataChangeFilter`` with an
  absolute or percent deadband. A percent deadband needs the variable's EURange (OPC 10000-8
  §6.2: the server answers Bad_DeadbandFilterInvalid without one,
  https://reference.opcfoundation.org/Core/Part8/v104/6.2); a refused filter is logged as a
  ``SourceError`` for that point, which is then monitored without a deadband.
* **Security**: Basic256Sha256 with Sign or SignAndEncrypt, the gateway's certificate and key,
  the server's certificate; user name login with the password read from ``password_file`` at each
  connect (never from the configuration).
* **Nodes** by NodeId or by browse path from the Objects folder, resolved once per connection in
  one TranslateBrowsePathsToNodeIds call, and resolved again after a reconnect (a restarted server
  may number its nodes differently).
* **Reconnect**: a lost or refused connection is logged once and retried with exponential backoff
  up to ``reconnect_max_s``; each new session resolves and subscribes everything again. A point
  whose node does not exist is a ``SourceError`` naming it; the others carry on, and failed points
  are tried again every ``retry_failed_s``.
* **Readings**: quality from the DataValue's StatusCode severity (Good, Uncertain, Bad); time from
  the SourceTimestamp, else the ServerTimestamp, else the gateway's clock.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import math
import time
from pathlib import Path

from asyncua import Client, ua
from asyncua.client.ua_client import UaClientState
from asyncua.crypto.security_policies import SecurityPolicyBasic256Sha256

from data_collector.readings import Binding, Reading, Sink, Source, Value, set_within
from data_collector.sources._common import Backoff, PointErrors, now_ms
from mes_domain.collection import (
    DeadbandType,
    OpcUaConnection,
    OpcUaSecurityMode,
    OpcUaSecurityPolicy,
)
from mes_domain.contracts import ReadingQuality

log = logging.getLogger(__name__)

MIN_PUBLISHING_MS = 50  # a sampling interval of 0 ("as fast as the server can") publishes at this
QUEUE_SIZE = 10  # changes kept per item between publishes: a short fault state is not lost
FILTER_REFUSED = {
    ua.StatusCodes.BadDeadbandFilterInvalid,
    ua.StatusCodes.BadFilterNotAllowed,
    ua.StatusCodes.BadMonitoredItemFilterUnsupported,
    ua.StatusCodes.BadMonitoredItemFilterInvalid,
}
EURANGE_HINT = "; a percent deadband needs the EURange property"
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def quality(status: ua.StatusCode | None) -> ReadingQuality:
    """The StatusCode's severity, its two top bits (OPC 10000-4 §7.39)."""
    if status is None or status.is_good():
        return ReadingQuality.GOOD
    return ReadingQuality.UNCERTAIN if status.is_uncertain() else ReadingQuality.BAD


def timestamp_ms(data_value: ua.DataValue) -> int:
    stamp = data_value.SourceTimestamp or data_value.ServerTimestamp
    if stamp is None:
        return now_ms()
    if stamp.tzinfo is None:  # asyncua's datetimes are UTC
        stamp = stamp.replace(tzinfo=dt.UTC)
    return int((stamp - _EPOCH).total_seconds() * 1000)


def plain_value(value) -> Value:
    """A Reading's value from a Variant's; raises TypeError for arrays and structures."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, ua.LocalizedText):
        return value.Text
    if isinstance(value, dt.datetime):
        return value.isoformat()
    raise TypeError(f"a {type(value).__name__} value cannot be a reading")


def deadband_filter(binding: Binding) -> ua.DataChangeFilter | None:
    address = binding.address
    if address.deadband_type is DeadbandType.NONE:
        return None
    kind = {
        DeadbandType.ABSOLUTE: ua.DeadbandType.Absolute,
        DeadbandType.PERCENT: ua.DeadbandType.Percent,
    }
    return ua.DataChangeFilter(
        Trigger=ua.DataChangeTrigger.StatusValue,
        DeadbandType=kind[address.deadband_type],
        DeadbandValue=float(address.deadband),
    )


def application_uri(certificate_path: str) -> str | None:
    """The URI in the certificate's subjectAltName: the client must announce the same one."""
    from cryptography import x509

    data = Path(certificate_path).read_bytes()
    cert = (
        x509.load_pem_x509_certificate(data)
        if data.lstrip().startswith(b"-----")
        else x509.load_der_x509_certificate(data)
    )
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        return None
    uris = san.value.get_values_for_type(x509.UniformResourceIdentifier)
    return uris[0] if uris else None


class _Handler:
    """asyncua calls this for each data change: turn it into a Reading."""

    def __init__(self, source: OpcUaSource, sink: Sink) -> None:
        self.source, self.sink = source, sink

    def datachange_notification(self, node, val, data) -> None:
        self.source._on_change(
            data.monitored_item.ClientHandle, data.monitored_item.Value, self.sink
        )

    def status_change_notification(self, status) -> None:
        log.warning("OPC UA %s: subscription status %s", self.source.name, status)


class OpcUaSource(Source):
    reconnect_min_s = 0.5
    watchdog_s = 1.0  # how often asyncua probes a quiet connection
    retry_failed_s = 60.0
    request_timeout_s = 4.0

    def __init__(self, connection: OpcUaConnection, bindings: list[Binding]) -> None:
        super().__init__(connection, bindings)
        self.errors = PointErrors(connection.name)
        self.connections = 0
        self.resolved: dict[int, ua.NodeId] = {}  # binding index -> node, for this connection
        self.monitored: dict[int, int] = {}  # client handle -> binding index
        self.failed: set[int] = set()  # binding indexes not monitored on this connection
        self._subscriptions: dict[int, object] = {}  # publishing interval -> Subscription
        self._handles = 0

    # -- connection --------------------------------------------------------------------------

    async def _client(self) -> Client:
        c = self.connection
        client = Client(
            c.endpoint, timeout=self.request_timeout_s, watchdog_intervall=self.watchdog_s
        )
        if c.security_policy is not OpcUaSecurityPolicy.NONE:
            uri = application_uri(c.certificate)
            if uri:
                client.application_uri = uri
            if c.server_certificate is None:
                log.warning(
                    "OPC UA %s: no server_certificate; trusting the certificate the server "
                    "presents (configure it to authenticate the server)", c.name,
                )  # fmt: skip
            mode = {
                OpcUaSecurityMode.SIGN: ua.MessageSecurityMode.Sign,
                OpcUaSecurityMode.SIGN_AND_ENCRYPT: ua.MessageSecurityMode.SignAndEncrypt,
            }[c.security_mode]
            await client.set_security(
                SecurityPolicyBasic256Sha256,
                certificate=c.certificate,
                private_key=c.private_key,
                server_certificate=c.server_certificate,
                mode=mode,
            )
        if c.username is not None:
            client.set_user(c.username)
            try:
                password = Path(c.password_file).read_text(encoding="utf-8").rstrip("\r\n")
            except OSError as exc:
                raise ConnectionError(f"password_file {c.password_file}: {exc}") from exc
            client.set_password(password)
        return client

    async def run(self, sink: Sink) -> None:
        c = self.connection
        backoff = Backoff(self.reconnect_min_s, c.reconnect_max_s)
        last_failure: str | None = None
        while True:
            client: Client | None = None
            lost = asyncio.Event()
            try:
                client = await self._client()

                async def on_lost(_exc: Exception, lost: asyncio.Event = lost) -> None:
                    lost.set()

                client.connection_lost_callback = on_lost
                await client.connect()
                self.connections += 1
                if last_failure is not None:
                    log.info("OPC UA %s at %s: connected again", c.name, c.endpoint)
                last_failure = None
                backoff.reset()
                await self._subscribe_all(client, sink)
                await self._watch(client, lost, sink)
                raise ConnectionError("connection lost")
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                failure = f"{type(exc).__name__}: {exc}"
                if failure != last_failure:  # once per kind of failure, not once per retry
                    log.error(
                        "OPC UA %s at %s unreachable, refused or lost (%s); reconnecting with "
                        "backoff up to %g s", c.name, c.endpoint, failure, c.reconnect_max_s,
                    )  # fmt: skip
                last_failure = failure
            finally:
                await self._close(client)
            await asyncio.sleep(backoff.next_delay())

    async def _close(self, client: Client | None) -> None:
        self._subscriptions.clear()
        self.monitored.clear()
        self.resolved.clear()  # resolve again on the next connection
        if client is None:
            return
        try:
            await asyncio.wait_for(asyncio.shield(client.disconnect()), 2.0)
        except asyncio.CancelledError:
            client.disconnect_socket()
            raise  # swallowed, a stop that lands here would leave the source running forever
        except Exception:  # noqa: BLE001 - the link is gone or going anyway
            client.disconnect_socket()

    async def _watch(self, client: Client, lost: asyncio.Event, sink: Sink) -> None:
        """Return when the connection is lost; meanwhile retry points that failed."""
        next_retry = time.monotonic() + self.retry_failed_s
        while not lost.is_set():
            await set_within(lost, self.watchdog_s)
            if client.uaclient.state in (UaClientState.DISCONNECTED, UaClientState.DISCONNECTING):
                return
            if self.failed and time.monotonic() >= next_retry:
                next_retry = time.monotonic() + self.retry_failed_s
                await self._subscribe(client, sorted(self.failed), sink)

    # -- nodes and subscriptions -------------------------------------------------------------

    async def _resolve(self, client: Client, indexes: list[int]) -> list[int]:
        """Node ids of ``indexes`` into ``self.resolved``; returns those resolved."""
        by_path = []
        for i in indexes:
            address = self.bindings[i].address
            if i in self.resolved:
                continue
            if address.node_id is not None:
                try:
                    self.resolved[i] = ua.NodeId.from_string(address.node_id)
                except Exception as exc:
                    self.errors.report(
                        self.bindings[i], "node", f"bad NodeId {address.node_id!r}: {exc}"
                    )
            else:
                by_path.append(i)
        if by_path:
            paths = [self.bindings[i].address.browse_path for i in by_path]
            results = await client.nodes.objects.get_children_by_path(
                paths, raise_on_partial_error=False
            )
            for i, targets in zip(by_path, results, strict=True):
                if targets:
                    self.resolved[i] = targets[0].nodeid
                else:
                    path = "/".join(self.bindings[i].address.browse_path)
                    self.errors.report(self.bindings[i], "node", f"no node at Objects/{path}")
        return [i for i in indexes if i in self.resolved]

    async def _subscribe_all(self, client: Client, sink: Sink) -> None:
        self.failed = set(range(len(self.bindings)))
        await self._subscribe(client, list(range(len(self.bindings))), sink)

    async def _subscription(self, client: Client, interval_ms: int, sink: Sink):
        publishing = max(interval_ms, MIN_PUBLISHING_MS)
        if publishing not in self._subscriptions:
            self._subscriptions[publishing] = await client.create_subscription(
                publishing, _Handler(self, sink)
            )
        return self._subscriptions[publishing]

    async def _subscribe(self, client: Client, indexes: list[int], sink: Sink) -> None:
        groups: dict[int, list[int]] = {}
        for i in await self._resolve(client, indexes):
            groups.setdefault(self.bindings[i].address.sampling_interval_ms, []).append(i)
        # Every subscription first: notifications for one asyncua does not know yet are dropped.
        subscriptions = {ms: await self._subscription(client, ms, sink) for ms in sorted(groups)}
        for interval_ms, group in sorted(groups.items()):
            subscription = subscriptions[interval_ms]
            refused = await self._monitor(subscription, group, with_filter=True)
            if refused:  # the deadband filter was refused: monitor without it
                await self._monitor(subscription, refused, with_filter=False)

    async def _monitor(self, subscription, group: list[int], with_filter: bool) -> list[int]:
        requests, handles = [], []
        for i in group:
            self._handles += 1
            handles.append(self._handles)
            self.monitored[self._handles] = i
            params = ua.MonitoringParameters(
                ClientHandle=self._handles,
                SamplingInterval=float(self.bindings[i].address.sampling_interval_ms),
                QueueSize=QUEUE_SIZE,
                DiscardOldest=True,
                Filter=deadband_filter(self.bindings[i]) if with_filter else None,
            )
            requests.append(
                ua.MonitoredItemCreateRequest(
                    ItemToMonitor=ua.ReadValueId(
                        NodeId=self.resolved[i], AttributeId=ua.AttributeIds.Value
                    ),
                    MonitoringMode=ua.MonitoringMode.Reporting,
                    RequestedParameters=params,
                )
            )
        results = await subscription.create_monitored_items(requests)
        refused = []
        for i, handle, result in zip(group, handles, results, strict=True):
            binding = self.bindings[i]
            if not isinstance(result, ua.StatusCode):
                self.failed.discard(i)
                continue
            del self.monitored[handle]
            if with_filter and result.value in FILTER_REFUSED and deadband_filter(binding):
                a = binding.address
                hint = EURANGE_HINT if a.deadband_type is DeadbandType.PERCENT else ""
                self.errors.report(
                    binding,
                    "deadband",
                    f"server refused the {a.deadband_type} deadband {a.deadband:g} "
                    f"({result.name}{hint}); monitored without a deadband",
                )
                refused.append(i)
            else:
                self.failed.add(i)
                self.errors.report(
                    binding, "monitor", f"cannot monitor {self.resolved[i]}: {result.name}"
                )
        return refused

    # -- notifications -----------------------------------------------------------------------

    def _on_change(self, handle: int, data_value: ua.DataValue, sink: Sink) -> None:
        i = self.monitored.get(handle)
        if i is None:
            return
        binding = self.bindings[i]
        q = quality(data_value.StatusCode)
        variant = data_value.Value
        try:
            value = plain_value(variant.Value if variant is not None else None)
        except TypeError as exc:
            self.errors.report(binding, "type", str(exc))
            return
        if value is None and q is ReadingQuality.GOOD:
            q = ReadingQuality.BAD  # a Good status without a usable value (NaN, empty)
        if q is ReadingQuality.GOOD:
            self.errors.recovered(binding)
        sink(Reading(binding.station, binding.point, timestamp_ms(data_value), value, q))
