"""The transport interface: in-memory, MQTT 5 against a real Mosquitto, IPC against a fake."""

from __future__ import annotations

import threading
import time
from types import SimpleNamespace

import pytest

from greengrass_components.common.ipc_transport import IpcTransport
from greengrass_components.common.mqtt5_transport import Mqtt5Transport, TlsFiles, parse_alpn
from greengrass_components.common.transport import (
    InMemoryTransport,
    TransportError,
    topic_matches,
)
from tests.greengrass.broker import Broker, TestPki, mosquitto_binary, wait_for
from tests.greengrass.tcp_proxy import TcpProxy, TlsTerminator


@pytest.mark.parametrize(
    ("topic_filter", "topic", "matches"),
    [
        ("a/b/c", "a/b/c", True),
        ("a/+/c", "a/x/c", True),
        ("a/+/c", "a/x/y/c", False),
        ("a/#", "a/x/y", True),
        ("a/b", "a/b/c", False),
        ("a/b/c", "a/b", False),
    ],
)
def test_topic_filters(topic_filter, topic, matches):
    assert topic_matches(topic_filter, topic) is matches


def test_in_memory_callbacks_that_raise_are_logged_not_raised(caplog):
    transport = InMemoryTransport()
    received = []

    def bad(topic, payload):
        raise RuntimeError("boom")

    transport.subscribe("t/#", bad)
    transport.subscribe("t/+", lambda topic, payload: received.append((topic, payload)))
    transport.publish("t/1", b"x")
    transport.publish("t/2", b"y")
    assert received == [("t/1", b"x"), ("t/2", b"y")]
    assert "boom" in caplog.text


def test_mqtt5_round_trip_through_mosquitto(broker):
    sub = Mqtt5Transport("127.0.0.1", broker.port, "test-sub")
    pub = Mqtt5Transport("127.0.0.1", broker.port, "test-pub")
    try:
        got, done = [], threading.Event()

        def explode(topic, payload):
            raise ValueError("callback bug")

        def collect(topic, payload):
            got.append((topic, payload))
            if len(got) == 3:
                done.set()

        sub.subscribe("rt/+/quality", explode)
        sub.subscribe("rt/+/quality", collect)
        for i in range(3):
            pub.publish(f"rt/s{i}/quality", f"m{i}".encode())
        assert done.wait(5)
        assert got == [(f"rt/s{i}/quality", f"m{i}".encode()) for i in range(3)]
    finally:
        sub.close()
        pub.close()


def test_mqtt5_connect_to_nothing_is_a_clear_error(broker):
    from tests.greengrass.conftest import free_port

    port = free_port()
    with pytest.raises(TransportError, match=f"127.0.0.1:{port}"):
        Mqtt5Transport("127.0.0.1", port, "nobody", connect_timeout_s=0.5)


class FakeIpcClient:
    """The calls of GreengrassCoreIPCClientV2 that IpcTransport makes."""

    def __init__(self) -> None:
        self.published = []
        self.handlers = {}
        self.closed = False

    def publish_to_iot_core(self, *, topic_name, qos, payload):
        self.published.append((topic_name, qos, payload))

    def subscribe_to_topic(self, *, topic, on_stream_event, on_stream_error):
        self.handlers[topic] = on_stream_event
        return None, SimpleNamespace(close=lambda: None)

    def close(self):
        self.closed = True


def _binary_event(topic, payload):
    message = SimpleNamespace(message=payload, context=SimpleNamespace(topic=topic))
    return SimpleNamespace(binary_message=message, json_message=None)


def test_ipc_publishes_to_iot_core_at_least_once_and_subscribes_locally(caplog):
    client = FakeIpcClient()
    transport = IpcTransport(client)
    transport.publish("mes/v1/s/l/st/quality", b"{}")
    assert client.published == [("mes/v1/s/l/st/quality", "1", b"{}")]
    got = []
    transport.subscribe("local/t", lambda topic, payload: got.append((topic, payload)))
    transport.subscribe("local/raises", lambda topic, payload: 1 / 0)
    client.handlers["local/t"](_binary_event("local/t", b"hello"))
    client.handlers["local/t"](
        SimpleNamespace(
            binary_message=None,
            json_message=SimpleNamespace(message={"a": 1}, context=None),
        )
    )
    client.handlers["local/raises"](_binary_event("local/raises", b"x"))  # must not raise
    assert got == [("local/t", b"hello"), ("local/t", b'{"a": 1}')]
    assert "ZeroDivisionError" in caplog.text
    transport.close()
    assert client.closed


