"""The simulator over real protocols on loopback: asyncua and pymodbus clients read what the
machines show, at the addresses the plant config names; an MQTT subscriber on Mosquitto gets
the bench's JSON; a secured OPC UA server takes the right client and refuses the others."""

from __future__ import annotations

import asyncio
import datetime
import itertools
import json
import threading

import pytest
from asyncua import Client, ua
from asyncua.crypto.security_policies import SecurityPolicyBasic256Sha256
from pymodbus.client import AsyncModbusTcpClient, ModbusTcpClient

from greengrass_components.common.mqtt5_transport import Mqtt5Transport
from plant_sim import MachineProfile, OpcUaServerSecurity, PlantSimulator, SimulatorThread
from plant_sim.certificates import generate_certificates
from tests.greengrass.broker import Broker, free_port, mosquitto_binary, wait_for
from tests.plant_sim.conftest import LINE, SITE, counting_station, modbus, plant_with, station

START_MS = 1_700_000_000_000
TYPES = ["int16", "uint16", "int32", "uint32", "float32", "float64"]


def opcua_connection(port: int, **fields) -> dict:
    endpoint = f"opc.tcp://127.0.0.1:{port}/plant"
    return {"name": "ua", "protocol": "opcua", "endpoint": endpoint, **fields}


def browse(*path: str) -> dict:
    return {"protocol": "opcua", "connection": "ua", "browse_path": [f"2:{p}" for p in path]}


def node(node_id: str) -> dict:
    return {"protocol": "opcua", "connection": "ua", "node_id": node_id}


CODES = {"6": "RUNNING", "5": "IDLE", "11": "SETUP", "9": "UNPLANNED_STOP"}


def opcua_stations() -> list[dict]:
    press = station(
        "press-01",
        6.0,
        state={"source": browse("press-01", "State"), "codes": CODES},
        counters={
            "bits": 32,
            "good": browse("press-01", "GoodCount"),
            "bad": browse("press-01", "BadCount"),
        },
        tags=[{"name": "ram_force", "unit": "kN", "source": browse("press-01", "ram_force")}],
    )
    cnc = station(
        "cnc-01",
        20.0,
        state={"source": node("ns=2;s=cnc-01.State"), "codes": CODES},
        counters={
            "bits": 16,
            "total": node("ns=2;s=cnc-01.TotalCount"),
            "reject": node("ns=2;s=cnc-01.RejectCount"),
        },
        tags=[
            {"name": "spindle_speed", "unit": "rpm", "source": node("ns=2;s=cnc-01.spindle")},
            {"name": "program", "data_type": "string", "source": node("ns=3;i=42")},
        ],
    )
    return [press, cnc]


def test_opcua_nodes_by_browse_path_and_by_node_id():
    port = free_port()
    plant = plant_with(opcua_stations(), [opcua_connection(port)])
    url = f"opc.tcp://127.0.0.1:{port}/plant"

    async def scenario():
        simulator = PlantSimulator(plant, seed=3, start_ms=START_MS)
        async with simulator, Client(url) as client:
            assert (await client.get_namespace_array())[2:] == [
                "urn:plant-sim:ns2",
                "urn:plant-sim:ns3",
            ]
            press = await client.nodes.objects.get_child(["2:press-01"])
            good = await press.get_child("2:GoodCount")
            state = client.get_node("ns=2;s=cnc-01.State")
            total = client.get_node("ns=2;s=cnc-01.TotalCount")
            program = client.get_node("ns=3;i=42")
            changes = []

            class Handler:
                def datachange_notification(self, _node, value, _data):
                    changes.append(value)

            subscription = await client.create_subscription(50, Handler())
            await subscription.subscribe_data_change(good)
            for _ in range(5):
                await simulator.step(120.0)
                press_truth = simulator.truth(SITE, LINE, "press-01")
                cnc_truth = simulator.truth(SITE, LINE, "cnc-01")
                assert await good.read_value() == press_truth["values"]["counter.good"]
                read = await (await press.get_child("2:State")).read_value()
                assert read == press_truth["values"]["state"]
                force = await (await press.get_child("2:ram_force")).read_value()
                assert force == press_truth["values"]["ram_force"]
                assert await state.read_value() == cnc_truth["values"]["state"]
                total_value = await total.read_data_value()
                assert total_value.Value.Value == cnc_truth["values"]["counter.total"]
                assert total_value.Value.VariantType is ua.VariantType.UInt16  # bits: 16
                changed = datetime.datetime.fromtimestamp(
                    cnc_truth["changed_ms"]["counter.total"] / 1000, datetime.UTC
                )
                assert total_value.SourceTimestamp == changed  # the simulated time of the part
                assert await program.read_value() == cnc_truth["values"]["program"]
            assert press_truth["good"] > 50  # 600 s of 6 s cycles
            for _ in range(100):  # the subscription reports the last count too
                if press_truth["values"]["counter.good"] in changes:
                    break
                await asyncio.sleep(0.05)
            assert press_truth["values"]["counter.good"] in changes and len(changes) >= 5
            await subscription.delete()

    asyncio.run(scenario())


