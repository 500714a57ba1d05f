"""The DataCollector's recipe and gdk-config: valid against the GDK CLI's schemas (vendored in
tests/greengrass/gdk_schemas/), an offline install, and a default configuration and
accessControl that are exactly what the per-line deployment renders for the demo line."""

from __future__ import annotations

import json
import shlex

import jsonschema
import pytest
import yaml
from data_collector.main import COMPONENT_NAME, parse_config

from greengrass_components.common.recipe import GdkConfig, Recipe, lower_keys
from mes_domain.collection import (
    DATA_COLLECTOR_COMPONENT,
    collector_component_configuration,
    collector_topics,
)
from mes_domain.plant import Plant
from mes_domain.topics import parse_topic
from tests.conftest import DEMO_PLANT
from tests.greengrass.data_collector.conftest import COLLECTOR_DIR
from tests.greengrass.test_recipe import GDK_SCHEMAS

RECIPE = COLLECTOR_DIR / "recipe.yaml"
GDK_CONFIG = COLLECTOR_DIR / "gdk-config.json"


@pytest.fixture(scope="module")
def recipe():
    return Recipe.load(RECIPE)


@pytest.mark.parametrize(
    ("document", "schema"),
    [(RECIPE, "greengrass-recipe.schema.json"), (GDK_CONFIG, "gdk-config.schema.json")],
)
def test_valid_against_the_gdk_schemas(document, schema):
    data = yaml.safe_load(document.read_text()) if document.suffix == ".yaml" else None
    data = lower_keys(data) if data is not None else json.loads(document.read_text())
    jsonschema.validate(data, json.loads((GDK_SCHEMAS / schema).read_text()))


def test_default_configuration_is_the_demo_lines_rendering_and_parses(recipe):
    model, raw = recipe
    assert model.componentname == COMPONENT_NAME == DATA_COLLECTOR_COMPONENT
    default = raw["ComponentConfiguration"]["DefaultConfiguration"]
    plant = Plant.model_validate(yaml.safe_load(DEMO_PLANT.read_text()))
    rendered = collector_component_configuration(plant, "berlin", "body-line-1")
    # If this fails after a plant change: paste the rendering into the recipe's default.
    assert default == rendered
    config = parse_config(default)  # what main reads through IPC (the "collector" key)
    assert config.site == "berlin" and config.rule_prefix == plant.deployment.stack_prefix


def test_access_control_allows_exactly_the_topics_the_collector_publishes(recipe):
    model, raw = recipe
    config = parse_config(raw["ComponentConfiguration"]["DefaultConfiguration"])
    (mqtt,) = model.access_policies("aws.greengrass.ipc.mqttproxy")
    assert mqtt.operations == ["aws.greengrass#PublishToIoTCore"]
    assert mqtt.resources == collector_topics(config)
    assert not any("*" in r or "#" in r or "+" in r.split("/") for r in mqtt.resources)
    routed = [parse_topic(r) for r in mqtt.resources]
    assert {p.rule_name for p in routed if p.rule_name} == {
        f"{config.rule_prefix}_{kind}" for kind in ("telemetry", "state", "count")
    }
    assert all(p.topic.line == "body-line-1" for p in routed)
    assert model.access_policies("aws.greengrass.ipc.pubsub") == []


def test_install_is_offline_from_the_artifacts_wheels_and_run_uses_ipc(recipe):
    model, _ = recipe
    (manifest,) = model.manifests
    pip = shlex.split(manifest.lifecycle.script("install").split("&&")[-1])
    assert pip[1:4] == ["-m", "pip", "install"] and "--no-index" in pip
    assert (
        pip[pip.index("--find-links") + 1] == "{artifacts:decompressedPath}/data_collector/wheels"
    )
    assert pip[pip.index("-r") + 1].endswith("/data_collector/requirements-collector.txt")
    (artifact,) = manifest.artifacts
    assert artifact.unarchive == "ZIP" and artifact.uri.endswith("/data_collector.zip")
    run = shlex.split(manifest.lifecycle.script("run"))
    assert run[1:4] == ["-m", "data_collector", "--ipc"]
    assert run[run.index("--spool") + 1] == "{work:path}/spool"


def test_gdk_config_builds_with_the_build_script(recipe):
    config = GdkConfig.load(GDK_CONFIG)
    ((name, component),) = config.component.items()
    assert name == recipe[0].componentname
    assert component.build.custom_build_command == ["python3", "build.py", "--gdk"]
    assert (COLLECTOR_DIR / "build.py").is_file()
