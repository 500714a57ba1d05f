"""ERP/PLM documents: valid ones parse, inconsistent ones are rejected with the reason."""

import pytest
from pydantic import ValidationError

from mes_domain.enterprise import (
    BillOfMaterials,
    NonConformanceReport,
    ProductionConfirmation,
    ProductionOrder,
    Routing,
)

NOW_MS = 1_763_800_000_000
CONTEXT = {"now_ms": NOW_MS}
HEADER = {"v": 1, "source_system": "ERP", "document_id": "D-1", "revision": 0, "issued_at": NOW_MS}


def order(**overrides):
    doc = {
        **HEADER,
        "order_id": "1000123",
        "material_id": "DOOR-L",
        "quantity": 500,
        "uom": "PC",
        "site": "berlin",
        "line": "body-line-1",
        "planned_start": NOW_MS,
        "planned_end": NOW_MS + 8 * 3600 * 1000,
    }
    doc.update(overrides)
    return doc


def test_production_order_parses():
    parsed = ProductionOrder.model_validate(order(), context=CONTEXT)
    assert parsed.status == "RELEASED" and parsed.quantity == 500


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"planned_end": NOW_MS}, "planned_end must be after planned_start"),
        ({"quantity": 0}, "greater than 0"),
        ({"site": "ber/lin"}, "topic level separator"),
        ({"v": 2}, "unsupported payload version"),
        ({"revision": -1}, "greater than or equal to 0"),
    ],
)
def test_inconsistent_orders_are_rejected(overrides, reason):
    with pytest.raises(ValidationError, match=reason):
        ProductionOrder.model_validate(order(**overrides), context=CONTEXT)


def test_bom_positions_and_routing_operations_are_unique():
    item = {"position": 10, "component_id": "HINGE", "quantity": 2, "uom": "PC"}
    bom = {**HEADER, "bom_id": "B1", "material_id": "DOOR-L", "items": [item, item]}
    with pytest.raises(ValidationError, match="duplicate BOM position: 10"):
        BillOfMaterials.model_validate(bom, context=CONTEXT)

    operation = {
        "operation_no": 10,
        "description": "Press",
        "station_kind": "press",
        "standard_time_s": 6,
    }
    routing = {
        **HEADER,
        "source_system": "PLM",
        "routing_id": "R1",
        "material_id": "DOOR-L",
        "operations": [operation, operation],
    }
    with pytest.raises(ValidationError, match="duplicate operation number: 10"):
        Routing.model_validate(routing, context=CONTEXT)


def test_routing_carries_work_instructions():
    routing = Routing.model_validate(
        {
            **HEADER,
            "source_system": "PLM",
            "routing_id": "R1",
            "material_id": "DOOR-L",
            "operations": [
                {
                    "operation_no": 10,
                    "description": "Hem door",
                    "station_kind": "assembly",
                    "standard_time_s": 60,
                    "work_instructions": [
                        {"step": 1, "text": "Clamp panel"},
                        {"step": 2, "text": "Hem"},
                    ],
                }
            ],
        },
        context=CONTEXT,
    )
    assert [wi.text for wi in routing.operations[0].work_instructions] == ["Clamp panel", "Hem"]


def test_outbound_documents_validate():
    confirmation = ProductionConfirmation.model_validate(
        {
            **HEADER,
            "source_system": "MES",
            "order_id": "1000123",
            "site": "berlin",
            "line": "body-line-1",
            "station": "press-01",
            "good_quantity": 480,
            "scrap_quantity": 20,
            "materials_consumed": [{"material_id": "COIL", "quantity": 1.5, "uom": "T"}],
        },
        context=CONTEXT,
    )
    assert confirmation.scrap_quantity == 20
    with pytest.raises(ValidationError, match="greater than or equal to 0"):
        NonConformanceReport.model_validate(
            {
                **HEADER,
                "source_system": "MES",
                "ncr_id": "N1",
                "site": "berlin",
                "line": "l1",
                "station": "vision-01",
                "part_id": "P1",
                "defect_code": "SCRATCH",
                "description": "x",
                "detected_at": NOW_MS,
                "source": "VISION",
                "inspection": {
                    "v": 1,
                    "ts": NOW_MS,
                    "part_id": "P1",
                    "verdict": "DEFECT",
                    "score": 0.9,
                    "threshold": 0.5,
                    "model_id": "m",
                    "model_version": "1",
                    "latency_ms": -1,
                },
            },
            context=CONTEXT,
        )


def test_a_confirmation_cannot_finish_before_it_started():
    from pydantic import ValidationError

    from mes_domain.enterprise import ProductionConfirmation

    fields = {
        "v": 1, "source_system": "MES", "document_id": "CONF-1-10", "revision": 0,
        "issued_at": 1_700_000_100_000, "order_id": "1", "site": "berlin", "line": "l1",
        "station": "press-01", "good_quantity": 1, "scrap_quantity": 0,
    }  # fmt: skip
    ProductionConfirmation.model_validate(fields | {"started_at": 1_700_000_000_000})
    with pytest.raises(ValidationError, match="finished_at must not be before started_at"):
        ProductionConfirmation.model_validate(
            fields | {"started_at": 1_700_000_050_000, "finished_at": 1_700_000_000_000}
        )
