"""The transport interface: in-memory, MQTT 5 against a real Mosquitto, IPC against a fake."""

from __future__ import annotations

import threading
from types import SimpleNamespace

import pytest

from greengrass_components.common.ipc_transport import IpcTransport
from greengrass_components.common.mqtt5_transport import Mqtt5Transport
from greengrass_components.common.transport import (
    InMemoryTransport,
    TransportError,
    topic_matches,
)


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
        Mqtt5Transport("127.0.0.1", port, "nobody", timeout_s=0.5)


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
