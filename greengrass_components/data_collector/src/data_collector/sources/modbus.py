"""Modbus TCP (pymodbus): polls a device's tables and decodes each point's value.

* **Decoding** is one pure function, ``decode``: the registers of a value are put in order
  (``word_order`` big: the first register is the most significant), each register's two bytes in
  ``byte_order`` (big: high byte first, as Modbus sends them), and the bytes unpacked big-endian;
  then ``value = raw * scale + offset`` (an integer stays an integer with scale 1, offset 0).
  ``plant_sim.modbus_codec`` encodes the other way.
* **Block reads.** The points of one table are sorted by address and coalesced into one read
  while the block stays within ``max_block_registers`` (and Modbus's own limits, below) and the
  hole between two points is at most ``MAX_GAP_BYTES`` of unused data: reading 16 bytes
  (8 registers, 128 bits) costs less than the framing of a separate request and response
  (~20 bytes over TCP) plus a round trip, so a merge across such a gap always saves time. A
  value longer than the block limit is read alone.
* **A refused block** (a Modbus exception such as ILLEGAL DATA ADDRESS, e.g. a hole the device
  does not map) is read again point by point, and stays split for the rest of the connection, so
  one bad address blinds no other point; the bad point is a ``SourceError`` naming it.
* **A lost link** (timeout, connection error) emits nothing: it is logged once, and the client
  reconnects with exponential backoff; the polls start again where they left off.
"""

from __future__ import annotations

import asyncio
import logging
import math
import struct
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from pymodbus.client import AsyncModbusTcpClient
from pymodbus.exceptions import ModbusException

from data_collector.readings import Binding, Reading, Sink, Source, Value
from data_collector.sources._common import Backoff, PointErrors, now_ms
from mes_domain.collection import ByteOrder, ModbusAddress, ModbusConnection, ModbusTable
from mes_domain.collection import ModbusType as T
from mes_domain.contracts import ReadingQuality

log = logging.getLogger(__name__)

# The most one read may ask for: 1..125 registers (FC 03, 04) and 1..2000 bits (FC 01, 02), as
# MODBUS Application Protocol Specification V1.1b3 §6.1-6.4 defines the request quantity.
# https://www.modbus.org/docs/Modbus_Application_Protocol_V1_1b3.pdf
# https://umodbus.readthedocs.io/en/latest/functions.html (quotes §6.1)
REGISTERS_PER_READ = 125
BITS_PER_READ = 2000
MAX_GAP_BYTES = 16

_STRUCT = {T.INT16: "h", T.UINT16: "H", T.INT32: "i", T.UINT32: "I", T.FLOAT32: "f", T.FLOAT64: "d"}


def width(address: ModbusAddress) -> int:
    """Registers (or bits) the value takes."""
    return 1 if address.table.is_bits else address.type.registers


def decode(registers_or_bits: Sequence[int | bool], address: ModbusAddress) -> Value:
    """The value of ``address`` from its registers (or its bit), as read from the device."""
    if address.type is T.BOOL:
        return bool(registers_or_bits[0])
    count = address.type.registers
    words = [int(w) & 0xFFFF for w in registers_or_bits[:count]]
    if len(words) != count:
        raise ValueError(f"{address.type} needs {count} registers, got {len(words)}")
    if address.word_order is ByteOrder.LITTLE:
        words.reverse()
    byteorder = "big" if address.byte_order is ByteOrder.BIG else "little"
    data = b"".join(w.to_bytes(2, byteorder) for w in words)
    raw = struct.unpack(">" + _STRUCT[address.type], data)[0]
    if address.scale == 1.0 and address.offset == 0.0:
        return raw
    return raw * address.scale + address.offset


@dataclass
class Block:
    """One read request: ``count`` registers (or bits) of ``table`` from ``start``."""

    table: ModbusTable
    start: int
    count: int
    bindings: list[Binding] = field(default_factory=list)
    split: bool = False  # the device refused it whole: read point by point

    @property
    def end(self) -> int:
        return self.start + self.count


def plan_blocks(
    bindings: Sequence[Binding], max_block_registers: int, max_gap_bytes: int = MAX_GAP_BYTES
) -> list[Block]:
    """Coalesce the points of each table into as few reads as the limits and gap rule allow."""
    blocks: list[Block] = []
    tables: dict[ModbusTable, list[Binding]] = {}
    for binding in bindings:
        tables.setdefault(binding.address.table, []).append(binding)
    for table in ModbusTable:
        points = sorted(tables.get(table, []), key=lambda b: (b.address.address, width(b.address)))
        limit = BITS_PER_READ if table.is_bits else min(max_block_registers, REGISTERS_PER_READ)
        max_gap = max_gap_bytes * 8 if table.is_bits else max_gap_bytes // 2
        current: Block | None = None
        for binding in points:
            start, size = binding.address.address, width(binding.address)
            end = start + size
            if (
                current is not None
                and start - current.end <= max_gap
                and max(end, current.end) - current.start <= limit
            ):
                current.count = max(end, current.end) - current.start
                current.bindings.append(binding)
                continue
            current = Block(table, start, size, [binding])
            blocks.append(current)
    return blocks


