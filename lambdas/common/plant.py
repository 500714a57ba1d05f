"""The plant configuration that the plant config layer puts at ``PLANT_LAYER_FILE``."""

from __future__ import annotations

from functools import cache
from pathlib import Path

from lambdas.common.contract import PLANT_LAYER_FILE
from mes_domain.plant import Plant

__all__ = ["PLANT_LAYER_FILE", "load_plant"]


@cache
def load_plant(path: str = PLANT_LAYER_FILE) -> Plant:
    """Read and validate once per container and path."""
    return Plant.model_validate_json(Path(path).read_text())
