"""Where a machine's point is served: the address and connection the plant config names."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from mes_domain.collection import Address
from plant_sim.machine import Machine, SimulatorError


@dataclass(frozen=True, eq=False)
class PointBinding:
    machine: Machine
    point: str
    address: Address
    connection: object  # OpcUaConnection | ModbusConnection | MqttConnection

    @property
    def where(self) -> str:
        return f"{self.machine.where} {self.point} ({self.connection.name})"

    def value(self):
        return self.machine.value(self.point)

    def changed_ms(self, start_ms: int) -> int:
        return start_ms + round(self.machine.changed_at.get(self.point, 0.0) * 1000)


def require_loopback(host: str, what: str) -> str:
    """The simulator listens on this machine only: 127.0.0.0/8, ::1 or localhost."""
    bare = host.strip("[]")
    if bare == "localhost":
        return "127.0.0.1"
    try:
        loopback = ipaddress.ip_address(bare).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise SimulatorError(
            f"{what}: host {host!r} is not a loopback address; the simulator serves only on "
            "127.0.0.1, ::1 or localhost"
        )
    return bare
