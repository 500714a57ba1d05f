"""The collection config: connections and addresses are checked where the plant is loaded."""

from __future__ import annotations

import copy

import pytest
import yaml
from pydantic import ValidationError

from mes_domain.collection import (
    CollectorConfig,
    ModbusAddress,
    OpcUaAddress,
    OpcUaConnection,
    collector_configuration,
)
from mes_domain.plant import Plant
from tests.conftest import PROJECT_ROOT

DEMO = yaml.safe_load((PROJECT_ROOT / "config" / "demo-plant.yaml").read_text())


def _line(raw: dict, index: int = 0) -> dict:
    return raw["sites"][0]["lines"][index]


def test_the_demo_plants_lines_collect_over_all_three_protocols():
    plant = Plant.model_validate(DEMO)
    protocols = {
        connection.protocol.value
        for line in plant.sites[0].lines
        for connection in line.collection.connections
    }
    assert protocols == {"opcua", "modbus", "mqtt"}
    assert all(line.collects() for line in plant.sites[0].lines)


def test_the_collector_configuration_round_trips_through_the_components_model():
    plant = Plant.model_validate(DEMO)
    config = collector_configuration(plant, "berlin", "body-line-1")
    parsed = CollectorConfig.model_validate(config)
    press = next(s for s in parsed.stations if s.station == "press-01")
    assert [t.name for t in press.tags] == ["ram_force", "stroke_rate", "die_temperature"]
    assert press.state.codes["6"] == "RUNNING"
    # a station without sources is listed with nothing to read
    vision = next(s for s in parsed.stations if s.station == "vision-01")
    assert vision.tags == [] and vision.state is None


def test_an_address_naming_an_unknown_connection_names_station_and_tag():
    raw = copy.deepcopy(DEMO)
    _line(raw)["stations"][0]["tags"][0]["source"]["connection"] = "nowhere"
    with pytest.raises(ValidationError, match=r"press-01 tag ram_force: connection 'nowhere'"):
        Plant.model_validate(raw)


def test_an_address_of_another_protocol_than_its_connection_is_refused():
    raw = copy.deepcopy(DEMO)
    _line(raw)["stations"][1]["tags"][0]["source"] = {
        "protocol": "opcua",
        "connection": "weld-plc",
        "node_id": "ns=2;i=5",
    }
    with pytest.raises(ValidationError, match="speaks modbus, the address is opcua"):
        Plant.model_validate(raw)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"table": "coil", "type": "uint16"}, "holds bits"),
        ({"table": "holding_register", "type": "bool"}, "holds registers"),
        ({"address": 65534, "type": "float64"}, "runs past register 65535"),
        ({"scale": 0}, "scale 0"),
    ],
)
def test_modbus_addresses_that_cannot_be_read_are_refused(fields, message):
    with pytest.raises(ValidationError, match=message):
        ModbusAddress.model_validate({"connection": "plc", "address": 0, **fields})


def test_an_opcua_address_has_exactly_one_of_node_id_and_browse_path():
    with pytest.raises(ValidationError, match="exactly one"):
        OpcUaAddress(connection="plc")
    with pytest.raises(ValidationError, match="exactly one"):
        OpcUaAddress(connection="plc", node_id="ns=2;i=1", browse_path=["2:a"])


def test_signed_opcua_needs_a_certificate_and_a_password_goes_with_its_user():
    with pytest.raises(ValidationError, match="needs certificate and private_key"):
        OpcUaConnection(
            name="plc",
            endpoint="opc.tcp://127.0.0.1:4840",
            security_policy="Basic256Sha256",
            security_mode="Sign",
        )
    with pytest.raises(ValidationError, match="both None or both set"):
        OpcUaConnection(
            name="plc", endpoint="opc.tcp://127.0.0.1:4840", security_mode="SignAndEncrypt"
        )
    with pytest.raises(ValidationError, match="go together"):
        OpcUaConnection(name="plc", endpoint="opc.tcp://127.0.0.1:4840", username="op")


def test_state_codes_must_map_to_the_products_states():
    raw = copy.deepcopy(DEMO)
    _line(raw)["stations"][0]["state"]["codes"]["6"] = "BUSY"
    with pytest.raises(ValidationError, match="BUSY"):
        Plant.model_validate(raw)


def test_counters_are_good_and_bad_or_total_and_reject():
    raw = copy.deepcopy(DEMO)
    counters = _line(raw)["stations"][0]["counters"]
    counters["total"] = counters["good"]
    with pytest.raises(ValidationError, match="not both"):
        Plant.model_validate(raw)


def test_a_camera_stations_gateway_group_name_is_checked_when_the_plant_loads():
    raw = copy.deepcopy(DEMO)
    line = _line(raw)
    line["id"] = "l" * 64
    raw["sites"][0]["id"] = "s" * 40
    camera = next(s for s in line["stations"] if s.get("camera"))
    camera["id"] = "c" * 20  # prefix-site-line fits 128; ':' + 20 more does not
    with pytest.raises(ValidationError, match=r"(?s)stations\.3\.id.*thing group name"):
        Plant.model_validate(raw)
    camera["id"] = "c" * 5
    Plant.model_validate(raw)


def test_the_readmes_collection_example_is_a_valid_line():
    readme = (PROJECT_ROOT / "README.md").read_text()
    section = readme[readme.index("## Collecting from machines") :]
    example = yaml.safe_load(section[section.index("```yaml") + 7 : section.index("```\n")])
    (line,) = example["lines"]
    for station in line["stations"]:  # the example leaves out what every station has
        station.update(kind="press", ideal_cycle_time_s=6.0)
        for tag in station["tags"]:
            tag["source"]["connection"] = "weld-plc"
    from mes_domain.plant import Line

    parsed = Line.model_validate(line)
    assert parsed.collects()
    assert {c.protocol.value for c in parsed.collection.connections} == {"opcua", "modbus"}
