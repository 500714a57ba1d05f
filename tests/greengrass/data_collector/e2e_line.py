"""A simulated line, the DataCollector as a process, and the "cloud" side, for the end-to-end
tests and benchmarks/collector.py.

* ``line_plant``: one line whose stations are read over OPC UA (press-01), Modbus TCP (weld-01,
  16-bit counters) and a plant MQTT broker (test-01), on the ports given.
* ``CollectorProcess``: ``python -m data_collector`` with the component's ``src`` and the
  repository on ``PYTHONPATH``, as the artifact runs it; ``kill`` is SIGKILL.
* ``Cloud``: a subscriber on the cloud broker that keeps every message and dedupes
  re-publishes: telemetry by ``batch_id``; ``StateChange`` and ``PartCount`` carry no id, so
  by their bytes (a re-publish sends the spooled body again). Two *different* events of one
  station at one ``ts`` are a collision: the cloud's Timestream record key is station, kind
  and time, and a second record there with other values is rejected.
* ``expected_*``: what the simulator's PLCs showed (``record_writes``) and its bench published,
  in the form the collector's messages carry it.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from greengrass_components.common.mqtt5_transport import Mqtt5Transport
from mes_domain.collection import collector_configuration
from mes_domain.contracts import (
    MachineEvent,
    PartCount,
    StateChange,
    TelemetryBatch,
    parse_station_message,
)
from mes_domain.plant import Plant
from mes_domain.topics import MessageKind, parse_topic
from plant_sim import MachineProfile
from tests.conftest import DEMO_PLANT, PROJECT_ROOT
from tests.greengrass.tcp_proxy import TcpProxy

SITE, LINE = "plant-site", "e2e-line"
COLLECTOR_SRC = PROJECT_ROOT / "greengrass_components" / "data_collector" / "src"
PACKML = {"6": "RUNNING", "5": "IDLE", "11": "SETUP", "9": "UNPLANNED_STOP", "2": "PLANNED_STOP"}
VENDOR = {"1": "RUNNING", "2": "IDLE", "3": "SETUP", "4": "UNPLANNED_STOP", "5": "PLANNED_STOP"}
BENCH_TOPIC = "bench/test-01/result"

# Machines that change state often enough for a few simulated minutes to show every kind of
# transition: failures, starvation and changeovers.
BUSY = MachineProfile(
    mtbf_s=60.0,
    mttr_s=10.0,
    cycle_jitter=0.1,
    scrap_rate=0.1,
    idle_probability=0.05,
    mean_idle_s=8.0,
    setup_every_parts=40,
    setup_s=15.0,
)


@dataclass(frozen=True)
class LinePorts:
    opcua: int
    modbus: int
    plant_mqtt: int


@functools.cache
def _demo_document() -> dict:
    return yaml.safe_load(DEMO_PLANT.read_text())


def _ua(*path: str) -> dict:
    return {
        "protocol": "opcua",
        "connection": "press-plc",
        "browse_path": [f"2:{p}" for p in path],
        "sampling_interval_ms": 0,
    }


def _mb(address: int, **fields) -> dict:
    return {"protocol": "modbus", "connection": "weld-plc", "address": address, **fields}


def _bench(path: str) -> dict:
    return {
        "protocol": "mqtt",
        "connection": "bench-broker",
        "topic": BENCH_TOPIC,
        "path": path,
        "timestamp_path": "$.ts",
    }


def line_stations(stations: tuple[str, ...] = ("press-01", "weld-01", "test-01")) -> list[dict]:
    every = {
        "press-01": {
            "id": "press-01",
            "kind": "press",
            "ideal_cycle_time_s": 2.0,
            "state": {"source": _ua("press-01", "State"), "codes": PACKML},
            "counters": {
                "bits": 32,
                "good": _ua("press-01", "GoodCount"),
                "bad": _ua("press-01", "BadCount"),
            },
            "tags": [
                {"name": "ram_force", "unit": "kN", "source": _ua("press-01", "ram_force")},
                {
                    "name": "die_temperature",
                    "unit": "degC",
                    "source": _ua("press-01", "die_temperature"),
                },
            ],
        },
        "weld-01": {
            "id": "weld-01",
            "kind": "welding",
            "ideal_cycle_time_s": 1.5,
            "state": {"source": _mb(0), "codes": VENDOR},
            "counters": {
                "bits": 16,
                "good": _mb(10, type="uint16"),
                "bad": _mb(11, type="uint16"),
            },
            "tags": [
                {
                    "name": "weld_current",
                    "unit": "kA",
                    "source": _mb(0, table="input_register", type="float32", word_order="little"),
                },
                {
                    "name": "electrode_wear",
                    "unit": "pct",
                    "source": _mb(2, table="input_register", type="int16", scale=0.1),
                },
            ],
        },
        "test-01": {
            "id": "test-01",
            "kind": "test",
            "ideal_cycle_time_s": 3.0,
            "tags": [
                {"name": "leak_rate", "unit": "mbar_l_per_s", "source": _bench("$.leak.rate")},
                {"name": "test_pressure", "unit": "bar", "source": _bench("$.pressure")},
            ],
        },
    }
    return [every[s] for s in stations]


def line_plant(
    ports: LinePorts,
    *,
    stations: tuple[str, ...] = ("press-01", "weld-01", "test-01"),
    opcua_security: dict | None = None,
    collection: dict | None = None,
) -> Plant:
    """The demo plant's settings with one site and the e2e line. ``opcua_security``: fields of
    the OPC UA connection (policy, mode, certificate paths); ``collection``: batching and
    publishing settings of the line."""
    document = copy.deepcopy(_demo_document())
    connections = [
        {
            "name": "press-plc",
            "protocol": "opcua",
            "endpoint": f"opc.tcp://127.0.0.1:{ports.opcua}/plant",
            "reconnect_max_s": 2.0,
            **(opcua_security or {}),
        },
        {
            "name": "weld-plc",
            "protocol": "modbus",
            "host": "127.0.0.1",
            "port": ports.modbus,
            "poll_interval_ms": 25,
        },
        {"name": "bench-broker", "protocol": "mqtt", "host": "127.0.0.1", "port": ports.plant_mqtt},
    ]
    chosen = line_stations(stations)
    used = {address["connection"] for s in chosen for address in _addresses(s)}
    document["sites"] = [
        {
            "id": SITE,
            "timezone": "UTC",
            "shift_calendar": document["sites"][0]["shift_calendar"],
            "lines": [
                {
                    "id": LINE,
                    "collection": {
                        "connections": [c for c in connections if c["name"] in used],
                        "max_batch_delay_ms": 100,
                        **(collection or {}),
                    },
                    "stations": chosen,
                }
            ],
        }
    ]
    return Plant.model_validate(document)


def _addresses(station: dict) -> list[dict]:
    out = [t["source"] for t in station.get("tags", [])]
    if station.get("state"):
        out.append(station["state"]["source"])
    for key in ("good", "bad", "total", "reject"):
        if (station.get("counters") or {}).get(key):
            out.append(station["counters"][key])
    return out


def write_config(plant: Plant, path: Path) -> Path:
    """The line's DataCollector configuration, as the deployment gives it to the component."""
    path.write_text(json.dumps(collector_configuration(plant, SITE, LINE), indent=1))
    return path


