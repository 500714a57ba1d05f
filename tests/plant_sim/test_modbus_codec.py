"""The Modbus encoding: registers as the docstring of plant_sim.modbus_codec defines them,
checked against struct and against pymodbus's own converter."""

from __future__ import annotations

import itertools
import random
import struct

import pytest
from pymodbus.client import ModbusTcpClient

from mes_domain.collection import ModbusAddress
from plant_sim import modbus_codec

TYPES = {"int16": "h", "uint16": "H", "int32": "i", "uint32": "I", "float32": "f", "float64": "d"}
ORDERS = list(itertools.product(["big", "little"], repeat=2))


def address(kind: str, byte_order="big", word_order="big", **fields) -> ModbusAddress:
    return ModbusAddress(
        connection="plc",
        address=0,
        type=kind,
        byte_order=byte_order,
        word_order=word_order,
        **fields,
    )


def struct_registers(raw, fmt: str, byte_order: str, word_order: str) -> list[int]:
    """The convention spelled out with struct: big-endian bytes, cut into words..."""
    data = struct.pack(">" + fmt, raw)
    pairs = [data[i : i + 2] for i in range(0, len(data), 2)]
    if word_order == "little":
        pairs.reverse()
    if byte_order == "little":
        pairs = [p[::-1] for p in pairs]
    return [int.from_bytes(p, "big") for p in pairs]


def samples(kind: str, rng: random.Random) -> list:
    fmt = TYPES[kind]
    if kind.startswith("float"):
        return [0.0, -1.5, 3.25e10, -7.0e-5, *(rng.uniform(-1e6, 1e6) for _ in range(20))]
    low, high = modbus_codec.integer_range(modbus_codec.ModbusType(kind))
    assert struct.calcsize(fmt) * 8 == (high - low + 1).bit_length() - 1
    return [low, high, 0, 1, *(rng.randint(low, high) for _ in range(20))]


@pytest.mark.parametrize("kind", TYPES)
@pytest.mark.parametrize("byte_order,word_order", ORDERS)
def test_registers_are_the_struct_bytes_in_the_configured_orders(kind, byte_order, word_order):
    where = address(kind, byte_order, word_order)
    rng = random.Random(kind + byte_order + word_order)
    for value in samples(kind, rng):
        registers = modbus_codec.encode(value, where)
        assert registers == struct_registers(value, TYPES[kind], byte_order, word_order)
        assert all(0 <= r <= 0xFFFF for r in registers)
        assert len(registers) == where.type.registers
        decoded = modbus_codec.decode(registers, where)
        expected = struct.unpack(">" + TYPES[kind], struct.pack(">" + TYPES[kind], value))[0]
        assert decoded == expected
        assert modbus_codec.reader(where)(value) == decoded == modbus_codec.as_read(value, where)


@pytest.mark.parametrize("kind", TYPES)
@pytest.mark.parametrize("word_order", ["big", "little"])
def test_pymodbus_reads_big_byte_order_as_we_write_it(kind, word_order):
    """pymodbus's own converter (big-endian registers, its word_order) agrees."""
    where = address(kind, "big", word_order)
    data_type = ModbusTcpClient.DATATYPE[kind.upper()]
    for value in samples(kind, random.Random(kind)):
        registers = modbus_codec.encode(value, where)
        theirs = ModbusTcpClient.convert_from_registers(registers, data_type, word_order)
        assert theirs == modbus_codec.decode(registers, where)
        assert registers == ModbusTcpClient.convert_to_registers(
            modbus_codec.decode(registers, where), data_type, word_order
        )


def test_known_registers():
    """The conventions by example: 1.0 as float32 is 0x3F80 0x0000 (ABCD)."""
    assert modbus_codec.encode(1.0, address("float32")) == [0x3F80, 0x0000]
    assert modbus_codec.encode(1.0, address("float32", word_order="little")) == [0x0000, 0x3F80]
    assert modbus_codec.encode(1.0, address("float32", byte_order="little")) == [0x803F, 0x0000]
    assert modbus_codec.encode(1.0, address("float32", "little", "little")) == [0x0000, 0x803F]
    assert modbus_codec.encode(0x12345678, address("uint32")) == [0x1234, 0x5678]
    assert modbus_codec.encode(0x12345678, address("uint32", word_order="little")) == [
        0x5678,
        0x1234,
    ]
    assert modbus_codec.encode(-2, address("int16")) == [0xFFFE]
    assert modbus_codec.encode(-2, address("int16", byte_order="little")) == [0xFEFF]


def test_scale_and_offset():
    where = address("int16", scale=0.1, offset=-40.0)
    assert modbus_codec.encode(21.5, where) == [615]  # (21.5 + 40) / 0.1
    assert modbus_codec.decode([615], where) == pytest.approx(21.5)
    assert modbus_codec.decode([615], where) == 615 * 0.1 + -40.0  # raw * scale + offset
    assert modbus_codec.as_read(21.53, where) == modbus_codec.decode([615], where)  # rounded
    unscaled = address("uint16")
    assert modbus_codec.decode([7], unscaled) == 7 and isinstance(
        modbus_codec.decode([7], unscaled), int
    )
    assert modbus_codec.value_range(where) == (-32768 * 0.1 - 40.0, 32767 * 0.1 - 40.0)


def test_bits_are_booleans():
    coil = ModbusAddress(connection="plc", table="coil", address=3, type="bool")
    assert modbus_codec.encode(True, coil) == [True]
    assert modbus_codec.decode([False], coil) is False


@pytest.mark.parametrize(
    "value,kind,fields",
    [
        (65536, "uint16", {}),
        (-1, "uint32", {}),
        (40000, "int16", {}),
        (3300.0, "int16", {"scale": 0.1}),  # raw 33000
        (1e39, "float32", {}),
    ],
)
def test_a_value_the_register_cannot_hold_is_an_error(value, kind, fields):
    where = address(kind, **fields)
    with pytest.raises(ValueError):
        modbus_codec.encode(value, where)
    with pytest.raises(ValueError):
        modbus_codec.reader(where)(value)


def test_the_collectors_decoder_is_the_inverse():
    """greengrass_components/data_collector decodes what the simulator encodes, every type and
    order, scaled or not."""
    import sys

    from tests.conftest import PROJECT_ROOT

    src = str(PROJECT_ROOT / "greengrass_components" / "data_collector" / "src")
    if src not in sys.path:
        sys.path.insert(0, src)
    from data_collector.sources import modbus as collector

    rng = random.Random(13)
    for kind, (byte_order, word_order) in itertools.product(TYPES, ORDERS):
        for fields in ({}, {"scale": 0.5, "offset": -3.0}):
            where = address(kind, byte_order, word_order, **fields)
            low, high = modbus_codec.value_range(where)
            values = [rng.uniform(max(low, -1e9), min(high, 1e9)) for _ in range(10)]
            if modbus_codec.is_integer(where.type) and not fields:
                values = [round(v) for v in values]
            for value in values:
                registers = modbus_codec.encode(value, where)
                assert collector.decode(registers, where) == modbus_codec.as_read(value, where)
