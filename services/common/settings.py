"""Configuration from the environment, validated at start: a bad value stops the service with
the variable's name and the reason, before it touches the database."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from sqlalchemy.engine import make_url

from mes_domain.ids import Identifier

ENV_PREFIX = "MES_"
AWS_REGION_PATTERN = r"^[a-z]{2}(-[a-z]+)+-\d$"
# RDS IAM database authentication runs over TLS only (RDS user guide, "IAM database
# authentication": "Network traffic to and from the database is encrypted using SSL/TLS"; its
# psql example connects with sslmode=verify-full and the RDS CA bundle as sslrootcert).
TLS_SSLMODES = ("require", "verify-ca", "verify-full")


class SettingsError(ValueError):
    """The environment does not configure the service; the message names each variable."""


class ServiceSettings(BaseModel):
    """Each field is read from ``MES_<FIELD>``, e.g. ``MES_DATABASE_URL``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    database_url: Annotated[str, Field(min_length=1)]
    instance_id: Identifier = "cloud"  # "cloud", or the edge site's id
    host: str = "127.0.0.1"
    port: Annotated[int, Field(ge=1, le=65535)] = 8080
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    # The platform's EventBridge bus: outbound events (confirmations) go there from the outbox.
    event_bus_name: str | None = None
    outbox_interval_s: Annotated[float, Field(gt=0, le=60)] = 1.0
    # RDS IAM database authentication: each new connection signs a token as its password with the
    # pod's AWS credentials (services.common.db.engine_for); needs the region and TLS.
    database_iam_auth: bool = False
    aws_region: Annotated[str, Field(pattern=AWS_REGION_PATTERN)] | None = None

    @field_validator("database_url")
    @classmethod
    def _postgresql_through_psycopg(cls, value: str) -> str:
        if not value.startswith("postgresql+psycopg://"):
            raise ValueError(
                "must be a SQLAlchemy URL for psycopg 3: postgresql+psycopg://user@host:port/db"
            )
        return value

    @model_validator(mode="after")
    def _iam_auth_complete(self) -> ServiceSettings:
        if not self.database_iam_auth:
            return self
        if self.aws_region is None:
            raise ValueError(
                "MES_DATABASE_IAM_AUTH signs its tokens for a region: set MES_AWS_REGION too"
            )
        url = make_url(self.database_url)
        if not url.username or not url.host:
            raise ValueError(
                "MES_DATABASE_IAM_AUTH: MES_DATABASE_URL must name the login role and the host "
                "(the token is signed for both): postgresql+psycopg://<role>@<host>:5432/<db>"
            )
        if url.password:
            raise ValueError(
                "MES_DATABASE_IAM_AUTH: MES_DATABASE_URL must hold no password (the IAM token is)"
            )
        sslmode = url.query.get("sslmode")  # a tuple when given more than once: refused too
        if sslmode not in TLS_SSLMODES:
            raise ValueError(
                "MES_DATABASE_IAM_AUTH needs TLS (RDS refuses IAM authentication without it): "
                f"MES_DATABASE_URL must set sslmode={'|'.join(TLS_SSLMODES)}, not {sslmode!r}"
            )
        return self

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None) -> Any:
        environ = os.environ if environ is None else environ
        values = {
            name: environ[f"{ENV_PREFIX}{name.upper()}"]
            for name in cls.model_fields
            if f"{ENV_PREFIX}{name.upper()}" in environ
        }
        try:
            return cls.model_validate(values)
        except ValidationError as exc:
            problems = "; ".join(_described(error) for error in exc.errors())
            raise SettingsError(f"invalid configuration: {problems}") from None


def _described(error: Any) -> str:
    """A field's error names its variable; a check across fields names them in its message."""
    if not error["loc"]:
        return str(error["msg"]).removeprefix("Value error, ")
    return f"{ENV_PREFIX}{str(error['loc'][0]).upper()}: {error['msg']}"
