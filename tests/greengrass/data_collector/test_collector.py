"""The collector end to end with in-memory sources and the in-memory transport: readings in
equal readings out, states and counts derived, a broken source leaves the others running,
and a restart resumes from the spool. Plus the command line (config errors, SIGTERM)."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import subprocess
import sys
import time
from collections import Counter

from data_collector.collector import Collector, bindings_of
from data_collector.readings import (
    COUNTER_BAD,
    COUNTER_GOOD,
    STATE,
    Reading,
    Source,
    SourceError,
)

from greengrass_components.common.transport import InMemoryTransport
from mes_domain.collection import CollectorConfig
from mes_domain.contracts import PartCount, StateChange, TelemetryBatch, parse_station_message
from mes_domain.topics import MessageKind, parse_topic
from tests.conftest import PROJECT_ROOT
from tests.greengrass.broker import free_port
from tests.greengrass.data_collector.conftest import COLLECTOR_DIR

T0 = int(time.time() * 1000) - 60_000


def config(**settings) -> CollectorConfig:
    ua = {"protocol": "opcua", "connection": "ua", "node_id": "ns=2;s=x"}
    mb = {"protocol": "modbus", "connection": "mb", "address": 0}
    mq = {"protocol": "mqtt", "connection": "plant", "topic": "t", "path": "$.v"}
    return CollectorConfig.model_validate(
        {
            "site": "berlin",
            "line": "body-line-1",
            "rule_prefix": "mes-demo",
            "settings": {
                "connections": [
                    {"protocol": "opcua", "name": "ua", "endpoint": "opc.tcp://127.0.0.1:4840"},
                    {"protocol": "modbus", "name": "mb", "host": "127.0.0.1"},
                    {"protocol": "mqtt", "name": "plant", "host": "127.0.0.1"},
                ],
                "max_batch_delay_ms": 50,
                **settings,
            },
            "stations": [
                {
                    "station": "press-01",
                    "tags": [{"name": "ram_force", "unit": "kN", "source": ua}],
                    "state": {"source": ua, "codes": {"6": "RUNNING", "9": "UNPLANNED_STOP"}},
                    "counters": {"good": mb, "bad": mb, "bits": 16},
                },
                {"station": "weld-01", "tags": [{"name": "current", "source": mq}]},
            ],
        }
    )


class ScriptedSource(Source):
    """Hands the collector a script of (point, station, value) readings, then idles."""

    scripts: dict[str, list[tuple[str, str, object]]] = {}
    t0 = T0

    async def run(self, sink) -> None:
        for i, (station, point, value) in enumerate(self.scripts.get(self.name, [])):
            sink(Reading(station, point, self.t0 + i, value))
            if i % 100 == 0:
                await asyncio.sleep(0)
        await asyncio.Event().wait()


def factory(scripts, broken=(), t0=T0):
    def make(connection, bindings):
        if connection.name in broken:
            raise SourceError(
                f"connection {connection.name}: station {bindings[0].station}, point "
                f"{bindings[0].point}: cannot be read"
            )
        source = ScriptedSource(connection, bindings)
        source.scripts, source.t0 = scripts, t0
        return source

    return make


async def run_until(collector: Collector, done, timeout_s: float = 20.0) -> None:
    task = asyncio.create_task(collector.run())
    deadline = time.monotonic() + timeout_s
    try:
        while not done() and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
    finally:
        collector.stop()
        await task


def received(transport: InMemoryTransport):
    out: dict[MessageKind, list] = {kind: [] for kind in MessageKind}
    for message in transport.published:
        topic = parse_topic(message.topic).topic
        out[topic.kind].append(parse_station_message(topic, message.payload))
    return out


SCRIPT = {
    "ua": [("press-01", "ram_force", float(i)) for i in range(1500)]
    + [("press-01", STATE, 6), ("press-01", STATE, 9), ("press-01", STATE, 6)],
    "mb": [
        ("press-01", COUNTER_GOOD, 65_530),
        ("press-01", COUNTER_BAD, 3),
        ("press-01", COUNTER_GOOD, 65_535),
        ("press-01", COUNTER_GOOD, 4),  # rollover: 5 + 5 = 10 good
        ("press-01", COUNTER_BAD, 5),  # 2 bad
    ],
}


def test_readings_in_equal_readings_out_with_states_and_counts(tmp_path, caplog):
    transport = InMemoryTransport()
    collector = Collector(config(), transport, tmp_path, source_factory=factory(SCRIPT, {"plant"}))

    def done():
        return (
            collector.publisher.stats.readings >= 1500
            and collector.spool.stats()["spool_rows"] == 0
        )

    with caplog.at_level(logging.ERROR):
        asyncio.run(run_until(collector, done))
    got = received(transport)
    batches: list[TelemetryBatch] = got[MessageKind.TELEMETRY]
    values = Counter((b.station, r.tag, r.value) for b in batches for r in b.readings)
    assert values == Counter(("press-01", "ram_force", float(i)) for i in range(1500))
    assert all(r.unit == "kN" for b in batches for r in b.readings)
    states: list[StateChange] = got[MessageKind.STATE]
    assert [s.state for s in states] == ["RUNNING", "UNPLANNED_STOP", "RUNNING"]
    counts: list[PartCount] = got[MessageKind.COUNT]
    assert (sum(c.good for c in counts), sum(c.bad for c in counts)) == (10, 2)
    # The broken connection is named with its station and point, the others ran
    assert any("plant" in r.message and "weld-01" in r.message for r in caplog.records)
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["source_errors"] == 1 and metrics["published_readings"] == 1500
    assert metrics["readings_spooled"] == 1500 and metrics["dropped_readings"] == 0
    # Telemetry and derived kinds went through Basic Ingest
    assert all(m.topic.startswith("$aws/rules/mes_demo_") for m in transport.published)


def test_a_restart_resumes_from_the_spool_and_counts_once(tmp_path):
    down = InMemoryTransport()
    down.fail_publishes = True  # the link is down for the whole first run
    first = {
        "ua": [("press-01", "ram_force", float(i)) for i in range(300)],
        "mb": [("press-01", COUNTER_GOOD, 100), ("press-01", COUNTER_GOOD, 110)],
    }
    collector = Collector(config(), down, tmp_path, source_factory=factory(first))
    asyncio.run(run_until(collector, lambda: collector.counters["readings_spooled"] >= 300))
    assert down.published == []
    # The gateway restarts; the PLC counted on to 115 meanwhile
    second = {"mb": [("press-01", COUNTER_GOOD, 115)]}
    up = InMemoryTransport()
    again = Collector(config(), up, tmp_path, source_factory=factory(second, t0=T0 + 10_000))
    asyncio.run(
        run_until(
            again,
            lambda: (
                again.publisher.stats.readings >= 300
                and sum(c.good for c in received(up)[MessageKind.COUNT]) >= 15
            ),
        )
    )
    got = received(up)
    assert sorted(r.value for b in got[MessageKind.TELEMETRY] for r in b.readings) == [
        float(i) for i in range(300)
    ]
    assert [c.good for c in got[MessageKind.COUNT]] == [10, 5]  # 100 -> 110 -> 115, once
    assert again.publisher.stats.backlog_messages >= 1


class CancelSwallowingSource(ScriptedSource):
    """Misses its first cancel, as a source does when Python 3.11's ``asyncio.wait_for`` inside
    a client library swallows a cancel that races with a response, then goes on reconnecting."""

    swallowed = 0

    async def run(self, sink) -> None:
        while True:
            try:
                await asyncio.sleep(0.05)
            except asyncio.CancelledError:
                if CancelSwallowingSource.swallowed:
                    raise
                CancelSwallowingSource.swallowed += 1


def test_a_source_that_misses_its_cancel_still_lets_the_collector_stop(tmp_path):
    def make(connection, bindings):
        return CancelSwallowingSource(connection, bindings)

    collector = Collector(config(), InMemoryTransport(), tmp_path, source_factory=make)

    async def stop_soon() -> None:
        await asyncio.wait_for(run_until(collector, lambda: False, timeout_s=0.2), 5)

    asyncio.run(stop_soon())  # before the fix, the collector waited for the source forever
    assert CancelSwallowingSource.swallowed == 1


def test_bindings_name_every_point_by_connection():
    bindings = bindings_of(config())
    assert {(b.station, b.point) for b in bindings["ua"]} == {
        ("press-01", "ram_force"),
        ("press-01", STATE),
    }
    assert {b.point for b in bindings["mb"]} == {COUNTER_GOOD, COUNTER_BAD}
    assert [(b.station, b.point) for b in bindings["plant"]] == [("weld-01", "current")]


# -- the command line --------------------------------------------------------------------------


def _env():
    return {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(COLLECTOR_DIR / "src"), str(PROJECT_ROOT)]),
    }


def test_an_invalid_configuration_exits_2_naming_the_problem(tmp_path):
    raw = config().model_dump(mode="json")
    raw["stations"][0]["tags"][0]["source"]["connection"] = "nowhere"
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"collector": raw}))
    proc = subprocess.run(
        [sys.executable, "-m", "data_collector", "--config", str(path), "--mqtt-host",
         "127.0.0.1", "--spool", str(tmp_path / "spool")],
        env=_env(), capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 2
    assert "press-01 tag ram_force: connection 'nowhere'" in proc.stderr


def test_with_no_broker_it_keeps_trying_and_sigterm_stops_it_cleanly(tmp_path):
    raw = config().model_dump(mode="json")
    raw["settings"]["connections"] = []
    raw["stations"] = []
    path = tmp_path / "config.json"
    path.write_text(json.dumps(raw))
    proc = subprocess.Popen(
        [sys.executable, "-m", "data_collector", "--config", str(path), "--mqtt-host",
         "127.0.0.1", "--mqtt-port", str(free_port()), "--spool", str(tmp_path / "spool")],
        env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while not (tmp_path / "spool" / "metrics.json").exists():
            assert proc.poll() is None, proc.stdout.read()
            assert time.monotonic() < deadline
            time.sleep(0.1)
        time.sleep(1.0)
        assert proc.poll() is None  # unreachable broker: still running, not exited
        proc.send_signal(signal.SIGTERM)
        output, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, output
    assert "stopped; metrics" in output
