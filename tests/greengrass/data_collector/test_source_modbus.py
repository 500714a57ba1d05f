"""The Modbus TCP source against a real pymodbus server on loopback: decoding of every type and
order (checked against ``struct.pack``), block coalescing (counted on the client's read calls),
a refused block read point by point, and a device that goes away and comes back."""

from __future__ import annotations

import asyncio
import itertools
import logging
import struct
import time
from contextlib import asynccontextmanager

import pytest
from data_collector.readings import Binding, Reading, SourceError
from data_collector.sources import make_source, run_source
from data_collector.sources.modbus import (
    BITS_PER_READ,
    MAX_GAP_BYTES,
    REGISTERS_PER_READ,
    ModbusSource,
    decode,
    plan_blocks,
)
from pymodbus.client import AsyncModbusTcpClient
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from mes_domain.collection import (
    ModbusAddress,
    ModbusConnection,
    ModbusTable,
    ModbusType,
    MqttAddress,
    MqttConnection,
)
from mes_domain.contracts import ReadingQuality
from tests.greengrass.broker import free_port

UNIT = 1
FORMAT = {"int16": "h", "uint16": "H", "int32": "i", "uint32": "I", "float32": "f", "float64": "d"}
SAMPLES = {
    "int16": [-32768, -2, 0, 1, 32767],
    "uint16": [0, 1, 0x1234, 65535],
    "int32": [-(2**31), -70000, 0, 0x12345678, 2**31 - 1],
    "uint32": [0, 65536, 0x89ABCDEF, 2**32 - 1],
    "float32": [-1.5, 0.0, 3.25, 1.0e20],
    "float64": [-2.5e-300, 0.0, 1234.5678, 6.02214076e23],
}


def to_registers(value, type_: str, byte_order: str = "big", word_order: str = "big") -> list[int]:
    """The reference encoder: struct.pack big-endian, then reorder words and bytes as a device
    with these settings lays them out."""
    data = struct.pack(">" + FORMAT[type_], value)
    words = [data[i : i + 2] for i in range(0, len(data), 2)]  # most significant first
    if word_order == "little":
        words.reverse()
    if byte_order == "little":
        words = [w[::-1] for w in words]
    return [int.from_bytes(w, "big") for w in words]


def address(**kwargs) -> ModbusAddress:
    return ModbusAddress(connection="plc", **kwargs)


def binding(point: str, station: str = "weld-01", **kwargs) -> Binding:
    return Binding(station, point, address(**kwargs))


# -- decode: pure ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "type_,byte_order,word_order",
    list(itertools.product(FORMAT, ("big", "little"), ("big", "little"))),
)
def test_decode_matches_struct_for_every_type_and_order(type_, byte_order, word_order):
    spec = address(address=0, type=type_, byte_order=byte_order, word_order=word_order)
    for value in SAMPLES[type_]:
        registers = to_registers(value, type_, byte_order, word_order)
        assert len(registers) == ModbusType(type_).registers
        decoded = decode(registers, spec)
        if type_ == "float32":  # float32 rounds: compare with what struct keeps
            value = struct.unpack(">f", struct.pack(">f", value))[0]
        assert decoded == value and type(decoded) is type(value), (registers, decoded)


def test_decode_known_layouts():
    # 0x12345678 as the four layouts devices use (ABCD, CDAB, BADC, DCBA).
    value = 0x12345678
    assert decode([0x1234, 0x5678], address(address=0, type="uint32")) == value
    assert decode([0x5678, 0x1234], address(address=0, type="uint32", word_order="little")) == value
    assert decode([0x3412, 0x7856], address(address=0, type="uint32", byte_order="little")) == value
    dcba = address(address=0, type="uint32", byte_order="little", word_order="little")
    assert decode([0x7856, 0x3412], dcba) == value
    assert decode([0xFFFF], address(address=0, type="int16")) == -1


