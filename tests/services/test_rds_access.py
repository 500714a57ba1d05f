"""How the services reach RDS PostgreSQL: IAM database authentication (settings, the token, a
fresh one per new connection), and ``python -m services.bootstrap_database``.

A private PostgreSQL stands in for RDS: TLS on with a CA of the test's own (the pods verify the
RDS CA bundle the same way, sslmode=verify-full), and the services' login roles admitted over
TLS only with a password (RDS: over TLS only with an IAM token). The token provider is swapped
for one returning the role's current password, which the tests rotate as tokens expire.
"""

from __future__ import annotations

import datetime
import os
import pwd
import re
import shutil
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import boto3
import psycopg
import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from mes_domain.containers import SERVICES
from services import bootstrap_database
from services.common import aws
from services.common.db import engine_for, make_engine
from services.common.settings import ServiceSettings, SettingsError
from services.production_execution.settings import ProductionSettings
from tests.conftest import DEMO_PLANT, PROJECT_ROOT
from tests.greengrass.broker import free_port
from tests.postgres import SUPERUSER, PostgresNotInstalled, PostgresServer

REGION = "eu-central-1"
IAM_USER = "iam_user"  # a login role for the engine tests; the services' come from SERVICES
IAM_ROLES = [IAM_USER, *(service.database for service in SERVICES)]
MASTER = "rds_master"  # like RDS's master user: CREATEROLE and CREATEDB, no superuser


# -- the stand-in for RDS ---------------------------------------------------------------------


def _certificates(directory: Path) -> None:
    """A CA (``ca.pem``) and a server certificate for 127.0.0.1 it signed."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.UTC)

    def certificate(subject, issuer, public_key, signing_key, *, ca: bool):
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
            .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        )
        if not ca:
            import ipaddress

            builder = builder.add_extension(
                x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                critical=False,
            )
        return builder.sign(signing_key, hashes.SHA256())

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = certificate("test RDS CA", "test RDS CA", ca_key.public_key(), ca_key, ca=True)
    server_key = ec.generate_private_key(ec.SECP256R1())
    server = certificate("127.0.0.1", "test RDS CA", server_key.public_key(), ca_key, ca=False)
    pem = serialization.Encoding.PEM
    (directory / "ca.pem").write_bytes(ca.public_bytes(pem))
    (directory / "server.crt").write_bytes(server.public_bytes(pem))
    key = directory / "server.key"
    key.write_bytes(
        server_key.private_bytes(
            pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    key.chmod(0o600)  # the server refuses a key others may read


@pytest.fixture(scope="module")
def rds() -> Iterator[PostgresServer]:
    tls = Path(tempfile.mkdtemp(prefix="mes-rds-tls-"))
    try:
        _certificates(tls)
        if os.geteuid() == 0:  # the server runs as postgres (tests/postgres.py)
            user = pwd.getpwnam(SUPERUSER)
            for path in [tls, *tls.iterdir()]:
                os.chown(path, user.pw_uid, user.pw_gid)
        try:
            server = PostgresServer.start(
                extra_settings={
                    "ssl": "on",
                    "ssl_cert_file": str(tls / "server.crt"),
                    "ssl_key_file": str(tls / "server.key"),
                }
            )
        except PostgresNotInstalled as missing:
            pytest.fail(str(missing))
        with server:
            roles = ",".join(IAM_ROLES)
            (server.data_dir / "pg_hba.conf").write_text(
                f"hostssl all {roles} 127.0.0.1/32 scram-sha-256\n"
                f"host all {roles} 127.0.0.1/32 reject\n"
                "host all all 127.0.0.1/32 trust\n"
            )
            with server.connect() as connection:
                connection.execute("SELECT pg_reload_conf()")
            server.ca = tls / "ca.pem"  # type: ignore[attr-defined]
            yield server
    finally:
        shutil.rmtree(tls, ignore_errors=True)


def tls_url(server: PostgresServer, user: str, database: str) -> str:
    return (
        f"postgresql+psycopg://{user}@127.0.0.1:{server.port}/{database}"
        f"?sslmode=verify-full&sslrootcert={server.ca}"
    )


def set_password(server: PostgresServer, role: str, password: str) -> None:
    from psycopg import sql

    with server.connect() as connection:
        connection.execute(
            sql.SQL("ALTER ROLE {} PASSWORD {}").format(sql.Identifier(role), sql.Literal(password))
        )


@pytest.fixture
def iam_database(rds) -> Iterator[str]:
    """A database the login role ``iam_user`` owns, with a password ("token") set."""
    name = rds.create_database()
    with rds.connect() as connection:
        connection.execute(f"CREATE ROLE {IAM_USER} LOGIN")
        connection.execute(f'ALTER DATABASE "{name}" OWNER TO {IAM_USER}')
    try:
        yield name
    finally:
        rds.drop_database(name)
        with rds.connect() as connection:
            connection.execute(f"DROP ROLE {IAM_USER}")


class RotatingTokens:
    """The RDS token provider's stand-in: the current token, and who asked for one."""

    def __init__(self, token: str) -> None:
        self.token = token
        self.asked: list[tuple[str, int, str]] = []

    def __call__(self, host: str, port: int, user: str) -> str:
        self.asked.append((host, port, user))
        return self.token


