"""Where a station's data comes from: the machine connections of a line and each tag's address.

The plant config declares them; the stacks validate them at synth, and the DataCollector edge
component reads the same models back from its deployment configuration
(``collector_configuration``), so the cloud and the gateway agree by construction.

A line's gateway owns its ``connections`` (an OPC UA server, a Modbus TCP device or a plant MQTT
broker each); a tag, a station's state or its counters name a connection and an address in it.
A tag without a source is published by the machine itself (MQTT to AWS IoT Core), as before.
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field, FiniteFloat, model_validator

from mes_domain.contracts import EquipmentState, StrictModel
from mes_domain.ids import Identifier, unique_by

# AWS IoT Core's largest MQTT payload (128 KB): a TelemetryBatch is cut before it.
# https://docs.aws.amazon.com/general/latest/gr/iot-core.html#message-broker-limits
IOT_CORE_MAX_PAYLOAD_BYTES = 128 * 1024
# Its per-connection publish quotas (same page): requests per second, and throughput.
IOT_CORE_PUBLISHES_PER_S = 100
IOT_CORE_BYTES_PER_S = 512 * 1024

HOST = re.compile(r"[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?|\[[0-9A-Fa-f:]+\]")
OPCUA_ENDPOINT = re.compile(r"opc\.tcp://[^\s/:]+(:\d{1,5})?(/\S*)?")
# A dotted path into a JSON document: $.a.b[0].c
JSON_PATH = re.compile(r"\$(\.[A-Za-z_][A-Za-z0-9_-]*|\[\d+\])+")
PORT = Annotated[int, Field(ge=1, le=65535)]


def _host(value: str) -> str:
    if not HOST.fullmatch(value):
        raise ValueError(f"{value!r} is not a host name or IP address")
    return value


def _endpoint(value: str) -> str:
    if not OPCUA_ENDPOINT.fullmatch(value):
        raise ValueError(f"{value!r} is not an OPC UA endpoint (opc.tcp://host:port/path)")
    return value


def _json_path(value: str) -> str:
    if not JSON_PATH.fullmatch(value):
        raise ValueError(f"{value!r} is not a JSON path such as $.sensors.force or $.values[0]")
    return value


def _mqtt_filter(value: str) -> str:
    levels = value.split("/")
    if not value or any(("#" in lv and lv != "#") or ("+" in lv and lv != "+") for lv in levels):
        raise ValueError(f"{value!r} is not an MQTT topic filter")
    if "#" in levels[:-1]:
        raise ValueError(f"{value!r}: '#' must be the last level of an MQTT topic filter")
    return value


Host = Annotated[str, AfterValidator(_host)]
JsonPath = Annotated[str, AfterValidator(_json_path)]
GatewayPath = Annotated[str, Field(min_length=1, max_length=1024)]  # a file on the gateway


class Protocol(StrEnum):
    OPCUA = "opcua"
    MODBUS = "modbus"
    MQTT = "mqtt"


# ---- connections -----------------------------------------------------------------------------


class OpcUaSecurityPolicy(StrEnum):
    NONE = "None"
    BASIC256SHA256 = "Basic256Sha256"


class OpcUaSecurityMode(StrEnum):
    NONE = "None"
    SIGN = "Sign"
    SIGN_AND_ENCRYPT = "SignAndEncrypt"


class OpcUaConnection(StrictModel):
    protocol: Literal[Protocol.OPCUA] = Protocol.OPCUA
    name: Identifier
    endpoint: Annotated[str, AfterValidator(_endpoint)]
    security_policy: OpcUaSecurityPolicy = OpcUaSecurityPolicy.NONE
    security_mode: OpcUaSecurityMode = OpcUaSecurityMode.NONE
    certificate: GatewayPath | None = None  # the gateway's client certificate (DER or PEM)
    private_key: GatewayPath | None = None
    server_certificate: GatewayPath | None = None
    username: Annotated[str, Field(min_length=1, max_length=256)] | None = None
    password_file: GatewayPath | None = None  # read on the gateway, never in the config
    reconnect_max_s: Annotated[FiniteFloat, Field(gt=0, le=600)] = 30.0

    @model_validator(mode="after")
    def _security_consistent(self) -> OpcUaConnection:
        secure = self.security_policy is not OpcUaSecurityPolicy.NONE
        if secure != (self.security_mode is not OpcUaSecurityMode.NONE):
            raise ValueError(
                f"connection {self.name}: security_policy and security_mode are both None or "
                "both set"
            )
        if secure and not (self.certificate and self.private_key):
            raise ValueError(
                f"connection {self.name}: {self.security_policy} needs certificate and private_key"
            )
        if (self.username is None) != (self.password_file is None):
            raise ValueError(f"connection {self.name}: username and password_file go together")
        return self


class ModbusConnection(StrictModel):
    protocol: Literal[Protocol.MODBUS] = Protocol.MODBUS
    name: Identifier
    host: Host
    port: PORT = 502
    unit_id: Annotated[int, Field(ge=0, le=255)] = 1
    poll_interval_ms: Annotated[int, Field(ge=10, le=3_600_000)] = 1000
    timeout_ms: Annotated[int, Field(ge=10, le=60_000)] = 2000
    # Registers read in one request at most (Modbus allows 125 registers / 2000 bits).
    max_block_registers: Annotated[int, Field(ge=1, le=125)] = 125


class MqttConnection(StrictModel):
    protocol: Literal[Protocol.MQTT] = Protocol.MQTT
    name: Identifier
    host: Host
    port: PORT = 1883
    ca_file: GatewayPath | None = None  # set: TLS
    certificate: GatewayPath | None = None
    private_key: GatewayPath | None = None
    username: Annotated[str, Field(min_length=1, max_length=256)] | None = None
    password_file: GatewayPath | None = None


Connection = Annotated[
    OpcUaConnection | ModbusConnection | MqttConnection, Field(discriminator="protocol")
]


# ---- addresses -------------------------------------------------------------------------------


class DeadbandType(StrEnum):
    NONE = "none"
    ABSOLUTE = "absolute"
    PERCENT = "percent"


class OpcUaAddress(StrictModel):
    """A node by NodeId (``ns=2;s=Press.RamForce``) or by browse path from Objects
    (``["2:Press", "2:RamForce"]``), sampled by a subscription."""

    protocol: Literal[Protocol.OPCUA] = Protocol.OPCUA
    connection: Identifier
    node_id: Annotated[str, Field(min_length=1, max_length=4096)] | None = None
    browse_path: (
        Annotated[list[Annotated[str, Field(min_length=1)]], Field(min_length=1)] | None
    ) = None
    sampling_interval_ms: Annotated[int, Field(ge=0, le=3_600_000)] = 1000
    deadband_type: DeadbandType = DeadbandType.NONE
    deadband: Annotated[FiniteFloat, Field(ge=0)] = 0.0

    @model_validator(mode="after")
    def _one_way_to_the_node(self) -> OpcUaAddress:
        if (self.node_id is None) == (self.browse_path is None):
            raise ValueError("an OPC UA address has exactly one of node_id and browse_path")
        if self.deadband_type is DeadbandType.PERCENT and self.deadband > 100:
            raise ValueError("a percent deadband is at most 100")
        return self


class ModbusTable(StrEnum):
    HOLDING_REGISTER = "holding_register"
    INPUT_REGISTER = "input_register"
    COIL = "coil"
    DISCRETE_INPUT = "discrete_input"

    @property
    def is_bits(self) -> bool:
        return self in (ModbusTable.COIL, ModbusTable.DISCRETE_INPUT)


class ModbusType(StrEnum):
    BOOL = "bool"
    INT16 = "int16"
    UINT16 = "uint16"
    INT32 = "int32"
    UINT32 = "uint32"
    FLOAT32 = "float32"
    FLOAT64 = "float64"

    @property
    def registers(self) -> int:
        return {"bool": 1, "int16": 1, "uint16": 1, "int32": 2, "uint32": 2}.get(
            self.value, 2 if self is ModbusType.FLOAT32 else 4
        )


class ByteOrder(StrEnum):
    BIG = "big"
    LITTLE = "little"


class ModbusAddress(StrictModel):
    """A value at ``address`` (0-based) of ``table``; read value = raw * scale + offset."""

    protocol: Literal[Protocol.MODBUS] = Protocol.MODBUS
    connection: Identifier
    table: ModbusTable = ModbusTable.HOLDING_REGISTER
    address: Annotated[int, Field(ge=0, le=65535)]
    type: ModbusType = ModbusType.UINT16
    byte_order: ByteOrder = ByteOrder.BIG  # within each 16-bit register
    word_order: ByteOrder = ByteOrder.BIG  # of the registers of a 32- or 64-bit value
    scale: FiniteFloat = 1.0
    offset: FiniteFloat = 0.0

    @model_validator(mode="after")
    def _fits(self) -> ModbusAddress:
        if self.table.is_bits != (self.type is ModbusType.BOOL):
            raise ValueError(
                f"{self.table} holds {'bits: type bool' if self.table.is_bits else 'registers'}"
                f", not {self.type}"
            )
        if self.scale == 0:
            raise ValueError("scale 0 would make every reading the offset")
        if self.address + self.type.registers - 1 > 65535:
            raise ValueError(f"{self.type} at {self.address} runs past register 65535")
        return self


class MqttAddress(StrictModel):
    """A value inside the JSON messages of a plant broker's topic."""

    protocol: Literal[Protocol.MQTT] = Protocol.MQTT
    connection: Identifier
    topic: Annotated[str, AfterValidator(_mqtt_filter)]
    path: JsonPath
    timestamp_path: JsonPath | None = None  # epoch ms in the message; else the arrival time