def test_decode_scale_offset_and_bool():
    assert decode([250], address(address=0, type="int16", scale=0.1, offset=-5)) == pytest.approx(
        20.0
    )
    assert decode([65535], address(address=0, type="uint16")) == 65535  # stays an int
    assert decode([True], address(address=0, table="coil", type="bool")) is True
    assert decode([False], address(address=0, table="discrete_input", type="bool")) is False
    with pytest.raises(ValueError, match="needs 2 registers"):
        decode([1], address(address=0, type="float32"))


# -- block planning: pure ------------------------------------------------------------------


def test_spec_limits():
    # MODBUS Application Protocol V1.1b3 §6.1-6.4: at most 125 registers and 2000 bits a read.
    assert (REGISTERS_PER_READ, BITS_PER_READ) == (125, 2000)
    assert ModbusConnection.model_fields["max_block_registers"].metadata[-1].le == 125


def test_adjacent_points_of_a_table_make_one_block_each_table_its_own():
    bindings = [
        binding("a", address=0, type="uint16"),
        binding("b", address=1, type="float32"),  # 1-2
        binding("c", address=3, type="float64"),  # 3-6
        binding("d", address=0, table="input_register", type="int16"),
        binding("e", address=1, table="input_register", type="int16"),
        binding("f", address=0, table="coil", type="bool"),
        binding("g", address=1, table="coil", type="bool"),
        binding("h", address=7, table="discrete_input", type="bool"),
    ]
    blocks = plan_blocks(bindings, 125)
    assert [(b.table, b.start, b.count, len(b.bindings)) for b in blocks] == [
        (ModbusTable.HOLDING_REGISTER, 0, 7, 3),
        (ModbusTable.INPUT_REGISTER, 0, 2, 2),
        (ModbusTable.COIL, 0, 2, 2),
        (ModbusTable.DISCRETE_INPUT, 7, 1, 1),
    ]


def test_gap_rule():
    gap = MAX_GAP_BYTES // 2  # registers
    near = [binding("a", address=0), binding("b", address=1 + gap)]  # gap registers between
    far = [binding("a", address=0), binding("b", address=2 + gap)]
    assert len(plan_blocks(near, 125)) == 1 and plan_blocks(near, 125)[0].count == gap + 2
    assert len(plan_blocks(far, 125)) == 2
    bits_near = [
        binding("a", address=0, table="coil", type="bool"),
        binding("b", address=1 + 8 * MAX_GAP_BYTES, table="coil", type="bool"),
    ]
    assert len(plan_blocks(bits_near, 125)) == 1
    bits_near[1] = binding("b", address=2 + 8 * MAX_GAP_BYTES, table="coil", type="bool")
    assert len(plan_blocks(bits_near, 125)) == 2


def test_blocks_respect_the_limits():
    registers = [binding(f"r{i}", address=i) for i in range(300)]
    blocks = plan_blocks(registers, 125)
    assert [b.count for b in blocks] == [125, 125, 50]
    assert [b.count for b in plan_blocks(registers[:30], 10)] == [10, 10, 10]
    coils = [binding(f"c{i}", address=i, table="coil", type="bool") for i in range(4500)]
    assert [b.count for b in plan_blocks(coils, 125)] == [2000, 2000, 500]
    # A value wider than the block limit is still read, alone.
    wide = plan_blocks([binding("x", address=10, type="float64")], 1)
    assert [(b.start, b.count) for b in wide] == [(10, 4)]
    # A float32 that would cross the limit starts a new block instead of being cut.
    crossing = plan_blocks([binding("a", address=0), binding("b", address=1, type="float32")], 2)
    assert [(b.start, b.count) for b in crossing] == [(0, 1), (1, 2)]


# -- against a pymodbus server --------------------------------------------------------------


