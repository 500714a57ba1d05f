"""The validated plant configuration as a Lambda layer (``/opt/plant/plant.json``).

Functions that need the hierarchy, cycle times and shift calendars read it from the layer:
it is too large for environment variables, and a layer keeps it versioned with the stack.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from aws_cdk import aws_lambda as lambda_
from constructs import Construct

from mes_domain.plant import Plant
from stacks.constructs.lambda_packaging import ARCHITECTURE, RUNTIME, VISION_RUNTIME


class PlantConfigLayer(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, plant: Plant) -> None:
        super().__init__(scope, construct_id)
        # The asset hash depends on the content only, so the temporary path keeps synth stable.
        staging = Path(tempfile.mkdtemp(prefix="mes-plant-layer-"))
        (staging / "plant").mkdir()
        (staging / "plant" / "plant.json").write_text(plant.model_dump_json(indent=1))
        self.layer = lambda_.LayerVersion(
            self,
            "Layer",
            code=lambda_.Code.from_asset(str(staging)),
            compatible_runtimes=[RUNTIME, VISION_RUNTIME],
            compatible_architectures=[ARCHITECTURE],
            description=f"Plant configuration of {plant.name}",
        )