Address = Annotated[OpcUaAddress | ModbusAddress | MqttAddress, Field(discriminator="protocol")]


# ---- what a station derives ----------------------------------------------------------------


class CodeStateSource(StrictModel):
    """A state code (PackML state number or a vendor code) mapped to the product's states;
    an unmapped code is reported and taken as ``unknown_state``."""

    source: Address
    codes: Annotated[dict[str, str], Field(min_length=1)]
    unknown_state: str = "UNPLANNED_STOP"

    @model_validator(mode="after")
    def _known_states(self) -> CodeStateSource:
        for state in (*self.codes.values(), self.unknown_state):
            EquipmentState(state)  # raises with the allowed values
        return self


class BooleanStateSource(StrictModel):
    """Booleans, in priority order fault > setup > running; none true means IDLE."""

    running: Address
    fault: Address | None = None
    setup: Address | None = None


class CounterSource(StrictModel):
    """Cumulative counters of the PLC: good and bad, or total and reject (good = total - reject).
    ``bits`` is where the counter rolls over (16 or 32)."""

    good: Address | None = None
    bad: Address | None = None
    total: Address | None = None
    reject: Address | None = None
    bits: Literal[16, 32, 64] = 32

    @model_validator(mode="after")
    def _one_pairing(self) -> CounterSource:
        pairs = (self.good is not None or self.bad is not None, self.total is not None)
        if pairs[0] == pairs[1]:
            raise ValueError("counters are good (and bad) or total (and reject), not both")
        if pairs[0] and self.good is None:
            raise ValueError("counters with bad need good")
        if self.reject is not None and self.total is None:
            raise ValueError("counters with reject need total")
        return self