# -- settings ---------------------------------------------------------------------------------

IAM_URL = "postgresql+psycopg://inventory@db.example:5432/inventory"


def test_iam_auth_is_off_by_default_and_needs_the_region_and_tls_when_on():
    plain = ServiceSettings.from_environ({"MES_DATABASE_URL": IAM_URL})
    assert plain.database_iam_auth is False and plain.aws_region is None
    on = {"MES_DATABASE_IAM_AUTH": "true", "MES_AWS_REGION": REGION}
    for sslmode in ("require", "verify-ca", "verify-full"):
        url = f"{IAM_URL}?sslmode={sslmode}&sslrootcert=/etc/mes/rds-ca.pem"
        settings = ServiceSettings.from_environ({**on, "MES_DATABASE_URL": url})
        assert settings.database_iam_auth and settings.aws_region == REGION
    refused = {
        "MES_AWS_REGION": {
            "MES_DATABASE_IAM_AUTH": "true",
            "MES_DATABASE_URL": IAM_URL + "?sslmode=require",
        },
        "sslmode=require|verify-ca|verify-full, not None": {**on, "MES_DATABASE_URL": IAM_URL},
        "not 'prefer'": {**on, "MES_DATABASE_URL": IAM_URL + "?sslmode=prefer"},
        "not ('verify-full', 'disable')": {
            **on,
            "MES_DATABASE_URL": IAM_URL + "?sslmode=verify-full&sslmode=disable",
        },
        "no password": {
            **on,
            "MES_DATABASE_URL": "postgresql+psycopg://inventory:pw@db.example/inventory?sslmode=require",
        },
        "must name the login role": {
            **on,
            "MES_DATABASE_URL": "postgresql+psycopg://db.example/inventory?sslmode=require",
        },
    }
    for expected, environ in refused.items():
        with pytest.raises(SettingsError, match="MES_DATABASE_IAM_AUTH") as error:
            ServiceSettings.from_environ(environ)
        assert expected in str(error.value), str(error.value)


def test_production_settings_check_iam_auth_too(tmp_path):
    """Production execution declares aws_region itself (for the sync); the check still holds."""
    environ = {
        "MES_DATABASE_URL": IAM_URL + "?sslmode=verify-full",
        "MES_PLANT_CONFIG": str(DEMO_PLANT),
        "MES_DATABASE_IAM_AUTH": "true",
    }
    with pytest.raises(SettingsError, match="set MES_AWS_REGION too"):
        ProductionSettings.from_environ(environ)
    assert ProductionSettings.from_environ({**environ, "MES_AWS_REGION": REGION}).database_iam_auth


# -- the token --------------------------------------------------------------------------------


def test_the_rds_token_is_a_presigned_connect_request_for_the_host_port_and_user():
    # Static credentials, no endpoint reached: generate_db_auth_token only signs, locally.
    client = boto3.client(
        "rds",
        region_name=REGION,
        aws_access_key_id="AKIDEXAMPLE",
        aws_secret_access_key="secret",
        endpoint_url="http://127.0.0.1:9",  # nothing listens: a network call would fail
    )
    tokens = aws.RdsAuthTokens(REGION, client=client)
    token = tokens("mes.abc123.eu-central-1.rds.amazonaws.com", 5432, "inventory")
    # The format RDS documents (user guide, "Connecting ... AWS CLI and psql client"):
    # <host>:<port>/?Action=connect&DBUser=<user>&X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Expires=900
    assert token.startswith(
        "mes.abc123.eu-central-1.rds.amazonaws.com:5432/?Action=connect&DBUser=inventory&"
    )
    query = parse_qs(urlsplit(f"https://{token}").query)
    assert query["X-Amz-Algorithm"] == ["AWS4-HMAC-SHA256"]
    assert query["X-Amz-Expires"] == ["900"]  # 15 minutes
    access_key, _date, region, service, scope = query["X-Amz-Credential"][0].split("/")
    assert (access_key, region, service, scope) == ("AKIDEXAMPLE", REGION, "rds-db", "aws4_request")
    assert len(query["X-Amz-Signature"][0]) == 64
    other = tokens("mes.abc123.eu-central-1.rds.amazonaws.com", 5432, "production_execution")
    assert "DBUser=production_execution&" in other and other != token


