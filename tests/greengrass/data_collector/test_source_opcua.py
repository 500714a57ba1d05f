"""The OPC UA source against real asyncua servers on loopback: NodeId and browse path, quality and
timestamps, a missing node, deadbands (a refused percent deadband), a server restart that must
restore the subscriptions, and Basic256Sha256 Sign / SignAndEncrypt with user name login."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from asyncua import Server, ua
from asyncua.crypto.permission_rules import User, UserRole
from asyncua.server.monitored_item_service import MonitoredItemService
from data_collector.readings import Binding, Reading
from data_collector.sources import make_source
from data_collector.sources.opcua import OpcUaSource, quality

from mes_domain.collection import OpcUaAddress, OpcUaConnection
from mes_domain.contracts import ReadingQuality
from plant_sim.certificates import generate_certificates
from tests.greengrass.broker import free_port
from tests.greengrass.data_collector.conftest import until

NAMESPACE = "urn:acme:test-plant"
CLIENT_URI = "urn:acme:mes:gateway"
SERVER_URI = "urn:acme:test-plc"


class Users:
    def __init__(self, users: dict[str, str]) -> None:
        self.users = users

    def get_user(self, iserver, username=None, password=None, certificate=None):
        if username in self.users and self.users[username] == password:
            return User(role=UserRole.User)
        return None


class Plc:
    """An asyncua server with press-01 (browse path) and cnc-01 (string NodeIds) variables.
    ``reverse`` adds press-01's variables in the other order, so their numeric NodeIds differ."""

    def __init__(self, port: int | None = None, **security) -> None:
        self.port = port or free_port()
        self.security = security
        self.server: Server | None = None
        self.vars: dict[str, object] = {}
        self.presented: list[bytes] = []  # client certificates the server was shown

    @property
    def endpoint(self) -> str:
        return f"opc.tcp://127.0.0.1:{self.port}/plant"

    async def start(self, reverse: bool = False) -> None:
        s = self.security
        server = Server(user_manager=Users(s["users"]) if s.get("users") else None)
        await server.init()
        server.set_endpoint(self.endpoint)
        server.set_server_name("test PLC")
        if s.get("policies"):
            await server.set_application_uri(SERVER_URI)
            server.set_security_policy(s["policies"])
            await server.load_certificate(str(s["cert"]))
            await server.load_private_key(str(s["key"]))

            async def validate(cert, app_description) -> None:
                from cryptography.hazmat.primitives import serialization

                self.presented.append(cert.public_bytes(serialization.Encoding.PEM))

            server.set_certificate_validator(validate)
        if s.get("users"):
            server.set_identity_tokens([ua.UserNameIdentityToken])
        ns = await server.register_namespace(NAMESPACE)
        objects = server.nodes.objects
        press = await objects.add_object(ns, "press-01")
        names = ["ram_force", "State", "GoodCount"]
        for name in reversed(names) if reverse else names:
            value = 0.0 if name == "ram_force" else 0
            vtype = ua.VariantType.Double if name == "ram_force" else ua.VariantType.UInt32
            self.vars[name] = await press.add_variable(ns, name, value, varianttype=vtype)
        cnc = await objects.add_object(f"ns={ns};s=cnc-01", f"{ns}:cnc-01")
        self.vars["spindle_speed"] = await cnc.add_variable(
            f"ns={ns};s=cnc-01.spindle_speed", f"{ns}:spindle_speed", 0.0
        )
        self.vars["program"] = await cnc.add_variable(
            f"ns={ns};s=cnc-01.program", f"{ns}:program", "P100"
        )
        await server.start()
        self.server = server

    async def stop(self) -> None:
        if self.server is not None:
            await self.server.stop()
            self.server = None

    async def write(self, name: str, value, status=None, source_ts=None) -> None:
        var = self.vars[name]
        vtype = await var.read_data_type_as_variant_type()
        await var.write_value(
            ua.DataValue(
                ua.Variant(value, vtype),
                StatusCode=ua.StatusCode(status) if status is not None else ua.StatusCode(),
                SourceTimestamp=source_ts,
                ServerTimestamp=source_ts,
            )
        )


class ThreadedPlc:
    """A ``Plc`` on its own event loop thread, shared by a module's tests: asyncua's server
    takes seconds to build its address space, the tests' sources run in their own loops."""

    def __init__(self, **security) -> None:
        self.plc = Plc(**security)
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self._call(self.plc.start()).result(60)

    def _call(self, coro):
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    @property
    def endpoint(self) -> str:
        return self.plc.endpoint

    @property
    def presented(self) -> list[bytes]:
        return self.plc.presented

    async def write(self, name: str, value, **kwargs) -> None:
        await asyncio.wrap_future(self._call(self.plc.write(name, value, **kwargs)))

    def reset(self) -> None:
        for name, value in INITIAL.items():
            self._call(self.plc.write(name, value)).result(10)

    def close(self) -> None:
        try:
            self._call(self.plc.stop()).result(30)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(10)
            self.loop.close()


