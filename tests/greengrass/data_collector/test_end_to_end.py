"""End to end, against real servers on loopback: a simulated line (asyncua, pymodbus and a
plant Mosquitto) -> ``python -m data_collector`` -> the cloud Mosquitto -> a subscriber.

Readings in equal readings out, at the plant's level: every value the OPC UA server and the
bench's MQTT messages carried arrives once (sets of (ts, value)); the Modbus registers' values
arrive in the order the PLC showed them; the PartCount deltas sum to the parts the machines
made; the StateChanges are the state codes the PLC showed. Through a cut link, through a
``kill -9`` in the middle of publishing, through a 16-bit rollover and PLC restarts, and over
OPC UA SignAndEncrypt.

The simulator runs in real time at ``SPEED`` times the wall clock; it stands still while the
collector starts, so the collector's first reading of each counter is the PLC's starting value
and the truth counts from there.
"""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path

import pytest

from plant_sim import OpcUaServerSecurity, SimulatorThread
from plant_sim.certificates import generate_certificates
from tests.greengrass.broker import Broker, free_port, mosquitto_binary, wait_for
from tests.greengrass.data_collector.e2e_line import (
    BENCH_TOPIC,
    BUSY,
    LINE,
    PACKML,
    SITE,
    VENDOR,
    Cloud,
    CollectorProcess,
    LinePorts,
    StallProxy,
    bench_results,
    collapse,
    expected_states,
    line_plant,
    write_config,
    written,
)

SPEED = 20.0  # simulated seconds per wall second
TICK_S = 0.25  # the simulator writes its servers this often (wall); Modbus polls every 25 ms
CODES = {"press-01": PACKML, "weld-01": VENDOR}
OPCUA_TAGS = {"press-01": ("ram_force", "die_temperature")}
MODBUS_TAGS = {"weld-01": ("weld_current", "electrode_wear")}
BENCH_TAGS = ("leak_rate", "test_pressure")


@pytest.fixture(scope="module")
def mosquitto() -> str:
    binary = mosquitto_binary()
    if binary is None:
        pytest.fail(
            "mosquitto is not installed: `make test` installs it (apt-get install mosquitto)"
        )
    return binary


@pytest.fixture(scope="module")
def cloud_broker(mosquitto, tmp_path_factory):
    with Broker(mosquitto, tmp_path_factory.mktemp("cloud-broker")) as broker:
        yield broker


@pytest.fixture(scope="module")
def plant_broker(mosquitto, tmp_path_factory):
    # Subscriptions logged: the test sees when the collector's bench subscription is in place.
    logged = ["error", "warning", "notice", "information", "subscribe"]
    extra = [f"log_type {kind}" for kind in logged]
    with Broker(mosquitto, tmp_path_factory.mktemp("plant-broker"), extra=extra) as broker:
        yield broker


def bench_subscriptions(broker: Broker) -> int:
    return sum(
        1 for line in broker.log.read_text(errors="replace").splitlines() if BENCH_TOPIC in line
    )