# ---- the collector as a process -------------------------------------------------------------


class CollectorProcess:
    """``python -m data_collector`` as the Greengrass recipe runs it."""

    def __init__(
        self, config: Path, mqtt_port: int, spool: Path, log: Path, extra: tuple[str, ...] = ()
    ) -> None:
        self.args = [
            sys.executable,
            "-m",
            "data_collector",
            "--config",
            str(config),
            "--mqtt-host",
            "127.0.0.1",
            "--mqtt-port",
            str(mqtt_port),
            "--spool",
            str(spool),
            *extra,
        ]
        self.log = log
        self.process: subprocess.Popen | None = None
        self.starts = 0

    def start(self, preexec_fn=None) -> CollectorProcess:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join([str(COLLECTOR_SRC), str(PROJECT_ROOT)])
        env["PYTHONUNBUFFERED"] = "1"
        with self.log.open("ab") as out:
            out.write(f"--- start {self.starts + 1} ---\n".encode())
            out.flush()
            self.process = subprocess.Popen(
                self.args,
                cwd=PROJECT_ROOT,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                preexec_fn=preexec_fn,
            )
        self.starts += 1
        return self

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        """SIGKILL: no handler, no flush, no goodbye."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def stop(self, timeout_s: float = 15.0) -> int | None:
        """SIGTERM, as the nucleus stops a component; SIGKILL if it does not end."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        return self.process.returncode

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


