"""Throw-away OPC UA certificates for tests and demos: a CA, a server and a client it signs, and
a self-signed client that the server must refuse.

OPC UA's Basic256Sha256 needs RSA keys (2048 bits here) and application instance
certificates: the subjectAltName carries the application URI, which the peer compares with the
URI in its ApplicationDescription, and the key usage allows signing and encryption. Clients
must set ``client.application_uri = certs.client_uri`` before ``set_security``.
"""

from __future__ import annotations

import datetime
import ipaddress
import socket
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

SERVER_URI = "urn:plant-sim:server"
CLIENT_URI = "urn:plant-sim:collector"


@dataclass(frozen=True)
class KeyPair:
    certificate: Path  # PEM
    private_key: Path  # PEM, PKCS#8, unencrypted


@dataclass(frozen=True)
class CertificateSet:
    folder: Path
    ca: Path  # the CA certificate (PEM)
    trusted_dir: Path  # a folder with only the CA: the server's trust store
    server: KeyPair
    client: KeyPair
    untrusted_client: KeyPair  # self-signed, same URI as ``client``: valid but not trusted
    server_uri: str = SERVER_URI
    client_uri: str = CLIENT_URI


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "plant_sim"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _certificate(
    subject: x509.Name,
    key: rsa.RSAPrivateKey,
    issuer: x509.Name,
    issuer_key: rsa.RSAPrivateKey,
    *,
    ca: bool = False,
    uri: str | None = None,
    days: int = 2,
) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()),
            critical=False,
        )
    )
    if ca:
        usage = x509.KeyUsage(
            digital_signature=True, content_commitment=False, key_encipherment=False,
            data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
            encipher_only=False, decipher_only=False,
        )  # fmt: skip
        builder = builder.add_extension(usage, critical=True)
    else:
        usage = x509.KeyUsage(
            digital_signature=True, content_commitment=True, key_encipherment=True,
            data_encipherment=True, key_agreement=False, key_cert_sign=False, crl_sign=False,
            encipher_only=False, decipher_only=False,
        )  # fmt: skip
        names: list[x509.GeneralName] = [
            *([x509.UniformResourceIdentifier(uri)] if uri else []),
            x509.DNSName("localhost"),
            x509.DNSName(socket.gethostname()),
            x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
        ]
        builder = (
            builder.add_extension(usage, critical=True)
            .add_extension(
                x509.ExtendedKeyUsage(
                    [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
                ),
                critical=False,
            )
            .add_extension(x509.SubjectAlternativeName(names), critical=False)
        )
    return builder.sign(issuer_key, hashes.SHA256())


def self_signed(
    common_name: str, *, uri: str | None = None
) -> tuple[x509.Certificate, rsa.RSAPrivateKey]:
    """A self-signed certificate (RSA 2048, valid for 2 days) and its key."""
    key = _key()
    name = _name(common_name)
    return _certificate(name, key, name, key, uri=uri), key


def certificate_pem(cert: x509.Certificate) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def private_key_pem(key: rsa.RSAPrivateKey) -> str:
    """PKCS#8, unencrypted."""
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


def _write(folder: Path, name: str, cert: x509.Certificate, key: rsa.RSAPrivateKey) -> KeyPair:
    cert_path, key_path = folder / f"{name}.pem", folder / f"{name}-key.pem"
    cert_path.write_text(certificate_pem(cert))
    key_path.write_text(private_key_pem(key))
    key_path.chmod(0o600)
    return KeyPair(cert_path, key_path)


def generate_certificates(
    folder: str | Path, *, server_uri: str = SERVER_URI, client_uri: str = CLIENT_URI
) -> CertificateSet:
    """Write a CA, a server and a client certificate it signs, and an untrusted self-signed
    client into ``folder`` (created if missing). Valid from 5 minutes ago for 2 days."""
    folder = Path(folder)
    trusted = folder / "trusted"
    trusted.mkdir(parents=True, exist_ok=True)
    ca_key = _key()
    ca_name = _name("plant_sim test CA")
    ca_cert = _certificate(ca_name, ca_key, ca_name, ca_key, ca=True, days=3)
    ca_path = trusted / "ca.pem"
    ca_path.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))

    def issued(name: str, uri: str) -> KeyPair:
        key = _key()
        return _write(folder, name, _certificate(_name(name), key, ca_name, ca_key, uri=uri), key)

    rogue, rogue_key = self_signed("untrusted-client", uri=client_uri)
    return CertificateSet(
        folder=folder,
        ca=ca_path,
        trusted_dir=trusted,
        server=issued("server", server_uri),
        client=issued("client", client_uri),
        untrusted_client=_write(folder, "untrusted-client", rogue, rogue_key),
        server_uri=server_uri,
        client_uri=client_uri,
    )