class LineRun:
    """One run: simulator, collector process behind a proxy, cloud subscriber."""

    def __init__(self, tmp: Path, plant, ports: LinePorts, cloud_broker, plant_broker, **sim):
        self.tmp, self.plant, self.ports = tmp, plant, ports
        self.plant_broker = plant_broker
        self.stations = [s.id for s in plant.sites[0].lines[0].stations]
        self.proxy = StallProxy(cloud_broker.port)
        self.cloud = Cloud(cloud_broker.port)
        self.sim = SimulatorThread(
            plant,
            seed=7,
            profiles=BUSY,
            record_writes=True,
            start_ms=int(time.time() * 1000) - 3_600_000,  # source timestamps stay in the past
            **sim,
        )
        self.spool = tmp / "spool"
        self.collector = CollectorProcess(
            write_config(plant, tmp / "collector.json"), self.proxy.port, self.spool, tmp / "log"
        )
        self.truth: dict[str, dict] = {}
        self.writes: list = []
        self.published: list = []
        self.metrics: dict = {}

    def start(self) -> LineRun:
        self.sim.start()
        self.start_collector()
        return self

    def start_collector(self, sessions_before: set[str] = frozenset()) -> None:
        subscribed = bench_subscriptions(self.plant_broker)
        self.collector.start()
        self.wait_reading(subscribed, sessions_before)

    def wait_reading(self, subscribed: int, sessions_before: set[str]) -> None:
        """Every tag of OPC UA and Modbus arrived from this collector process, and its bench
        subscription is in place."""

        def ready() -> bool:
            for station, tags in {**OPCUA_TAGS, **MODBUS_TAGS}.items():
                if station not in self.stations:
                    continue
                if not self.cloud.sessions(station) - sessions_before:
                    return False
                if any(not self.cloud.readings(station, tag) for tag in tags):
                    return False
            if "test-01" in self.stations:
                return bench_subscriptions(self.plant_broker) > subscribed
            return True

        assert wait_for(ready, 30, 0.05), self.failure("the collector did not start reading")

    def failure(self, what: str) -> str:
        lines = [
            line
            for line in self.collector.log_text().splitlines()
            if " INFO asyncua." not in line  # asyncua logs each notification at INFO
        ]
        log = "\n".join(lines)[-6000:]
        return f"{what}; cloud conflicts {self.cloud.conflicting[:5]}\n--- collector log ---\n{log}"

    def capture(self) -> None:
        self.truth = {s: self.sim.truth(SITE, LINE, s) for s in self.stations if s != "test-01"}
        self.writes = self.sim.run(lambda: list(self.sim.simulator.writes))
        self.published = self.sim.mqtt_published()

    def caught_up(self) -> bool:
        for station, truth in self.truth.items():
            if self.cloud.counted(station) != (truth["good"], truth["bad"]):
                return False
            for tag in OPCUA_TAGS.get(station, ()) + MODBUS_TAGS.get(station, ()):
                readings = self.cloud.readings(station, tag)
                if not readings or readings[-1][1] != truth["values"][tag]:
                    return False
        bench = bench_results(self.published)
        return all(
            set(self.cloud.readings("test-01", tag)) >= bench[tag]
            for tag in BENCH_TAGS
            if "test-01" in self.stations
        )

    def pause(self) -> None:
        """The machines stand still, and their PLCs show all they did (stopping the real-time
        task may cut a write short)."""
        self.sim.stop_realtime()
        self.sim.sync()

    def finish(self) -> None:
        """The machines stop; everything read reaches the cloud; the collector stops cleanly."""
        self.pause()
        self.capture()
        assert wait_for(self.caught_up, 30, 0.1), self.failure(
            f"the cloud did not catch up: counted "
            f"{ {s: self.cloud.counted(s) for s in self.truth} }, truth "
            f"{ {s: (t['good'], t['bad']) for s, t in self.truth.items()} }"
        )
        self.sim.stop()  # no more readings from here on
        stable = [self.cloud.reading_count(), time.monotonic()]

        def settled() -> bool:
            count = self.cloud.reading_count()
            if count != stable[0]:
                stable[:] = [count, time.monotonic()]
            return time.monotonic() - stable[1] > 1.0

        wait_for(settled, 15, 0.1)
        code = self.collector.stop()
        assert code == 0, self.failure(f"the collector did not stop cleanly (exit {code})")
        self.metrics = json.loads((self.spool / "metrics.json").read_text())

    def spooled_rows(self) -> int:
        with sqlite3.connect(self.spool / "spool.db") as db:
            return db.execute("SELECT COUNT(*) FROM rows").fetchone()[0]

    def close(self) -> None:
        self.collector.stop(5)
        self.sim.stop()
        self.cloud.close()
        self.proxy.close()


@pytest.fixture
def run_line(tmp_path, cloud_broker, plant_broker):
    runs: list[LineRun] = []

    def make(stations=("press-01", "weld-01", "test-01"), connection=None, **sim) -> LineRun:
        ports = LinePorts(free_port(), free_port(), plant_broker.port)
        plant = line_plant(ports, stations=stations, opcua_security=connection)
        run = LineRun(tmp_path, plant, ports, cloud_broker, plant_broker, **sim)
        runs.append(run)
        return run

    yield make
    for run in runs:
        run.close()


