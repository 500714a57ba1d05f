"""Configuration from the environment, validated at start: a bad value stops the service with
the variable's name and the reason, before it touches the database."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from mes_domain.ids import Identifier

ENV_PREFIX = "MES_"


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

    @field_validator("database_url")
    @classmethod
    def _postgresql_through_psycopg(cls, value: str) -> str:
        if not value.startswith("postgresql+psycopg://"):
            raise ValueError(
                "must be a SQLAlchemy URL for psycopg 3: postgresql+psycopg://user@host:port/db"
            )
        return value

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
            problems = "; ".join(
                f"{ENV_PREFIX}{str(error['loc'][0]).upper()}: {error['msg']}"
                for error in exc.errors()
            )
            raise SettingsError(f"invalid configuration: {problems}") from None
