"""A private PostgreSQL cluster on a free loopback port, for the MES services' tests.

Debian's ``postgresql`` package provides the binaries (``make test`` installs it); the
cluster is made with ``initdb`` in a fresh temp directory, listens on 127.0.0.1 only (no Unix
socket) with ``trust`` for 127.0.0.1, and is removed on ``stop``. ``initdb`` refuses to run as
root, so under root (CI) the server runs as Debian's ``postgres`` system user.
"""

from __future__ import annotations

import os
import pwd
import re
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.greengrass.broker import free_port

SUPERUSER = "postgres"  # the cluster's superuser, and the system user it runs as under root
LIB_ROOT = Path("/usr/lib/postgresql")
SETUP_HINT = "`make test` installs it (its `postgresql` step: apt-get install postgresql)"
START_TIMEOUT_S = 30.0
START_ATTEMPTS = 3  # a free port can be taken by someone else before the server binds it
# WITH (FORCE) on DROP DATABASE, which ends the connections still open on it.
MIN_SERVER_VERSION = 13


class PostgresNotInstalled(RuntimeError):
    pass


def _has_server(bindir: Path) -> bool:
    return all(os.access(bindir / name, os.X_OK) for name in ("initdb", "pg_ctl", "postgres"))


def _version_key(bindir: Path) -> tuple[int, ...]:
    """``/usr/lib/postgresql/9.6/bin`` -> (9, 6); a name that is no version sorts first."""
    return tuple(int(part) for part in re.findall(r"\d+", bindir.parent.name)) or (-1,)


def server_bindir(pg_config: str | None = "pg_config", lib_root: Path = LIB_ROOT) -> Path:
    """Where ``initdb`` and ``pg_ctl`` are: ``pg_config --bindir``, else the newest Debian one.

    Debian's ``pg_config`` may come from ``libpq-dev`` without any server, so its answer counts
    only when the server binaries are there. ``pg_config=None``: do not ask it.
    """
    if pg_config:
        try:
            answer = subprocess.run(
                [pg_config, "--bindir"], capture_output=True, text=True, timeout=10, check=True
            ).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            answer = ""
        if answer and _has_server(Path(answer)):
            return Path(answer)
    found = sorted((d for d in lib_root.glob("*/bin") if _has_server(d)), key=_version_key)
    if not found:
        raise PostgresNotInstalled(
            f"no PostgreSQL server (initdb, pg_ctl) from pg_config or in {lib_root}/*/bin: "
            + SETUP_HINT
        )
    return found[-1]


def _as_server_user() -> list[str]:
    """The command prefix that runs initdb, pg_ctl and postgres as a user they accept."""
    if os.geteuid() != 0:
        return []
    try:
        pwd.getpwnam(SUPERUSER)
    except KeyError:
        raise PostgresNotInstalled(
            f"running as root, but there is no `{SUPERUSER}` system user to run the server as "
            f"(Debian's postgresql package creates it): {SETUP_HINT}"
        ) from None
    if shutil.which("runuser"):
        return ["runuser", "-u", SUPERUSER, "--"]
    return ["setpriv", f"--reuid={SUPERUSER}", f"--regid={SUPERUSER}", "--init-groups", "--"]


