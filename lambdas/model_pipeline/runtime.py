"""What the handlers build once per container: settings, the plant, the registry."""

from __future__ import annotations

from functools import cache
from typing import Any

from lambdas.common.aws import client
from lambdas.common.plant import load_plant
from lambdas.model_pipeline.registry import ModelRegistry
from lambdas.model_pipeline.settings import EnvVar, Settings
from mes_domain.plant import Plant


@cache
def settings() -> Settings:
    return Settings.from_environ()


@cache
def plant() -> Plant:
    """The plant config from the layer, read once per container."""
    return load_plant(settings().plant_file)


@cache
def registry() -> ModelRegistry:
    return ModelRegistry(settings().require(EnvVar.MODELS_TABLE).models_table)


def greengrass() -> Any:
    return client("greengrassv2")


def clear_caches() -> None:
    """Forget everything built so far (tests change the environment between cases)."""
    for cached in (settings, plant, registry):
        cached.cache_clear()
