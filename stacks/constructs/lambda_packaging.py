"""Lambda code and dependencies, packaged locally: no Docker, no network at synth.

The code asset holds only ``lambdas/`` and ``mes_domain/`` (the same domain package the edge
bundles). Third-party dependencies come from the layer directory that ``make`` builds from the
pinned ``lambdas/requirements.txt`` with manylinux wheels.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from aws_cdk import aws_lambda as lambda_
from constructs import Construct

PROJECT_ROOT = Path(__file__).resolve().parents[2]
LAYER_DIR = PROJECT_ROOT / "build" / "lambda-layer"
RUNTIME = lambda_.Runtime.PYTHON_3_11  # the Python the code and the layer are tested with
ARCHITECTURE = lambda_.Architecture.X86_64  # matches the layer's manylinux x86_64 wheels

_CODE_EXCLUDES = [
    "*",
    ".*",
    "**/.*",
    "!lambdas",
    "!lambdas/**",
    "!mes_domain",
    "!mes_domain/**",
    "**/__pycache__",
    "**/*.pyc",
    "lambdas/requirements.txt",
]


@dataclass(frozen=True)
class LambdaPackaging:
    project_root: Path = PROJECT_ROOT
    layer_dir: Path = LAYER_DIR

    def code(self) -> lambda_.Code:
        return lambda_.Code.from_asset(str(self.project_root), exclude=_CODE_EXCLUDES)

    def dependencies_layer(self, scope: Construct, construct_id: str) -> lambda_.LayerVersion:
        if not (self.layer_dir / "python").is_dir():
            raise FileNotFoundError(
                f"{self.layer_dir} is missing: `make synth` or `make test` builds it from "
                "lambdas/requirements.txt"
            )
        return lambda_.LayerVersion(
            scope,
            construct_id,
            code=lambda_.Code.from_asset(str(self.layer_dir)),
            compatible_runtimes=[RUNTIME],
            compatible_architectures=[ARCHITECTURE],
            description="Pinned third-party runtime of the MES functions",
        )
