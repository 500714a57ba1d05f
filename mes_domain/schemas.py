"""JSON schemas of the enterprise contracts: inbound documents and outbound event details.

``python -m mes_domain.schemas export docs/schemas`` writes one ``<name>.schema.json`` per
contract (sorted keys, so the output is deterministic); a test checks the committed ones are
current. ``draft04`` turns a schema into the draft-04 subset API Gateway validates requests with.
Pure: the only I/O is ``export`` writing the files it is asked to.
"""

from __future__ import annotations

import copy
import json
import sys
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from mes_domain.contracts import SCHEMA_VERSION
from mes_domain.enterprise import (
    OUTBOUND_EVENTS,
    BillOfMaterials,
    InventoryAvailability,
    MaterialMaster,
    NonConformanceReport,
    OrderStatusChanged,
    ProductionConfirmation,
    ProductionOrder,
    Routing,
)

DRAFT_2020_12 = "https://json-schema.org/draft/2020-12/schema"
DRAFT_04 = "http://json-schema.org/draft-04/schema#"
SUFFIX = ".schema.json"

DOCUMENTS: dict[str, type[BaseModel]] = {
    "production-order": ProductionOrder,
    "material-master": MaterialMaster,
    "bom": BillOfMaterials,
    "inventory": InventoryAvailability,
    "routing": Routing,
}
EVENTS: dict[str, type[BaseModel]] = {
    "production-confirmation": ProductionConfirmation,
    "order-status-changed": OrderStatusChanged,
    "non-conformance": NonConformanceReport,
}


def document_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The model's JSON schema, with ``v`` pinned to the supported version."""
    schema = model.model_json_schema()
    if "v" in schema.get("properties", {}):
        schema["properties"]["v"]["const"] = SCHEMA_VERSION
    return {"$schema": DRAFT_2020_12, **schema}


def event_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The EventBridge Detail of an outbound event: the model plus ``schema_version``."""
    schema = document_schema(model)
    route = OUTBOUND_EVENTS[model]
    schema["properties"]["schema_version"] = {"const": SCHEMA_VERSION, "type": "integer"}
    schema["required"] = sorted({*schema.get("required", []), "schema_version"})
    schema["description"] = (
        f"{schema.get('description', '').strip()} EventBridge source {route.source.value}, "
        f"detail-type {route.detail_type}."
    ).strip()
    return schema


def schemas() -> dict[str, dict[str, Any]]:
    """Every exported schema by file name."""
    found = {name + SUFFIX: document_schema(model) for name, model in DOCUMENTS.items()}
    found |= {name + SUFFIX: event_schema(model) for name, model in EVENTS.items()}
    return found


def render(schema: dict[str, Any]) -> str:
    return json.dumps(schema, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def _to_draft04(node: Any) -> Any:
    if isinstance(node, list):
        return [_to_draft04(value) for value in node]
    if not isinstance(node, dict):
        return node
    converted = {key: _to_draft04(value) for key, value in node.items()}
    if "$ref" in converted:
        converted["$ref"] = converted["$ref"].replace("#/$defs/", "#/definitions/")
    if "const" in converted:
        converted["enum"] = [converted.pop("const")]
    for bound, inclusive in (("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")):
        if isinstance(converted.get(bound), int | float) and not isinstance(converted[bound], bool):
            converted[inclusive] = converted[bound]
            converted[bound] = True
    return converted


def draft04(schema: dict[str, Any]) -> dict[str, Any]:
    """The same schema in draft-04 terms: ``definitions``, boolean exclusive bounds, ``enum``
    for ``const``."""
    schema = copy.deepcopy(schema)
    schema.pop("$schema", None)
    definitions = schema.pop("$defs", {})
    converted = _to_draft04(schema)
    if definitions:
        converted["definitions"] = _to_draft04(definitions)
    return {"$schema": DRAFT_04, **converted}


def one_or_many(model: type[BaseModel]) -> dict[str, Any]:
    """Draft-04 schema of a request body: one document or a non-empty list of them."""
    schema = document_schema(model)
    schema.pop("$schema")
    definitions = schema.pop("$defs", {})
    name = model.__name__
    ref = {"$ref": f"#/$defs/{name}"}
    body = {
        "$defs": {**definitions, name: schema},
        "oneOf": [ref, {"type": "array", "minItems": 1, "items": ref}],
    }
    return draft04(body)


def export(directory: Path) -> list[Path]:
    """Write every schema into ``directory``; the paths written."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, schema in sorted(schemas().items()):
        path = directory / name
        path.write_text(render(schema), encoding="utf-8")
        written.append(path)
    return written


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[0] != "export":
        print("usage: python -m mes_domain.schemas export DIRECTORY", file=sys.stderr)
        return 2
    for path in export(Path(argv[1])):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
