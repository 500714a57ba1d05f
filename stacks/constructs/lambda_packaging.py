"""Lambda code and dependencies, packaged locally: no Docker, no network at synth.

The code asset holds only ``lambdas/`` and ``mes_domain/`` (the same domain package the edge
bundles). Third-party dependencies come from the layer directories that ``make`` builds with
manylinux wheels from the hash locks ``lambdas/requirements.txt`` and
``lambdas/requirements-vision.txt``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from aws_cdk import Stack
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

PROJECT_ROOT = Path(__file__).resolve().parents[2]
LAYER_DIR = PROJECT_ROOT / "build" / "lambda-layer"
VISION_LAYER_DIR = PROJECT_ROOT / "build" / "vision-layer"
RUNTIME = lambda_.Runtime.PYTHON_3_11  # the Python the code and the layer are tested with
# Model training needs onnxruntime, whose wheels need glibc 2.28: Amazon Linux 2023, Python 3.12.
VISION_RUNTIME = lambda_.Runtime.PYTHON_3_12
ARCHITECTURE = lambda_.Architecture.X86_64  # matches the layer's manylinux x86_64 wheels

_CODE_PACKAGES = ("lambdas", "mes_domain")


def _code_excludes(packages: tuple[str, ...]) -> list[str]:
    return [
        "*",
        ".*",
        "**/.*",
        *(rule for package in packages for rule in (f"!{package}", f"!{package}/**")),
        "**/__pycache__",
        "**/*.pyc",
        "lambdas/requirements*",  # the layers' locks and their .in files
    ]


@dataclass(frozen=True)
class LambdaPackaging:
    project_root: Path = PROJECT_ROOT
    layer_dir: Path = LAYER_DIR
    vision_layer_dir: Path = VISION_LAYER_DIR

    def code(self, *extra_packages: str) -> lambda_.Code:
        """``lambdas/`` and ``mes_domain/``, plus ``extra_packages`` such as ``mes_vision``."""
        excludes = _code_excludes(_CODE_PACKAGES + extra_packages)
        return lambda_.Code.from_asset(str(self.project_root), exclude=excludes)

    def dependencies_layer(self, scope: Construct) -> lambda_.ILayerVersion:
        """The stack's one dependencies layer, shared by all its functions."""
        return self._layer(
            scope, "DependenciesLayer", self.layer_dir, RUNTIME, "of the MES functions"
        )

    def vision_layer(self, scope: Construct) -> lambda_.ILayerVersion:
        """The same runtime plus onnx, onnxruntime and Pillow, for Python 3.12."""
        return self._layer(
            scope, "VisionLayer", self.vision_layer_dir, VISION_RUNTIME, "with mes_vision's"
        )

    def _layer(
        self,
        scope: Construct,
        construct_id: str,
        directory: Path,
        runtime: lambda_.Runtime,
        what: str,
    ) -> lambda_.ILayerVersion:
        # One LayerVersion per stack and kind: a copy per function would upload and store the
        # same tens of MB once per function.
        stack = Stack.of(scope)
        existing = stack.node.try_find_child(construct_id)
        if existing is not None:
            return existing
        if not (directory / "python").is_dir():
            raise FileNotFoundError(
                f"{directory} is missing: `make synth` or `make test` builds it from the locked "
                "requirements"
            )
        return lambda_.LayerVersion(
            stack,
            construct_id,
            code=lambda_.Code.from_asset(str(directory)),
            compatible_runtimes=[runtime],
            compatible_architectures=[ARCHITECTURE],
            description=f"Pinned third-party runtime {what}",
        )
