"""An asyncua server per OPC UA endpoint, with a variable per point at the configured address.

Both address styles resolve: a ``node_id`` (``ns=2;s=cnc-01.State``) is a variable with exactly
that NodeId under Objects; a ``browse_path`` (``["2:press-01", "2:State"]``) is the chain of
objects and the variable with those browse names from Objects. The server registers
namespaces until every index the addresses use exists (index 1 is the server's own, so the
first registered one is 2).
"""

from __future__ import annotations

import asyncio
import datetime
import fcntl
import logging
import os
import tempfile
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from urllib.parse import urlparse

from asyncua import Server, ua
from asyncua.crypto.permission_rules import User, UserRole
from asyncua.crypto.truststore import TrustStore
from asyncua.crypto.validator import CertificateValidator, CertificateValidatorOptions

from mes_domain.collection import OpcUaConnection, OpcUaSecurityMode, OpcUaSecurityPolicy
from plant_sim.bindings import PointBinding, require_loopback
from plant_sim.machine import SimulatorError

log = logging.getLogger(__name__)

VARIANT = {
    "bool": ua.VariantType.Boolean,
    "int": ua.VariantType.Int32,
    "uint16": ua.VariantType.UInt16,
    "uint32": ua.VariantType.UInt32,
    "uint64": ua.VariantType.UInt64,
    "double": ua.VariantType.Double,
    "string": ua.VariantType.String,
}
POLICY = {
    (OpcUaSecurityPolicy.NONE, OpcUaSecurityMode.NONE): ua.SecurityPolicyType.NoSecurity,
    (OpcUaSecurityPolicy.BASIC256SHA256, OpcUaSecurityMode.SIGN): (
        ua.SecurityPolicyType.Basic256Sha256_Sign
    ),
    (OpcUaSecurityPolicy.BASIC256SHA256, OpcUaSecurityMode.SIGN_AND_ENCRYPT): (
        ua.SecurityPolicyType.Basic256Sha256_SignAndEncrypt
    ),
}


@dataclass(frozen=True)
class OpcUaServerSecurity:
    """The server side of a secured connection: its certificate and key, the folder of CA (or
    client) certificates it trusts (None: any client certificate), and user names with their
    passwords (None: read the connection's ``password_file`` if it exists here)."""

    certificate: Path | None = None
    private_key: Path | None = None
    trusted_dir: Path | None = None
    users: dict[str, str] | None = None
    application_uri: str | None = None  # must be in the certificate's subjectAltName