# ---- the cloud ------------------------------------------------------------------------------


@dataclass
class Received:
    """What one station's messages carried, deduplicated as the cloud does."""

    readings: dict[str, list[tuple[int, object]]] = field(default_factory=lambda: defaultdict(list))
    states: dict[int, list[StateChange]] = field(default_factory=dict)  # by ts
    counts: dict[int, list[PartCount]] = field(default_factory=dict)
    events: list[MachineEvent] = field(default_factory=list)


class Cloud:
    """Subscribes to every topic the collector may publish on (Basic Ingest's ``$aws/rules``
    and the broker's ``mes/``) and validates each message against its contract."""

    def __init__(self, port: int, client_id: str = "") -> None:
        self.lock = threading.Lock()
        self.messages: list[tuple[str, bytes]] = []
        self.errors: list[str] = []
        self.batches: dict[str, bytes] = {}  # batch id -> its first payload
        self.duplicate_batches = 0
        self.duplicate_events = 0  # state, count and event messages delivered again
        self._sessions: dict[str, set[str]] = defaultdict(set)  # station -> batch id prefixes
        self.conflicting: list[str] = []  # the same batch id with other content
        self.collisions: list[str] = []  # two different events of a station at one ts
        self.stations: dict[str, Received] = defaultdict(Received)
        self._event_keys: set[bytes] = set()
        self.transport = Mqtt5Transport(
            "127.0.0.1", port, client_id or f"e2e-cloud-{time.monotonic_ns()}"
        )
        for topic in ("$aws/rules/#", "mes/#"):
            self.transport.subscribe(topic, self._on)
        if not self.transport.wait_ready(10):
            raise RuntimeError(f"the cloud subscriber found no broker on port {port}")

    def _on(self, topic: str, payload: bytes) -> None:
        try:
            parsed = parse_topic(topic).topic
            message = parse_station_message(parsed, payload)
        except Exception as exc:  # a bad message is a finding, not a crash of the callback
            with self.lock:
                self.errors.append(f"{topic}: {exc}")
            return
        with self.lock:
            self.messages.append((topic, payload))
            received = self.stations[parsed.station]
            if isinstance(message, TelemetryBatch):
                # The spool's batch ids are <process session>-<first row>-<last row>.
                self._sessions[parsed.station].add(message.batch_id.split("-")[0])
                first = self.batches.setdefault(message.batch_id, payload)
                if first is not payload:
                    self.duplicate_batches += 1
                    if first != payload:
                        self.conflicting.append(f"batch {message.batch_id}")
                    return
                for reading in message.readings:
                    received.readings[reading.tag].append((reading.ts, reading.value))
            elif isinstance(message, StateChange | PartCount):
                # A re-published message is byte for byte the spooled one.
                key = parsed.kind.value.encode() + b"\0" + payload
                if key in self._event_keys:
                    self.duplicate_events += 1
                    return
                self._event_keys.add(key)
                kind = received.states if parsed.kind is MessageKind.STATE else received.counts
                kind.setdefault(message.ts, []).append(message)
                if len(kind[message.ts]) > 1:
                    # Timestream keeps one record per station, kind and time and rejects a
                    # second one with other values (lambdas/common/timestream.event_record).
                    self.collisions.append(f"{parsed}: {kind[message.ts]}")
            elif isinstance(message, MachineEvent):
                key = topic.encode() + b"\0" + payload
                if key in self._event_keys:
                    self.duplicate_events += 1
                else:
                    self._event_keys.add(key)
                    received.events.append(message)

    def station(self, station: str) -> Received:
        with self.lock:
            return self.stations[station]

    def sessions(self, station: str) -> set[str]:
        with self.lock:
            return set(self._sessions[station])

    def counted(self, station: str) -> tuple[int, int]:
        with self.lock:
            counts = [c for same_ts in self.stations[station].counts.values() for c in same_ts]
        return sum(c.good for c in counts), sum(c.bad for c in counts)

    def state_sequence(self, station: str) -> list[str]:
        with self.lock:
            states = sorted(self.stations[station].states.items(), key=lambda item: item[0])
        return [s.state.value for _ts, same_ts in states for s in same_ts]

    def readings(self, station: str, tag: str) -> list[tuple[int, object]]:
        with self.lock:
            return sorted(self.stations[station].readings.get(tag, []), key=lambda r: r[0])

    def reading_count(self) -> int:
        with self.lock:
            return sum(len(v) for s in self.stations.values() for v in s.readings.values())

    def close(self) -> None:
        self.transport.close()


