"""Read a plant configuration file (YAML or JSON) into the frozen ``Plant`` model.

Every problem is reported as ``<file>: <field path>: <reason>`` before any stack exists.

A file may start from another with ``extends: <path>`` (relative to the file): its mappings are
merged into the base's, key by key; any other value, lists included, replaces the base's. So a
plant keeps one description of its sites and one small file per variant (for example
``config/demo-plant-containers.yaml``, the demo plant with the containers platform on).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from mes_domain.plant import Plant

DEFAULT_PLANT_CONFIG = "config/demo-plant.yaml"
PLANT_CONTEXT_KEY = "plant"  # `cdk synth -c plant=config/other.yaml`
EXTENDS_KEY = "extends"
MAX_EXTENDS_DEPTH = 8


class PlantConfigError(ValueError):
    """An unreadable or invalid plant configuration; the message names the file and field."""


class _StrictYamlLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys instead of silently keeping the last one."""


def _mapping_without_duplicates(loader: _StrictYamlLoader, node: yaml.MappingNode) -> dict:
    mapping: dict[Any, Any] = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        if key in mapping:
            line = key_node.start_mark.line + 1
            raise PlantConfigError(f"line {line}: duplicate key {key!r}")
        mapping[key] = loader.construct_object(value_node, deep=True)
    return mapping


_StrictYamlLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping_without_duplicates
)


def _field_path(location: tuple[int | str, ...]) -> str:
    path = ""
    for part in location:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path or "(top level)"


def _read(path: Path) -> Any:
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".json":
        return json.loads(text)
    return yaml.load(text, Loader=_StrictYamlLoader)  # noqa: S506 - a SafeLoader subclass


def _merged(base: dict, override: dict) -> dict:
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merged(merged[key], value)
        else:
            merged[key] = value
    return merged


def _document(path: Path, chain: tuple[Path, ...] = ()) -> dict:
    """The mapping of ``path`` with the files it extends merged beneath it."""
    if path.suffix not in {".yaml", ".yml", ".json"}:
        raise PlantConfigError(f"{path}: plant configs are .yaml, .yml or .json files")
    if path.resolve() in chain:
        raise PlantConfigError(f"{path}: extends itself through {' -> '.join(map(str, chain))}")
    if len(chain) > MAX_EXTENDS_DEPTH:
        raise PlantConfigError(f"{path}: more than {MAX_EXTENDS_DEPTH} levels of extends")
    try:
        document = _read(path)
    except FileNotFoundError:
        raise PlantConfigError(f"{path}: file not found") from None
    except PlantConfigError as err:
        raise PlantConfigError(f"{path}: {err}") from None
    except (yaml.YAMLError, json.JSONDecodeError, UnicodeDecodeError) as err:
        raise PlantConfigError(f"{path}: not valid {path.suffix[1:].upper()}: {err}") from None
    if not isinstance(document, dict):
        raise PlantConfigError(f"{path}: the top level must be a mapping")
    base = document.pop(EXTENDS_KEY, None)
    if base is None:
        return document
    if not isinstance(base, str) or not base:
        raise PlantConfigError(f"{path}: extends: give the path of the base plant config")
    return _merged(_document(path.parent / base, (*chain, path.resolve())), document)


def load_plant(path: str | Path) -> Plant:
    """Parse and validate ``path``; raise ``PlantConfigError`` naming the file and field."""
    path = Path(path)
    document = _document(path)
    try:
        return Plant.model_validate(document)
    except ValidationError as err:
        problems = "\n".join(
            f"{path}: {_field_path(e['loc'])}: {e['msg'].removeprefix('Value error, ')}"
            for e in err.errors()
        )
        raise PlantConfigError(problems) from None
