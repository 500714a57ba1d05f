"""The lake flattener's settings, checked at cold start."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Literal

from pydantic import BaseModel, ConfigDict

from lambdas.common.settings import from_environ
from lambdas.lake_flattener.contract import EnvVar

StreamTable = Literal["telemetry", "state_changes", "part_counts"]


class Settings(BaseModel):
    model_config = ConfigDict(frozen=True)

    lake_table: StreamTable

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] = os.environ) -> Settings:
        return from_environ(cls, EnvVar, environ)