def modbus_stations() -> tuple[list[dict], dict]:
    """One tag per type, byte order and word order in holding registers, then an input register,
    a coil and a discrete input."""
    tags, expected = [], {}
    register = 0
    for kind, byte_order, word_order in itertools.product(
        TYPES, ["big", "little"], ["big", "little"]
    ):
        name = f"{kind}_{byte_order}_{word_order}"
        signed = not kind.startswith("uint")
        fields = {"type": kind, "byte_order": byte_order, "word_order": word_order}
        # Signed types carry negative raw values: a percentage stored with an offset of 50.
        fields |= {"offset": 50.0} if signed else {}
        data_type = "double" if kind.startswith("float") else "integer"
        tags.append(
            {
                "name": name,
                "unit": "pct",
                "data_type": data_type,
                "source": modbus(register, **fields),
            }
        )
        expected[name] = ("holding_register", register, fields)
        register += 4
    extra = [
        ("input_register", {"type": "float32", "word_order": "little"}),
        ("input_register", {"type": "int16", "scale": 0.1}),
        ("coil", {"type": "bool"}),
        ("discrete_input", {"type": "bool"}),
    ]
    for index, (table, fields) in enumerate(extra):
        name = f"{table}_{index}"
        address = 2 * index + 3 if table.endswith("register") else index + 5
        source = modbus(address, table=table, **fields)
        tags.append({"name": name, "unit": "kA", "source": source})
        expected[name] = (table, address, fields)
    return [station("cell-01", 2.0, tags=tags)], expected


def pymodbus_value(client, registers, fields):
    """The reference decoding: pymodbus's converter, bytes swapped first for little byte order,
    then raw * scale + offset."""
    if fields.get("byte_order") == "little":
        registers = [((r & 0xFF) << 8) | (r >> 8) for r in registers]
    data_type = client.DATATYPE[fields["type"].upper()]
    raw = client.convert_from_registers(registers, data_type, fields.get("word_order", "big"))
    scale, offset = fields.get("scale", 1.0), fields.get("offset", 0.0)
    return raw if (scale, offset) == (1.0, 0.0) else raw * scale + offset


def test_modbus_every_type_and_order_reads_back_right():
    port = free_port()
    stations, expected = modbus_stations()
    connection = {"name": "plc", "protocol": "modbus", "host": "127.0.0.1", "port": port}
    plant = plant_with(stations, [connection])

    async def scenario():
        async with PlantSimulator(plant, seed=9, start_ms=START_MS) as simulator:
            client = AsyncModbusTcpClient("127.0.0.1", port=port)
            assert await client.connect()
            try:
                seen: dict[str, set] = {name: set() for name in expected}
                for _ in range(4):
                    await simulator.step(30.0)
                    truth = simulator.truth(SITE, LINE, "cell-01")["values"]
                    for name, (table, address, fields) in expected.items():
                        if table == "coil":
                            got = (await client.read_coils(address, count=1, device_id=1)).bits[0]
                        elif table == "discrete_input":
                            response = await client.read_discrete_inputs(
                                address, count=1, device_id=1
                            )
                            got = response.bits[0]
                        else:
                            count = {"int16": 1, "uint16": 1, "float64": 4}.get(fields["type"], 2)
                            read = (
                                client.read_holding_registers
                                if table == "holding_register"
                                else client.read_input_registers
                            )
                            response = await read(address, count=count, device_id=1)
                            assert not response.isError(), (name, response)
                            got = pymodbus_value(client, response.registers, fields)
                        assert got == truth[name], name
                        seen[name].add(got)
                assert all(
                    len(values) > 1
                    for name, values in seen.items()
                    if "register" in name or "_big_" in name or "_little_" in name
                )
                # An address the plant does not use past the table's end is refused.
                response = await client.read_holding_registers(1000, count=1, device_id=1)
                assert response.isError()
            finally:
                client.close()

    asyncio.run(scenario())


