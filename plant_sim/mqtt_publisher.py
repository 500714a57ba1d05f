"""A plant broker's publishers: each machine sends one JSON message per topic for each part it
finishes (a test bench's result), every path of that topic filled, e.g.
``{"ts": 1700000000000, "leak": {"rate": 0.02}, "pressure": 4.1}``.

The simulator does not run the broker: tests start Mosquitto, ``python -m plant_sim`` starts one
if it can. Publishes go through the project's MQTT 5 transport (QoS 1, waiting for the PUBACK)
on a worker thread; a message the broker did not take stays queued, in order, for the next push.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import uuid
from collections import deque

from greengrass_components.common.mqtt5_transport import Mqtt5Transport
from greengrass_components.common.transport import TransportError
from mes_domain.collection import MqttConnection
from plant_sim.bindings import PointBinding, require_loopback
from plant_sim.machine import HISTORY, Machine, SimulatorError

log = logging.getLogger(__name__)

_STEP = re.compile(r"\.([A-Za-z_][A-Za-z0-9_-]*)|\[(\d+)\]")


def path_steps(path: str) -> list[str | int]:
    """``$.leak.rate`` -> ["leak", "rate"]; ``$.values[0]`` -> ["values", 0]."""
    steps: list[str | int] = []
    for match in _STEP.finditer(path, 1):
        steps.append(match.group(1) if match.group(1) is not None else int(match.group(2)))
    return steps


def put(document: dict, path: str, value) -> None:
    """Set ``value`` at a JSON path in ``document``, making the objects and lists on the way."""
    steps = path_steps(path)
    if not steps:
        raise SimulatorError(f"{path!r} names no field")
    node: dict | list = document
    for step, following in zip(steps, [*steps[1:], None], strict=True):
        empty = None if following is None else ([] if isinstance(following, int) else {})
        if isinstance(step, int):
            if not isinstance(node, list):
                raise SimulatorError(f"{path!r}: an index into an object")
            node.extend([None] * (step + 1 - len(node)))
            if following is None:
                node[step] = value
            elif node[step] is None:
                node[step] = empty
            node = node[step]
        else:
            if not isinstance(node, dict):
                raise SimulatorError(f"{path!r}: a field of a list")
            if following is None:
                node[step] = value
            else:
                node = node.setdefault(step, empty)


def topic_for(filter_: str, station: str) -> str:
    """A subscription filter as a concrete topic: each wildcard level is the station's id."""
    return "/".join(station if level in ("+", "#") else level for level in filter_.split("/"))


class MqttBroker:
    """The publishers of the connections that name one broker host:port."""

    def __init__(
        self,
        host: str,
        port: int,
        connections: list[MqttConnection],
        bindings: list[PointBinding],
        start_ms: int,
        connect_timeout_s: float = 10.0,
    ) -> None:
        names = ", ".join(c.name for c in connections)
        self.host = require_loopback(host, f"MQTT connection {names}")
        self.port = port
        self.connections = connections
        self.start_ms = start_ms
        self.connect_timeout_s = connect_timeout_s
        for connection in connections:
            if connection.ca_file or connection.username:
                log.warning(
                    "connection %s: the simulator publishes without TLS or login", connection.name
                )
        # (machine, topic) -> [(point, path, timestamp path)]
        self.topics: dict[tuple[Machine, str], list[tuple[str, str, str | None]]] = {}
        for binding in bindings:
            address = binding.address
            topic = topic_for(address.topic, binding.machine.station.id)
            self.topics.setdefault((binding.machine, topic), []).append(
                (binding.point, address.path, address.timestamp_path)
            )
        self.bindings = bindings
        self.pending: deque[tuple[str, bytes, dict]] = deque(maxlen=HISTORY)
        self.published: deque[tuple[str, dict]] = deque(maxlen=HISTORY)
        self.sent = 0
        self.failed = 0
        self.transport: Mqtt5Transport | None = None

    async def start(self) -> None:
        client_id = f"plant-sim-{self.port}-{uuid.uuid4().hex[:8]}"
        try:
            self.transport = await asyncio.to_thread(
                Mqtt5Transport,
                self.host,
                self.port,
                client_id,
                connect_timeout_s=self.connect_timeout_s,
            )
        except TransportError as err:
            raise SimulatorError(
                f"MQTT broker {self.host}:{self.port} "
                f"({', '.join(c.name for c in self.connections)}): {err}"
            ) from err
        for (machine, _topic), fields in self.topics.items():
            points = {point for point, _path, _ts in fields}
            machine.snapshot_points = frozenset(machine.snapshot_points | points)

    def _collect(self) -> None:
        messages = []
        for machine in {m for m, _ in self.topics}:
            while machine.snapshots:
                t, values = machine.snapshots.popleft()
                for (owner, topic), fields in self.topics.items():
                    if owner is machine:
                        messages.append((t, machine.where, topic, self._message(t, values, fields)))
        messages.sort(key=lambda m: (m[0], m[1], m[2]))
        for _t, _where, topic, document in messages:
            self.pending.append((topic, json.dumps(document).encode(), document))

    def _message(self, t: float, values: dict, fields) -> dict:
        document: dict = {}
        ts = self.start_ms + round(t * 1000)
        for point, path, timestamp_path in fields:
            put(document, path, values[point])
            if timestamp_path:
                put(document, timestamp_path, ts)
        return document

    async def push(self) -> int:
        """Send the messages of the parts finished since the last push; the number sent."""
        self._collect()
        if self.transport is None:
            return 0
        sent = 0
        while self.pending:
            topic, payload, document = self.pending[0]
            try:
                await asyncio.to_thread(self.transport.publish, topic, payload)
            except TransportError as err:
                self.failed += 1
                log.warning("publish to %s failed, kept for the next push: %s", topic, err)
                break
            self.pending.popleft()
            self.published.append((topic, document))
            sent += 1
        self.sent += sent
        return sent

    async def stop(self) -> None:
        if self.transport is not None:
            transport, self.transport = self.transport, None
            await asyncio.to_thread(transport.close)

    def describe(self) -> str:
        names = ", ".join(c.name for c in self.connections)
        topics = sorted({t for _, t in self.topics})
        return f"MQTT publisher to {self.host}:{self.port} ({names}; topics {', '.join(topics)})"
