"""Small plants for the simulator's tests: the demo's settings with one test line."""

from __future__ import annotations

import copy
import functools

import yaml

from mes_domain.plant import Plant
from tests.conftest import DEMO_PLANT

SITE, LINE = "plant-site", "test-line"


@functools.cache
def _demo_document() -> dict:
    return yaml.safe_load(DEMO_PLANT.read_text())


def plant_with(stations: list[dict], connections: list[dict]) -> Plant:
    """The demo plant's settings with one site and line holding ``stations``."""
    document = copy.deepcopy(_demo_document())
    document["sites"] = [
        {
            "id": SITE,
            "timezone": "UTC",
            "shift_calendar": document["sites"][0]["shift_calendar"],
            "lines": [
                {"id": LINE, "collection": {"connections": connections}, "stations": stations}
            ],
        }
    ]
    return Plant.model_validate(document)


def modbus(address: int, **fields) -> dict:
    return {"protocol": "modbus", "connection": "plc", "address": address, **fields}


def station(station_id: str, ideal_cycle_time_s: float = 1.0, **fields) -> dict:
    return {"id": station_id, "kind": "press", "ideal_cycle_time_s": ideal_cycle_time_s, **fields}


def counting_station(station_id: str = "m1", bits: int = 32, base: int = 0, **fields) -> dict:
    """A machine with a code state, good/bad counters and one tag, in Modbus registers from
    ``base`` on."""
    counter_type = "uint16" if bits == 16 else "uint32"
    return station(
        station_id,
        state={
            "source": modbus(base),
            "codes": {"1": "RUNNING", "2": "IDLE", "3": "SETUP", "4": "UNPLANNED_STOP"},
        },
        counters={
            "bits": bits,
            "good": modbus(base + 10, type=counter_type),
            "bad": modbus(base + 20, type=counter_type),
        },
        tags=[
            {"name": "force", "unit": "kN", "source": modbus(base + 30, type="int16", scale=0.1)},
        ],
        **fields,
    )


MODBUS_PLC = {"name": "plc", "protocol": "modbus", "host": "127.0.0.1", "port": 15999}
