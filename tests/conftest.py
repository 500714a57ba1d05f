"""Shared fixtures. The app is synthesized once per session: synth is the slowest step."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

# Before jsii starts: no end-of-life banner on Node 20, no CDK CLI telemetry or version checks.
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")
os.environ.setdefault("CDK_DISABLE_CLI_TELEMETRY", "1")
os.environ.setdefault("CDK_DISABLE_VERSION_CHECK", "1")

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEMO_PLANT = PROJECT_ROOT / "config" / "demo-plant.yaml"


def cli_context(**overrides):
    """The context the CDK CLI passes with this cdk.json (feature flags included)."""
    context = json.loads((PROJECT_ROOT / "cdk.json").read_text())["context"]
    context.update(
        {
            "aws:cdk:enable-path-metadata": True,
            "aws:cdk:enable-asset-metadata": True,
            "aws:cdk:version-reporting": False,
        },
        **overrides,
    )
    return context


@pytest.fixture(scope="session")
def demo_plant():
    from stacks.plant_config import load_plant

    return load_plant(DEMO_PLANT)


def synthesize(plant, outdir):
    """The whole app for ``plant``, composed and gated exactly as ``app.py`` does."""
    import aws_cdk as cdk

    from stacks.compliance import add_compliance_gates
    from stacks.mes_app import compose_stacks

    app = cdk.App(outdir=str(outdir), context=cli_context(plant=str(DEMO_PLANT)))
    stacks = compose_stacks(app, plant)
    add_compliance_gates(app)
    return stacks, app.synth()


@pytest.fixture(scope="session")
def synthesized(demo_plant, tmp_path_factory):
    """The demo plant's app, synthesized once."""
    return synthesize(demo_plant, tmp_path_factory.mktemp("cdk.out"))


def _template(synthesized, stack: str):
    from aws_cdk.assertions import Template

    stacks, _ = synthesized
    return Template.from_stack(getattr(stacks, stack))


@pytest.fixture(scope="session")
def platform_template(synthesized):
    return _template(synthesized, "platform")


@pytest.fixture(scope="session")
def iiot_template(synthesized):
    return _template(synthesized, "iiot")


@pytest.fixture(scope="session")
def sitewise_template(synthesized):
    return _template(synthesized, "sitewise")


@pytest.fixture(scope="session")
def kpi_template(synthesized):
    return _template(synthesized, "kpi")


@pytest.fixture(scope="session")
def quality_template(synthesized):
    return _template(synthesized, "quality")


@pytest.fixture(scope="session")
def enterprise_template(synthesized):
    return _template(synthesized, "enterprise")