INITIAL = {"ram_force": 0.0, "State": 0, "GoodCount": 0, "spindle_speed": 0.0, "program": "P100"}


@pytest.fixture(scope="module")
def shared_plc() -> Iterator[ThreadedPlc]:
    plc = ThreadedPlc()
    yield plc
    plc.close()


@pytest.fixture
def plc(shared_plc) -> ThreadedPlc:
    shared_plc.reset()
    return shared_plc


def opcua(point: str, station: str = "press-01", **kwargs) -> Binding:
    return Binding(station, point, OpcUaAddress(connection="press-plc", **kwargs))


def conn(endpoint: str, **kwargs) -> OpcUaConnection:
    return OpcUaConnection(name="press-plc", endpoint=endpoint, **({"reconnect_max_s": 1} | kwargs))


class Collected(list):
    def of(self, point: str) -> list[Reading]:
        return [r for r in self if r.point == point]

    def values(self, point: str) -> list:
        return [r.value for r in self.of(point)]


async def stop(task: asyncio.Task) -> None:
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


async def collect_and_write(plc, bindings, value: float) -> tuple[OpcUaSource, Collected, set]:
    """Run a source until ram_force and state came, write ``value`` to ram_force and wait for it;
    the stopped source, what it collected and its failed points before the stop."""
    source = OpcUaSource(conn(plc.endpoint), bindings)
    out = Collected()
    task = asyncio.create_task(source.run(out.append))
    try:
        assert await until(lambda: out.of("ram_force") and out.of("state"))
        await plc.write("ram_force", value)
        assert await until(lambda: value in out.values("ram_force"))
        failed = set(source.failed)
    finally:
        await stop(task)
    return source, out, failed


BINDINGS = [
    opcua("ram_force", browse_path=["2:press-01", "2:ram_force"], sampling_interval_ms=50),
    opcua("state", browse_path=["2:press-01", "2:State"], sampling_interval_ms=50),
    opcua("spindle", station="cnc-01", node_id="ns=2;s=cnc-01.spindle_speed"),
    opcua("program", station="cnc-01", node_id="ns=2;s=cnc-01.program", sampling_interval_ms=0),
]


def test_quality_follows_the_status_severity():
    assert quality(ua.StatusCode(ua.StatusCodes.Good)) is ReadingQuality.GOOD
    assert (
        quality(ua.StatusCode(ua.StatusCodes.UncertainLastUsableValue)) is ReadingQuality.UNCERTAIN
    )
    assert quality(ua.StatusCode(ua.StatusCodes.BadSensorFailure)) is ReadingQuality.BAD
    assert quality(ua.StatusCode(0xC0000000)) is ReadingQuality.BAD  # severity 11: Bad


def test_values_by_browse_path_and_node_id_with_quality_and_timestamps(plc):
    async def scenario():
        source = make_source(conn(plc.endpoint), BINDINGS)
        assert isinstance(source, OpcUaSource)
        out = Collected()
        task = asyncio.create_task(source.run(out.append))
        try:
            points = {"ram_force", "state", "spindle", "program"}
            assert await until(lambda: {r.point for r in out} >= points)
            stamp = dt.datetime(2024, 5, 1, 12, 0, 0, 250000, tzinfo=dt.UTC)
            await plc.write("ram_force", 512.5, source_ts=stamp)
            await plc.write("State", 6)
            await plc.write("spindle_speed", 1200.0, status=ua.StatusCodes.UncertainLastUsableValue)
            await plc.write("program", "P200", status=ua.StatusCodes.BadSensorFailure)
            assert await until(
                lambda: 512.5 in out.values("ram_force") and 6 in out.values("state")
                and any(r.quality is ReadingQuality.BAD for r in out.of("program"))
                and any(r.quality is ReadingQuality.UNCERTAIN for r in out.of("spindle"))
            )  # fmt: skip
            resolved, failed = dict(source.resolved), set(source.failed)
        finally:
            await stop(task)
        return resolved, failed, out, stamp

    resolved, failed, out, stamp = asyncio.run(scenario())
    force = next(r for r in out.of("ram_force") if r.value == 512.5)
    assert force.ts_ms == int(stamp.timestamp() * 1000) and force.station == "press-01"
    assert force.quality is ReadingQuality.GOOD
    state = next(r for r in out.of("state") if r.value == 6)
    assert abs(state.ts_ms - time.time() * 1000) < 10_000
    spindle = next(r for r in out.of("spindle") if r.quality is ReadingQuality.UNCERTAIN)
    assert spindle.value == 1200.0 and spindle.station == "cnc-01"
    assert out.of("program")[0].value == "P100"
    assert len(resolved) == 4 and not failed