def _cache_dir() -> Path:
    if os.environ.get("PLANT_SIM_CACHE"):
        return Path(os.environ["PLANT_SIM_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "plant_sim"


def _build_shelf(folder: Path) -> Path:
    """The standard address space as a shelf, built once per asyncua version: loading it takes
    0.3 s where building it from asyncua's generated code takes 5 to 10 s per server."""
    folder.mkdir(parents=True, exist_ok=True)
    shelf = folder / "aspace"
    # asyncua loads a shelf only if a file of exactly this name exists (dbm.dumb writes
    # aspace.dir and aspace.dat), so the empty marker is written last, once the shelf is whole.
    with open(folder / "lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if shelf.is_file():
            return shelf
        with tempfile.TemporaryDirectory(dir=folder) as tmp:
            from asyncua.server.internal_server import InternalServer

            async def make() -> None:
                await InternalServer().load_standard_address_space(Path(tmp) / "aspace")

            asyncio.run(make())
            for part in Path(tmp).iterdir():
                os.replace(part, folder / part.name)
        shelf.touch()
    return shelf


async def address_space_shelf() -> Path:
    folder = _cache_dir() / f"asyncua-{version('asyncua')}"
    if (folder / "aspace").is_file():
        return folder / "aspace"
    return await asyncio.to_thread(_build_shelf, folder)


class _Gate:
    """asyncua opens an unsecured channel to anyone (GetEndpoints needs one) and would give it a
    session too; a secured server refuses that session here (no client certificate on the
    channel), and checks user names and passwords."""

    def __init__(self, users: dict[str, str], secure: bool) -> None:
        self.users, self.secure = users, secure

    def get_user(self, iserver, username=None, password=None, certificate=None):
        if self.secure and not certificate:  # asyncua gives b"" for none
            return None
        if self.users:
            if username is None or self.users.get(username) != password:
                return None
            return User(role=UserRole.User, name=username)
        return User(role=UserRole.User)


def _users(connection: OpcUaConnection, security: OpcUaServerSecurity | None) -> dict[str, str]:
    if connection.username is None:
        return {}
    if security is not None and security.users is not None:
        return dict(security.users)
    path = Path(connection.password_file or "")
    if not path.is_file():
        raise SimulatorError(
            f"connection {connection.name}: user {connection.username} needs a password: pass "
            f"OpcUaServerSecurity(users=...) or create its password_file {path}"
        )
    return {connection.username: path.read_text().strip()}


class OpcUaEndpoint:
    """One server: the connections (of one or more lines) that name this endpoint."""

    def __init__(
        self,
        endpoint: str,
        connections: list[OpcUaConnection],
        bindings: list[PointBinding],
        security: OpcUaServerSecurity | None,
        start_ms: int,
    ) -> None:
        self.endpoint = endpoint
        self.connections = connections
        self.bindings = bindings
        self.security = security
        self.start_ms = start_ms
        first = connections[0]
        names = ", ".join(c.name for c in connections)
        parsed = urlparse(endpoint)
        require_loopback(parsed.hostname or "", f"OPC UA connection {names} ({endpoint})")
        self.port = parsed.port or 4840
        for other in connections[1:]:
            same = ("security_policy", "security_mode", "username")
            if any(getattr(other, f) != getattr(first, f) for f in same):
                raise SimulatorError(
                    f"OPC UA connections {first.name} and {other.name} share {endpoint} but "
                    "not its security or user"
                )
        self.policy = POLICY.get((first.security_policy, first.security_mode))
        if self.policy is None:
            raise SimulatorError(f"connection {first.name}: unsupported security combination")
        self.secure = first.security_policy is not OpcUaSecurityPolicy.NONE
        has_keys = security is not None and security.certificate and security.private_key
        if self.secure and not has_keys:
            raise SimulatorError(
                f"connection {first.name} is {first.security_policy}/{first.security_mode}: "
                "the simulator needs OpcUaServerSecurity(certificate=..., private_key=...)"
            )
        self.users = _users(first, security)
        self.server: Server | None = None
        self._nodes: dict[int, ua.NodeId] = {}  # id(binding) -> its variable
        self.on_write = None  # called with (binding, value) for each value written
        self._last: dict[ua.NodeId, object] = {}

    async def start(self) -> None:
        server = Server(user_manager=_Gate(self.users, self.secure))
        try:
            shelf = await address_space_shelf()
        except OSError as err:  # no writable cache: build the address space in memory
            log.warning("no OPC UA address space cache (%s); starting slower", err)
            shelf = None
        await server.init(shelf)
        server.set_endpoint(self.endpoint)
        server.set_server_name(f"plant_sim {', '.join(c.name for c in self.connections)}")
        security = self.security
        uri = (security.application_uri if security else None) or "urn:plant-sim:server"
        await server.set_application_uri(uri)
        server.set_security_policy([self.policy])
        tokens = [ua.UserNameIdentityToken] if self.users else [ua.AnonymousIdentityToken]
        server.set_identity_tokens(tokens)
        if self.secure:
            await server.load_certificate(str(security.certificate))
            await server.load_private_key(str(security.private_key))
            if security.trusted_dir is not None:
                store = TrustStore([Path(security.trusted_dir)], [])
                await store.load()
                options = (
                    CertificateValidatorOptions.TRUSTED_VALIDATION
                    | CertificateValidatorOptions.PEER_CLIENT
                )
                server.set_certificate_validator(CertificateValidator(options, store))
        await self._create_nodes(server)
        try:
            await server.start()
        except OSError as err:
            raise SimulatorError(f"OPC UA server {self.endpoint} cannot listen: {err}") from err
        self.server = server

    async def _namespaces(self, server: Server, indexes: set[int]) -> None:
        for index in sorted(indexes):
            if index < 2:
                raise SimulatorError(
                    f"{self.endpoint}: namespace {index} is the standard's or the server's own; "
                    "put machine nodes in namespace 2 or above"
                )
        present = len(await server.get_namespace_array())
        for index in range(present, max(indexes, default=1) + 1):
            got = await server.register_namespace(f"urn:plant-sim:ns{index}")
            if got != index:  # asyncua appends to the namespace array
                raise SimulatorError(f"{self.endpoint}: namespace {index} registered as {got}")

    async def _create_nodes(self, server: Server) -> None:
        indexes: set[int] = set()
        parsed: dict[int, object] = {}
        for binding in self.bindings:
            address = binding.address
            try:
                if address.node_id is not None:
                    node = ua.NodeId.from_string(address.node_id)
                    indexes.add(node.NamespaceIndex)
                    parsed[id(binding)] = node
                else:
                    path = [ua.QualifiedName.from_string(p) for p in address.browse_path]
                    indexes.update(q.NamespaceIndex for q in path)
                    parsed[id(binding)] = path
            except Exception as err:
                raise SimulatorError(f"{binding.where}: bad OPC UA address: {err}") from err
        await self._namespaces(server, indexes)
        objects = server.nodes.objects
        folders: dict[tuple, object] = {}
        by_address: dict[object, tuple[PointBinding, ua.NodeId]] = {}
        for binding in self.bindings:
            target = parsed[id(binding)]
            key = (
                target.to_string()
                if isinstance(target, ua.NodeId)
                else tuple((q.NamespaceIndex, q.Name) for q in target)
            )
            if key in by_address:
                other, node_id = by_address[key]
                if (other.machine, other.point) != (binding.machine, binding.point):
                    raise SimulatorError(
                        f"{binding.where} and {other.where} both name {key} on {self.endpoint}"
                    )
                self._nodes[id(binding)] = node_id
                continue
            variant = ua.Variant(binding.value(), VARIANT[binding.machine.kind(binding.point)])
            if isinstance(target, ua.NodeId):
                name = ua.QualifiedName(str(target.Identifier), target.NamespaceIndex)
                node = await objects.add_variable(target, name, variant.Value, variant.VariantType)
            else:
                parent = objects
                for depth in range(1, len(target)):
                    prefix = key[:depth]
                    if prefix not in folders:
                        q = target[depth - 1]
                        folders[prefix] = await parent.add_object(q.NamespaceIndex, q.Name)
                    parent = folders[prefix]
                q = target[-1]
                node = await parent.add_variable(
                    q.NamespaceIndex, q.Name, variant.Value, variant.VariantType
                )
            # The first value's SourceTimestamp is the machine's time too, not the server's
            # clock: a reader orders it before the changes that follow.
            changed = datetime.datetime.fromtimestamp(
                binding.changed_ms(self.start_ms) / 1000, datetime.UTC
            )
            await server.write_attribute_value(
                node.nodeid, ua.DataValue(variant, SourceTimestamp=changed)
            )
            by_address[key] = (binding, node.nodeid)
            self._nodes[id(binding)] = node.nodeid
            self._last[node.nodeid] = binding.value()
            if self.on_write is not None:
                self.on_write(binding, binding.value())

    async def push(self) -> int:
        """Write every value that changed since the last push; the number written."""
        if self.server is None:
            return 0
        written = 0
        now = datetime.datetime.now(datetime.UTC)
        for binding in self.bindings:
            node_id = self._nodes[id(binding)]
            value = binding.value()
            if self._last.get(node_id, object()) == value and type(value) is type(
                self._last[node_id]
            ):
                continue
            self._last[node_id] = value
            changed = datetime.datetime.fromtimestamp(
                binding.changed_ms(self.start_ms) / 1000, datetime.UTC
            )
            variant = ua.Variant(value, VARIANT[binding.machine.kind(binding.point)])
            await self.server.write_attribute_value(
                node_id, ua.DataValue(variant, SourceTimestamp=changed, ServerTimestamp=now)
            )
            written += 1
            if self.on_write is not None:
                self.on_write(binding, value)
        return written

    async def stop(self) -> None:
        if self.server is not None:
            server, self.server = self.server, None
            await server.stop()

    def describe(self) -> str:
        names = ", ".join(c.name for c in self.connections)
        mode = self.connections[0].security_mode
        return f"OPC UA {self.endpoint} ({names}; security {mode}; {len(self.bindings)} points)"
