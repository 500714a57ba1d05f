"""What the ERP/PLM router shares with its construct: environment keys, the inboxes (source and
document types) and the draft-04 schema API Gateway validates each inbox's body with.

Imports only the standard library and mes_domain: the CDK app imports this module.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from mes_domain.enterprise import (
    BillOfMaterials,
    EnterpriseDocument,
    InventoryAvailability,
    MaterialMaster,
    ProductionOrder,
    Routing,
    SourceSystem,
)
from mes_domain.schemas import one_or_many


class EnvVar(StrEnum):
    LANDING_BUCKET = "LANDING_BUCKET"
    ORDERS_TABLE = "ORDERS_TABLE"
    PRODUCTS_TABLE = "PRODUCTS_TABLE"  # material master and BOMs
    PROCESS_PLANS_TABLE = "PROCESS_PLANS_TABLE"  # routings with their work instructions
    INVENTORY_TABLE = "INVENTORY_TABLE"
    IDEMPOTENCY_TABLE = "IDEMPOTENCY_TABLE"
    EVENT_BUS_NAME = "EVENT_BUS_NAME"  # stored production orders go to the lake from there


class Source(StrEnum):
    ERP = "erp"
    PLM = "plm"

    @property
    def system(self) -> SourceSystem:
        return _SYSTEMS[self]


_SYSTEMS = {source: SourceSystem(source.value.upper()) for source in Source}


class DocType(StrEnum):
    PRODUCTION_ORDER = "production-order"
    MATERIAL_MASTER = "material-master"
    BOM = "bom"
    INVENTORY = "inventory"
    ROUTING = "routing"


INBOXES: dict[Source, tuple[DocType, ...]] = {
    Source.ERP: (DocType.PRODUCTION_ORDER, DocType.MATERIAL_MASTER, DocType.BOM, DocType.INVENTORY),
    Source.PLM: (DocType.ROUTING, DocType.BOM),
}

MODELS: dict[DocType, type[EnterpriseDocument]] = {
    DocType.PRODUCTION_ORDER: ProductionOrder,
    DocType.MATERIAL_MASTER: MaterialMaster,
    DocType.BOM: BillOfMaterials,
    DocType.INVENTORY: InventoryAvailability,
    DocType.ROUTING: Routing,
}


def request_schema(doc_type: str) -> dict[str, Any]:
    """Draft-04 JSON schema of a ``POST /documents/{source}/{doc_type}`` body: one document or a
    non-empty list (for API Gateway request validation)."""
    return one_or_many(MODELS[DocType(doc_type)])