def test_missing_node_is_an_error_naming_station_and_point_and_the_others_carry_on(plc, caplog):
    bindings = [
        *BINDINGS[:2],
        opcua("ghost", station="weld-01", node_id="ns=2;s=nothing.here"),
        opcua("lost", station="weld-02", browse_path=["2:press-01", "2:NoSuchTag"]),
    ]

    with caplog.at_level(logging.ERROR):
        _, out, failed = asyncio.run(collect_and_write(plc, bindings, 7.0))
    assert not out.of("ghost") and not out.of("lost")
    assert failed == {2, 3}
    messages = [r.getMessage() for r in caplog.records]
    assert any("station weld-01, point ghost" in m and "BadNodeIdUnknown" in m for m in messages)
    assert any("station weld-02, point lost" in m and "Objects/2:press-01/2:NoSuchTag" in m
               for m in messages)  # fmt: skip
    assert all("connection press-plc" in m for m in messages if "point" in m)


def test_absolute_deadband_filters_small_changes(plc):
    bindings = [
        opcua(
            "ram_force",
            browse_path=["2:press-01", "2:ram_force"],
            sampling_interval_ms=50,
            deadband_type="absolute",
            deadband=5.0,
        ),  # fmt: skip
    ]

    async def scenario():
        source = OpcUaSource(conn(plc.endpoint), bindings)
        out = Collected()
        task = asyncio.create_task(source.run(out.append))
        try:
            assert await until(lambda: out)
            for value in (1.0, 2.0, 4.9, 10.0, 12.0, 20.0):
                await plc.write("ram_force", value)
                await asyncio.sleep(0.1)
            assert await until(lambda: 20.0 in out.values("ram_force"))
        finally:
            await stop(task)
        return out

    # Changes of at most 5 from the last reported value are not reported.
    assert asyncio.run(scenario()).values("ram_force") == [0.0, 10.0, 20.0]


@pytest.fixture
def strict_percent_deadband(monkeypatch):
    """asyncua's server accepts a percent deadband and ignores it; OPC 10000-8 §6.2 has a server
    refuse it (Bad_DeadbandFilterInvalid) for a variable without EURange, as real PLCs do."""
    original = MonitoredItemService._create_data_change_monitored_item
    refused = []

    async def strict(self, params):
        flt = params.RequestedParameters.Filter
        if getattr(flt, "DeadbandType", None) == ua.DeadbandType.Percent:  # a DataChangeFilter
            node = self.aspace.get(params.ItemToMonitor.NodeId)
            if not any(ref.BrowseName.Name == "EURange" for ref in node.references):
                refused.append(params.ItemToMonitor.NodeId)
                result = ua.MonitoredItemCreateResult()
                result.StatusCode = ua.StatusCode(ua.StatusCodes.BadDeadbandFilterInvalid)
                return result
        return await original(self, params)

    monkeypatch.setattr(MonitoredItemService, "_create_data_change_monitored_item", strict)
    return refused


def test_refused_percent_deadband_is_logged_and_the_point_still_read(
    plc, strict_percent_deadband, caplog
):
    bindings = [
        opcua(
            "ram_force",
            browse_path=["2:press-01", "2:ram_force"],
            sampling_interval_ms=50,
            deadband_type="percent",
            deadband=2.0,
        ),  # fmt: skip
        BINDINGS[1],
    ]

    with caplog.at_level(logging.ERROR):
        source, _, _ = asyncio.run(collect_and_write(plc, bindings, 0.5))
    assert len(strict_percent_deadband) == 1 and not source.failed
    errors = [r.getMessage() for r in caplog.records if "deadband" in r.getMessage()]
    assert len(errors) == 1
    assert "station press-01, point ram_force" in errors[0]
    assert "BadDeadbandFilterInvalid" in errors[0] and "EURange" in errors[0]
    assert "monitored without a deadband" in errors[0]