# ---- what the simulator did -----------------------------------------------------------------


def collapse(values: list) -> list:
    """Consecutive repeats as one: what a PLC showed, whatever how often it was read."""
    out: list = []
    for value in values:
        if not out or out[-1] != value:
            out.append(value)
    return out


def written(writes: list, station: str, point: str) -> list[tuple[int, object]]:
    """(epoch ms of the change, value) of every value the PLC showed for ``point``."""
    return [(ms, value) for (_s, _l, st), p, value, ms in writes if st == station and p == point]


def bench_results(published: list[tuple[str, dict]]) -> dict[str, set[tuple[int, object]]]:
    """The bench's readings, as the collector maps its JSON: tag -> {(ts, value)}."""
    out: dict[str, set] = {"leak_rate": set(), "test_pressure": set()}
    for topic, document in published:
        if topic == BENCH_TOPIC:
            out["leak_rate"].add((document["ts"], document["leak"]["rate"]))
            out["test_pressure"].add((document["ts"], document["pressure"]))
    return out


def expected_states(writes: list, station: str, codes: dict[str, str]) -> list[str]:
    return collapse([codes[str(value)] for _ms, value in written(writes, station, "state")])


# ---- the link to the cloud ------------------------------------------------------------------


class StallProxy(TcpProxy):
    """A ``TcpProxy`` that can also *stall*: what the client sends still reaches the broker,
    but nothing comes back (no PUBACK), as on a link that dies half-way. A publish the broker
    delivered then stays unacknowledged in the collector's spool."""

    def __init__(self, target_port: int) -> None:
        self.flowing = threading.Event()
        self.flowing.set()
        super().__init__(target_port)

    def stall(self) -> None:
        self.flowing.clear()

    def release(self) -> None:
        self.flowing.set()

    def _serve(self, client: socket.socket) -> None:
        if self._cut:
            client.close()
            return
        try:
            upstream = socket.create_connection(("127.0.0.1", self.target_port), timeout=5)
            upstream.settimeout(None)
        except OSError:
            client.close()
            return
        with self._lock:
            self.accepted += 1
            self._open += [client, upstream]
        threading.Thread(target=self._pump, args=(client, upstream), daemon=True).start()
        threading.Thread(target=self._held_pump, args=(upstream, client), daemon=True).start()

    def _held_pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                while not self.flowing.wait(0.1):
                    if self._cut or self._closed:
                        return
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for s in (source, sink):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
