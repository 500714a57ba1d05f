"""The Greengrass deployments of a line, generated from the plant config.

``line_deployments`` gives a line's deployments (name, target thing group and the
``components`` map of CreateDeployment) that issue 15 creates; ``python -m
greengrass_components.deployments`` writes them per line (mes_domain does no I/O). Each component's
``configurationUpdate.merge`` carries what the plant says about that gateway, and its
``accessControl`` names exactly the topics the component publishes or subscribes to.

- **The line gateway** (the line's thing group) runs ``com.acme.mes.DataCollector`` when a
  station of the line reads a machine (``Line.collects``), configured as
  ``mes_domain.collection.collector_component_configuration`` renders it: what it reads, and
  the topics it publishes (telemetry, state and counts through Basic Ingest to the IoT rules
  named by ``mes_domain.naming.rule_name``; events to the broker on the line's own topics).
- **A camera gateway per camera station** runs ``com.acme.mes.QualityInspection`` for that one
  station, with its model component. The component serves one station: its configuration has
  one ``station``, one inbox and one trigger topic, and its recipe passes one model
  component's artifacts folder on the command line. So a line with several cameras has several
  camera gateways, each in its station's thing group ``<line group>:<station>`` (":" occurs in
  no id, so it never names a site or line group). A camera gateway is not a member of its
  line's group, or it would also run the line's DataCollector.

Pure: no AWS SDK, nothing deployed here.
"""

from __future__ import annotations

import json
from typing import Any

from mes_domain.collection import collector_component_configuration
from mes_domain.naming import (
    THING_GROUP_NAME,
    rule_name,
    station_thing_group_name,
    thing_group_name,
)
from mes_domain.plant import Line, Plant, Site, Station
from mes_domain.topics import MessageKind, StationTopic

DATA_COLLECTOR = "com.acme.mes.DataCollector"
QUALITY_INSPECTION = "com.acme.mes.QualityInspection"
MQTT_PROXY = "aws.greengrass.ipc.mqttproxy"
PUBSUB = "aws.greengrass.ipc.pubsub"

# ComponentConfigurationUpdate.merge is a string of 1 to 10485760 characters
# (docs.aws.amazon.com/greengrass/v2/APIReference/API_ComponentConfigurationUpdate.html); the
# nucleus takes deployment documents up to 10 MB from v2.3.0 (greengrass/v2/developerguide/
# greengrass-release-2021-06-29.html); componentVersion is 1 to 64 characters
# (API_ComponentDeploymentSpecification.html).
MAX_MERGE_CHARS = 10_485_760
MAX_DEPLOYMENT_DOCUMENT_BYTES = 10 * 1024 * 1024
MAX_COMPONENT_VERSION_CHARS = 64

# QualityInspection's folders, relative to its work folder, as in its recipe's defaults.
INBOX_DIR = "inbox"
TRIGGER_ROOT = "triggered"


def ingest_topic(prefix: str, site: str, line: str, station: str, kind: MessageKind) -> str:
    """The Basic Ingest topic of a station's messages of ``kind``: straight to its IoT rule."""
    return StationTopic(site, line, station, kind).basic_ingest(rule_name(prefix, kind))


def camera_trigger_topic(site: str, line: str, station: str) -> str:
    """The local (IPC) topic on which the camera software announces an image."""
    return f"mes/local/{site}/{line}/{station}/image"


def camera_thing_group(prefix: str, site: str, line: str, station: str) -> str:
    return station_thing_group_name(prefix, site, line, station)


def _policy(description: str, operation: str, resources: list[str]) -> dict[str, Any]:
    return {
        "policyDescription": description,
        "operations": [f"aws.greengrass#{operation}"],
        "resources": resources,
    }


def data_collector_configuration(plant: Plant, site: Site, line: Line) -> dict[str, Any]:
    """The DataCollector's configuration on the line gateway: the component's own rendering
    (mes_domain.collection), so what it reads and the topics it may publish agree with it."""
    return collector_component_configuration(plant, site.id, line.id)


def quality_inspection_configuration(
    plant: Plant, site: Site, line: Line, station: Station
) -> dict[str, Any]:
    """QualityInspection's configuration on the camera gateway of ``station``."""
    if station.camera is None:
        raise ValueError(f"{site.id}/{line.id}/{station.id} is not a camera station")
    prefix = plant.deployment.stack_prefix
    publish = ingest_topic(prefix, site.id, line.id, station.id, MessageKind.QUALITY)
    trigger = camera_trigger_topic(site.id, line.id, station.id)
    return {
        "station": {"site": site.id, "line": line.id, "station": station.id},
        "publishTopic": publish,
        "camera": {"inboxDir": INBOX_DIR, "triggerTopic": trigger, "triggerRoot": TRIGGER_ROOT},
        "model": {"componentName": station.camera.model_component},
        "capture": {"goodSampleRate": station.camera.good_sample_rate},
        "accessControl": {
            PUBSUB: {
                f"{QUALITY_INSPECTION}:pubsub:1": _policy(
                    "Receive image triggers from the camera software.",
                    "SubscribeToTopic",
                    [trigger],
                )
            },
            MQTT_PROXY: {
                f"{QUALITY_INSPECTION}:mqttproxy:1": _policy(
                    f"Publish inspection results of {site.id}/{line.id}/{station.id}.",
                    "PublishToIoTCore",
                    [publish],
                )
            },
        },
    }


