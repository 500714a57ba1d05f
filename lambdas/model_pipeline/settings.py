"""Environment of the model pipeline's Lambdas; the keys are in the contract, shared with the
constructs.

Every step reads the same ``Settings``; the resource names are optional so that a step is not
given resources it never touches, and ``Settings.require`` checks at cold start that the ones a
step uses are set.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from lambdas.common.plant import PLANT_LAYER_FILE
from lambdas.common.settings import from_environ
from lambdas.model_pipeline.contract import EnvVar

# Up to the group name: the name comes from mes_domain.naming, never from the environment.
THING_GROUP_ARN_PREFIX_PATTERN = r"^arn:aws[a-z-]*:iot:[a-z]{2}(-[a-z]+)+-\d:\d{12}:thinggroup/$"


Fraction = Annotated[float, Field(ge=0, le=1)]


class MissingSetting(ValueError):
    """A step was started without an environment variable it needs."""


class Settings(BaseModel):
    model_config = ConfigDict(frozen=True)

    dataset_bucket: Annotated[str, Field(min_length=3, max_length=63)] | None = None
    model_bucket: Annotated[str, Field(min_length=3, max_length=63)] | None = None
    models_table: Annotated[str, Field(min_length=3, max_length=255)] | None = None
    min_auroc: Fraction = 0.9
    min_defect_recall: Fraction = 0.8
    min_good_images: Annotated[int, Field(ge=1)] = 20
    # A camera station's gateway group is ``<prefix><mes_domain.naming group name>``.
    thing_group_arn_prefix: Annotated[str, Field(pattern=THING_GROUP_ARN_PREFIX_PATTERN)] | None = (
        None
    )
    plant_file: str = PLANT_LAYER_FILE

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] = os.environ) -> Settings:
        return from_environ(cls, EnvVar, environ)

    def require(self, *keys: EnvVar) -> Settings:
        """Raise ``MissingSetting`` naming every key in ``keys`` that is not set."""
        missing = [key.value for key in keys if getattr(self, key.value.lower()) is None]
        if missing:
            raise MissingSetting(f"environment variable(s) not set: {', '.join(missing)}")
        return self