def test_ipc_publish_failure_is_a_transport_error():
    client = FakeIpcClient()

    def refuse(**_):
        raise ConnectionError("nucleus gone")

    client.publish_to_iot_core = refuse
    with pytest.raises(TransportError, match="nucleus gone"):
        IpcTransport(client).publish("t", b"x")


# -- reconnects, outages, start-up and TLS against a real Mosquitto --------------------------


class Collector:
    def __init__(self) -> None:
        self.got: list[bytes] = []
        self._lock = threading.Lock()

    def __call__(self, topic: str, payload: bytes) -> None:
        with self._lock:
            self.got.append(payload)

    def wait(self, count: int, timeout_s: float = 10) -> list[bytes]:
        assert wait_for(lambda: len(self.got) >= count, timeout_s), self.got
        time.sleep(0.3)  # a duplicate would arrive now
        return list(self.got)


FAST = {"min_reconnect_delay_ms": 50, "max_reconnect_delay_ms": 300, "timeout_s": 2}
REFUSED = {"connect_timeout_s": 1.5, "timeout_s": 1}


@pytest.fixture
def own_broker(tmp_path):
    """A broker of this test alone: it is stopped and restarted."""
    with Broker(mosquitto_binary(), tmp_path) as broker:
        yield broker


def test_subscriptions_come_back_after_a_broker_restart(own_broker):
    # Given a subscriber that received a first trigger
    sub = Mqtt5Transport("127.0.0.1", own_broker.port, "trigger-sub", **FAST)
    pub = Mqtt5Transport("127.0.0.1", own_broker.port, "trigger-pub", **FAST)
    try:
        got = Collector()
        sub.subscribe("mes/local/s/l/st/image", got)
        pub.publish("mes/local/s/l/st/image", b"first")
        assert got.wait(1) == [b"first"]
        # When the broker restarts (it forgets every session and subscription)
        own_broker.restart(down_s=0.5)
        assert sub.wait_ready(10) and pub.wait_ready(10)
        # Then the second trigger arrives too
        pub.publish("mes/local/s/l/st/image", b"second")
        assert got.wait(2) == [b"first", b"second"]
        assert sub.connections == 2
    finally:
        sub.close()
        pub.close()


def test_publishes_that_failed_in_an_outage_never_go_out_later(own_broker):
    # Given a publisher behind a link the test can cut, and a listener on the broker
    proxy = TcpProxy(own_broker.port)
    listener = Mqtt5Transport("127.0.0.1", own_broker.port, "outage-listener", **FAST)
    pub = Mqtt5Transport("127.0.0.1", proxy.port, "outage-pub", **FAST)
    try:
        got = Collector()
        listener.subscribe("out/#", got)
        pub.publish("out/1", b"before")
        # When the link is down, each publish fails (and the caller would retry it)
        proxy.cut()
        assert wait_for(lambda: not pub.connected, 5)
        failed = 0
        for i in range(4):
            with pytest.raises(TransportError):
                pub.publish("out/1", f"failed-{i}".encode())
            failed += 1
        # When the link is back
        proxy.restore()
        assert pub.wait_ready(10)
        pub.publish("out/1", b"after")
        # Then the failed publishes left no copy to be sent at the reconnect
        assert got.wait(2) == [b"before", b"after"] and failed == 4
    finally:
        pub.close()
        listener.close()
        proxy.close()


def test_start_up_without_a_broker_waits_and_subscribes_when_it_comes(tmp_path):
    # Given no broker yet on the port the client is configured with
    broker = Broker(mosquitto_binary(), tmp_path)
    client = Mqtt5Transport("127.0.0.1", broker.port, "early", connect_timeout_s=None, **FAST)
    try:
        got = Collector()
        client.subscribe("late/+", got)  # made at the first connection
        time.sleep(1.5)
        assert not client.wait_ready(0) and client.failed_attempts >= 2
        # When the broker comes up
        broker.start()
        # Then the client connects and its subscription is in place
        assert client.wait_ready(10)
        pub = Mqtt5Transport("127.0.0.1", broker.port, "late-pub", **FAST)
        pub.publish("late/1", b"hello")
        pub.close()
        assert got.wait(1) == [b"hello"]
    finally:
        client.close()
        broker.stop()


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return TestPki(tmp_path_factory.mktemp("pki"))


