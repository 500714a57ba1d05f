"""The gateway health function's environment, shared with the construct that creates it (the
CDK app imports only this module)."""

from __future__ import annotations

from enum import StrEnum


class EnvVar(StrEnum):
    ALLOW_LIST_TABLE = "ALLOW_LIST_TABLE"
    STACK_PREFIX = "STACK_PREFIX"
