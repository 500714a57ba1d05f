"""The simulated machines: deterministic per seed, counters that roll over and restart, and
failure statistics that match the configured MTBF and MTTR."""

from __future__ import annotations

import asyncio
import statistics
import time
from itertools import pairwise

import pytest

from mes_domain.contracts import EquipmentState
from plant_sim import MachineProfile, PlantSimulator, SimulatorError
from plant_sim.machine import COUNTER_BAD, COUNTER_GOOD, PLANNED_STOP, STATE
from tests.plant_sim.conftest import (
    LINE,
    MODBUS_PLC,
    SITE,
    counting_station,
    modbus,
    plant_with,
    station,
)

# A machine that only runs: no failures, starving, changeovers or scrap.
STEADY = MachineProfile(
    mtbf_s=1e12, idle_probability=0.0, setup_every_parts=None, scrap_rate=0.0, cycle_jitter=0.0
)


def run(plant, seed: int, chunks: list[float], **options) -> PlantSimulator:
    simulator = PlantSimulator(plant, seed=seed, start_ms=0, **options)
    for seconds in chunks:
        simulator.advance(seconds)
    return simulator


def fingerprint(simulator: PlantSimulator) -> dict:
    return {
        path: (list(m.history), m.good, m.bad, m.failures, m.values(), dict(m.changed_at))
        for path, m in simulator.machines.items()
    }


def test_a_seed_gives_one_run_however_time_is_advanced():
    plant = plant_with([counting_station("m1"), counting_station("m2", base=100)], [MODBUS_PLC])
    whole = run(plant, 7, [7200.0])
    uneven = [0.001, 13.7, 600.0, 0.25, 1000.0, 0.0, 2000.049, 3586.0]
    assert sum(uneven) == pytest.approx(7200.0)
    chunked = run(plant, 7, uneven)
    chunked.advance(7200.0 - chunked.now_s)
    assert fingerprint(chunked) == fingerprint(whole)
    assert whole.machine(SITE, LINE, "m1").good > 100  # it really ran
    # Two stations of one seed do not run in lock step: their streams come from their paths.
    m1, m2 = (whole.machine(SITE, LINE, s) for s in ("m1", "m2"))
    assert list(m1.history) != list(m2.history)


def test_another_seed_gives_another_run():
    plant = plant_with([counting_station()], [MODBUS_PLC])
    assert fingerprint(run(plant, 1, [7200.0])) != fingerprint(run(plant, 2, [7200.0]))


def test_a_station_runs_the_same_whatever_else_the_plant_holds():
    alone = run(plant_with([counting_station("m1")], [MODBUS_PLC]), 3, [3600.0])
    crowded = run(
        plant_with([counting_station("m0", base=100), counting_station("m1")], [MODBUS_PLC]),
        3,
        [3600.0],
    )
    assert list(alone.machine(SITE, LINE, "m1").history) == list(
        crowded.machine(SITE, LINE, "m1").history
    )
    assert alone.machine(SITE, LINE, "m1").values() == crowded.machine(SITE, LINE, "m1").values()


def test_sixteen_bit_counters_roll_over_to_zero():
    plant = plant_with([counting_station(bits=16, ideal_cycle_time_s=0.01)], [MODBUS_PLC])
    simulator = PlantSimulator(plant, profiles=STEADY, tag_period_s=1000.0)
    machine = simulator.machine(SITE, LINE, "m1")
    seen = []
    for _ in range(70):  # 70,000 parts of 10 ms
        simulator.advance(10.0)
        seen.append(machine.value(COUNTER_GOOD))
    assert machine.good == 70_000
    assert machine.value(COUNTER_GOOD) == 70_000 - 65_536
    wraps = [i for i in range(1, len(seen)) if seen[i] < seen[i - 1]]
    assert len(wraps) == 1 and seen[wraps[0] - 1] <= 65_535


def test_thirty_two_bit_counters_roll_over_and_a_plc_restart_resets_them():
    plant = plant_with([counting_station(bits=32, ideal_cycle_time_s=1.0)], [MODBUS_PLC])
    simulator = PlantSimulator(plant, profiles=STEADY, tag_period_s=1000.0)
    machine = simulator.machine(SITE, LINE, "m1")
    machine.set_plc_counters(good=2**32 - 3, bad=7)
    simulator.advance(5.0)  # five parts: 2**32 - 2, 2**32 - 1, 0, 1, 2
    assert machine.good == 5
    assert machine.value(COUNTER_GOOD) == 2
    assert machine.value(COUNTER_BAD) == 7

    simulator.restart_plc(SITE, LINE, "m1")
    assert (machine.value(COUNTER_GOOD), machine.value(COUNTER_BAD)) == (0, 0)
    simulator.advance(3.0)
    assert machine.value(COUNTER_GOOD) == 3
    assert machine.good == 8  # what was made stays made
    assert machine.plc_restarts == 1