@pytest.fixture
def tls_broker(tmp_path, pki):
    with Broker(mosquitto_binary(), tmp_path, tls=pki) as broker:
        yield broker


def test_mutual_tls_round_trip_and_refusals(tls_broker, pki):
    # Given a broker whose TLS listener requires a client certificate of the test CA
    device = pki.issue("gateway-1")
    tls = TlsFiles(cert=device.cert, key=device.key, ca=pki.ca)
    plain = Mqtt5Transport("127.0.0.1", tls_broker.port, "tls-listener", **FAST)
    secure = Mqtt5Transport("127.0.0.1", tls_broker.tls_port, "tls-pub", tls=tls, **FAST)
    try:
        got = Collector()
        plain.subscribe("secure/+", got)
        # When the gateway publishes over mutual TLS
        secure.publish("secure/1", b"over tls")
        # Then it arrives
        assert got.wait(1) == [b"over tls"]
    finally:
        secure.close()
        plain.close()
    # And a certificate the CA did not sign, or no TLS at all, is refused
    rogue = pki.issue("rogue", self_signed=True)
    bad = TlsFiles(cert=rogue.cert, key=rogue.key, ca=pki.ca)
    with pytest.raises(TransportError, match="cannot connect"):
        Mqtt5Transport("127.0.0.1", tls_broker.tls_port, "rogue", tls=bad, **REFUSED)
    with pytest.raises(TransportError, match="cannot connect"):
        Mqtt5Transport("127.0.0.1", tls_broker.tls_port, "plain", **REFUSED)
    # And a broker certificate that our CA file does not trust is refused too
    other = TestPki(pki.folder / "other")
    untrusting = TlsFiles(cert=device.cert, key=device.key, ca=other.ca)
    with pytest.raises(TransportError, match="cannot connect"):
        Mqtt5Transport("127.0.0.1", tls_broker.tls_port, "untrusting", tls=untrusting, **REFUSED)


def test_alpn_is_offered_as_aws_iot_core_needs_it_on_port_443(own_broker, pki):
    # AWS IoT Core: MQTT with a client certificate on 443 needs ALPN x-amzn-mqtt-ca.
    device = pki.issue("gateway-443")
    assert TlsFiles(device.cert, device.key).alpn_for(443) == ("x-amzn-mqtt-ca",)
    assert TlsFiles(device.cert, device.key).alpn_for(8883) == ()
    assert TlsFiles(device.cert, device.key, alpn=("mqtt",)).alpn_for(443) == ("mqtt",)
    assert parse_alpn("x-amzn-mqtt-ca, mqtt") == ("x-amzn-mqtt-ca", "mqtt")
    assert parse_alpn("auto") is None
    # Given a TLS front (mutual TLS, ALPN) like IoT Core's 443, before a plain broker: port 443
    # itself needs root, so the test passes the list port 443 gets
    front = TlsTerminator(
        own_broker.port,
        ca=pki.ca,
        cert=pki.server.cert,
        key=pki.server.key,
        alpn=["x-amzn-mqtt-ca"],
    )
    tls = TlsFiles(
        device.cert, device.key, pki.ca, alpn=TlsFiles(device.cert, device.key).alpn_for(443)
    )
    client = Mqtt5Transport("127.0.0.1", front.port, "alpn-client", tls=tls, **FAST)
    try:
        got = Collector()
        client.subscribe("alpn/+", got)
        client.publish("alpn/1", b"via 443")
        assert got.wait(1) == [b"via 443"]
        # Then the client offered the protocol and presented its certificate
        assert front.negotiated[0] == ("x-amzn-mqtt-ca", "gateway-443")
    finally:
        client.close()
        front.close()


def test_missing_tls_files_are_a_clear_error(tmp_path):
    tls = TlsFiles(cert=tmp_path / "nope.pem", key=tmp_path / "nope.key")
    with pytest.raises(TransportError, match="certificate file .*nope.pem does not exist"):
        Mqtt5Transport("127.0.0.1", 8883, "x", tls=tls)
