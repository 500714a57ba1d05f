"""The plant-MQTT source against a real Mosquitto: JSON paths and timestamps, bad messages named by
station and point (rate-limited), subscriptions made again after a broker restart, and mutual TLS
with user name login."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import threading
import time

import pytest
from data_collector.readings import Binding, Reading
from data_collector.sources import make_source
from data_collector.sources.mqtt import MqttSource, compile_path, pick

from greengrass_components.common.mqtt5_transport import Mqtt5Transport
from mes_domain.collection import MqttAddress, MqttConnection
from tests.greengrass.broker import Broker, TestPki, mosquitto_binary
from tests.greengrass.data_collector.conftest import until

TOPIC = "bench/test-01/result"


def mqtt(point: str, station: str = "test-01", **kwargs) -> Binding:
    values = {"connection": "test-broker", "topic": TOPIC} | kwargs
    return Binding(station, point, MqttAddress(**values))


BINDINGS = [
    mqtt("leak_rate", path="$.leak.rate", timestamp_path="$.ts"),
    mqtt("test_pressure", path="$.pressure", timestamp_path="$.ts"),
    mqtt("first_sensor", station="test-02", topic="bench/+/values", path="$.values[0]"),
]


def test_json_paths():
    assert compile_path("$.leak.rate") == ("leak", "rate")
    assert compile_path("$.values[0]") == ("values", 0)
    assert compile_path("$.a[1].b_c-d[2]") == ("a", 1, "b_c-d", 2)
    document = {"a": [{"x": 1}, {"b_c-d": [0, 0, 7]}], "values": [3.5], "leak": {"rate": None}}
    assert pick(document, compile_path("$.a[1].b_c-d[2]")) == 7
    assert pick(document, compile_path("$.values[0]")) == 3.5
    assert pick(document, compile_path("$.leak.rate")) is None  # present, null
    for missing in ("$.values[1]", "$.leak.rate.x", "$.nope", "$.a.x", "$.values.x"):
        assert pick(document, compile_path(missing)) is not None  # the _MISSING marker
        assert pick(document, compile_path(missing)) not in (None, 0)


def source_with_sink(bindings=BINDINGS) -> tuple[MqttSource, list[Reading]]:
    source = MqttSource(MqttConnection(name="test-broker", host="127.0.0.1"), bindings)
    out: list[Reading] = []
    source._sink = out.append
    return source, out


def test_messages_map_to_readings_with_their_timestamps():
    source, out = source_with_sink()
    source.handle(
        TOPIC, json.dumps({"leak": {"rate": 0.012}, "pressure": 2.5, "ts": 1714564800250}).encode()
    )
    source.handle("bench/test-02/values", b'{"values": [42, 43]}')
    source.handle("bench/test-02/other", b'{"values": [1]}')  # matches no filter
    before = int(time.time() * 1000)
    assert out[:2] == [
        Reading("test-01", "leak_rate", 1714564800250, 0.012),
        Reading("test-01", "test_pressure", 1714564800250, 2.5),
    ]
    assert len(out) == 3 and out[2].station == "test-02" and out[2].value == 42
    assert abs(out[2].ts_ms - before) < 5000  # no timestamp_path: the arrival time


def test_bad_messages_name_station_and_point_rate_limited(caplog):
    source, out = source_with_sink()
    with caplog.at_level(logging.ERROR):
        for _ in range(5):
            source.handle(TOPIC, b"not json {")
        source.handle(TOPIC, b'{"pressure": 1.5, "ts": 1}')  # no leak.rate
        source.handle(TOPIC, b'{"leak": {"rate": [1, 2]}, "pressure": 1.0, "ts": "noon"}')
    messages = [r.getMessage() for r in caplog.records]
    json_errors = [m for m in messages if "is not JSON" in m]
    # One line per point for five bad messages, each naming connection, station and point.
    assert sorted(json_errors) == sorted(
        f"connection test-broker, station test-01, point {p}: message on {TOPIC} is not JSON: "
        + json_errors[0].split("is not JSON: ")[1]
        for p in ("leak_rate", "test_pressure")
    )
    assert source.errors.counts[("test-01", "leak_rate")] == 7
    assert any("point leak_rate: message on" in m and "has no $.leak.rate" in m for m in messages)
    assert any("point leak_rate" in m and "is a list" in m for m in messages)
    assert any("point test_pressure" in m and "$.ts is not epoch ms" in m for m in messages)
    # The good values of those messages still arrived (the bad timestamp: arrival time).
    assert [r.value for r in out] == [1.5, 1.0]
    assert out[0].ts_ms == 1 and out[1].ts_ms > 1_000_000_000_000


# -- against Mosquitto -----------------------------------------------------------------------


@pytest.fixture
def own_broker(tmp_path):
    binary = mosquitto_binary()
    if binary is None:
        pytest.fail("mosquitto is not installed: `make test` installs it")
    with Broker(binary, tmp_path) as broker:
        yield broker


def publisher(broker: Broker) -> Mqtt5Transport:
    return Mqtt5Transport("127.0.0.1", broker.port, f"test-bench-{os.getpid()}", timeout_s=5)


async def publish(transport: Mqtt5Transport, topic: str, document) -> None:
    await asyncio.to_thread(transport.publish, topic, json.dumps(document).encode())


def test_readings_flow_and_survive_a_broker_restart(own_broker, caplog):
    connection = MqttConnection(name="test-broker", host="127.0.0.1", port=own_broker.port)

    async def scenario():
        source = make_source(connection, BINDINGS)
        assert isinstance(source, MqttSource)
        source.min_reconnect_delay_ms, source.max_reconnect_delay_ms = 100, 500
        out: list[Reading] = []
        task = asyncio.create_task(source.run(out.append))
        bench = await asyncio.to_thread(publisher, own_broker)
        try:
            assert await asyncio.to_thread(source.subscribed.wait, 10)
            await publish(bench, TOPIC, {"leak": {"rate": 0.5}, "pressure": 3.0, "ts": 1000})
            await publish(bench, "bench/test-02/values", {"values": [9]})
            assert await until(lambda: len(out) == 3)
            await asyncio.to_thread(own_broker.restart, 0.5)
            assert await until(lambda: source.connections >= 2, 15)
            assert await asyncio.to_thread(source.subscribed.wait, 10)
            assert await asyncio.to_thread(bench.wait_ready, 15)
            await publish(bench, TOPIC, {"leak": {"rate": 0.7}, "pressure": 3.1, "ts": 2000})
            assert await until(lambda: len(out) == 5)
            return out
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            await asyncio.to_thread(bench.close)

    with caplog.at_level(logging.INFO):
        out = asyncio.run(scenario())
    assert [(r.station, r.point, r.ts_ms, r.value) for r in out] == [
        ("test-01", "leak_rate", 1000, 0.5),
        ("test-01", "test_pressure", 1000, 3.0),
        ("test-02", "first_sensor", out[2].ts_ms, 9),
        ("test-01", "leak_rate", 2000, 0.7),
        ("test-01", "test_pressure", 2000, 3.1),
    ]
    lost = [
        r for r in caplog.records if "test-broker" in r.getMessage() and " lost " in r.getMessage()
    ]
    assert len(lost) == 1
    assert any("connected again" in r.getMessage() for r in caplog.records)


def test_user_login_reads_the_password_file_at_connect(tmp_path, monkeypatch):
    # Mosquitto 2.0.11 here refuses every client once a password_file is configured, so the
    # credentials are checked in the CONNECT packet the client is built with.
    import data_collector.sources.mqtt as module

    packets = []
    real = module.mqtt5.ConnectPacket
    monkeypatch.setattr(
        module.mqtt5, "ConnectPacket", lambda **kw: packets.append(kw) or real(**kw)
    )
    (tmp_path / "pw").write_text("plant-secret\n")
    connection = MqttConnection(
        name="test-broker", host="127.0.0.1", username="gateway", password_file=str(tmp_path / "pw")
    )
    source = MqttSource(connection, BINDINGS[:1])
    source._client(threading.Event())
    assert packets[0]["username"] == "gateway" and packets[0]["password"] == b"plant-secret"


def test_mutual_tls(tmp_path, caplog):
    binary = mosquitto_binary()
    if binary is None:
        pytest.fail("mosquitto is not installed: `make test` installs it")
    pki = TestPki(tmp_path / "pki")
    gateway = pki.issue("gateway")
    rogue = pki.issue("rogue", self_signed=True)
    (tmp_path / "broker").mkdir()
    broker = Broker(binary, tmp_path / "broker", tls=pki)

    def connection(files) -> MqttConnection:
        return MqttConnection(
            name="test-broker", host="127.0.0.1", port=broker.tls_port,
            ca_file=str(pki.ca), certificate=str(files.cert), private_key=str(files.key),
        )  # fmt: skip

    async def scenario():
        good = MqttSource(connection(gateway), BINDINGS[:1])
        bad = MqttSource(connection(rogue), BINDINGS[:1])
        out_good: list[Reading] = []
        out_bad: list[Reading] = []
        tasks = [
            asyncio.create_task(good.run(out_good.append)),
            asyncio.create_task(bad.run(out_bad.append)),
        ]
        bench = await asyncio.to_thread(publisher, broker)
        try:
            assert await asyncio.to_thread(good.subscribed.wait, 10)
            await publish(bench, TOPIC, {"leak": {"rate": 0.25}, "ts": 5})
            assert await until(lambda: out_good)
            await asyncio.sleep(0.3)
            return out_good, out_bad, bad.connections
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await asyncio.to_thread(bench.close)

    with broker, caplog.at_level(logging.ERROR):
        out_good, out_bad, bad_connections = asyncio.run(scenario())
    assert out_good == [Reading("test-01", "leak_rate", 5, 0.25)]
    assert out_bad == [] and bad_connections == 0  # a certificate the broker's CA did not sign
    refused = [r.getMessage() for r in caplog.records if "unreachable or refused" in r.getMessage()]
    assert len(refused) == 1 and "test-broker" in refused[0]