class DeviceRefused(Exception):
    """The device answered with a Modbus exception (illegal address, function, ...)."""

    def __init__(self, response) -> None:
        self.code = getattr(response, "exception_code", None)
        super().__init__(f"Modbus exception {self.code} ({response})")


class ModbusSource(Source):
    reconnect_min_s = 0.5
    reconnect_max_s = 30.0

    def __init__(self, connection: ModbusConnection, bindings: list[Binding]) -> None:
        super().__init__(connection, bindings)
        self.errors = PointErrors(connection.name)
        self.blocks = plan_blocks(bindings, connection.max_block_registers)
        self.polls = 0  # completed poll cycles (tests, metrics)
        self.connections = 0

    def _client(self) -> AsyncModbusTcpClient:
        # reconnect_delay=0: no reconnection inside pymodbus; run() owns the backoff.
        return AsyncModbusTcpClient(
            self.connection.host,
            port=self.connection.port,
            timeout=self.connection.timeout_ms / 1000,
            retries=0,
            reconnect_delay=0,
            name=self.connection.name,
        )

    async def run(self, sink: Sink) -> None:
        c = self.connection
        backoff = Backoff(self.reconnect_min_s, self.reconnect_max_s)
        lost_logged = False
        while True:
            client = self._client()
            try:
                if not await client.connect():
                    raise ConnectionError("connect failed")
                self.connections += 1
                backoff.reset()
                if lost_logged:
                    log.info("Modbus %s at %s:%d: connected again", c.name, c.host, c.port)
                lost_logged = False
                for block in self.blocks:
                    block.split = False  # give a refused block another chance on a new link
                await self._poll_forever(client, sink)
            except (ModbusException, OSError) as exc:  # OSError: timeouts, refused, reset
                if not lost_logged:
                    log.error(
                        "Modbus %s at %s:%d unreachable or lost (%s); reconnecting with backoff "
                        "up to %g s, nothing is read meanwhile",
                        c.name, c.host, c.port, exc or type(exc).__name__, self.reconnect_max_s,
                    )  # fmt: skip
                    lost_logged = True
            finally:
                client.close()
            await asyncio.sleep(backoff.next_delay())

    async def _poll_forever(self, client: AsyncModbusTcpClient, sink: Sink) -> None:
        interval = self.connection.poll_interval_ms / 1000
        deadline = time.monotonic()
        while True:
            for block in self.blocks:
                await self._read_block(client, block, sink)
            self.polls += 1
            # Fixed rate without drift; a cycle that overran skips the ticks it missed.
            deadline += interval
            now = time.monotonic()
            if deadline < now:
                deadline = now + interval - (now - deadline) % interval
            await asyncio.sleep(deadline - now)

    async def _read(self, client, table: ModbusTable, start: int, count: int) -> list:
        method = {
            ModbusTable.HOLDING_REGISTER: client.read_holding_registers,
            ModbusTable.INPUT_REGISTER: client.read_input_registers,
            ModbusTable.COIL: client.read_coils,
            ModbusTable.DISCRETE_INPUT: client.read_discrete_inputs,
        }[table]
        response = await method(start, count=count, device_id=self.connection.unit_id)
        if response.isError():
            raise DeviceRefused(response)
        values = response.bits if table.is_bits else response.registers
        if len(values) < count:
            raise DeviceRefused(response)
        return values

    async def _read_block(self, client, block: Block, sink: Sink) -> None:
        if not block.split:
            try:
                values = await self._read(client, block.table, block.start, block.count)
            except DeviceRefused as exc:
                block.split = len(block.bindings) > 1 or block.count > width(
                    block.bindings[0].address
                )
                if not block.split:
                    self.errors.report(block.bindings[0], "refused", f"device refused: {exc}")
                    return
                log.warning(
                    "Modbus %s: block %s %d..%d refused (%s); reading its %d points one by one",
                    self.connection.name, block.table, block.start, block.end - 1, exc,
                    len(block.bindings),
                )  # fmt: skip
            else:
                ts = now_ms()
                for binding in block.bindings:
                    offset = binding.address.address - block.start
                    self._emit(sink, binding, values[offset : offset + width(binding.address)], ts)
                return
        for binding in block.bindings:
            address = binding.address
            try:
                values = await self._read(client, address.table, address.address, width(address))
            except DeviceRefused as exc:
                self.errors.report(binding, "refused", f"device refused {address.table} "
                                   f"{address.address}: {exc}")  # fmt: skip
                continue
            self._emit(sink, binding, values, now_ms())

    def _emit(self, sink: Sink, binding: Binding, values: Sequence, ts: int) -> None:
        try:
            value = decode(values, binding.address)
        except (ValueError, struct.error) as exc:
            self.errors.report(binding, "decode", f"cannot decode {list(values)}: {exc}")
            return
        if isinstance(value, float) and not math.isfinite(value):
            # A NaN/inf float register: the reading exists but its value is not usable.
            sink(Reading(binding.station, binding.point, ts, None, ReadingQuality.BAD))
            return
        self.errors.recovered(binding)
        sink(Reading(binding.station, binding.point, ts, value))