def test_total_and_reject_counters_follow_good_and_bad():
    counters = {"bits": 32, "total": modbus(10, type="uint32"), "reject": modbus(12, type="uint32")}
    plant = plant_with([station("m1", counters=counters)], [MODBUS_PLC])
    simulator = PlantSimulator(plant, seed=5, profiles=MachineProfile(scrap_rate=0.2))
    simulator.advance(3600.0)
    machine = simulator.machine(SITE, LINE, "m1")
    assert machine.bad > 0
    assert machine.values() == {
        "counter.total": machine.good + machine.bad,
        "counter.reject": machine.bad,
    }


def test_failures_and_repairs_follow_mtbf_and_mttr():
    profile = MachineProfile(
        mtbf_s=600.0, mttr_s=60.0, idle_probability=0.0, setup_every_parts=None, scrap_rate=0.05
    )
    plant = plant_with([counting_station(ideal_cycle_time_s=10.0)], [MODBUS_PLC])
    simulator = PlantSimulator(plant, seed=11, profiles=profile, tag_period_s=1e6)
    simulator.advance(1_000_000.0)
    machine = simulator.machine(SITE, LINE, "m1")
    history = list(machine.history)
    spans = [(state, end - start) for (start, state), (end, _) in pairwise(history)]
    up = [d for s, d in spans if s is EquipmentState.RUNNING]
    down = [d for s, d in spans if s is EquipmentState.UNPLANNED_STOP]
    assert len(down) == machine.failures > 1000
    # exponential: the mean of ~1500 draws is within 4 standard errors (~10 %)
    assert statistics.mean(up) == pytest.approx(600.0, rel=0.1)
    assert statistics.mean(down) == pytest.approx(60.0, rel=0.1)
    assert machine.bad / (machine.good + machine.bad) == pytest.approx(0.05, rel=0.1)
    # A cycle is never faster than ideal and the jitter makes it ~4 % slower on average.
    running = sum(up)
    assert running / (machine.good + machine.bad) >= 10.0
    assert running / (machine.good + machine.bad) == pytest.approx(10.4, rel=0.03)


def test_the_state_point_shows_the_code_of_each_state():
    plant = plant_with([counting_station(ideal_cycle_time_s=5.0)], [MODBUS_PLC])
    profile = MachineProfile(mtbf_s=300.0, idle_probability=0.05, setup_every_parts=50)
    simulator = PlantSimulator(plant, seed=2, profiles=profile)
    machine = simulator.machine(SITE, LINE, "m1")
    codes = {"RUNNING": 1, "IDLE": 2, "SETUP": 3, "UNPLANNED_STOP": 4}
    seen = set()
    for _ in range(2000):
        simulator.advance(5.0)
        assert machine.value(STATE) == codes[machine.state.value]
        seen.add(machine.state.value)
    assert seen == set(codes)


def test_a_state_the_code_map_lacks_shows_a_code_it_does_not_know():
    state = {"source": modbus(0), "codes": {"6": "RUNNING", "9": "UNPLANNED_STOP"}}
    plant = plant_with([station("m1", state=state)], [MODBUS_PLC])
    profile = MachineProfile(idle_probability=0.5, setup_every_parts=None)
    simulator = PlantSimulator(plant, seed=1, profiles=profile)
    machine = simulator.machine(SITE, LINE, "m1")
    while machine.state is not EquipmentState.IDLE:
        simulator.advance(1.0)
    assert machine.value(STATE) == 10  # not in the map: the collector's unknown_state


def test_tag_values_stay_in_range_at_the_registers_resolution():
    plant = plant_with([counting_station()], [MODBUS_PLC])
    simulator = PlantSimulator(plant, seed=4)
    machine = simulator.machine(SITE, LINE, "m1")
    forces = set()
    for _ in range(600):
        simulator.advance(1.0)
        force = machine.value("force")
        assert 200.0 <= force <= 800.0
        assert round(force * 10) == pytest.approx(force * 10, abs=1e-6)  # int16, scale 0.1
        forces.add(force)
    assert len(forces) > 100  # it moves


def test_boolean_and_string_tags_change_with_the_parts():
    opcua = {"name": "ua", "protocol": "opcua", "endpoint": "opc.tcp://127.0.0.1:4999/x"}
    tags = [
        {"name": "clamped", "data_type": "boolean", "source": modbus(0, table="coil", type="bool")},
        {
            "name": "program",
            "data_type": "string",
            "source": {"protocol": "opcua", "connection": "ua", "node_id": "ns=2;s=program"},
        },
    ]
    plant = plant_with([station("m1", tags=tags)], [MODBUS_PLC, opcua])
    simulator = PlantSimulator(plant, profiles=STEADY)
    machine = simulator.machine(SITE, LINE, "m1")
    flags, programs = [], []
    for _ in range(40):
        simulator.advance(1.0)
        flags.append(machine.value("clamped"))
        programs.append(machine.value("program"))
    assert flags == [i % 2 == 0 for i in range(40)]  # toggles with each part
    assert len(set(programs)) == 4 and all(isinstance(p, str) for p in programs)
    assert programs[9] != programs[8] and programs[8] == programs[0]  # every 10 parts