def test_a_plc_restart_over_modbus_through_the_threaded_helper():
    port = free_port()
    connection = {"name": "plc", "protocol": "modbus", "host": "127.0.0.1", "port": port}
    plant = plant_with([counting_station(bits=16, ideal_cycle_time_s=1.0)], [connection])
    steady = MachineProfile(
        mtbf_s=1e12, idle_probability=0.0, setup_every_parts=None, cycle_jitter=0.0
    )
    with (
        SimulatorThread(plant, seed=1, profiles=steady, record_writes=True) as simulator,
        ModbusTcpClient("127.0.0.1", port=port) as client,
    ):
        simulator.advance(100.0)
        truth = simulator.truth(SITE, LINE, "m1")
        good, bad = (
            client.read_holding_registers(a, count=1, device_id=1).registers[0] for a in (10, 20)
        )
        assert (good, bad) == (truth["good"], truth["bad"]) and good + bad == 100
        simulator.restart_plc(SITE, LINE, "m1")
        assert client.read_holding_registers(10, count=1, device_id=1).registers == [0]
        simulator.advance(7.0)
        assert (
            client.read_holding_registers(10, count=1, device_id=1).registers[0]
            + (client.read_holding_registers(20, count=1, device_id=1).registers[0])
            == 7
        )
        final = simulator.truth(SITE, LINE, "m1")
        assert final["good"] + final["bad"] == 107
        # What the PLC showed over time, one write per sync: start, 100 s, restart, 7 s on.
        writes = simulator.run(lambda: list(simulator.simulator.writes))
        counts = [(value, ms) for _path, point, value, ms in writes if point == "counter.good"]
        assert [v for v, _ in counts] == [0, good, 0, final["values"]["counter.good"]]
        assert [ms for _, ms in counts] == sorted(ms for _, ms in counts)


@pytest.fixture(scope="module")
def broker(tmp_path_factory):
    binary = mosquitto_binary()
    if binary is None:
        pytest.fail(
            "mosquitto is not installed: `make test` installs it (apt-get install mosquitto)"
        )
    with Broker(binary, tmp_path_factory.mktemp("mosquitto")) as running:
        yield running


def test_mqtt_bench_results_arrive_as_json(broker):
    mqtt = {"name": "bench-broker", "protocol": "mqtt", "host": "127.0.0.1", "port": broker.port}

    def source(topic, path, ts="$.ts"):
        address = {"protocol": "mqtt", "connection": "bench-broker", "topic": topic, "path": path}
        return address | ({"timestamp_path": ts} if ts else {})

    bench = station(
        "test-01",
        30.0,
        tags=[
            {
                "name": "leak_rate",
                "unit": "mbar_l_per_s",
                "source": source("bench/+/result", "$.leak.rate"),
            },
            {"name": "pressure", "unit": "bar", "source": source("bench/+/result", "$.pressure")},
            {
                "name": "passed",
                "data_type": "boolean",
                "source": source("bench/test-01/flags", "$.bits[1]", None),
            },
        ],
    )
    plant = plant_with([bench], [mqtt])
    received: list[tuple[str, dict]] = []
    lock = threading.Lock()

    def on_message(topic: str, payload: bytes) -> None:
        with lock:
            received.append((topic, json.loads(payload)))

    subscriber = Mqtt5Transport("127.0.0.1", broker.port, "plant-sim-test-subscriber")
    try:
        subscriber.subscribe("bench/#", on_message)
        assert subscriber.wait_ready(10)
        with SimulatorThread(plant, seed=5, start_ms=START_MS) as simulator:
            simulator.advance(600.0)
            truth = simulator.truth(SITE, LINE, "test-01")
            published = simulator.mqtt_published()
        parts = truth["good"] + truth["bad"]
        assert parts >= 10
        assert len(published) == 2 * parts  # one message per topic per tested part
        assert wait_for(lambda: len(received) == len(published), 10)
        assert sorted(received, key=json.dumps) == sorted(published, key=json.dumps)
        results = [doc for topic, doc in received if topic == "bench/test-01/result"]
        assert set(results[0]) == {"ts", "leak", "pressure"} and set(results[0]["leak"]) == {"rate"}
        stamps = [doc["ts"] for doc in results]
        assert stamps == sorted(stamps) and START_MS < stamps[0] < stamps[-1] <= truth["now_ms"]
        flags = [doc for topic, doc in received if topic == "bench/test-01/flags"]
        assert all(doc["bits"][0] is None and isinstance(doc["bits"][1], bool) for doc in flags)
        assert results[-1]["leak"]["rate"] in {doc["leak"]["rate"] for doc in results}
    finally:
        subscriber.close()