def check_readings_in_equal_out(run: LineRun) -> None:
    cloud = run.cloud
    assert not cloud.errors, cloud.errors[:5]
    assert not cloud.conflicting, cloud.conflicting[:5]
    for station, truth in run.truth.items():
        # Every part counted once: the deltas sum to what the machine made.
        assert cloud.counted(station) == (truth["good"], truth["bad"]), station
        assert truth["good"] > 0
        states = expected_states(run.writes, station, CODES[station])
        assert cloud.state_sequence(station) == states, station
        assert len(states) > 1, f"{station} never changed state: a weak run"
    for station, tags in OPCUA_TAGS.items():
        for tag in tags if station in run.truth else ():
            # Subscriptions deliver every change with the server's source timestamp.
            assert set(cloud.readings(station, tag)) == set(written(run.writes, station, tag)), tag
    for station, tags in MODBUS_TAGS.items():
        for tag in tags if station in run.truth else ():
            # Polls see each value the registers held, in order (each many times).
            received = collapse([value for _ts, value in cloud.readings(station, tag)])
            shown = collapse([value for _ms, value in written(run.writes, station, tag)])
            assert received == shown, tag
            assert len(shown) > 3
    if "test-01" in run.stations:
        bench = bench_results(run.published)
        for tag in BENCH_TAGS:
            assert set(cloud.readings("test-01", tag)) == bench[tag], tag
            assert len(bench[tag]) > 3
    assert run.spooled_rows() == 0  # nothing left behind


def check_one_lifetime(run: LineRun) -> None:
    """One collector process from start to stop: what it spooled is what the cloud has."""
    metrics = run.metrics
    assert metrics["readings_spooled"] == run.cloud.reading_count() > 0, metrics
    assert metrics["published_readings"] == metrics["readings_spooled"], metrics
    assert metrics["dropped_readings"] == metrics["readings_dropped_buffer_full"] == 0, metrics


def test_a_cut_link_loses_nothing(run_line):
    run = run_line().start()
    run.sim.start_realtime(SPEED, tick_s=TICK_S)
    time.sleep(1.5)
    run.proxy.cut()
    cut_at = len(run.cloud.messages)
    time.sleep(3.0)
    assert len(run.cloud.messages) == cut_at  # the link really is down
    run.proxy.restore()
    assert wait_for(lambda: len(run.cloud.messages) > cut_at, 20), run.failure("no reconnect")
    time.sleep(1.0)
    run.finish()
    check_readings_in_equal_out(run)
    check_one_lifetime(run)
    # The collector saw the outage: publishes failed, or what waited went out as backlog (when
    # the outage's rows all fit the batches being retried, there is no backlog left to drain).
    assert run.metrics["publish_failures"] + run.metrics["backlog_messages"] > 0
    assert "link" in run.collector.log_text()  # the loss was logged


def test_kill_9_in_the_middle_of_publishing_loses_nothing_and_counts_once(run_line):
    run = run_line().start()
    run.sim.start_realtime(SPEED, tick_s=TICK_S)
    time.sleep(1.5)
    # The broker still gets what the collector sends, but no PUBACK comes back: the publish in
    # flight is delivered and stays unacknowledged in the spool.
    delivered = len(run.cloud.messages)
    run.proxy.stall()
    assert wait_for(lambda: len(run.cloud.messages) > delivered, 10)
    time.sleep(1.0)
    run.pause()  # the machines pause while no collector reads them
    time.sleep(0.5)  # what was read is flushed into the spool (every 50 ms)
    sessions = {s: run.cloud.sessions(s) for s in run.stations}
    run.collector.kill()
    assert not run.collector.alive()
    run.proxy.cut()  # the half-dead connection goes; the restarted collector connects anew
    run.proxy.restore()
    run.proxy.release()
    before = set().union(*sessions.values())
    run.start_collector(before)
    # The message in flight at the kill came again under its id, and the cloud dropped it.
    assert run.cloud.duplicate_batches + run.cloud.duplicate_events > 0
    run.sim.start_realtime(SPEED, tick_s=TICK_S)
    time.sleep(1.5)
    run.finish()
    check_readings_in_equal_out(run)
    assert run.metrics["backlog_messages"] > 0


def test_counter_rollover_and_plc_restarts_give_the_right_deltas(run_line):
    run = run_line(stations=("press-01", "weld-01"))
    run.sim.start()
    weld = run.sim.simulator.machine(SITE, LINE, "weld-01")
    run.sim.run(weld.set_plc_counters, 65_520, 65_533)  # 16-bit, about to roll over
    run.sim.sync()
    run.start_collector()
    run.sim.start_realtime(SPEED, tick_s=TICK_S)

    def rolled_over() -> bool:
        values = run.sim.truth(SITE, LINE, "weld-01")["values"]
        return values["counter.good"] < 1000 and values["counter.bad"] < 1000

    assert wait_for(rolled_over, 20)
    time.sleep(0.5)
    # The PLCs restart after the collector read their last counts: parts made between a read and
    # a restart are gone with the PLC's memory, for any reader (data_collector/derive.py).
    run.pause()
    time.sleep(0.3)
    run.sim.restart_plc(SITE, LINE, "weld-01")
    run.sim.restart_plc(SITE, LINE, "press-01")
    run.sim.start_realtime(SPEED, tick_s=TICK_S)
    time.sleep(1.5)
    run.finish()
    weld_good = [value for _ms, value in written(run.writes, "weld-01", "counter.good")]
    assert 65_520 in weld_good and 0 in weld_good and max(weld_good) > 65_530
    check_readings_in_equal_out(run)
    check_one_lifetime(run)
    for station in ("weld-01", "press-01"):
        codes = [e.code for e in run.cloud.station(station).events]
        assert "COUNTER_RESET" in codes, (station, codes)


