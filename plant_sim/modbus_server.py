"""A pymodbus TCP server per host:port, a device per unit id, each point's value encoded at its
address by ``plant_sim.modbus_codec``.

Every table (coils, discrete inputs, holding and input registers) is its own block from
address 0 to the last one a point uses; an address past it answers ILLEGAL ADDRESS.
"""

from __future__ import annotations

import logging

from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from mes_domain.collection import ModbusConnection, ModbusTable
from plant_sim import modbus_codec
from plant_sim.bindings import PointBinding, require_loopback
from plant_sim.machine import SimulatorError

log = logging.getLogger(__name__)

TABLES = (
    ModbusTable.COIL,
    ModbusTable.DISCRETE_INPUT,
    ModbusTable.HOLDING_REGISTER,
    ModbusTable.INPUT_REGISTER,
)
# The function code whose datastore block a write goes to (pymodbus maps codes to tables).
WRITE_CODE = {
    ModbusTable.COIL: 15,
    ModbusTable.DISCRETE_INPUT: 2,
    ModbusTable.HOLDING_REGISTER: 16,
    ModbusTable.INPUT_REGISTER: 4,
}


class ModbusEndpoint:
    """The devices behind one host:port (one ModbusConnection, or several with other unit ids)."""

    def __init__(
        self,
        host: str,
        port: int,
        connections: list[ModbusConnection],
        bindings: list[PointBinding],
    ) -> None:
        names = ", ".join(c.name for c in connections)
        self.host = require_loopback(host, f"Modbus connection {names}")
        self.port = port
        self.connections = connections
        self.bindings = bindings
        self.server: ModbusTcpServer | None = None
        self.on_write = None  # called with (binding, value) for each value written
        self._last: dict[int, object] = {}
        self._unit = {id(b): b.connection.unit_id for b in bindings}
        # (unit, table, register) -> the binding that owns it
        owners: dict[tuple[int, ModbusTable, int], PointBinding] = {}
        for binding in bindings:
            address = binding.address
            width = 1 if address.table.is_bits else address.type.registers
            for register in range(address.address, address.address + width):
                key = (binding.connection.unit_id, address.table, register)
                other = owners.setdefault(key, binding)
                if other is not binding and (other.machine, other.point, other.address) != (
                    binding.machine,
                    binding.point,
                    binding.address,
                ):
                    raise SimulatorError(
                        f"{binding.where} and {other.where} overlap at unit {key[0]} "
                        f"{key[1]} {register} of {host}:{port}"
                    )
        self._owners = owners

    def _device(self, unit: int) -> SimDevice:
        blocks = []
        for table in TABLES:
            used = [r for (u, t, r) in self._owners if u == unit and t == table]
            size = max(used, default=0) + 1
            if table.is_bits:
                size = (size + 15) // 16 * 16
                blocks.append([SimData(0, values=[False] * size, datatype=DataType.BITS)])
            else:
                blocks.append([SimData(0, values=[0] * size, datatype=DataType.REGISTERS)])
        return SimDevice(unit, simdata=tuple(blocks), use_bit_addressing=True)

    async def start(self) -> None:
        units = sorted({c.unit_id for c in self.connections})
        devices = [self._device(unit) for unit in units]
        server = ModbusTcpServer(devices, address=(self.host, self.port))
        try:
            await server.serve_forever(background=True)
        except (OSError, RuntimeError) as err:
            await server.shutdown()
            raise SimulatorError(
                f"Modbus server {self.host}:{self.port} cannot listen: {err}"
            ) from err
        self.server = server
        self._last.clear()
        await self.push()

    async def push(self) -> int:
        """Write every value that changed since the last push; the number written."""
        if self.server is None:
            return 0
        written = 0
        for binding in self.bindings:
            value = binding.value()
            if id(binding) in self._last and self._last[id(binding)] == value:
                continue
            data = modbus_codec.encode(value, binding.address)
            table = binding.address.table
            await self.server.async_setValues(
                self._unit[id(binding)], WRITE_CODE[table], binding.address.address, list(data)
            )
            self._last[id(binding)] = value
            written += 1
            if self.on_write is not None:
                self.on_write(binding, value)
        return written

    async def stop(self) -> None:
        if self.server is not None:
            server, self.server = self.server, None
            await server.shutdown()

    def describe(self) -> str:
        names = ", ".join(c.name for c in self.connections)
        return f"Modbus TCP {self.host}:{self.port} ({names}; {len(self.bindings)} points)"
