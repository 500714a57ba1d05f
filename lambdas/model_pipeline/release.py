"""Steps 6 and 7's logic: an approved model becomes a component version, then is deployed.

Both read the model from the registry and refuse one that is not approved, so a wrongly wired
state machine cannot put an unreviewed model on the line. The model goes to its camera
station's model group only, never to a group the EdgeFleet stack deploys to.
"""

from __future__ import annotations

from typing import Any

from lambdas.model_pipeline.greengrass import (
    current_deployment,
    deploy,
    deployment_request,
    publish,
    recipe,
)
from lambdas.model_pipeline.layout import component_version_arn, thing_group_arn
from lambdas.model_pipeline.registry import (
    InvalidTransition,
    ModelRecord,
    ModelRegistry,
    ModelStatus,
    check_transition,
)
from lambdas.model_pipeline.requests import (
    ComponentResult,
    DeployEvent,
    DeploymentResult,
    PublishEvent,
)
from lambdas.model_pipeline.stations import camera_station
from mes_domain.fleet import model_group_deployment
from mes_domain.plant import Plant

RELEASABLE = frozenset({ModelStatus.APPROVED, ModelStatus.DEPLOYED})


def approved_model(registry: ModelRegistry, station: str, version: str) -> ModelRecord:
    record = registry.get(station, version)
    if record.status not in RELEASABLE:
        raise InvalidTransition(record.status, ModelStatus.DEPLOYED, station, version)
    return record


def publish_model(
    event: PublishEvent,
    plant: Plant,
    registry: ModelRegistry,
    gg: Any,
    thing_group_arn_prefix: str,
) -> ComponentResult:
    """Publish the approved model as its station's model component, at the model's version."""
    version = event.training.model_version
    record = approved_model(registry, event.station_key, version)
    station = camera_station(plant, event.site, event.line, event.station)
    name = station.camera.model_component
    component_recipe = recipe(
        name,
        version,
        bucket=record.model_bucket,
        prefix=record.model_prefix,
        model_id=event.station_key,
        threshold=record.card.get("threshold"),
    )
    expected_arn = component_version_arn(thing_group_arn_prefix, name, version)
    arn = publish(gg, component_recipe, expected_arn)
    return ComponentResult(component_name=name, component_version=version, arn=arn)


def deploy_model(
    event: DeployEvent,
    plant: Plant,
    registry: ModelRegistry,
    gg: Any,
    thing_group_arn_prefix: str,
) -> DeploymentResult:
    """Revise the station's model group deployment to the new model version and mark the model
    DEPLOYED. Two writers, one device: the EdgeFleet stack owns the station group's deployment
    (nucleus, QualityInspection configured for the station), the pipeline only the model group's
    (the model component), and the camera gateway is in both (mes_domain.fleet), so neither
    replaces the other's.

    A re-run after the model was marked returns the recorded deployment.
    """
    key, version = event.station_key, event.training.model_version
    record = registry.get(key, version)
    if record.status is ModelStatus.DEPLOYED and record.deployment_id:
        return DeploymentResult(deployment_id=record.deployment_id)
    check_transition(record.status, ModelStatus.DEPLOYED, key, version)
    station = camera_station(plant, event.site, event.line, event.station)
    component = event.component
    if component.component_name != station.camera.model_component:
        raise ValueError(
            f"{key}'s model component is {station.camera.model_component}, not "
            f"{component.component_name}: the plant config changed since it was published"
        )
    prefix = plant.deployment.stack_prefix
    target = thing_group_arn(thing_group_arn_prefix, prefix, event.site, event.line, event.station)
    current = current_deployment(gg, target)
    generated = model_group_deployment(
        prefix,
        event.site,
        event.line,
        event.station,
        component.component_name,
        component.component_version,
    )
    request = deployment_request(current, target, generated, component.component_name)
    deployment_id = deploy(gg, request)
    registry.transition(
        key,
        version,
        ModelStatus.DEPLOYED,
        deployment_id=deployment_id,
        component_arn=component.arn,
    )
    return DeploymentResult(deployment_id=deployment_id)
