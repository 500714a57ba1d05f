#!/usr/bin/env python3
"""CDK entry point: read the plant config, compose the stacks, attach the compliance gates."""

from __future__ import annotations

import os
import sys

# jsii prints an end-of-life banner on Node 20; the README recommends Node 22 or later.
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")

import aws_cdk as cdk  # noqa: E402 - the banner setting must precede the jsii start-up

from stacks.compliance import add_compliance_gates  # noqa: E402
from stacks.mes_app import compose_stacks  # noqa: E402
from stacks.plant_config import (  # noqa: E402
    DEFAULT_PLANT_CONFIG,
    PLANT_CONTEXT_KEY,
    PlantConfigError,
    load_plant,
)


def main() -> int:
    app = cdk.App()
    config_path = app.node.try_get_context(PLANT_CONTEXT_KEY) or DEFAULT_PLANT_CONFIG
    try:
        plant = load_plant(config_path)
    except PlantConfigError as err:
        print(f"Invalid plant configuration:\n{err}", file=sys.stderr)
        return 2
    compose_stacks(app, plant)
    add_compliance_gates(app)
    app.synth()
    return 0


if __name__ == "__main__":
    sys.exit(main())
