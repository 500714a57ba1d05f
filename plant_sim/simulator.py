"""The plant simulator: a machine per station that reads a machine, served over the protocols
at the addresses the plant config names.

Simulated time starts at ``start_ms`` (epoch milliseconds, default: now). ``advance`` moves every
machine on deterministically and touches no network; ``sync`` (or ``step`` = both) writes the
new values to the OPC UA and Modbus servers and sends the MQTT messages of the parts made.
``run_realtime`` does that against the wall clock at a speed factor. ``SimulatorThread`` runs
it all on a background event loop, for tests that are not async.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Iterable, Mapping
from urllib.parse import urlparse

from mes_domain.collection import (
    ModbusAddress,
    ModbusConnection,
    MqttAddress,
    MqttConnection,
    OpcUaAddress,
    OpcUaConnection,
)
from mes_domain.plant import Line, Plant
from plant_sim.bindings import PointBinding
from plant_sim.machine import Machine, MachineProfile, SimulatorError
from plant_sim.modbus_server import ModbusEndpoint
from plant_sim.mqtt_publisher import MqttBroker
from plant_sim.opcua_server import OpcUaEndpoint, OpcUaServerSecurity

log = logging.getLogger(__name__)

StationPath = tuple[str, str, str]


def _reads_a_machine(station) -> bool:
    return bool(station.state or station.counters or any(t.source for t in station.tags))


def _served(bindings: list[PointBinding], kind: type, group: list) -> list[PointBinding]:
    return [
        b for b in bindings if isinstance(b.address, kind) and any(b.connection is c for c in group)
    ]


def _group(items: Iterable, key) -> dict:
    groups: dict = {}
    for item in items:
        groups.setdefault(key(item), []).append(item)
    return groups


class PlantSimulator:
    """The machines of ``lines`` ((site, line) pairs; None: every line that collects).

    ``profiles``: one ``MachineProfile`` for all, or per station path (others get the default).
    ``opcua_security``: the server side of secured OPC UA connections, by connection name.
    ``mqtt``: False leaves the MQTT topics unpublished (no broker to publish to).
    ``record_writes``: keep every value written to the OPC UA and Modbus servers in ``writes``
    as (station path, point, value, epoch ms of the change), in order.
    """

    def __init__(
        self,
        plant: Plant,
        seed: int = 0,
        lines: list[tuple[str, str]] | None = None,
        *,
        profiles: MachineProfile | Mapping[StationPath, MachineProfile] | None = None,
        start_ms: int | None = None,
        tag_period_s: float = 0.5,
        opcua_security: Mapping[str, OpcUaServerSecurity] | None = None,
        mqtt_connect_timeout_s: float = 10.0,
        mqtt: bool = True,
        record_writes: bool = False,
    ) -> None:
        self.plant = plant
        self.seed = seed
        self.start_ms = int(time.time() * 1000) if start_ms is None else int(start_ms)
        self.now_s = 0.0
        self.lines = self._lines(lines)
        self.machines: dict[StationPath, Machine] = {}
        bindings: list[PointBinding] = []
        for site, line in self.lines:
            for station in line.stations:
                if not _reads_a_machine(station):
                    continue
                path = (site, line.id, station.id)
                if isinstance(profiles, MachineProfile):
                    profile = profiles
                else:
                    profile = (profiles or {}).get(path)
                machine = Machine(
                    site, line.id, station, seed=seed, profile=profile, tag_period_s=tag_period_s
                )
                self.machines[path] = machine
                for point, address in machine.addresses.items():
                    connection = line.collection.connection(address.connection)
                    bindings.append(PointBinding(machine, point, address, connection))
        self.bindings = bindings
        self.endpoints = self._endpoints(bindings, opcua_security or {}, mqtt_connect_timeout_s)
        if not mqtt:
            self.endpoints = [e for e in self.endpoints if not isinstance(e, MqttBroker)]
        self.writes: list[tuple[StationPath, str, object, int]] = []
        if record_writes:
            for endpoint in self.endpoints:
                if not isinstance(endpoint, MqttBroker):
                    endpoint.on_write = self._record

    def _record(self, binding: PointBinding, value) -> None:
        changed = binding.changed_ms(self.start_ms)
        self.writes.append((binding.machine.path, binding.point, value, changed))
        self.started = False

    def _lines(self, wanted: list[tuple[str, str]] | None) -> list[tuple[str, Line]]:
        every = [(site.id, line) for site in self.plant.sites for line in site.lines]
        if wanted is None:
            return [(site, line) for site, line in every if line.collects()]
        chosen = []
        for site_id, line_id in wanted:
            found = [(s, line) for s, line in every if (s, line.id) == (site_id, line_id)]
            if not found:
                raise SimulatorError(f"no line {site_id}/{line_id} in plant {self.plant.name!r}")
            chosen += found
        return chosen

    def _endpoints(self, bindings, security, connect_timeout_s) -> list:
        endpoints: list = []
        connections = {
            id(c): c for _site, line in self.lines for c in line.collection.connections
        }.values()
        opcua = [c for c in connections if isinstance(c, OpcUaConnection)]
        for (_host, _port), group in _group(
            opcua, lambda c: (urlparse(c.endpoint).hostname, urlparse(c.endpoint).port or 4840)
        ).items():
            urls = {c.endpoint for c in group}
            if len(urls) > 1:
                raise SimulatorError(f"one OPC UA port, several endpoints: {sorted(urls)}")
            names = {c.name for c in group}
            secured = [security[n] for n in sorted(names) if n in security]
            endpoints.append(
                OpcUaEndpoint(
                    group[0].endpoint,
                    group,
                    _served(bindings, OpcUaAddress, group),
                    secured[0] if secured else None,
                    self.start_ms,
                )
            )
        modbus = [c for c in connections if isinstance(c, ModbusConnection)]
        for (host, port), group in _group(modbus, lambda c: (c.host, c.port)).items():
            endpoints.append(
                ModbusEndpoint(
                    host,
                    port,
                    group,
                    _served(bindings, ModbusAddress, group),
                )
            )
        mqtt = [c for c in connections if isinstance(c, MqttConnection)]
        for (host, port), group in _group(mqtt, lambda c: (c.host, c.port)).items():
            endpoints.append(
                MqttBroker(
                    host,
                    port,
                    group,
                    _served(bindings, MqttAddress, group),
                    self.start_ms,
                    connect_timeout_s,
                )
            )
        return endpoints

    # -- the machines ----------------------------------------------------------------------------

    def machine(self, site: str, line: str, station: str) -> Machine:
        try:
            return self.machines[(site, line, station)]
        except KeyError:
            raise SimulatorError(
                f"no simulated machine {site}/{line}/{station}; simulated: "
                + ", ".join("/".join(p) for p in self.machines)
            ) from None

    @property
    def now_ms(self) -> int:
        return self.start_ms + round(self.now_s * 1000)

    def advance(self, seconds: float) -> None:
        """Move every machine ``seconds`` of simulated time on (no network)."""
        if seconds < 0:
            raise SimulatorError("time runs forward only")
        self.now_s += seconds
        for machine in self.machines.values():
            machine.advance_to(self.now_s)

    def restart_plc(self, site: str, line: str, station: str) -> None:
        """The station's PLC restarts: its counters are 0 at the next ``sync``."""
        self.machine(site, line, station).restart_plc()

    def truth(self, site: str, line: str, station: str) -> dict:
        """What the machine really did and shows, for tests to compare with the collector."""
        machine = self.machine(site, line, station)
        return {
            "state": machine.state.value,
            "good": machine.good,
            "bad": machine.bad,
            "failures": machine.failures,
            "plc_restarts": machine.plc_restarts,
            "values": machine.values(),
            "changed_ms": {
                p: self.start_ms + round(t * 1000) for p, t in machine.changed_at.items()
            },
            "now_ms": self.now_ms,
        }

    @property
    def mqtt_published(self) -> list[tuple[str, dict]]:
        """Every MQTT message the broker acknowledged, in the order sent."""
        return [m for e in self.endpoints if isinstance(e, MqttBroker) for m in e.published]

    # -- the protocols ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Start every server and publisher and write the current values."""
        started = []
        try:
            for endpoint in self.endpoints:
                await endpoint.start()
                started.append(endpoint)
        except BaseException:
            for endpoint in reversed(started):
                with contextlib.suppress(Exception):
                    await endpoint.stop()
            raise
        self.started = True
        await self.sync()

    async def sync(self) -> int:
        """Write what changed to the servers, send the MQTT messages due; the number written."""
        written = 0
        for endpoint in self.endpoints:
            written += await endpoint.push()
        return written

    async def step(self, seconds: float) -> int:
        self.advance(seconds)
        return await self.sync()

    async def run_realtime(
        self, speed: float = 1.0, duration_s: float | None = None, tick_s: float = 0.05
    ) -> None:
        """Advance with the wall clock times ``speed`` until cancelled or ``duration_s`` (wall)."""
        if speed <= 0 or tick_s <= 0:
            raise SimulatorError("speed and tick_s are positive")
        loop = asyncio.get_running_loop()
        last = begin = loop.time()
        while duration_s is None or last - begin < duration_s:
            await asyncio.sleep(tick_s)
            now = loop.time()
            self.advance((now - last) * speed)
            last = now
            await self.sync()

    async def stop(self) -> None:
        for endpoint in reversed(self.endpoints):
            try:
                await endpoint.stop()
            except Exception:
                log.exception("stopping %s failed", endpoint.describe())
        self.started = False

    async def __aenter__(self) -> PlantSimulator:
        await self.start()
        return self

    async def __aexit__(self, *_exc) -> None:
        await self.stop()

    def describe(self) -> list[str]:
        return [endpoint.describe() for endpoint in self.endpoints]


