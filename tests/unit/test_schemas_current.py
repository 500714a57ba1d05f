"""The JSON schemas in docs/schemas are the contracts' current ones: regenerate and compare.
After changing a contract: ``python -m mes_domain.schemas export docs/schemas``."""

import json

import jsonschema

from mes_domain import schemas
from tests.conftest import PROJECT_ROOT

COMMITTED = PROJECT_ROOT / "docs" / "schemas"


def test_committed_schemas_are_current(tmp_path):
    schemas.export(tmp_path)

    generated = {path.name: path.read_text() for path in tmp_path.iterdir()}
    committed = {path.name: path.read_text() for path in COMMITTED.glob("*.schema.json")}
    assert sorted(committed) == sorted(generated), "run: python -m mes_domain.schemas export"
    stale = [name for name in generated if committed[name] != generated[name]]
    assert stale == [], f"stale schemas {stale}; run: python -m mes_domain.schemas export"


def test_export_is_deterministic(tmp_path):
    first, second = tmp_path / "a", tmp_path / "b"
    schemas.export(first)
    schemas.export(second)
    assert [p.read_bytes() for p in sorted(first.iterdir())] == [
        p.read_bytes() for p in sorted(second.iterdir())
    ]


def test_every_schema_is_valid_json_schema_and_events_carry_their_version():
    for name, schema in schemas.schemas().items():
        jsonschema.Draft202012Validator.check_schema(schema)
        if name.removesuffix(schemas.SUFFIX) in schemas.EVENTS:
            assert "schema_version" in schema["required"], name


def test_draft04_request_schema_accepts_one_document_or_a_list_and_rejects_bad_ones():
    schema = schemas.one_or_many(schemas.DOCUMENTS["inventory"])
    jsonschema.Draft4Validator.check_schema(schema)
    validator = jsonschema.Draft4Validator(schema)
    stock = {
        "v": 1,
        "source_system": "ERP",
        "document_id": "INV-1",
        "revision": 1,
        "issued_at": 1_763_800_000_000,
        "material_id": "HINGE-01",
        "site": "berlin",
        "available_quantity": 0,
        "uom": "PC",
    }
    assert validator.is_valid(stock) and validator.is_valid([stock, stock])
    assert not validator.is_valid([])
    assert not validator.is_valid({**stock, "v": 2})
    assert not validator.is_valid({**stock, "available_quantity": -1})
    assert not validator.is_valid({**stock, "unknown": 1})
    order = jsonschema.Draft4Validator(schemas.one_or_many(schemas.DOCUMENTS["production-order"]))
    assert "exclusiveMinimum" in json.dumps(order.schema)
    assert not order.is_valid({"quantity": 0})
