"""``python -m services.bootstrap_database``: each MES service's database and login role on the
platform's PostgreSQL (RDS), made by the delivery pipeline's deploy stage before the services'
``migrate`` runs. It connects as the RDS master user with the standard libpq variables
(``PGHOST``, ``PGPORT``, ``PGUSER``, ``PGPASSWORD``, ``PGSSLMODE``, ``PGSSLROOTCERT``).

For each ``mes_domain.containers.SERVICES`` entry, named by its ``database``:

- the login role, without a password: its pods log in with IAM tokens, which takes membership
  of ``rds_iam`` (RDS user guide, "Creating a database account using IAM authentication":
  ``CREATE USER db_userx; GRANT rds_iam TO db_userx;``). ``rds_iam`` exists on RDS only; where
  it does not (a local PostgreSQL), the role is left a plain login role;
- the database, owned by that role (so its ``migrate`` may create the schema);
- CONNECT on it revoked from PUBLIC: each service reaches its own database only.

Idempotent: what is already there is left alone, and a second run changes nothing. It prints
each change. Exit codes: 0 done, 1 the database refused (the message says why), 2 the
environment does not say where to connect.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Iterable, Mapping
from typing import Any

from mes_domain.containers import SERVICES

EXIT_OK, EXIT_DATABASE, EXIT_CONFIGURATION = 0, 1, 2
REQUIRED_ENV = ("PGHOST", "PGUSER")
# The libpq variables passed on as connection parameters (libpq would read them from the process
# environment too; passing them makes ``main(environ=...)`` self-contained).
LIBPQ_ENV = {
    "PGHOST": "host",
    "PGPORT": "port",
    "PGUSER": "user",
    "PGPASSWORD": "password",
    "PGSSLMODE": "sslmode",
    "PGSSLROOTCERT": "sslrootcert",
    "PGCONNECT_TIMEOUT": "connect_timeout",
}
MAINTENANCE_DATABASE = "postgres"  # on RDS too: the master user connects to it
IAM_ROLE = "rds_iam"
# One bootstrap at a time (two deploys overlapping would race on CREATE DATABASE).
BOOTSTRAP_LOCK_KEY = 0x4D45_5342_4F4F_5400  # "MESBOOT\0"


class ConfigurationError(ValueError):
    pass


def connection_parameters(environ: Mapping[str, str]) -> dict[str, Any]:
    missing = [name for name in REQUIRED_ENV if not environ.get(name)]
    if missing:
        raise ConfigurationError(
            f"{' and '.join(missing)} not set: the master user's connection comes from the libpq "
            f"variables {', '.join(LIBPQ_ENV)}"
        )
    port = environ.get("PGPORT", "5432")
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigurationError(f"PGPORT {port!r} is not a port number")
    parameters = {key: environ[name] for name, key in LIBPQ_ENV.items() if environ.get(name)}
    parameters["dbname"] = environ.get("PGDATABASE") or MAINTENANCE_DATABASE
    return parameters


def bootstrap(connection: Any, databases: Iterable[str]) -> list[str]:
    """Make each database and its role on ``connection`` (autocommit: CREATE DATABASE runs
    outside a transaction); returns what changed, in order."""
    from psycopg import sql

    def one(query: str, *args: Any) -> Any:
        return connection.execute(query, args).fetchone()[0]

    changes: list[str] = []
    with_iam = one("SELECT EXISTS (SELECT FROM pg_roles WHERE rolname = %s)", IAM_ROLE)
    # To own a database another role must be one the creator can act as (PostgreSQL, CREATE
    # DATABASE: "must be able to SET ROLE to that role"); the RDS master is no superuser.
    membership = "SET" if connection.info.server_version >= 160000 else "MEMBER"
    for name in databases:
        role = sql.Identifier(name)
        if not one("SELECT EXISTS (SELECT FROM pg_roles WHERE rolname = %s)", name):
            connection.execute(sql.SQL("CREATE ROLE {} LOGIN").format(role))
            changes.append(f"created login role {name}")
        elif not one("SELECT rolcanlogin FROM pg_roles WHERE rolname = %s", name):
            connection.execute(sql.SQL("ALTER ROLE {} LOGIN").format(role))
            changes.append(f"let role {name} log in")
        if with_iam and not one("SELECT pg_has_role(%s, %s, 'MEMBER')", name, IAM_ROLE):
            connection.execute(sql.SQL("GRANT {} TO {}").format(sql.Identifier(IAM_ROLE), role))
            changes.append(f"granted {IAM_ROLE} to {name}")
        if not one("SELECT EXISTS (SELECT FROM pg_database WHERE datname = %s)", name):
            if not one("SELECT pg_has_role(current_user, %s, %s)", name, membership):
                connection.execute(sql.SQL("GRANT {} TO CURRENT_USER").format(role))
                changes.append(f"granted {name} to the bootstrapping user, to give it a database")
            connection.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(role, role))
            changes.append(f"created database {name} owned by {name}")
        if one("SELECT has_database_privilege('public', %s, 'CONNECT')", name):
            connection.execute(sql.SQL("REVOKE CONNECT ON DATABASE {} FROM PUBLIC").format(role))
            changes.append(f"revoked CONNECT on database {name} from PUBLIC")
    return changes


def run(environ: Mapping[str, str]) -> list[str]:
    import psycopg

    parameters = connection_parameters(environ)
    with psycopg.connect(**parameters, autocommit=True) as connection:
        connection.execute("SELECT pg_advisory_lock(%s)", (BOOTSTRAP_LOCK_KEY,))
        # Released when the connection closes, whatever happens.
        return bootstrap(connection, [service.database for service in SERVICES])


def main(argv: list[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m services.bootstrap_database",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.parse_args(argv)  # no arguments: --help, or exit 2 on any other
    import psycopg

    try:
        changes = run(os.environ if environ is None else environ)
    except ConfigurationError as bad:
        print(f"bootstrap_database: {bad}", file=sys.stderr)
        return EXIT_CONFIGURATION
    except psycopg.Error as refused:
        print(f"bootstrap_database: {type(refused).__name__}: {refused}", file=sys.stderr)
        return EXIT_DATABASE
    for change in changes:
        print(change)
    print(f"bootstrap_database: {len(changes) or 'no'} changes")
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
