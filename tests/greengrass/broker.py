"""A private Mosquitto on a free loopback port, for the edge tests and the edge benchmark.

The broker keeps its port across ``stop``/``start``, so a test can cut the link and bring it
back where the clients reconnect to. ``tls`` adds a mutual-TLS listener (``tls_port``) beside
the plain one, with certificates from ``TestPki``.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import pwd
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path


def wait_for(predicate, timeout_s: float = 10.0, interval_s: float = 0.02) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval_s)
    return bool(predicate())


def mosquitto_binary() -> str | None:
    """Debian installs it in /usr/sbin, which is not on every user's PATH."""
    found = shutil.which("mosquitto")
    if found:
        return found
    return "/usr/sbin/mosquitto" if os.access("/usr/sbin/mosquitto", os.X_OK) else None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def accepting(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


@dataclass(frozen=True)
class TlsFiles:
    ca: Path
    cert: Path
    key: Path


class TestPki:
    """A throw-away CA with a server certificate for 127.0.0.1/localhost and client certificates."""

    __test__ = False  # not a pytest class

    def __init__(self, folder: Path) -> None:
        from cryptography.hazmat.primitives.asymmetric import ec

        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self._ca_key = ec.generate_private_key(ec.SECP256R1())
        self._ca_name = self._name("mes test CA")
        self._ca_cert = self._sign(self._ca_name, self._ca_key.public_key(), ca=True)
        self.ca = self._write("ca.pem", self._ca_cert)
        self.server = self.issue("server", server=True)

    @staticmethod
    def _name(common_name: str):
        from cryptography import x509
        from cryptography.x509.oid import NameOID

        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])

    def _sign(self, subject, public_key, *, ca: bool = False, server: bool = False, key=None):
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes
        from cryptography.x509.oid import ExtendedKeyUsageOID

        now = datetime.datetime.now(datetime.UTC)
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(self._ca_name)
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        )
        if not ca:
            usage = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
            builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        if server:
            names = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
        return builder.sign(key or self._ca_key, hashes.SHA256())

    def _write(self, name: str, cert) -> Path:
        from cryptography.hazmat.primitives import serialization

        path = self.folder / name
        path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        return path

    def issue(self, name: str, *, server: bool = False, self_signed: bool = False) -> TlsFiles:
        """A key and certificate signed by this CA (or by itself: one the broker must refuse)."""
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import ec

        key = ec.generate_private_key(ec.SECP256R1())
        if self_signed:
            cert = self._sign(self._name(name), key.public_key(), key=key)
        else:
            cert = self._sign(self._name(name), key.public_key(), server=server)
        key_path = self.folder / f"{name}.key"
        key_path.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        key_path.chmod(0o600)
        return TlsFiles(self.ca, self._write(f"{name}.pem", cert), key_path)


class Broker:
    """Listens on 127.0.0.1 only, anonymous, no persistence; ``stop`` ends the process.

    ``port`` stays the same across ``stop``/``start`` and ``restart``. With ``tls`` (a
    ``TestPki``), a second listener on ``tls_port`` requires a client certificate of its CA.
    """

    def __init__(
        self, binary: str, workdir: Path, *, tls: TestPki | None = None, extra: list[str] = ()
    ) -> None:
        self.binary = binary
        self.port = free_port()
        self.tls_port = free_port() if tls else None
        self.conf = workdir / "mosquitto.conf"
        # Run as whoever runs the tests: started as root, mosquitto would drop to its own user,
        # which cannot read the certificates in the test's private temp folder.
        lines = [
            f"user {pwd.getpwuid(os.geteuid()).pw_name}",
            f"listener {self.port} 127.0.0.1",
            "allow_anonymous true",
            "persistence false",
        ]
        if tls is not None:
            lines += [
                f"listener {self.tls_port} 127.0.0.1",
                f"cafile {tls.ca}",
                f"certfile {tls.server.cert}",
                f"keyfile {tls.server.key}",
                "require_certificate true",
                "tls_version tlsv1.2",
            ]
        self._lines = lines
        self.reconfigure(list(extra))
        self.log = workdir / "mosquitto.log"
        self.process: subprocess.Popen | None = None

    def reconfigure(self, extra: list[str]) -> None:
        """Global settings added after the listeners (e.g. an ``acl_file``); from next start."""
        self.conf.write_text("\n".join(self._lines[:4] + extra + self._lines[4:]) + "\n")

    def start(self) -> None:
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [self.binary, "-c", str(self.conf)], stdout=log, stderr=subprocess.STDOUT
            )
        ports = [p for p in (self.port, self.tls_port) if p]
        if not wait_for(lambda: all(accepting(p) for p in ports), timeout_s=10):
            self.stop()
            raise RuntimeError(f"mosquitto did not listen on {ports}: {self.log.read_text()}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def restart(self, down_s: float = 0.0) -> None:
        """Stop, stay down ``down_s`` seconds, start again on the same port(s)."""
        self.stop()
        time.sleep(down_s)
        self.start()

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def __enter__(self) -> Broker:
        self.start()
        return self

    def __exit__(self, *_exc) -> None:
        self.stop()
