"""The validated plant configuration as a Lambda layer (at ``PLANT_LAYER_FILE`` in a function).

Functions that need the hierarchy, cycle times and shift calendars read it from the layer:
it is too large for environment variables, and a layer keeps it versioned with the stack.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

from aws_cdk import aws_lambda as lambda_
from constructs import Construct

from lambdas.common.contract import PLANT_IN_LAYER
from mes_domain.plant import Plant
from stacks.constructs.lambda_packaging import (
    ARCHITECTURE,
    PROJECT_ROOT,
    RUNTIME,
    VISION_RUNTIME,
)

# Staged beside the dependency layers (git-ignored, removed by `make clean`), never in the
# system temporary directory, where every synth would leave a folder behind.
STAGING_ROOT = PROJECT_ROOT / "build" / "plant-config-layer"


def stage_plant(plant: Plant, root: Path = STAGING_ROOT) -> Path:
    """``root/<content hash>/<PLANT_IN_LAYER>``: one folder per distinct configuration, so
    repeated synths reuse it and concurrent synths of other plants never share a file."""
    document = plant.model_dump_json(indent=1)
    folder = root / hashlib.sha256(document.encode()).hexdigest()[:16]
    target = folder / PLANT_IN_LAYER
    if not target.is_file() or target.read_text() != document:
        target.parent.mkdir(parents=True, exist_ok=True)
        # Written whole, then renamed in: a concurrent synth never hashes half a file.
        fd, partial = tempfile.mkstemp(dir=target.parent, prefix=".plant-", suffix=".tmp")
        with os.fdopen(fd, "w") as out:
            out.write(document)
        os.chmod(partial, 0o644)
        os.replace(partial, target)
    return folder


class PlantConfigLayer(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, plant: Plant) -> None:
        super().__init__(scope, construct_id)
        self.layer = lambda_.LayerVersion(
            self,
            "Layer",
            code=lambda_.Code.from_asset(str(stage_plant(plant))),
            compatible_runtimes=[RUNTIME, VISION_RUNTIME],
            compatible_architectures=[ARCHITECTURE],
            description=f"Plant configuration of {plant.name}",
        )