@pytest.fixture(scope="module")
def certificates(tmp_path_factory):
    return generate_certificates(tmp_path_factory.mktemp("opcua-pki"))


def test_opcua_sign_and_encrypt_end_to_end(run_line, certificates):
    certs = certificates
    security = {
        "security_policy": "Basic256Sha256",
        "security_mode": "SignAndEncrypt",
        "certificate": str(certs.client.certificate),
        "private_key": str(certs.client.private_key),
        "server_certificate": str(certs.server.certificate),
    }
    server = OpcUaServerSecurity(
        certificate=certs.server.certificate,
        private_key=certs.server.private_key,
        trusted_dir=certs.trusted_dir,
        application_uri=certs.server_uri,
    )
    # The server offers SignAndEncrypt only (tests/plant_sim/test_servers.py): data means the
    # collector's session is encrypted with its certificate.
    run = run_line(
        stations=("press-01",),
        connection=security,
        opcua_security={"press-plc": server},
    )
    run.start()
    run.sim.start_realtime(SPEED, tick_s=TICK_S)
    time.sleep(2.5)
    run.finish()
    check_readings_in_equal_out(run)
    check_one_lifetime(run)


def test_good_and_bad_parts_read_in_one_poll_are_distinct_count_records(run_line):
    """Timestream rejects a second record with the same dimensions, measure name and time but
    other values (https://docs.aws.amazon.com/timestream/latest/APIReference/API_RejectedRecord.html),
    and ``event_record`` keys a PartCount by station, kind and ``ts``."""
    run = run_line(stations=("weld-01",)).start()
    for _ in range(100):  # deterministic steps until one makes good and bad parts
        before = run.sim.truth(SITE, LINE, "weld-01")
        run.sim.advance(5.0)
        after = run.sim.truth(SITE, LINE, "weld-01")
        if after["good"] > before["good"] and after["bad"] > before["bad"]:
            break
    else:
        pytest.fail("no step made both a good and a bad part")
    truth = (after["good"], after["bad"])
    assert wait_for(lambda: run.cloud.counted("weld-01") == truth, 15), run.failure("counts")
    assert not run.cloud.collisions, run.cloud.collisions


def test_a_stop_while_the_opcua_source_closes_a_dead_link_ends_the_source():
    """Found end to end: SIGTERM while the OPC UA server was gone left the collector running
    until SIGKILL, because the source's close swallowed the cancellation. Here the close of a
    refused connection is slow, and the cancel lands in it."""
    import asyncio

    from asyncua import Client
    from data_collector.collector import bindings_of
    from data_collector.sources import make_source

    from mes_domain.collection import CollectorConfig, collector_configuration

    plant = line_plant(LinePorts(free_port(), free_port(), free_port()), stations=("press-01",))
    config = CollectorConfig.model_validate(collector_configuration(plant, SITE, LINE))
    source = make_source(config.settings.connection("press-plc"), bindings_of(config)["press-plc"])
    closing = []

    async def slow_disconnect(self) -> None:
        closing.append(time.monotonic())
        await asyncio.sleep(1.0)

    async def scenario() -> bool:
        task = asyncio.create_task(source.run(lambda _reading: None))
        while not closing:  # the connection was refused; the source is closing the client
            await asyncio.sleep(0.01)
        task.cancel()
        done, _ = await asyncio.wait({task}, timeout=5)
        return bool(done) and task.cancelled()

    # A loop of its own, closed without waiting for a source that would not end (a failure
    # here is then a failed assertion, not a hung test).
    loop = asyncio.new_event_loop()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Client, "disconnect", slow_disconnect)
        try:
            ended = loop.run_until_complete(scenario())
        finally:
            loop.close()
    assert ended, "the OPC UA source went on after its task was cancelled"
    assert len(closing) == 1  # no reconnect after the cancel
