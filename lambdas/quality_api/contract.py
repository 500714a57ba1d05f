"""What the quality API shares with its construct: environment keys and the request bodies
(API Gateway validates against these models' schemas, the handler parses with them).

Imports only the standard library, pydantic and mes_domain: the CDK app imports this module.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

# A site's approvers group is named by mes_domain.naming.approvers_group_name (stack and handler).
MAX_FILES_PER_REQUEST = 100


class EnvVar(StrEnum):
    DATASET_BUCKET = "DATASET_BUCKET"
    MODELS_TABLE = "MODELS_TABLE"
    STATE_MACHINE_ARN = "STATE_MACHINE_ARN"
    UPLOAD_URL_SECONDS = "UPLOAD_URL_SECONDS"
    PLANT_FILE = "PLANT_FILE"


class UploadRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: Literal["good", "defect"]
    files: Annotated[list[str], Field(min_length=1, max_length=MAX_FILES_PER_REQUEST)]


class DecisionRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    decision: Literal["approve", "reject"]
    comment: Annotated[str, Field(max_length=2000)] = ""
