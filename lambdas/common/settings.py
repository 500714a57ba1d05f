"""Handler settings read from the environment once, at cold start, and checked by pydantic."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from enum import StrEnum
from typing import TypeVar

from pydantic import BaseModel

M = TypeVar("M", bound=BaseModel)


def from_environ(
    model: type[M], keys: Iterable[StrEnum], environ: Mapping[str, str] = os.environ
) -> M:
    """Each key's value goes to the field of its lower-cased name; unset keys are left out, so
    the model's defaults apply and a missing required one is a clear validation error."""
    return model(**{key.value.lower(): environ[key.value] for key in keys if key.value in environ})
