"""Modbus values <-> 16-bit registers: the one definition of the conventions the simulator writes
and the DataCollector reads back (``data_collector.sources.modbus`` must be its inverse).

Conventions, for a ``mes_domain.collection.ModbusAddress``:

* A register holds 16 bits (an int 0..65535). Coils and discrete inputs hold a ``bool``: type
  ``bool``, and ``scale``/``offset`` do not apply.
* ``raw = (value - offset) / scale`` is what the PLC stores; reading gives
  ``value = raw * scale + offset`` (computed in that order, in float unless ``scale == 1`` and
  ``offset == 0`` on an integer type, where the int is returned). Integer types round ``raw``
  to the nearest integer and refuse one outside the type's range.
* The raw value's bytes are its big-endian two's-complement (int) or IEEE 754 (float32,
  float64) encoding, cut into 16-bit words, most significant word first.
* ``word_order`` is the order of those words over consecutive registers: ``big`` puts the most
  significant word at ``address`` (Modicon / "ABCD"), ``little`` puts the least significant
  there ("CDAB").
* ``byte_order`` is the order of the two bytes inside each register: ``big`` means the word's
  most significant byte is the register's high byte (as Modbus sends it); ``little`` swaps
  the two bytes of every register ("BADC", with little word order "DCBA").
"""

from __future__ import annotations

import math
import struct

from mes_domain.collection import ByteOrder, ModbusAddress, ModbusType

Value = bool | int | float

_STRUCT = {
    ModbusType.INT16: "h",
    ModbusType.UINT16: "H",
    ModbusType.INT32: "i",
    ModbusType.UINT32: "I",
    ModbusType.FLOAT32: "f",
    ModbusType.FLOAT64: "d",
}
_INTEGER_RANGE = {
    ModbusType.INT16: (-(1 << 15), (1 << 15) - 1),
    ModbusType.UINT16: (0, (1 << 16) - 1),
    ModbusType.INT32: (-(1 << 31), (1 << 31) - 1),
    ModbusType.UINT32: (0, (1 << 32) - 1),
}


def is_integer(kind: ModbusType) -> bool:
    return kind in _INTEGER_RANGE


def integer_range(kind: ModbusType) -> tuple[int, int]:
    """The raw values an integer type holds."""
    return _INTEGER_RANGE[kind]


def _swap(word: int) -> int:
    return ((word & 0xFF) << 8) | (word >> 8)


def raw_to_registers(raw: int | float, address: ModbusAddress) -> list[int]:
    """The registers of ``raw`` (already scaled) at ``address``'s type, byte and word order."""
    data = struct.pack(">" + _STRUCT[address.type], raw)
    words = [int.from_bytes(data[i : i + 2], "big") for i in range(0, len(data), 2)]
    if address.word_order is ByteOrder.LITTLE:
        words.reverse()
    if address.byte_order is ByteOrder.LITTLE:
        words = [_swap(w) for w in words]
    return words


def registers_to_raw(registers: list[int], address: ModbusAddress) -> int | float:
    """The inverse of ``raw_to_registers``."""
    words = list(registers)
    if len(words) != address.type.registers:
        raise ValueError(f"{address.type} is {address.type.registers} registers, not {len(words)}")
    if address.byte_order is ByteOrder.LITTLE:
        words = [_swap(w) for w in words]
    if address.word_order is ByteOrder.LITTLE:
        words.reverse()
    data = b"".join(w.to_bytes(2, "big") for w in words)
    return struct.unpack(">" + _STRUCT[address.type], data)[0]


def to_raw(value: Value, address: ModbusAddress) -> int | float:
    """``(value - offset) / scale``, rounded and range-checked for integer types."""
    if address.scale == 0:
        raise ValueError(f"{address.connection} {address.table} {address.address}: scale is 0")
    if isinstance(value, int) and address.scale == 1 and address.offset == 0:
        raw: int | float = int(value)  # exact for the 32-bit counters, no float on the way
    else:
        raw = (value - address.offset) / address.scale
    if not is_integer(address.type):
        if address.type is ModbusType.FLOAT32 and math.isfinite(raw) and abs(raw) > 3.4028234e38:
            raise ValueError(f"{value} does not fit float32 at {address.address}")
        return float(raw)
    if not math.isfinite(raw):
        raise ValueError(f"{value} gives a raw value of {raw} at {address.address}")
    rounded = round(raw)
    low, high = _INTEGER_RANGE[address.type]
    if not low <= rounded <= high:
        raise ValueError(
            f"{value} is raw {rounded} at {address.connection} {address.table} "
            f"{address.address}, outside {address.type} ({low}..{high})"
        )
    return rounded


def from_raw(raw: int | float, address: ModbusAddress) -> int | float:
    """``raw * scale + offset``; an int for an unscaled integer type."""
    if is_integer(address.type) and address.scale == 1 and address.offset == 0:
        return int(raw)
    return raw * address.scale + address.offset


def encode(value: Value, address: ModbusAddress) -> list[int] | list[bool]:
    """What the PLC holds for ``value`` at ``address``: registers, or ``[bool]`` for a bit."""
    if address.table.is_bits:
        return [bool(value)]
    return raw_to_registers(to_raw(value, address), address)


def decode(data: list[int] | list[bool], address: ModbusAddress) -> Value:
    """The value a reader gets from the registers (or the bit) at ``address``."""
    if address.table.is_bits:
        return bool(data[0])
    return from_raw(registers_to_raw(list(data), address), address)


def as_read(value: Value, address: ModbusAddress) -> Value:
    """``value`` after a trip through the PLC: rounded to the type, scale and offset."""
    return decode(encode(value, address), address)


def reader(address: ModbusAddress):
    """A fast ``as_read`` for one address (byte and word order only permute the bytes, so the
    value read back depends on the type, scale and offset alone)."""
    if address.table.is_bits:
        return bool
    if is_integer(address.type):
        low, high = _INTEGER_RANGE[address.type]
        scale, offset = address.scale, address.offset
        plain = scale == 1 and offset == 0

        def integer(value):
            if plain and isinstance(value, int):
                raw = int(value)
            else:
                raw = round((value - offset) / scale)
            if not low <= raw <= high:
                return as_read(value, address)  # raises, naming the address
            return raw if plain else raw * scale + offset

        return integer
    fmt, scale, offset = ">" + _STRUCT[address.type], address.scale, address.offset

    def floating(value):
        try:
            raw = struct.unpack(fmt, struct.pack(fmt, (value - offset) / scale))[0]
        except (OverflowError, struct.error):
            return as_read(value, address)  # raises, naming the address
        return raw * scale + offset

    return floating


def value_range(address: ModbusAddress) -> tuple[float, float]:
    """The values an integer type can carry at this scale and offset (floats: unbounded)."""
    if not is_integer(address.type):
        return (-math.inf, math.inf)
    low, high = _INTEGER_RANGE[address.type]
    ends = (low * address.scale + address.offset, high * address.scale + address.offset)
    return (min(ends), max(ends))