class Device:
    """A pymodbus TCP server on 127.0.0.1: holding registers 0-19 and 30-39 (20-29 unmapped),
    input registers 0-9, coils and discrete inputs 0-31."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.server: ModbusTcpServer | None = None

    async def start(self) -> None:
        device = SimDevice(
            id=UNIT,
            simdata=(
                [SimData(0, count=32, values=False, datatype=DataType.BITS)],
                [SimData(0, count=32, values=False, datatype=DataType.BITS)],
                [
                    SimData(0, count=20, values=0, datatype=DataType.REGISTERS),
                    SimData(30, count=10, values=0, datatype=DataType.REGISTERS),
                ],
                [SimData(0, count=10, values=0, datatype=DataType.REGISTERS)],
            ),
        )
        self.server = ModbusTcpServer(device, address=("127.0.0.1", self.port))
        await self.server.serve_forever(background=True)

    async def stop(self) -> None:
        if self.server is not None:
            await self.server.shutdown()
            self.server = None

    async def set(self, table: str, start: int, values: list) -> None:
        fc = {"holding_register": 16, "input_register": 4, "coil": 15, "discrete_input": 2}
        await self.server.async_setValues(UNIT, fc[table], start, values)


@asynccontextmanager
async def device_running():
    device = Device()
    await device.start()
    try:
        yield device
    finally:
        await device.stop()


class Collected(list):
    def of(self, point: str) -> list[Reading]:
        return [r for r in self if r.point == point]

    def last(self, point: str):
        return self.of(point)[-1].value


async def until(predicate, timeout_s: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        await asyncio.sleep(0.01)
    return predicate()


@pytest.fixture
def read_calls(monkeypatch):
    """Every read request the client sends, as (function, address, count)."""
    calls: list[tuple[str, int, int]] = []
    for name in ("read_holding_registers", "read_input_registers", "read_coils",
                 "read_discrete_inputs"):  # fmt: skip
        original = getattr(AsyncModbusTcpClient, name)

        def counted(self, address, *, count=1, _name=name, _original=original, **kwargs):
            calls.append((_name, address, count))
            return _original(self, address, count=count, **kwargs)

        monkeypatch.setattr(AsyncModbusTcpClient, name, counted)
    return calls


def connection(port: int, **kwargs) -> ModbusConnection:
    values = {"name": "plc", "host": "127.0.0.1", "port": port, "unit_id": UNIT}
    return ModbusConnection(**(values | {"poll_interval_ms": 50, "timeout_ms": 500} | kwargs))


async def run_for(source, seconds: float, out: Collected, until_=None) -> None:
    task = asyncio.create_task(source.run(out.append))
    try:
        if until_ is not None:
            assert await until(until_, seconds)
        else:
            await asyncio.sleep(seconds)
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


def test_reads_every_table_and_type_in_one_request_per_table(read_calls):
    points = [
        binding("state", address=0, type="uint16"),
        binding("temp", address=1, type="float32", word_order="little"),
        binding("count", address=3, type="uint32"),
        binding("energy", address=5, type="float64", byte_order="little", word_order="little"),
        binding("delta", address=9, type="int32", byte_order="little"),
        binding("wear", address=11, type="int16", scale=0.1, offset=1.0),
        binding("current", table="input_register", address=0, type="float32"),
        binding("rpm", table="input_register", address=2, type="int16"),
        binding("running", table="coil", address=0, type="bool"),
        binding("fault", table="coil", address=1, type="bool"),
        binding("door", table="discrete_input", address=5, type="bool"),
    ]

    async def scenario():
        async with device_running() as device:
            hr = (
                [6]
                + to_registers(71.5, "float32", word_order="little")
                + to_registers(123456789, "uint32")
                + to_registers(-9.75, "float64", "little", "little")
                + to_registers(-123456, "int32", byte_order="little")
                + to_registers(-50, "int16")
            )
            await device.set("holding_register", 0, hr)
            await device.set("input_register", 0, to_registers(2.5, "float32") + [1500])
            await device.set("coil", 0, [True, False] + [False] * 14)
            await device.set("discrete_input", 0, [False] * 5 + [True] + [False] * 10)
            source = make_source(connection(device.port), points)
            assert isinstance(source, ModbusSource) and len(source.blocks) == 4
            out = Collected()
            await run_for(source, 5, out, until_=lambda: source.polls >= 3)
            return source, out

    source, out = asyncio.run(scenario())
    assert {p.point: out.last(p.point) for p in points} == {
        "state": 6,
        "temp": 71.5,
        "count": 123456789,
        "energy": -9.75,
        "delta": -123456,
        "wear": pytest.approx(-4.0),
        "current": 2.5,
        "rpm": 1500,
        "running": True,
        "fault": False,
        "door": True,
    }
    assert all(r.quality is ReadingQuality.GOOD and r.station == "weld-01" for r in out)
    # One request per table per poll, not one per point (11 points, 4 requests).
    polls = source.polls
    assert polls >= 3
    assert len(read_calls) in (4 * polls, 4 * polls + 1, 4 * polls + 2, 4 * polls + 3)
    assert set(read_calls) == {
        ("read_holding_registers", 0, 12),
        ("read_input_registers", 0, 3),
        ("read_coils", 0, 2),
        ("read_discrete_inputs", 5, 1),
    }


def test_poll_interval_and_fresh_values():
    async def scenario():
        async with device_running() as device:
            source = ModbusSource(
                connection(device.port, poll_interval_ms=100), [binding("state", address=0)]
            )
            out = Collected()
            task = asyncio.create_task(source.run(out.append))
            assert await until(lambda: out)
            t0, n0 = time.monotonic(), source.polls
            await device.set("holding_register", 0, [42])
            assert await until(lambda: out.last("state") == 42, 2)
            await asyncio.sleep(1.0)
            rate = (source.polls - n0) / (time.monotonic() - t0)
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            return rate, out

    rate, out = asyncio.run(scenario())
    assert 6 <= rate <= 11, rate  # 100 ms polls: ~10/s (a loaded CI core may lag a little)
    stamps = [r.ts_ms for r in out]
    assert stamps == sorted(stamps) and abs(stamps[-1] - time.time() * 1000) < 5000


def test_refused_block_is_read_point_by_point_and_names_the_bad_point(read_calls, caplog):
    # 18 and 19 are mapped, 21 is in the unmapped hole 20-29: the coalesced block 18..21 is
    # refused (ILLEGAL DATA ADDRESS); 18 and 19 must still be read, 21 reported.
    points = [
        binding("good_a", address=18),
        binding("good_b", address=19),
        binding("bad", station="assembly-01", address=21),
        binding("far", address=31),  # 9 unused registers after 21: a block of its own
    ]

    async def scenario():
        async with device_running() as device:
            await device.set("holding_register", 18, [7, 8])
            await device.set("holding_register", 31, [9])
            source = ModbusSource(connection(device.port), points)
            assert [(b.start, b.count) for b in source.blocks] == [(18, 4), (31, 1)]
            out = Collected()
            await run_for(source, 5, out, until_=lambda: source.polls >= 4)
            return source, out

    with caplog.at_level(logging.ERROR):
        source, out = asyncio.run(scenario())
    assert out.last("good_a") == 7 and out.last("good_b") == 8 and out.last("far") == 9
    assert not out.of("bad")
    errors = [r.getMessage() for r in caplog.records if "point bad" in r.getMessage()]
    assert len(errors) == 1, errors  # rate-limited: once, not once per poll
    assert "connection plc, station assembly-01, point bad" in errors[0]
    assert source.errors.counts[("assembly-01", "bad")] >= 4
    # The block was tried whole once, then only point by point.
    assert read_calls.count(("read_holding_registers", 18, 4)) == 1
    assert read_calls.count(("read_holding_registers", 21, 1)) >= 4


def test_device_gone_emits_nothing_logs_once_and_reads_again_after_it_returns(caplog):
    async def scenario():
        device = Device()
        await device.start()
        source = ModbusSource(connection(device.port), [binding("state", address=0)])
        source.reconnect_min_s, source.reconnect_max_s = 0.05, 0.2
        out = Collected()
        task = asyncio.create_task(source.run(out.append))
        try:
            await device.set("holding_register", 0, [1])
            assert await until(lambda: out)
            await device.stop()
            await asyncio.sleep(0.3)  # a poll in flight may still land
            during = len(out)
            await asyncio.sleep(1.0)
            silent = len(out) == during
            device = Device(device.port)
            await device.start()
            await device.set("holding_register", 0, [2])
            back = await until(lambda: out.last("state") == 2, 10)
            return silent, back, source.connections
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            await device.stop()

    with caplog.at_level(logging.INFO):
        silent, back, connections = asyncio.run(scenario())
    assert silent, "readings were emitted while the device was down"
    assert back and connections == 2
    lost = [r for r in caplog.records if "unreachable or lost" in r.getMessage()]
    assert len(lost) == 1, [r.getMessage() for r in lost]
    assert any("connected again" in r.getMessage() for r in caplog.records)


def test_unreachable_at_start_keeps_retrying():
    async def scenario():
        port = free_port()
        source = ModbusSource(connection(port), [binding("state", address=0)])
        source.reconnect_min_s, source.reconnect_max_s = 0.05, 0.1
        out = Collected()
        task = asyncio.create_task(source.run(out.append))
        await asyncio.sleep(0.5)
        assert not task.done() and not out
        device = Device(port)
        await device.start()
        try:
            await device.set("holding_register", 0, [5])
            return await until(lambda: out and out.last("state") == 5, 5)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            await device.stop()

    assert asyncio.run(scenario())


def test_make_source_rejects_a_binding_of_another_connection():
    with pytest.raises(SourceError, match="station weld-01, point state is addressed to modbus"):
        make_source(
            connection(502).model_copy(update={"name": "other"}), [binding("state", address=0)]
        )


def test_a_dead_misconfigured_or_crashing_source_does_not_stop_the_others(caplog):
    class Crashing(ModbusSource):
        runs = 0

        async def run(self, sink):
            Crashing.runs += 1
            raise RuntimeError("driver bug")

    dead_plc = ModbusConnection(name="dead-plc", host="127.0.0.1", port=free_port())
    dead = Binding("assembly-01", "torque", ModbusAddress(connection="dead-plc", address=0))
    bench = MqttConnection(name="bench", host="127.0.0.1", port=free_port(), username="u",
                           password_file="/nonexistent/password")  # fmt: skip
    on_bench = Binding(
        "test-01", "leak_rate", MqttAddress(connection="bench", topic="t", path="$.v")
    )

    async def scenario():
        async with device_running() as device:
            await device.set("holding_register", 0, [3])
            good = make_source(connection(device.port), [binding("state", address=0)])
            others = [
                make_source(dead_plc, [dead]),
                make_source(bench, [on_bench]),
                Crashing(connection(device.port).model_copy(update={"name": "crashy"}), []),
            ]
            out = Collected()
            tasks = [asyncio.create_task(run_source(s, out.append, restart_s=0.1))
                     for s in [good, *others]]  # fmt: skip
            try:
                assert await until(lambda: good.polls >= 5 and Crashing.runs >= 2)
                await device.set("holding_register", 0, [4])
                assert await until(lambda: out.last("state") == 4)
                return out, [t.done() for t in tasks]
            finally:
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)

    with caplog.at_level(logging.ERROR):
        out, done = asyncio.run(scenario())
    assert {r.point for r in out} == {"state"} and not any(done)
    messages = [r.getMessage() for r in caplog.records]
    assert any("Modbus dead-plc" in m and "unreachable" in m for m in messages)
    assert any("connection bench, station test-01, point leak_rate" in m
               and "/nonexistent/password" in m for m in messages)  # fmt: skip
    assert any("source crashy failed" in m for m in messages)
