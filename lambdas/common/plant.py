"""The plant configuration that the plant config layer puts at ``/opt/plant/plant.json``."""

from __future__ import annotations

from functools import cache
from pathlib import Path

from mes_domain.plant import Plant

PLANT_LAYER_FILE = "/opt/plant/plant.json"


@cache
def load_plant(path: str = PLANT_LAYER_FILE) -> Plant:
    """Read and validate once per container and path."""
    return Plant.model_validate_json(Path(path).read_text())
