"""A plant simulator: the plant config's machines, over OPC UA, Modbus TCP and MQTT on loopback.

``PlantSimulator`` runs a machine per station that reads a machine (state, counters or tags
with a source) and serves each one at the addresses its line's ``collection`` names, so the
DataCollector reads it unchanged. ``python -m plant_sim --config config/demo-plant.yaml`` runs
the demo plant.
"""

from plant_sim.machine import Machine, MachineProfile, SimulatorError
from plant_sim.opcua_server import OpcUaServerSecurity
from plant_sim.simulator import PlantSimulator, SimulatorThread

__all__ = [
    "Machine",
    "MachineProfile",
    "OpcUaServerSecurity",
    "PlantSimulator",
    "SimulatorError",
    "SimulatorThread",
]