class PostgresServer:
    """One running cluster: ``port``, ``url(db)``, ``create_database``, ``drop_database``, ``stop``.

    Made by ``PostgresServer.start()``; every connection is TCP to 127.0.0.1 as ``postgres``
    without a password.
    """

    def __init__(self, bindir: Path, root: Path, run_as: list[str]) -> None:
        self.bindir = bindir
        self.root = root
        self.data_dir = root / "data"
        self.log = root / "server.log"
        self.port = 0
        self._run_as = run_as

    # -- life cycle --------------------------------------------------------------------------

    @classmethod
    def start(
        cls, bindir: Path | None = None, extra_settings: dict[str, str] | None = None
    ) -> PostgresServer:
        """initdb a fresh cluster in a new temp directory and start it on a free loopback port."""
        bindir = bindir or server_bindir()
        run_as = _as_server_user()
        # Not pytest's tmp_path: /tmp/pytest-of-root is 0700, which the postgres user can't enter.
        root = Path(tempfile.mkdtemp(prefix="mes-postgres-"))
        if run_as:
            user = pwd.getpwnam(SUPERUSER)
            os.chown(root, user.pw_uid, user.pw_gid)
        server = cls(bindir, root, run_as)
        try:
            server._initdb()
            server._start(extra_settings or {})
        except BaseException:
            server.stop()
            raise
        return server

    def _run(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
        # cwd: the postgres user may not be allowed into the directory the tests run from.
        return subprocess.run(
            [*self._run_as, *args],
            cwd=self.root,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def _initdb(self) -> None:
        done = self._run(
            str(self.bindir / "initdb"),
            f"--pgdata={self.data_dir}",
            f"--username={SUPERUSER}",
            "--auth=trust",
            "--encoding=UTF8",
            "--locale=C",
            "--no-sync",  # a throw-away cluster: no need to flush its files to disk
        )
        if done.returncode != 0:
            raise RuntimeError(f"initdb failed ({done.returncode}): {done.stdout}{done.stderr}")
        # Only TCP from 127.0.0.1 (initdb's --auth=trust also admits ::1 and the Unix socket).
        (self.data_dir / "pg_hba.conf").write_text("host all all 127.0.0.1/32 trust\n")

    def _start(self, extra_settings: dict[str, str]) -> None:
        for attempt in range(1, START_ATTEMPTS + 1):
            self.port = free_port()
            settings = {
                "listen_addresses": "127.0.0.1",
                "port": str(self.port),
                "unix_socket_directories": "''",  # no socket file: TCP on loopback only
                # Durability is worthless for a cluster deleted after the session, and these
                # make each CREATE DATABASE and commit seconds faster in sum on a 2-core CI box.
                "fsync": "off",
                "synchronous_commit": "off",
                "full_page_writes": "off",
                "max_connections": "200",  # each service test's pool plus the fixtures' own
                **extra_settings,
            }
            options = " ".join(f"-c {name}={value}" for name, value in settings.items())
            started = self._run(
                str(self.bindir / "pg_ctl"),
                "start",
                f"--pgdata={self.data_dir}",
                f"--log={self.log}",
                "--wait",
                f"--timeout={int(START_TIMEOUT_S)}",
                f"--options={options}",
                timeout=START_TIMEOUT_S + 10,
            )
            if started.returncode == 0 and self._wait_until_accepting():
                self._check_version()
                return
            log = self.log.read_text(errors="replace") if self.log.exists() else ""
            if "could not bind" in log and attempt < START_ATTEMPTS:
                self.log.unlink()
                continue
            raise RuntimeError(
                f"PostgreSQL did not start on 127.0.0.1:{self.port} within {START_TIMEOUT_S:.0f} s"
                f" ({started.stdout.strip()} {started.stderr.strip()}); server log:\n{log}"
            )

    def _wait_until_accepting(self) -> bool:
        import psycopg

        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            try:
                with self.connect():
                    return True
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    return False
                time.sleep(0.05)

    def _check_version(self) -> None:
        with self.connect() as conn:
            version = conn.info.server_version // 10000
        if version < MIN_SERVER_VERSION:
            raise PostgresNotInstalled(
                f"PostgreSQL {version} in {self.bindir}; the tests need {MIN_SERVER_VERSION} or "
                f"later: {SETUP_HINT}"
            )

    def stop(self) -> None:
        """End the server at once (nothing in it is kept) and remove its directory."""
        if (self.data_dir / "postmaster.pid").exists():
            self._run(
                str(self.bindir / "pg_ctl"),
                "stop",
                f"--pgdata={self.data_dir}",
                "--mode=immediate",
                "--wait",
                timeout=START_TIMEOUT_S,
            )
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> PostgresServer:
        return self

    def __exit__(self, *_exc) -> None:
        self.stop()

    # -- databases ---------------------------------------------------------------------------

    def url(self, database: str) -> str:
        """The SQLAlchemy URL of ``database`` (psycopg 3 driver)."""
        return f"postgresql+psycopg://{SUPERUSER}@127.0.0.1:{self.port}/{database}"

    def conninfo(self, database: str = "postgres") -> str:
        """The libpq connection string of ``database``, for psycopg directly."""
        return f"host=127.0.0.1 port={self.port} user={SUPERUSER} dbname={database}"

    def connect(self, database: str = "postgres"):
        """An autocommit psycopg connection to ``database``; close it (or use ``with``)."""
        import psycopg

        return psycopg.connect(self.conninfo(database), autocommit=True, connect_timeout=5)

    def create_database(self, name: str | None = None) -> str:
        """A new empty database (``test_<random>`` unless named); returns its name."""
        from psycopg import sql

        name = name or f"test_{uuid.uuid4().hex[:16]}"
        # template0: an empty copy, never blocked by connections open on template1.
        with self.connect() as conn:
            conn.execute(
                sql.SQL("CREATE DATABASE {} TEMPLATE template0").format(sql.Identifier(name))
            )
        return name

    def drop_database(self, name: str) -> None:
        """Drop ``name`` if it exists, ending the connections still open on it first."""
        from psycopg import sql

        with self.connect() as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )

    def databases(self) -> set[str]:
        """The names of the databases other than the templates."""
        with self.connect() as conn:
            rows = conn.execute("SELECT datname FROM pg_database WHERE NOT datistemplate")
            return {name for (name,) in rows}

    @contextmanager
    def temporary_database(self) -> Iterator[str]:
        """The URL of a fresh empty database, dropped on leaving (even with connections open)."""
        name = self.create_database()
        try:
            yield self.url(name)
        finally:
            self.drop_database(name)