def addresses_of(
    value: CodeStateSource | BooleanStateSource | CounterSource | None,
) -> list[Address]:
    if value is None:
        return []
    if isinstance(value, CodeStateSource):
        return [value.source]
    names = ("running", "fault", "setup", "good", "bad", "total", "reject")
    return [a for name in names if (a := getattr(value, name, None)) is not None]


class CollectionSettings(StrictModel):
    """A line gateway's DataCollector: its machine connections and how it batches and spools."""

    connections: Annotated[list[Connection], unique_by("name", "connection name")] = []
    max_batch_delay_ms: Annotated[int, Field(ge=10, le=60_000)] = 1000
    max_batch_bytes: Annotated[int, Field(ge=1024, le=IOT_CORE_MAX_PAYLOAD_BYTES)] = (
        IOT_CORE_MAX_PAYLOAD_BYTES
    )
    spool_max_bytes: Annotated[int, Field(ge=1 << 20)] = 1 << 30
    # AWS IoT Core takes at most 100 publishes/s and 512 KB/s per connection
    # (https://docs.aws.amazon.com/general/latest/gr/iot-core.html#message-broker-limits); half
    # by default, as on Greengrass the connection is the nucleus's, shared with other components.
    max_publishes_per_s: Annotated[int, Field(ge=1, le=IOT_CORE_PUBLISHES_PER_S)] = 50
    max_publish_bytes_per_s: Annotated[
        int, Field(ge=IOT_CORE_MAX_PAYLOAD_BYTES, le=IOT_CORE_BYTES_PER_S)
    ] = 256 * 1024

    def connection(self, name: str) -> OpcUaConnection | ModbusConnection | MqttConnection:
        for connection in self.connections:
            if connection.name == name:
                return connection
        raise KeyError(name)


def check_addresses(settings: CollectionSettings, where: str, addresses: list[Address]) -> None:
    """Each address names a connection of the line, of its own protocol."""
    for address in addresses:
        try:
            connection = settings.connection(address.connection)
        except KeyError:
            known = ", ".join(c.name for c in settings.connections) or "none"
            raise ValueError(
                f"{where}: connection {address.connection!r} is not one of the line's "
                f"collection.connections ({known})"
            ) from None
        if connection.protocol != address.protocol:
            raise ValueError(
                f"{where}: connection {address.connection!r} speaks {connection.protocol}, "
                f"the address is {address.protocol}"
            )


def collector_configuration(plant: Any, site_id: str, line_id: str) -> dict[str, Any]:
    """The DataCollector's deployment configuration for one line's gateway: JSON the component
    parses back into ``CollectorConfig``."""
    site = next(s for s in plant.sites if s.id == site_id)
    line = next(candidate for candidate in site.lines if candidate.id == line_id)
    stations = [
        {
            "station": station.id,
            "tags": [
                {"name": tag.name, "unit": tag.unit, "source": tag.source.model_dump(mode="json")}
                for tag in station.tags
                if tag.source is not None
            ],
            "state": station.state.model_dump(mode="json") if station.state else None,
            "counters": station.counters.model_dump(mode="json") if station.counters else None,
        }
        for station in line.stations
    ]
    config = CollectorConfig(
        site=site.id,
        line=line.id,
        rule_prefix=plant.deployment.stack_prefix,
        settings=line.collection,
        stations=[CollectedStation.model_validate(s) for s in stations],
    )
    return config.model_dump(mode="json")


