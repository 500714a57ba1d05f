"""What the plant config layer (CDK) and the functions that read it agree on: where the plant
file is. Standard library only, so CDK code may import it (tests/unit/test_architecture.py)."""

from __future__ import annotations

from pathlib import PurePosixPath

# "Lambda loads the layer content into the /opt directory of that execution environment"
# (docs.aws.amazon.com/lambda/latest/dg/packaging-layers.html).
LAYER_ROOT = PurePosixPath("/opt")
PLANT_IN_LAYER = PurePosixPath("plant", "plant.json")  # inside the plant config layer
PLANT_LAYER_FILE = str(LAYER_ROOT / PLANT_IN_LAYER)