def _component(version: str, merge: dict[str, Any] | None = None) -> dict[str, Any]:
    if not 1 <= len(version) <= MAX_COMPONENT_VERSION_CHARS:
        raise ValueError(f"component version {version!r} is not 1 to 64 characters")
    spec: dict[str, Any] = {"componentVersion": version}
    if merge is not None:
        text = json.dumps(merge, separators=(",", ":"), sort_keys=True)
        if len(text) > MAX_MERGE_CHARS:
            raise ValueError(
                f"the configuration is {len(text)} characters; a merge update takes at most "
                f"{MAX_MERGE_CHARS}"
            )
        spec["configurationUpdate"] = {"merge": text}
    return spec


def _target(name: str, where: str) -> str:
    problem = THING_GROUP_NAME.problem(name)
    if problem is not None:
        raise ValueError(f"{where}: the thing group name {name!r} is {problem}")
    return name


def camera_gateway_deployment(
    plant: Plant,
    site: Site,
    line: Line,
    station: Station,
    inspection_version: str,
    model_version: str | None = None,
) -> dict[str, Any]:
    """The deployment of ``station``'s camera gateway: QualityInspection configured for it, and
    its model component when ``model_version`` is given (the model pipeline releases with it)."""
    if station.camera is None:
        raise ValueError(f"{site.id}/{line.id}/{station.id} is not a camera station")
    prefix = plant.deployment.stack_prefix
    where = f"camera station {site.id}/{line.id}/{station.id}"
    group = _target(camera_thing_group(prefix, site.id, line.id, station.id), where)
    config = quality_inspection_configuration(plant, site, line, station)
    components = {QUALITY_INSPECTION: _component(inspection_version, config)}
    if model_version is not None:
        components[station.camera.model_component] = _component(model_version)
    return {
        "deploymentName": f"{group} camera gateway",
        "targetThingGroupName": group,
        "components": components,
    }


def line_deployments(
    plant: Plant,
    site_id: str,
    line_id: str,
    versions: dict[str, str],
    model_versions: dict[str, str] | None = None,
) -> dict[str, Any]:
    """The line's deployment documents. ``versions`` gives the DataCollector's and
    QualityInspection's component versions; ``model_versions`` a model component's version,
    else the deployment leaves the model to QualityInspection's dependency (the newest version
    its recipe allows; the model pipeline deploys newer ones)."""
    site = next(s for s in plant.sites if s.id == site_id)
    line = next(candidate for candidate in site.lines if candidate.id == line_id)
    prefix = plant.deployment.stack_prefix
    model_versions = model_versions or {}
    deployments = []
    if line.collects():
        group = _target(thing_group_name(prefix, site.id, line.id), f"line {site.id}/{line.id}")
        config = data_collector_configuration(plant, site, line)
        deployments.append(
            {
                "deploymentName": f"{group} line gateway",
                "targetThingGroupName": group,
                "components": {DATA_COLLECTOR: _component(versions[DATA_COLLECTOR], config)},
            }
        )
    for station in line.stations:
        if station.camera is None:
            continue
        model = model_versions.get(station.camera.model_component)
        deployments.append(
            camera_gateway_deployment(
                plant, site, line, station, versions[QUALITY_INSPECTION], model
            )
        )
    document = {"site": site.id, "line": line.id, "deployments": deployments}
    size = len(json.dumps(document).encode())
    if size > MAX_DEPLOYMENT_DOCUMENT_BYTES:
        raise ValueError(
            f"line {site.id}/{line.id}: the deployments are {size} bytes; Greengrass takes a "
            f"deployment document of at most {MAX_DEPLOYMENT_DOCUMENT_BYTES}"
        )
    return document


def apply_configuration_update(
    configuration: dict[str, Any], update: dict[str, Any]
) -> dict[str, Any]:
    """What a core device makes of the component's ``configuration`` after a merge update:
    objects merge key by key, any other value replaces it
    (greengrass/v2/developerguide/update-component-configurations.html). The generated updates
    have no ``reset``."""
    if update.get("reset"):
        raise ValueError("reset updates are not modelled here")
    merged = json.loads(json.dumps(configuration))

    def merge(into: dict[str, Any], values: dict[str, Any]) -> None:
        for key, value in values.items():
            if isinstance(value, dict) and isinstance(into.get(key), dict):
                merge(into[key], value)
            else:
                into[key] = value

    merge(merged, json.loads(update.get("merge", "{}")))
    return merged