def test_the_locked_sdk_reads_pod_identity_credentials():
    """Pod Identity credentials need botocore 1.34.41 or later (EKS user guide, "Use pod
    identity with the AWS SDK"); the images install the services' lock."""
    lock = (PROJECT_ROOT / "requirements-services.txt").read_text()
    version = re.search(r"^botocore==(\S+)", lock, flags=re.MULTILINE).group(1)
    assert tuple(int(part) for part in version.split(".")[:3]) >= (1, 34, 41), version


# -- a fresh token per new connection ---------------------------------------------------------


def test_each_new_connection_logs_in_with_the_current_token(rds, iam_database):
    set_password(rds, IAM_USER, "token-1")
    tokens = RotatingTokens("token-1")
    engine = make_engine(tls_url(rds, IAM_USER, iam_database), password=tokens)
    try:
        first = engine.connect()
        assert first.execute(text("SELECT current_user")).scalar() == IAM_USER
        ssl = "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()"
        assert first.execute(text(ssl)).scalar() is True
        assert tokens.asked == [("127.0.0.1", rds.port, IAM_USER)]

        # The token expires (here: the password changes). The open connection goes on; a new
        # one with the old token is refused, so the provider's answer is what logs in.
        set_password(rds, IAM_USER, "token-2")
        assert first.execute(text("SELECT 1")).scalar() == 1
        with pytest.raises(OperationalError, match="password authentication failed"):
            engine.connect()
        tokens.token = "token-2"
        with engine.connect() as second:
            assert second.execute(text("SELECT current_user")).scalar() == IAM_USER
        assert len(tokens.asked) == 3
        first.close()
        with engine.connect():  # a pooled connection: no new login, no new token
            pass
        assert len(tokens.asked) == 3
    finally:
        engine.dispose()


def test_the_service_engine_signs_with_the_settings_region(rds, iam_database, monkeypatch):
    set_password(rds, IAM_USER, "token-3")
    signed: list[tuple[str, str, int, str]] = []

    def sign(self, host, port, user):
        signed.append((self.region, host, port, user))
        return "token-3"

    monkeypatch.setattr(aws.RdsAuthTokens, "__call__", sign)
    settings = ServiceSettings(
        database_url=tls_url(rds, IAM_USER, iam_database),
        database_iam_auth=True,
        aws_region=REGION,
    )
    engine = engine_for(settings)
    try:
        with engine.connect() as connection:
            assert connection.execute(text("SELECT current_user")).scalar() == IAM_USER
    finally:
        engine.dispose()
    assert signed == [(REGION, "127.0.0.1", rds.port, IAM_USER)]
    # Without IAM auth the same URL carries no password, and the role is refused.
    plain = engine_for(settings.model_copy(update={"database_iam_auth": False}))
    try:
        with pytest.raises(OperationalError, match="no password supplied|password authentication"):
            plain.connect()
    finally:
        plain.dispose()


# -- bootstrap_database -----------------------------------------------------------------------


@pytest.fixture
def clean_cluster(rds) -> Iterator[PostgresServer]:
    """No service databases or roles, and none of the test's master and rds_iam, after."""
    yield rds
    with rds.connect() as connection:
        for service in SERVICES:
            connection.execute(f'DROP DATABASE IF EXISTS "{service.database}" WITH (FORCE)')
        for role in [service.database for service in SERVICES] + [MASTER, "rds_iam"]:
            connection.execute(f'DROP ROLE IF EXISTS "{role}"')


def libpq_env(server: PostgresServer, user: str) -> dict[str, str]:
    return {
        "PGHOST": "127.0.0.1",
        "PGPORT": str(server.port),
        "PGUSER": user,
        "PGSSLMODE": "verify-full",
        "PGSSLROOTCERT": str(server.ca),
    }


def catalog(server: PostgresServer) -> list[tuple]:
    names = [service.database for service in SERVICES]
    with server.connect() as connection:
        roles = connection.execute(
            "SELECT rolname, rolcanlogin, rolsuper, rolpassword IS NULL,"
            " CASE WHEN EXISTS (SELECT FROM pg_roles WHERE rolname = 'rds_iam')"
            "   THEN pg_has_role(rolname, 'rds_iam', 'MEMBER') ELSE false END"
            " FROM pg_authid WHERE rolname = ANY(%s) ORDER BY rolname",
            (names,),
        ).fetchall()
        databases = connection.execute(
            "SELECT datname, pg_get_userbyid(datdba), datacl::text[],"
            " has_database_privilege('public', datname, 'CONNECT')"
            " FROM pg_database WHERE datname = ANY(%s) ORDER BY datname",
            (names,),
        ).fetchall()
    return roles + databases