def test_counters_that_the_register_type_cannot_hold_are_refused():
    thirty_two_in_sixteen = counting_station(bits=32)
    thirty_two_in_sixteen["counters"]["good"] = modbus(10, type="uint16")
    plant = plant_with([thirty_two_in_sixteen], [MODBUS_PLC])
    with pytest.raises(SimulatorError, match=r"m1 counter.good: a 32-bit counter does not fit"):
        PlantSimulator(plant)


@pytest.mark.parametrize(
    "connection",
    [
        {"name": "plc", "protocol": "modbus", "host": "10.1.2.3", "port": 502},
        {"name": "plc", "protocol": "modbus", "host": "plc.example.com", "port": 502},
    ],
)
def test_a_machine_off_this_host_is_refused(connection):
    plant = plant_with([counting_station()], [connection])
    with pytest.raises(SimulatorError, match=r"Modbus connection plc: host .* is not a loopback"):
        PlantSimulator(plant)


def test_an_opcua_endpoint_off_this_host_is_refused():
    opcua = {"name": "ua", "protocol": "opcua", "endpoint": "opc.tcp://192.168.0.10:4840/x"}
    source = {"protocol": "opcua", "connection": "ua", "node_id": "ns=2;s=x"}
    plant = plant_with([station("m1", tags=[{"name": "x", "source": source}])], [opcua])
    with pytest.raises(SimulatorError, match=r"OPC UA connection ua .* not a loopback"):
        PlantSimulator(plant)


def test_time_runs_forward_only():
    simulator = PlantSimulator(plant_with([counting_station()], [MODBUS_PLC]))
    with pytest.raises(SimulatorError):
        simulator.advance(-1.0)


def test_real_time_runs_the_machines_at_the_speed_factor():
    simulator = PlantSimulator(plant_with([counting_station()], [MODBUS_PLC]), start_ms=0)
    began = time.monotonic()
    asyncio.run(simulator.run_realtime(speed=200.0, duration_s=0.5, tick_s=0.02))
    wall = time.monotonic() - began
    assert 0.5 <= wall < 2.0
    assert simulator.now_s == pytest.approx(200.0 * wall, rel=0.25)
    assert simulator.machine(SITE, LINE, "m1").now == simulator.now_s
    assert simulator.machine(SITE, LINE, "m1").good > 0


def test_planned_stops_come_on_time_and_pause_what_they_interrupt():
    profile = MachineProfile(
        mtbf_s=900.0, mttr_s=300.0, planned_stop_every_s=3600.0, planned_stop_s=600.0
    )
    plant = plant_with([counting_station(ideal_cycle_time_s=20.0)], [MODBUS_PLC])
    simulator = PlantSimulator(plant, seed=6, profiles=profile)
    simulator.advance(48 * 3600.0)
    machine = simulator.machine(SITE, LINE, "m1")
    history = list(machine.history)
    breaks = [(t, next_t) for (t, s), (next_t, _) in pairwise(history) if s is PLANNED_STOP]
    assert [t for t, _ in breaks] == [3600.0 * k for k in range(1, 48)]
    assert all(end - start == pytest.approx(600.0) for start, end in breaks)
    after = [state for (t, s), (_, state) in pairwise(history) if s is PLANNED_STOP]
    assert EquipmentState.RUNNING in after and set(after) - {EquipmentState.RUNNING}  # resumed
    # Nothing is made and nothing fails during a break.
    spans = list(pairwise(history))
    for (start, state), (end, _) in spans:
        if state is PLANNED_STOP:
            assert not any(start < t < end for t, _ in history)


def test_a_break_before_a_failure_keeps_the_running_time_left():
    profile = MachineProfile(
        idle_probability=0.0,
        setup_every_parts=None,
        planned_stop_every_s=100.0,
        planned_stop_s=10.0,
        mtbf_s=1e9,
        cycle_jitter=0.0,
    )
    plant = plant_with([counting_station(ideal_cycle_time_s=1.0)], [MODBUS_PLC])
    simulator = PlantSimulator(plant, seed=1, profiles=profile)
    simulator.advance(1050.0)  # the tenth break ended at 1010
    machine = simulator.machine(SITE, LINE, "m1")
    assert machine.failures == 0 and machine.state is EquipmentState.RUNNING
    assert machine.good + machine.bad == 1050 - 10 * 10
    states = {s for _, s in machine.history}
    assert states == {EquipmentState.RUNNING, PLANNED_STOP}
