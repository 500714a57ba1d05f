"""``python -m plant_sim`` serves the demo plant: OPC UA, Modbus and MQTT answer while it runs,
and it stops by itself after ``--duration``, taking its private Mosquitto with it.

The demo config is copied with free ports, so the test never collides with another run."""

from __future__ import annotations

import asyncio
import json
import queue
import subprocess
import sys
import threading
import time
from urllib.parse import urlparse

import pytest
import yaml
from asyncua import Client
from pymodbus.client import AsyncModbusTcpClient

from greengrass_components.common.mqtt5_transport import Mqtt5Transport
from tests.conftest import DEMO_PLANT, PROJECT_ROOT
from tests.greengrass.broker import accepting, free_port, mosquitto_binary, wait_for


def demo_on_free_ports(path) -> dict[str, int]:
    document = yaml.safe_load(DEMO_PLANT.read_text())
    ports = {}
    for site in document["sites"]:
        for line in site["lines"]:
            for connection in line.get("collection", {}).get("connections", []):
                port = free_port()
                ports[connection["name"]] = port
                if connection["protocol"] == "opcua":
                    url = urlparse(connection["endpoint"])
                    connection["endpoint"] = url._replace(netloc=f"127.0.0.1:{port}").geturl()
                else:
                    connection["port"] = port
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return ports


def test_the_cli_serves_the_demo_plant_and_stops(tmp_path):
    if mosquitto_binary() is None:
        pytest.fail(
            "mosquitto is not installed: `make test` installs it (apt-get install mosquitto)"
        )
    config = tmp_path / "demo.yaml"
    ports = demo_on_free_ports(config)
    process = subprocess.Popen(
        [sys.executable, "-m", "plant_sim", "--config", str(config), "--seed", "4"]
        + ["--speed", "60", "--duration", "3"],
        cwd=PROJECT_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(x) for x in process.stdout], daemon=True).start()
    output = []
    try:
        deadline = time.monotonic() + 120
        while not any(line.startswith("plant_sim: seed 4") for line in output):
            assert process.poll() is None, "".join(output)
            assert time.monotonic() < deadline, "".join(output)
            try:
                output.append(lines.get(timeout=1))
            except queue.Empty:
                pass
        text = "".join(output)
        assert f"MQTT broker 127.0.0.1:{ports['test-broker']}: mosquitto started" in text
        assert f"OPC UA opc.tcp://127.0.0.1:{ports['press-plc']}/plant" in text
        assert f"Modbus TCP 127.0.0.1:{ports['weld-plc']}" in text

        messages = []
        subscriber = Mqtt5Transport("127.0.0.1", ports["test-broker"], "plant-sim-cli-test")
        subscriber.subscribe("bench/#", lambda topic, payload: messages.append(json.loads(payload)))

        async def read():
            async with Client(f"opc.tcp://127.0.0.1:{ports['press-plc']}/plant") as press:
                state = await press.nodes.objects.get_child(["2:press-01", "2:State"])
                press_state = await state.read_value()
            async with Client(f"opc.tcp://127.0.0.1:{ports['cnc-plc']}/plant") as cnc:
                cnc_state = await cnc.get_node("ns=2;s=cnc-01.State").read_value()
            weld = AsyncModbusTcpClient("127.0.0.1", port=ports["weld-plc"])
            assert await weld.connect()
            registers = (await weld.read_holding_registers(0, count=3, device_id=1)).registers
            weld.close()
            return press_state, cnc_state, registers

        try:
            press_state, cnc_state, (weld_state, total, reject) = asyncio.run(read())
            assert wait_for(lambda: messages, 5)
        finally:
            subscriber.close()
        assert press_state in (6, 5, 11, 9, 2) and cnc_state in (6, 5, 11, 9, 2)
        assert weld_state in (1, 2, 3, 4, 5) and total >= reject >= 0
        assert set(messages[0]) == {"ts", "leak", "pressure"}

        assert process.wait(30) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    while not lines.empty():
        output.append(lines.get())
    text = "".join(output)
    assert "berlin/body-line-1/press-01: " in text and text.rstrip().endswith("plant_sim: stopped")
    assert not accepting(ports["test-broker"])  # its Mosquitto is gone
    assert not accepting(ports["press-plc"])