@pytest.fixture(scope="module")
def certificates(tmp_path_factory):
    return generate_certificates(tmp_path_factory.mktemp("opcua-pki"))


def secured_plant(port: int, certs, mode: str, **fields):
    connection = opcua_connection(
        port,
        security_policy="Basic256Sha256",
        security_mode=mode,
        certificate=str(certs.client.certificate),
        private_key=str(certs.client.private_key),
        server_certificate=str(certs.server.certificate),
        **fields,
    )
    return plant_with(opcua_stations()[:1], [connection])


async def secure_client(url: str, certs, pair, mode) -> Client:
    client = Client(url, timeout=5)
    client.application_uri = certs.client_uri
    await client.set_security(
        SecurityPolicyBasic256Sha256,
        certificate=str(pair.certificate),
        private_key=str(pair.private_key),
        server_certificate=str(certs.server.certificate),
        mode=mode,
    )
    return client


@pytest.mark.parametrize("mode", ["SignAndEncrypt", "Sign"])
def test_secured_opcua_takes_the_trusted_client_only(certificates, mode, monkeypatch):
    certs = certificates
    port = free_port()
    url = f"opc.tcp://127.0.0.1:{port}/plant"
    security = OpcUaServerSecurity(
        certificate=certs.server.certificate,
        private_key=certs.server.private_key,
        trusted_dir=certs.trusted_dir,
        application_uri=certs.server_uri,
    )
    ua_mode = getattr(ua.MessageSecurityMode, mode)

    async def scenario():
        simulator = PlantSimulator(
            secured_plant(port, certs, mode), seed=1, opcua_security={"ua": security}
        )
        async with simulator:
            await simulator.step(60.0)
            truth = simulator.truth(SITE, LINE, "press-01")["values"]
            client = await secure_client(url, certs, certs.client, ua_mode)
            async with client:
                good = await client.nodes.objects.get_child(["2:press-01", "2:GoodCount"])
                assert await good.read_value() == truth["counter.good"] > 0
                endpoints = await client.get_endpoints()
                assert {(e.SecurityPolicyUri, e.SecurityMode) for e in endpoints} == {
                    (SecurityPolicyBasic256Sha256.URI, ua_mode)
                }
            # No certificate: the client library finds no endpoint for it; one that asks anyway
            # (over the unsecured channel asyncua keeps open for GetEndpoints) gets no session.
            with pytest.raises(ua.UaError, match="No matching endpoints"):
                async with Client(url, timeout=5):
                    pass
            with monkeypatch.context() as patch:
                patch.setattr(Client, "find_endpoint", staticmethod(lambda eps, *_: eps[0]))
                with pytest.raises(ua.uaerrors.BadUserAccessDenied):
                    async with Client(url, timeout=5):
                        pass
            rogue = await secure_client(url, certs, certs.untrusted_client, ua_mode)
            with pytest.raises(Exception, match="BadCertificateUntrusted|BadSecurityChecksFailed"):
                async with rogue:
                    pass

    asyncio.run(scenario())


def test_opcua_user_login(certificates, tmp_path):
    certs = certificates
    port = free_port()
    url = f"opc.tcp://127.0.0.1:{port}/plant"
    password_file = tmp_path / "password"
    password_file.write_text("s3cret\n")
    plant = secured_plant(
        port, certs, "SignAndEncrypt", username="operator", password_file=str(password_file)
    )
    security = OpcUaServerSecurity(
        certificate=certs.server.certificate,
        private_key=certs.server.private_key,
        trusted_dir=certs.trusted_dir,
        application_uri=certs.server_uri,
    )
    mode = ua.MessageSecurityMode.SignAndEncrypt

    async def scenario():
        async with PlantSimulator(plant, opcua_security={"ua": security}):
            client = await secure_client(url, certs, certs.client, mode)
            client.set_user("operator")
            client.set_password("s3cret")  # read from password_file by the simulator
            async with client:
                state = await client.nodes.objects.get_child(["2:press-01", "2:State"])
                assert await state.read_value() == 6
            for user, password in (("operator", "wrong"), ("intruder", "s3cret")):
                client = await secure_client(url, certs, certs.client, mode)
                client.set_user(user)
                client.set_password(password)
                with pytest.raises(Exception, match="BadUserAccessDenied|BadIdentityTokenRejected"):
                    async with client:
                        pass

    asyncio.run(scenario())