def test_server_restart_restores_subscriptions_and_resolves_browse_paths_again(caplog):
    async def scenario():
        plc = Plc()
        await plc.start()
        source = OpcUaSource(conn(plc.endpoint, reconnect_max_s=0.5), BINDINGS)
        source.reconnect_min_s = 0.1
        out = Collected()
        task = asyncio.create_task(source.run(out.append))
        try:
            assert await until(lambda: out.of("ram_force") and out.of("spindle"))
            first_ids = dict(source.resolved)
            await plc.write("ram_force", 1.0)
            assert await until(lambda: 1.0 in out.values("ram_force"))
            await plc.stop()
            await asyncio.sleep(1.5)  # down: the source retries with backoff
            # Same port, variables created in the other order: different numeric NodeIds.
            plc = Plc(plc.port)
            await plc.start(reverse=True)
            assert await until(lambda: source.connections == 2, 15)
            assert await until(lambda: source.monitored and not source.failed)
            await plc.write("ram_force", 2.0)
            await plc.write("State", 9)
            await plc.write("spindle_speed", 3000.0)
            assert await until(
                lambda: 2.0 in out.values("ram_force") and 9 in out.values("state")
                and 3000.0 in out.values("spindle")
            )  # fmt: skip
            return first_ids, dict(source.resolved), out
        finally:
            await stop(task)
            await plc.stop()

    with caplog.at_level(logging.INFO):
        first_ids, second_ids, out = asyncio.run(scenario())
    assert first_ids[0] != second_ids[0]  # ram_force moved: resolved again, not cached
    assert 9 not in out.values("ram_force") and 2.0 not in out.values("state")
    lost = [r for r in caplog.records if "unreachable, refused or lost" in r.getMessage()]
    assert 1 <= len(lost) <= 2, [r.getMessage() for r in lost]  # not once per retry
    assert any("connected again" in r.getMessage() for r in caplog.records)


@pytest.fixture(scope="module")
def certificates(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("opcua-pki")
    pki = generate_certificates(folder, server_uri=SERVER_URI, client_uri=CLIENT_URI)
    password = folder / "password"
    password.write_text("s3cret-pass\n")
    wrong = folder / "wrong-password"
    wrong.write_text("guess\n")
    return {"server_cert": pki.server.certificate, "server_key": pki.server.private_key,
            "client_cert": pki.client.certificate, "client_key": pki.client.private_key,
            "password": password, "wrong": wrong}  # fmt: skip


@pytest.fixture(scope="module")
def secure_plc(certificates) -> Iterator[ThreadedPlc]:
    """Only Basic256Sha256 endpoints (Sign and SignAndEncrypt), user name login required."""
    plc = ThreadedPlc(
        policies=[
            ua.SecurityPolicyType.Basic256Sha256_SignAndEncrypt,
            ua.SecurityPolicyType.Basic256Sha256_Sign,
        ],
        cert=certificates["server_cert"],
        key=certificates["server_key"],
        users={"mes-gateway": "s3cret-pass"},
    )
    yield plc
    plc.close()


def secure(plc, pki, mode: str, password_file: Path) -> OpcUaConnection:
    return conn(
        plc.endpoint,
        security_policy="Basic256Sha256",
        security_mode=mode,
        certificate=str(pki["client_cert"]),
        private_key=str(pki["client_key"]),
        server_certificate=str(pki["server_cert"]),
        username="mes-gateway",
        password_file=str(password_file),
    )


async def attempt(connection: OpcUaConnection, seconds: float, plc=None) -> Collected:
    source = OpcUaSource(connection, BINDINGS[:1])
    out = Collected()
    task = asyncio.create_task(source.run(out.append))
    if await until(lambda: out, seconds) and plc is not None:
        await plc.write("ram_force", 3.5)
        await until(lambda: 3.5 in out.values("ram_force"), seconds)
    await stop(task)
    return out


@pytest.mark.parametrize("mode", ["SignAndEncrypt", "Sign"])
def test_basic256sha256_with_user_login(secure_plc, certificates, mode):
    secure_plc.presented.clear()
    connection = secure(secure_plc, certificates, mode, certificates["password"])
    out = asyncio.run(attempt(connection, 15, secure_plc))
    assert out.values("ram_force")[-1] == 3.5
    assert all(r.quality is ReadingQuality.GOOD for r in out)
    # The server was shown the gateway's own certificate on the secure channel.
    assert certificates["client_cert"].read_bytes() in secure_plc.presented


def test_wrong_password_or_no_security_reads_nothing_and_says_why(secure_plc, certificates, caplog):
    wrong = secure(secure_plc, certificates, "SignAndEncrypt", certificates["wrong"])
    missing = secure(secure_plc, certificates, "Sign", certificates["wrong"].with_name("absent"))
    unsecured = conn(secure_plc.endpoint)

    async def scenario():
        return await asyncio.gather(*(attempt(c, 2.0) for c in (wrong, missing, unsecured)))

    with caplog.at_level(logging.ERROR):
        results = asyncio.run(scenario())
    assert results == [[], [], []]
    messages = [r.getMessage() for r in caplog.records if "press-plc" in r.getMessage()]
    assert any("BadUserAccessDenied" in m for m in messages), messages
    assert any("password_file" in m and "absent" in m for m in messages), messages
    assert any("No matching endpoints" in m and "SecurityPolicy#None" in m for m in messages)