class SimulatorThread:
    """A ``PlantSimulator`` on an event loop of its own thread: ``with SimulatorThread(plant) as
    sim: sim.advance(60)``. Every call runs on that loop, so it never races the servers."""

    def __init__(self, plant: Plant, seed: int = 0, lines=None, **options) -> None:
        self.simulator = PlantSimulator(plant, seed, lines, **options)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._realtime = None

    def call(self, coroutine, timeout_s: float = 60.0):
        if self._loop is None:
            coroutine.close()
            raise SimulatorError("the simulator thread is not running")
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout_s)

    def run(self, function, *args):
        async def call():
            return function(*args)

        return self.call(call())

    def start(self) -> SimulatorThread:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="plant_sim", daemon=True
        )
        self._thread.start()
        try:
            self.call(self.simulator.start())
        except BaseException:
            self._close_loop()
            raise
        return self

    def advance(self, seconds: float) -> int:
        return self.call(self.simulator.step(seconds))

    def sync(self) -> int:
        return self.call(self.simulator.sync())

    def restart_plc(self, site: str, line: str, station: str) -> None:
        self.run(self.simulator.restart_plc, site, line, station)
        self.sync()

    def truth(self, site: str, line: str, station: str) -> dict:
        return self.run(self.simulator.truth, site, line, station)

    def mqtt_published(self) -> list[tuple[str, dict]]:
        return self.run(lambda: self.simulator.mqtt_published)

    def start_realtime(self, speed: float = 1.0, tick_s: float = 0.05) -> None:
        self.stop_realtime()
        self._realtime = asyncio.run_coroutine_threadsafe(
            self.simulator.run_realtime(speed, tick_s=tick_s), self._loop
        )

    def stop_realtime(self) -> None:
        if self._realtime is not None:
            realtime, self._realtime = self._realtime, None
            realtime.cancel()
            with contextlib.suppress(BaseException):
                realtime.result(10)

    def stop(self) -> None:
        if self._loop is None:
            return
        self.stop_realtime()
        try:
            self.call(self.simulator.stop())
        finally:
            self._close_loop()

    def _close_loop(self) -> None:
        loop, self._loop = self._loop, None
        loop.call_soon_threadsafe(loop.stop)
        self._thread.join(10)
        loop.close()

    def __enter__(self) -> SimulatorThread:
        return self.start()

    def __exit__(self, *_exc) -> None:
        self.stop()
