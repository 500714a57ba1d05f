#!/usr/bin/env python3
"""DataCollector edge component: readings/s through source, spool and broker on one core,
billed IoT Core messages per 1,000 readings, and the backlog drain after a 1-hour outage, in
one run against the simulator.

1. **Sustained throughput.** plant_sim serves ``--stations`` x ``--tags`` uint16 holding
   registers over Modbus TCP; ``python -m data_collector`` (pinned to one CPU with
   ``sched_setaffinity``) polls them every 10 ms, spools every reading and publishes
   TelemetryBatches to a private Mosquitto, with the publish budget lifted
   (``--publishes-per-s``/``--publish-bytes-per-s``) to measure the collector, not the quota.
   Readings/s is what a subscriber receives (unique batch ids) over ``--seconds`` after a
   warm-up; the collector's CPU time and peak RSS come from ``/proc/<pid>``. Baseline: the same
   readings as one QoS 1 publish each (PUBACK awaited, as the collector's publisher does).
   On AWS IoT Core a connection takes at most 512 KB/s
   (https://docs.aws.amazon.com/general/latest/gr/iot-core.html#message-broker-limits): the
   readings/s that quota allows at the measured bytes per reading is printed beside.
2. **Billed messages.** IoT Core meters messaging in 5 KB increments: a PUBLISH is metered on
   the size of its payload and topic (https://aws.amazon.com/iot-core/pricing/ and
   https://aws.amazon.com/iot-core/pricing/additional-details/). Messages of phase 1, counted
   as ceil((topic + payload bytes) / 5 KB), per 1,000 readings; baseline one message per
   reading.
3. **Backlog drain.** An hour (``--outage-s``) of the demo line berlin/body-line-1's readings
   at its configured rates (Modbus points every poll, OPC UA points on change at their sampling
   interval and deadband), taken from the simulator's machines and spooled by the collector's
   own derive-and-spool path while no broker is reachable; then the collector starts on that
   spool with the broker up and the configured IoT Core budget, and the time until the last
   backlog reading arrives gives readings/s, against the line's live rate.

The last line: ``collector: <N> readings/s, <M> messages per 1000 readings, lost <L> of <K>``
(K: readings the collector spooled in phases 1 and 3, plus the backlog's state, count and event
messages, which drain first, one message each; L: those that never reached the broker).

    .venv/bin/python benchmarks/collector.py [--seconds 8] [--stations 8] [--tags 125]
        [--outage-s 3600] [--quick]

``--quick``: a 2-second window, 4 x 125 tags, a 5-minute outage (a smoke run in seconds).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sqlite3
import sys
import tempfile
import threading
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "greengrass_components" / "data_collector" / "src"))

from data_collector.collector import Collector  # noqa: E402
from data_collector.readings import Reading  # noqa: E402

from benchmarks.figures import figure  # noqa: E402
from greengrass_components.common.mqtt5_transport import Mqtt5Transport  # noqa: E402
from greengrass_components.common.transport import Transport, TransportError  # noqa: E402
from mes_domain.collection import (  # noqa: E402
    IOT_CORE_BYTES_PER_S,
    CollectorConfig,
    DeadbandType,
    ModbusAddress,
    OpcUaAddress,
    collector_configuration,
)
from mes_domain.plant import Plant  # noqa: E402
from plant_sim import PlantSimulator, SimulatorThread  # noqa: E402
from tests.conftest import DEMO_PLANT  # noqa: E402
from tests.greengrass.broker import Broker, free_port, mosquitto_binary, wait_for  # noqa: E402
from tests.greengrass.data_collector.e2e_line import CollectorProcess  # noqa: E402

# IoT Core meters a message in 5 KB units of payload plus topic (pricing page, above).
METER_BYTES = 5 * 1024
SITE, LINE = "bench-site", "bench-line"
DEMO_SITE, DEMO_LINE = "berlin", "body-line-1"
POLL_MS = 10
UNLIMITED = ("--publishes-per-s", "100000", "--publish-bytes-per-s", "1000000000")


def billed(topic: str, payload: bytes) -> int:
    return max(1, math.ceil((len(topic.encode()) + len(payload)) / METER_BYTES))


class Counter:
    """The cloud side: readings of unique batches, billed units of unique messages."""

    def __init__(self, port: int) -> None:
        self.lock = threading.Lock()
        self.batches: set[str] = set()
        self.readings = 0
        self.messages = 0
        self.billed = 0
        self.bytes = 0
        self.events: set[tuple[str, bytes]] = set()
        self.transport = Mqtt5Transport("127.0.0.1", port, f"bench-cloud-{time.monotonic_ns()}")
        for topic in ("$aws/rules/#", "mes/#"):
            self.transport.subscribe(topic, self._on)
        if not self.transport.wait_ready(10):
            raise RuntimeError("no broker for the benchmark's subscriber")

    def _on(self, topic: str, payload: bytes) -> None:
        if not topic.endswith("/telemetry"):
            with self.lock:
                self.events.add((topic, payload))  # state, count, event: one message each
            return
        document = json.loads(payload)
        with self.lock:
            if document["batch_id"] in self.batches:
                return
            self.batches.add(document["batch_id"])
            self.readings += len(document["readings"])
            self.messages += 1
            self.billed += billed(topic, payload)
            self.bytes += len(topic.encode()) + len(payload)

    def snapshot(self) -> tuple[int, int, int, int]:
        with self.lock:
            return self.readings, self.messages, self.billed, self.bytes

    def settle(self, quiet_s: float = 1.5, timeout_s: float = 60) -> int:
        """Wait until nothing arrived for ``quiet_s``; the readings received."""
        last = [self.snapshot()[0], time.monotonic()]

        def quiet() -> bool:
            now = self.snapshot()[0]
            if now != last[0]:
                last[:] = [now, time.monotonic()]
            return time.monotonic() - last[1] >= quiet_s

        wait_for(quiet, timeout_s, 0.1)
        return self.snapshot()[0]

    def close(self) -> None:
        self.transport.close()


def demo_plant() -> Plant:
    return Plant.model_validate(yaml.safe_load(DEMO_PLANT.read_text()))


def bench_plant(port: int, stations: int, tags: int) -> Plant:
    document = yaml.safe_load(DEMO_PLANT.read_text())
    document["sites"] = [
        {
            "id": SITE,
            "timezone": "UTC",
            "shift_calendar": document["sites"][0]["shift_calendar"],
            "lines": [
                {
                    "id": LINE,
                    "collection": {
                        "connections": [
                            {
                                "name": "plc",
                                "protocol": "modbus",
                                "host": "127.0.0.1",
                                "port": port,
                                "poll_interval_ms": POLL_MS,
                            }
                        ]
                    },
                    "stations": [
                        {
                            "id": f"cell-{i:02d}",
                            "kind": "assembly",
                            "ideal_cycle_time_s": 5.0,
                            "tags": [
                                {
                                    "name": f"t{j:03d}",
                                    "unit": "pct",
                                    "source": {
                                        "protocol": "modbus",
                                        "connection": "plc",
                                        "address": i * tags + j,
                                    },
                                }
                                for j in range(tags)
                            ],
                        }
                        for i in range(stations)
                    ],
                }
            ],
        }
    ]
    return Plant.model_validate(document)


# ---- the collector's process --------------------------------------------------------------


def proc_cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def proc_peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM")


def metrics(spool: Path) -> dict:
    return json.loads((spool / "metrics.json").read_text())


def spool_rows(spool: Path, where: str = "1") -> int:
    with sqlite3.connect(spool / "spool.db") as db:
        return db.execute(f"SELECT COUNT(*) FROM rows WHERE {where}").fetchone()[0]


def throughput(work: Path, broker: Broker, args, cpu: int) -> dict:
    """Phase 1: readings/s through the pinned collector, its CPU and peak RSS."""
    port = free_port()
    plant = bench_plant(port, args.stations, args.tags)
    config = work / "bench.json"
    config.write_text(json.dumps(collector_configuration(plant, SITE, LINE)))
    spool = work / "spool-1"
    collector = CollectorProcess(config, broker.port, spool, work / "collector-1.log", UNLIMITED)
    counter = Counter(broker.port)
    simulator = SimulatorThread(plant, seed=1, mqtt=False).start()
    try:
        simulator.start_realtime(1.0, tick_s=0.1)  # the values move as a machine's would
        collector.start(preexec_fn=lambda: os.sched_setaffinity(0, {cpu}))
        if not wait_for(lambda: counter.snapshot()[0] > 0, 60):
            raise RuntimeError(f"no readings arrived:\n{collector.log_text()[-3000:]}")
        time.sleep(args.warmup)
        readings0, _m, _b, _by = counter.snapshot()
        cpu0, t0 = proc_cpu_s(collector.pid), time.perf_counter()
        time.sleep(args.seconds)
        readings1, _m, _b, _by = counter.snapshot()
        cpu1, t1 = proc_cpu_s(collector.pid), time.perf_counter()
        rss = proc_peak_rss_mb(collector.pid)
        simulator.stop()  # no more readings: what was read drains, then the count is final
        received = counter.settle()
        code = collector.stop()
    finally:
        collector.stop()
        simulator.stop()
        counter.close()
    if code != 0:
        raise RuntimeError(f"collector exit {code}:\n{collector.log_text()[-3000:]}")
    final = metrics(spool)
    readings, messages, billed_units, size = counter.snapshot()
    return {
        "rate": (readings1 - readings0) / (t1 - t0),
        "cpu": (cpu1 - cpu0) / (t1 - t0),
        "rss_mb": rss,
        "spooled": final["readings_spooled"],
        "received": received,
        "left": spool_rows(spool),
        "messages": messages,
        "billed": billed_units,
        "bytes_per_reading": size / max(1, readings),
        "topic": f"mes/v1/{SITE}/{LINE}/cell-00/telemetry",
    }


def one_message_per_reading(broker: Broker, count: int) -> tuple[float, float]:
    """The baseline: each reading its own QoS 1 publish (PUBACK awaited); (readings/s, billed
    messages per 1,000 readings)."""
    transport = Mqtt5Transport("127.0.0.1", broker.port, f"bench-baseline-{time.monotonic_ns()}")
    topic = f"mes/v1/{SITE}/{LINE}/cell-00/telemetry"
    units = 0
    try:
        started = time.perf_counter()
        for i in range(count):
            reading = {"ts": 1_700_000_000_000 + i, "tag": "t000", "value": i % 65536}
            reading |= {"unit": "pct", "quality": "GOOD"}
            document = {"v": 1, "site": SITE, "line": LINE, "station": "cell-00"}
            document |= {"batch_id": f"baseline-{i}", "readings": [reading]}
            payload = json.dumps(document, separators=(",", ":")).encode()
            transport.publish(topic, payload)
            units += billed(topic, payload)
        elapsed = time.perf_counter() - started
    finally:
        transport.close()
    return count / elapsed, units * 1000 / count


# ---- the backlog of an outage ---------------------------------------------------------------


class Unreachable(Transport):
    """The broker during the outage: every publish fails."""

    def publish(self, topic: str, payload: bytes) -> None:
        raise TransportError("the broker is unreachable (outage)")

    def subscribe(self, topic, callback) -> None:  # pragma: no cover - not used
        raise TransportError("unreachable")

    def close(self) -> None:
        pass


def demo_readings(outage_s: float, start_ms: int):
    """The demo line's readings over ``outage_s`` at its configured rates, from the
    simulator's machines (no servers): Modbus points at every poll, OPC UA points when their
    value moved past the deadband at their sampling interval."""
    plant = demo_plant()
    simulator = PlantSimulator(plant, seed=1, lines=[(DEMO_SITE, DEMO_LINE)], start_ms=start_ms)
    points = []  # (period_s, station, point, address)
    for (_site, _line, station), machine in simulator.machines.items():
        line = simulator.lines[0][1]
        for point, address in machine.addresses.items():
            if isinstance(address, ModbusAddress):
                period = line.collection.connection(address.connection).poll_interval_ms / 1000
            elif isinstance(address, OpcUaAddress):
                period = max(address.sampling_interval_ms, 50) / 1000
            else:
                continue
            points.append((period, station, point, address, machine))
    step = min(p[0] for p in points)
    last: dict[tuple[str, str], object] = {}
    t = 0.0
    while t < outage_s:
        t = round(t + step, 6)
        simulator.advance(step)
        ts = simulator.now_ms
        for period, station, point, address, machine in points:
            if round(t / period, 6) % 1:
                continue
            value = machine.value(point)
            if isinstance(address, OpcUaAddress):
                before = last.get((station, point))
                if before == value:
                    continue
                band = address.deadband if address.deadband_type is DeadbandType.ABSOLUTE else 0
                if (
                    band
                    and before is not None
                    and isinstance(value, float)
                    and abs(value - before) <= band
                ):
                    continue
                last[(station, point)] = value
            yield Reading(station, point, ts, value)


def fill_backlog(spool: Path, config: CollectorConfig, outage_s: float) -> tuple[int, float]:
    """Spool ``outage_s`` of the demo line's readings through the collector's own path while
    the broker is unreachable; (telemetry readings spooled, the line's live readings/s)."""
    collector = Collector(config, Unreachable(), spool)
    start_ms = int(time.time() * 1000) - int(outage_s * 1000) - 60_000
    batch = 0
    for reading in demo_readings(outage_s, start_ms):
        collector.sink(reading)
        batch += 1
        if batch >= 5000:
            collector.flush()
            batch = 0
    collector.flush()
    collector.write_metrics()
    spooled = collector.counters["readings_spooled"]
    collector.spool.close()
    return spooled, spooled / outage_s


def drain(work: Path, broker: Broker, outage_s: float, cpu: int) -> dict:
    plant = demo_plant()
    document = collector_configuration(plant, DEMO_SITE, DEMO_LINE)
    config = CollectorConfig.model_validate(document)
    spool = work / "spool-3"
    spooled, live_rate = fill_backlog(spool, config, outage_s)
    path = work / "demo.json"
    path.write_text(json.dumps(document))
    counter = Counter(broker.port)
    # The demo line's machines are not running: its sources find nothing and retry; the
    # collector only drains, within the configured IoT Core budget.
    collector = CollectorProcess(path, broker.port, spool, work / "collector-3.log")
    try:
        events = spool_rows(spool, "kind != 'telemetry'")

        def drained() -> bool:
            with counter.lock:
                return counter.readings >= spooled and len(counter.events) >= events

        started = time.perf_counter()
        collector.start(preexec_fn=lambda: os.sched_setaffinity(0, {cpu}))
        wait_for(drained, 900, 0.01)
        done = time.perf_counter()
        received = counter.settle(1.0)
        code = collector.stop()
    finally:
        collector.stop()
        counter.close()
    if code != 0:
        raise RuntimeError(f"collector exit {code}:\n{collector.log_text()[-3000:]}")
    return {
        "spooled": spooled,
        "received": received,
        "rate": received / (done - started),
        "elapsed": done - started,
        "events": events,
        "events_received": len(counter.events),
        "live_rate": live_rate,
        "left": spool_rows(spool),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=8.0, help="measured window (phase 1)")
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--stations", type=int, default=8)
    parser.add_argument("--tags", type=int, default=125, help="Modbus registers per station")
    parser.add_argument("--outage-s", type=float, default=3600.0)
    parser.add_argument("--baseline", type=int, default=3000, help="one-by-one publishes")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    if args.quick:
        args.seconds, args.warmup, args.stations = 2.0, 1.0, 4
        args.outage_s, args.baseline = 300.0, 500
    binary = mosquitto_binary()
    if binary is None:
        print("error: mosquitto is not installed (apt-get install mosquitto)", file=sys.stderr)
        return 2
    cpus = sorted(os.sched_getaffinity(0))
    cpu = cpus[-1]  # the collector's core; everything else on the others, if any
    if len(cpus) > 1:
        os.sched_setaffinity(0, set(cpus[:-1]))
    with tempfile.TemporaryDirectory(prefix="collector-bench-") as tmp:
        work = Path(tmp)
        (work / "broker").mkdir()
        with Broker(binary, work / "broker") as broker:
            print(
                f"phase 1: {args.stations} x {args.tags} Modbus registers polled every {POLL_MS} "
                f"ms, collector pinned to CPU {cpu} ...",
                flush=True,
            )
            one = throughput(work, broker, args, cpu)
            base_rate, base_billed = one_message_per_reading(broker, args.baseline)
            print(f"phase 3: {args.outage_s:g} s outage of {DEMO_SITE}/{DEMO_LINE} ...", flush=True)
            three = drain(work, broker, args.outage_s, cpu)
    per_1000 = one["billed"] * 1000 / one["received"]
    quota_rate = IOT_CORE_BYTES_PER_S / one["bytes_per_reading"]
    print(
        f"collector: {one['rate']:,.0f} readings/s sustained on one core, "
        f"{one['cpu'] * 100:.0f} % of the core, peak RSS {one['rss_mb']:.0f} MB "
        f"(goal: 20,000 readings/s, 150 MB)"
    )
    print(
        f"  {one['messages']} messages of {one['bytes_per_reading']:.1f} bytes per reading: "
        f"IoT Core's 512 KB/s per connection would carry {quota_rate:,.0f} readings/s"
    )
    print(f"  baseline, one QoS 1 publish per reading: {base_rate:,.0f} readings/s")
    print(
        f"backlog: {three['spooled']:,} readings ({args.outage_s:g} s at "
        f"{three['live_rate']:.1f} readings/s) and {three['events']} state, count and event "
        f"messages drained in {three['elapsed']:.1f} s from the collector's start = "
        f"{three['rate']:,.0f} readings/s within the configured IoT Core budget"
    )
    figure(
        "sustained readings/s, Modbus source -> spool -> broker, collector on one core",
        one["rate"],
        "readings/s",
        "one QoS 1 publish per reading",
        base_rate,
    )
    figure(
        "billed IoT Core messages (5 KB units) per 1,000 readings",
        per_1000,
        "messages",
        "one message per reading",
        base_billed,
    )
    figure(
        f"backlog drain after a {args.outage_s:g} s outage of {DEMO_LINE}",
        three["rate"],
        "readings/s",
        "the line's live rate",
        three["live_rate"],
    )
    total = one["spooled"] + three["spooled"] + three["events"]
    lost = max(0, one["spooled"] - one["received"]) + max(0, three["spooled"] - three["received"])
    lost += max(0, three["events"] - three["events_received"])
    print(
        f"collector: {one['rate']:.0f} readings/s, {per_1000:.1f} messages per 1000 readings, "
        f"lost {lost} of {total}",
        flush=True,
    )
    return 0 if lost == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