def test_bootstrap_makes_each_service_role_and_database_once(clean_cluster, capsys):
    rds = clean_cluster
    environ = libpq_env(rds, SUPERUSER)
    assert bootstrap_database.main([], environ) == 0
    first = capsys.readouterr().out
    names = sorted(service.database for service in SERVICES)
    assert names == ["inventory", "production_execution"]
    roles, databases = catalog(rds)[:2], catalog(rds)[2:]
    # Login roles without a password; no rds_iam here (a plain PostgreSQL), so none granted.
    assert roles == [(name, True, False, True, False) for name in names]
    assert [(d[0], d[1], d[3]) for d in databases] == [(name, name, False) for name in names]
    assert "created database inventory owned by inventory" in first
    assert "revoked CONNECT on database inventory from PUBLIC" in first

    before = catalog(rds)
    assert bootstrap_database.main([], environ) == 0
    assert capsys.readouterr().out.strip() == "bootstrap_database: no changes"
    assert catalog(rds) == before


def test_bootstrap_as_an_rds_like_master_grants_rds_iam_and_the_services_log_in_with_iam(
    clean_cluster, capsys, monkeypatch
):
    """The master is no superuser (as on RDS); rds_iam exists (NOLOGIN, as on RDS). After the
    bootstrap each service migrates its own database as its role with an IAM token (here: the
    password the test sets), and cannot connect to the other's."""
    rds = clean_cluster
    with rds.connect() as connection:
        connection.execute("CREATE ROLE rds_iam NOLOGIN")
        connection.execute(f"CREATE ROLE {MASTER} LOGIN CREATEROLE CREATEDB")
        connection.execute(f"GRANT rds_iam TO {MASTER} WITH ADMIN OPTION")
    environ = libpq_env(rds, MASTER)
    assert bootstrap_database.main([], environ) == 0
    assert "granted rds_iam to inventory" in capsys.readouterr().out
    names = sorted(service.database for service in SERVICES)
    assert catalog(rds)[:2] == [(name, True, False, True, True) for name in names]
    before = catalog(rds)
    assert bootstrap_database.main([], environ) == 0
    assert capsys.readouterr().out.strip() == "bootstrap_database: no changes"
    assert catalog(rds) == before

    from services.inventory.__main__ import main as inventory_main

    set_password(rds, "inventory", "inventory-token")
    monkeypatch.setattr(aws.RdsAuthTokens, "__call__", lambda self, *_: "inventory-token")
    monkeypatch.setenv("MES_DATABASE_URL", tls_url(rds, "inventory", "inventory"))
    monkeypatch.setenv("MES_DATABASE_IAM_AUTH", "true")
    monkeypatch.setenv("MES_AWS_REGION", REGION)
    assert inventory_main(["migrate"]) == 0
    with rds.connect("inventory") as connection:
        owners = {
            owner
            for (owner,) in connection.execute(
                "SELECT tableowner FROM pg_tables WHERE schemaname = 'public'"
            )
        }
    assert owners == {"inventory"}

    set_password(rds, "production_execution", "pe-token")
    with pytest.raises(psycopg.OperationalError, match="permission denied for database"):
        psycopg.connect(
            host="127.0.0.1",
            port=rds.port,
            user="production_execution",
            password="pe-token",
            dbname="inventory",
            sslmode="verify-full",
            sslrootcert=str(rds.ca),
        )


def test_bootstrap_exits_2_without_a_host_and_1_when_the_database_refuses(clean_cluster):
    command = [sys.executable, "-m", "services.bootstrap_database"]
    base = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    done = subprocess.run(
        command, env=base, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2, done.stderr
    assert "PGHOST and PGUSER not set" in done.stderr
    bad_port = {**libpq_env(clean_cluster, SUPERUSER), "PGPORT": "54x"}
    assert bootstrap_database.main([], bad_port) == 2
    nobody = {**libpq_env(clean_cluster, SUPERUSER), "PGPORT": str(free_port())}
    assert bootstrap_database.main([], {**nobody, "PGCONNECT_TIMEOUT": "2"}) == 1
    unknown = {**libpq_env(clean_cluster, f"nobody_{uuid.uuid4().hex[:6]}")}
    assert bootstrap_database.main([], unknown) == 1
