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
from quality_inspection.config import STATION_KEYS, NotConfigured, parse_config
from quality_inspection.main import main

from greengrass_components.common.recipe import AccessPolicy, GdkConfig, Recipe, lower_keys
from mes_domain.edge_deployment import (
    DATA_COLLECTOR,
    MQTT_PROXY,
    PUBSUB,
    QUALITY_INSPECTION,
    apply_configuration_update,
    line_deployments,
)
from mes_domain.topics import MessageKind, StationTopic
from tests.greengrass.conftest import COMPONENT_DIR, LINE, SITE, STATION, TRIGGER_TOPIC

RECIPE = COMPONENT_DIR / "recipe.yaml"
GDK_CONFIG = COMPONENT_DIR / "gdk-config.json"
GDK_SCHEMAS = Path(__file__).resolve().parent / "gdk_schemas"


@pytest.fixture(scope="module")
def recipe():
    return Recipe.load(RECIPE)


@pytest.fixture(scope="module")
def deployed(recipe, demo_plant):
    """The configuration a camera gateway of the demo plant runs: the recipe's defaults with
    the generated deployment's merge update applied, as Greengrass applies it."""
    model, raw = recipe
    versions = {DATA_COLLECTOR: "1.0.0", QUALITY_INSPECTION: model.componentversion}
    document = line_deployments(demo_plant, SITE, LINE, versions)
    (camera,) = [d for d in document["deployments"] if QUALITY_INSPECTION in d["components"]]
    update = camera["components"][QUALITY_INSPECTION]["configurationUpdate"]
    merged = apply_configuration_update(
        raw["ComponentConfiguration"]["DefaultConfiguration"], update
    )
    return merged, parse_config(merged)


def test_the_recipe_names_no_station_and_unconfigured_fails_naming_the_keys(recipe):
    _, raw = recipe
    defaults = raw["ComponentConfiguration"]["DefaultConfiguration"]
    with pytest.raises(NotConfigured) as failure:
        parse_config(defaults)
    assert all(key in str(failure.value) for key in STATION_KEYS)
    assert "accessControl" not in defaults and "publishTopic" not in defaults
    text = RECIPE.read_text()
    assert "mes/" not in text and not re.search(rf"\b({SITE}|{LINE}|{STATION})\b", text)


def test_an_unconfigured_component_exits_2_naming_the_missing_keys(recipe, tmp_path, capsys):
    _, raw = recipe
    config = tmp_path / "config.json"
    config.write_text(json.dumps(raw["ComponentConfiguration"]["DefaultConfiguration"]))
    assert main(["--config", str(config), "--mqtt", "127.0.0.1:1"]) == 2
    error = capsys.readouterr().err
    assert "no station configured" in error and "station.station" in error


def test_the_deployed_configuration_is_the_stations(recipe, deployed):
    model, _ = recipe
    _, config = deployed
    assert model.componentname == QUALITY_INSPECTION
    assert (config.station.site, config.station.line, config.station.station) == (
        SITE,
        LINE,
        STATION,
    )
    quality = StationTopic(SITE, LINE, STATION, MessageKind.QUALITY)
    assert config.publish_topic == quality.basic_ingest("MesDemo_quality")
    assert config.camera.trigger_topic == TRIGGER_TOPIC
    assert config.model.component_name in model.componentdependencies


def test_access_control_allows_exactly_the_topics_the_component_uses(deployed):
    merged, config = deployed
    control = merged["accessControl"]
    assert set(control) == {"aws.greengrass.ipc.pubsub", "aws.greengrass.ipc.mqttproxy"}
    (pubsub,) = [AccessPolicy.model_validate(lower_keys(p)) for p in control[PUBSUB].values()]
    assert pubsub.operations == ["aws.greengrass#SubscribeToTopic"]
    assert pubsub.resources == [config.camera.trigger_topic]
    (mqtt,) = [AccessPolicy.model_validate(lower_keys(p)) for p in control[MQTT_PROXY].values()]
    assert mqtt.operations == ["aws.greengrass#PublishToIoTCore"]
    assert mqtt.resources == [config.publish_topic]
    for policy in (pubsub, mqtt):
        assert not any("*" in r or "#" in r or "+" in r.split("/") for r in policy.resources)


def test_every_camera_stations_model_is_the_recipes_model_dependency(recipe, demo_plant):
    """The recipe passes its model dependency's folder as --model-dir: a camera station of
    another model component would need a recipe of its own."""
    model, _ = recipe
    cameras = [ref.station.camera for ref in demo_plant.stations() if ref.station.camera]
    assert cameras
    assert {camera.model_component for camera in cameras} <= set(model.componentdependencies)


def test_model_is_a_separate_component_resolved_from_the_dependency(recipe, deployed):
    model, _ = recipe
    _, config = deployed
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
