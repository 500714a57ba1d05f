"""Environment of the ERP/PLM router (both handlers), checked at cold start; the keys are in
its contract, shared with the construct."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Annotated, Self

from pydantic import BaseModel, ConfigDict, Field

from lambdas.common.settings import from_environ
from lambdas.erp_plm_router.contract import EnvVar

TableName = Annotated[str, Field(min_length=3, max_length=255)]


class StoreSettings(BaseModel):
    """What the API handler needs: the stores, the idempotency table and the platform bus."""

    model_config = ConfigDict(frozen=True)

    orders_table: TableName
    products_table: TableName
    process_plans_table: TableName
    inventory_table: TableName
    idempotency_table: TableName
    event_bus_name: str = Field(min_length=1, max_length=256)

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] = os.environ) -> Self:
        return from_environ(cls, EnvVar, environ)


class Settings(StoreSettings):
    """What the S3 handler needs: the stores and the landing bucket."""

    landing_bucket: str = Field(min_length=3, max_length=63)