class CollectedTag(StrictModel):
    name: Identifier
    unit: str | None = None
    source: Address


class CollectedStation(StrictModel):
    station: Identifier
    tags: list[CollectedTag] = []
    state: CodeStateSource | BooleanStateSource | None = None
    counters: CounterSource | None = None


class CollectorConfig(StrictModel):
    """What one line's DataCollector reads (its ``collector`` configuration key)."""

    site: Identifier
    line: Identifier
    settings: CollectionSettings
    stations: list[CollectedStation]
    # The stack prefix naming the IIoT stack's topic rules (mes_domain.naming.rule_name): set,
    # routed kinds go straight to their rule through Basic Ingest; None, to the broker.
    rule_prefix: Annotated[str, Field(pattern=r"^[A-Za-z][A-Za-z0-9-]{0,63}$")] | None = None

    @model_validator(mode="after")
    def _addresses_known(self) -> CollectorConfig:
        for station in self.stations:
            where = f"{self.site}/{self.line}/{station.station}"
            for tag in station.tags:
                check_addresses(self.settings, f"{where} tag {tag.name}", [tag.source])
            check_addresses(self.settings, f"{where} state", addresses_of(station.state))
            check_addresses(self.settings, f"{where} counters", addresses_of(station.counters))
        return self


# The component's name and what its recipe's accessControl allows, rendered for one line: the
# per-line deployment merges this over the recipe's default configuration (an IPC authorization
# policy is configuration: docs.aws.amazon.com/greengrass/v2/developerguide/
# update-component-configurations.html#merge-configuration-update).
DATA_COLLECTOR_COMPONENT = "com.acme.mes.DataCollector"
COLLECTED_KINDS = ("telemetry", "state", "count", "event")


def station_kinds(station: CollectedStation) -> list[str]:
    """What the collector publishes for ``station``: telemetry for the tags it reads, state
    changes for a state source, part counts for counters, and events (unknown state codes,
    counter resets, spool drops) for any station it reads at all."""
    kinds = [
        kind
        for kind, present in (
            ("telemetry", station.tags),
            ("state", station.state),
            ("count", station.counters),
        )
        if present
    ]
    return [*kinds, "event"] if kinds else []


def collector_topics(config: CollectorConfig) -> list[str]:
    """Every topic the line's collector publishes on, exactly: routed kinds through Basic
    Ingest to the stack's rules when ``rule_prefix`` is set, events to the broker."""
    from mes_domain.naming import ingest_topic
    from mes_domain.topics import MessageKind, StationTopic

    return [
        ingest_topic(
            StationTopic(config.site, config.line, station.station, MessageKind(kind)),
            config.rule_prefix,
        )
        for station in config.stations
        for kind in station_kinds(station)
    ]


def collector_component_configuration(plant: Any, site_id: str, line_id: str) -> dict[str, Any]:
    """The DataCollector's configuration for one line's deployment (a MERGE update): what it
    reads (settings left at their defaults omitted) and exactly the IoT Core topics it may
    publish on."""
    collector = CollectorConfig.model_validate(collector_configuration(plant, site_id, line_id))
    return {
        "collector": _without_defaults(collector),
        "accessControl": {
            "aws.greengrass.ipc.mqttproxy": {
                f"{DATA_COLLECTOR_COMPONENT}:mqttproxy:1": {
                    "policyDescription": "Publish this line's readings, states, counts and "
                    "events to AWS IoT Core.",
                    "operations": ["aws.greengrass#PublishToIoTCore"],
                    "resources": collector_topics(collector),
                }
            }
        },
    }


def _without_defaults(config: CollectorConfig) -> dict[str, Any]:
    """``config`` as JSON without the values left at their defaults, but with every
    ``protocol``: it tells the connection and address kinds apart."""
    full = config.model_dump(mode="json")
    small = config.model_dump(mode="json", exclude_defaults=True)

    def keep_protocol(full_value: Any, small_value: Any) -> Any:
        if isinstance(full_value, dict) and isinstance(small_value, dict):
            out = {k: keep_protocol(full_value[k], v) for k, v in small_value.items()}
            if "protocol" in full_value:
                out = {"protocol": full_value["protocol"], **out}
            return out
        if isinstance(full_value, list) and isinstance(small_value, list):
            return [keep_protocol(f, s) for f, s in zip(full_value, small_value, strict=True)]
        return small_value

    return keep_protocol(full, small)
