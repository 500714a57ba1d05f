"""The recipe and gdk-config, checked with the project's own models and the GDK CLI's schemas
(vendored in gdk_schemas/ with their licence)."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import jsonschema
import pytest
import yaml
from quality_inspection.config import parse_config

from greengrass_components.common.recipe import GdkConfig, Recipe, lower_keys
from tests.greengrass.conftest import COMPONENT_DIR

RECIPE = COMPONENT_DIR / "recipe.yaml"
GDK_CONFIG = COMPONENT_DIR / "gdk-config.json"
GDK_SCHEMAS = Path(__file__).resolve().parent / "gdk_schemas"


@pytest.fixture(scope="module")
def recipe():
    return Recipe.load(RECIPE)


def test_recipe_is_valid_and_its_default_configuration_parses(recipe):
    model, raw = recipe
    assert model.componentname == "com.acme.mes.QualityInspection"
    config = parse_config(raw["ComponentConfiguration"]["DefaultConfiguration"])
    assert config.publish_topic == "mes/v1/berlin/body-line-1/vision-01/quality"
    assert config.model.component_name in model.componentdependencies


def test_access_control_allows_exactly_the_topics_the_component_uses(recipe):
    model, raw = recipe
    config = parse_config(raw["ComponentConfiguration"]["DefaultConfiguration"])
    (pubsub,) = model.access_policies("aws.greengrass.ipc.pubsub")
    assert pubsub.operations == ["aws.greengrass#SubscribeToTopic"]
    assert pubsub.resources == [config.camera.trigger_topic]
    (mqtt,) = model.access_policies("aws.greengrass.ipc.mqttproxy")
    assert mqtt.operations == ["aws.greengrass#PublishToIoTCore"]
    assert mqtt.resources == [config.publish_topic]
    control = model.componentconfiguration.defaultconfiguration["accesscontrol"]
    assert set(control) == {"aws.greengrass.ipc.pubsub", "aws.greengrass.ipc.mqttproxy"}
    for policy in (pubsub, mqtt):
        assert not any("*" in r or "#" in r or "+" in r.split("/") for r in policy.resources)


def test_model_is_a_separate_component_resolved_from_the_dependency(recipe):
    model, raw = recipe
    config = parse_config(raw["ComponentConfiguration"]["DefaultConfiguration"])
    dependency = model.componentdependencies[config.model.component_name]
    assert dependency.dependencytype == "SOFT"  # a new model hot-swaps, no restart
    assert config.model.dir is None  # so the dependency's folder from the command line is used
    run = model.manifests[0].lifecycle.script("run")
    # The model pipeline's model component ships model.onnx and model.json unarchived
    assert f"--model-dir {{{config.model.component_name}:artifacts:path}}" in run
    assert "aws.greengrass.TokenExchangeService" in model.componentdependencies


def test_install_is_offline_from_the_artifacts_wheels(recipe):
    model, _ = recipe
    (manifest,) = model.manifests
    install = manifest.lifecycle.script("install")
    pip = shlex.split(install.split("&&")[-1])
    assert pip[1:4] == ["-m", "pip", "install"]
    assert "--no-index" in pip
    wheels = pip[pip.index("--find-links") + 1]
    assert wheels == "{artifacts:decompressedPath}/quality_inspection/wheels"
    assert pip[pip.index("-r") + 1].endswith("/quality_inspection/requirements-edge.txt")
    (artifact,) = manifest.artifacts
    assert artifact.unarchive == "ZIP" and artifact.uri.endswith("/quality_inspection.zip")


def test_recipe_model_rejects_what_the_gdk_rejects():
    raw = yaml.safe_load(RECIPE.read_text())
    for breakage in (
        lambda r: r.update(ComponentVersion="1.0"),
        lambda r: r["Manifests"][0]["Artifacts"][0].update(Unarchive="TAR"),
        lambda r: r.update(RecipeFormatVersion="2021-01-01"),
        lambda r: r["ComponentDependencies"]["com.acme.mes.models.SurfaceDefects"].update(
            DependencyType="MAYBE"
        ),
        lambda r: r.update(Unknown=1),
    ):
        broken = json.loads(json.dumps(raw))
        breakage(broken)
        with pytest.raises(ValueError):
            Recipe.model_validate(lower_keys(broken))


def test_gdk_config_is_valid_and_builds_with_the_build_script():
    config = GdkConfig.load(GDK_CONFIG)
    ((name, component),) = config.component.items()
    assert name == Recipe.load(RECIPE)[0].componentname
    assert component.build.build_system == "custom"
    assert "build.py" in component.build.custom_build_command
    assert (COMPONENT_DIR / "build.py").is_file()


@pytest.mark.parametrize(
    ("document", "schema"),
    [(RECIPE, "greengrass-recipe.schema.json"), (GDK_CONFIG, "gdk-config.schema.json")],
)
def test_valid_against_the_gdk_schemas(document, schema):
    data = yaml.safe_load(document.read_text()) if document.suffix == ".yaml" else None
    data = lower_keys(data) if data is not None else json.loads(document.read_text())
    jsonschema.validate(data, json.loads((GDK_SCHEMAS / schema).read_text()))


def test_the_gdk_recipe_schema_rejects_what_the_gdk_rejects():
    """The vendored schema is the real one: it catches a breakage the project's model does."""
    raw = lower_keys(yaml.safe_load(RECIPE.read_text()))
    raw["manifests"][0]["artifacts"][0]["unarchive"] = "TAR"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(
            raw, json.loads((GDK_SCHEMAS / "greengrass-recipe.schema.json").read_text())
        )


def test_topics_in_the_recipe_are_mes_topics(recipe):
    _, raw = recipe
    text = RECIPE.read_text()
    assert re.search(r"^\s+- mes/v1/berlin/body-line-1/vision-01/quality$", text, re.M)
