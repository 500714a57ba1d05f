"""Greengrass v2: the model as a component version, and its camera gateway's deployment
revised to it.

The model component has no lifecycle: it only brings the two artifacts and the configuration
(model id, version, threshold) to the core devices; the inspection component reads them.
"""

from __future__ import annotations

import copy
import hashlib
import json
import time
from typing import Any

from botocore.exceptions import ClientError

from lambdas.model_pipeline.errors import ComponentFailed, ComponentNotReady
from lambdas.model_pipeline.layout import CARD_FILE, MODEL_FILE

RECIPE_FORMAT_VERSION = "2020-01-25"
PUBLISHER = "MES quality model pipeline"
POLL_INTERVAL_S = 2.0
MAX_POLLS = 30  # about a minute: Greengrass checks the artifacts in seconds
pause = time.sleep  # replaced in tests

# An existing version cannot be replaced; a re-run finds it and waits for it like a new one.
_EXISTS_CODES = {"ConflictException"}
_NOT_DEPLOYABLE = {"FAILED", "DEPRECATED"}


def recipe(
    name: str,
    version: str,
    *,
    bucket: str,
    prefix: str,
    model_id: str,
    threshold: float | None,
) -> dict[str, Any]:
    """The component recipe of one model version: its two S3 objects and its defaults."""
    artifact = {"Unarchive": "NONE", "Permission": {"Read": "ALL", "Execute": "NONE"}}
    return {
        "RecipeFormatVersion": RECIPE_FORMAT_VERSION,
        "ComponentName": name,
        "ComponentVersion": version,
        "ComponentType": "aws.greengrass.generic",
        "ComponentDescription": f"Quality inspection model of {model_id}, version {version}",
        "ComponentPublisher": PUBLISHER,
        "ComponentConfiguration": {
            "DefaultConfiguration": {
                "modelId": model_id,
                "modelVersion": version,
                "threshold": threshold,
                "modelFile": MODEL_FILE,
                "cardFile": CARD_FILE,
            }
        },
        # No platform requirement: the files suit every core device. The inspection component
        # runs as another user, so the artifacts are readable by all.
        "Manifests": [
            {
                "Artifacts": [
                    {"Uri": f"s3://{bucket}/{prefix}{MODEL_FILE}", **artifact},
                    {"Uri": f"s3://{bucket}/{prefix}{CARD_FILE}", **artifact},
                ]
            }
        ],
    }


def _already_exists(err: ClientError) -> bool:
    error = err.response.get("Error", {})
    return error.get("Code") in _EXISTS_CODES or "already exists" in error.get("Message", "")


def publish(gg: Any, component_recipe: dict[str, Any], expected_arn: str) -> str:
    """Create the component version (or find it, if a previous run did) and wait until it is
    deployable. Returns its ARN. Raises ``ComponentFailed`` or ``ComponentNotReady``."""
    try:
        created = gg.create_component_version(
            inlineRecipe=json.dumps(component_recipe, sort_keys=True).encode()
        )
    except ClientError as err:
        if not _already_exists(err):
            raise
        return wait_deployable(gg, expected_arn)
    return wait_deployable(gg, created["arn"], created.get("status"))


def wait_deployable(gg: Any, arn: str, status: dict[str, Any] | None = None) -> str:
    """Poll ``describe_component`` until the version is DEPLOYABLE, a bounded number of times."""
    for attempt in range(MAX_POLLS + 1):
        if status is None:
            status = gg.describe_component(arn=arn).get("status", {})
        state = status.get("componentState")
        if state == "DEPLOYABLE":
            return arn
        if state in _NOT_DEPLOYABLE:
            errors = "; ".join(f"{k}: {v}" for k, v in sorted(status.get("errors", {}).items()))
            detail = " ".join(part for part in (status.get("message"), errors) if part)
            raise ComponentFailed(f"component {arn} is {state}: {detail or 'no reason given'}")
        if attempt < MAX_POLLS:
            pause(POLL_INTERVAL_S)
        status = None
    raise ComponentNotReady(f"component {arn} is still {state} after {MAX_POLLS} checks")


def current_deployment(gg: Any, target_arn: str) -> dict[str, Any] | None:
    """The target's latest deployment (``get_deployment``), or None if it has none.

    A cancelled deployment is not what the devices should run, so it is passed over.
    """
    found: list[dict[str, Any]] = []
    request: dict[str, Any] = {"targetArn": target_arn, "historyFilter": "LATEST_ONLY"}
    while True:
        page = gg.list_deployments(**request)
        found += page.get("deployments", [])
        if not page.get("nextToken"):
            break
        request["nextToken"] = page["nextToken"]
    live = [
        d
        for d in found
        if d.get("targetArn") == target_arn and d.get("deploymentStatus") != "CANCELED"
    ]
    if not live:
        return None
    latest = max(live, key=lambda d: d["creationTimestamp"])
    return gg.get_deployment(deploymentId=latest["deploymentId"])


def released_components(
    current: dict[str, Any] | None, generated: dict[str, Any], model: str
) -> dict[str, dict[str, Any]]:
    """The camera gateway's generated components (QualityInspection configured for its station,
    ``model`` at its new version) over the current deployment's, whose other components stay as
    they are; a component keeps its ``runWith``.

    A core device keeps a component's configuration across versions, so the model's is reset
    to the new version's defaults (``reset: [""]``), or it would keep the old threshold.
    """
    components = copy.deepcopy((current or {}).get("components", {}))
    for name, spec in generated["components"].items():
        previous = components.get(name, {})
        run_with = {key: value for key, value in previous.items() if key == "runWith"}
        components[name] = {**run_with, **copy.deepcopy(spec)}
    components[model]["configurationUpdate"] = {"reset": [""]}
    return components


def deployment_request(
    current: dict[str, Any] | None,
    target_arn: str,
    generated: dict[str, Any],
    model: str,
) -> dict[str, Any]:
    """``create_deployment`` arguments: the camera gateway's ``generated`` deployment
    (``mes_domain.edge_deployment.camera_gateway_deployment``) revising the target's current
    one, whose policies it keeps. A deployment to a group replaces the group's previous one
    (greengrass/v2/developerguide/revise-deployments.html), so it must carry all of it."""
    version = generated["components"][model]["componentVersion"]
    request: dict[str, Any] = {
        "targetArn": target_arn,
        "deploymentName": generated["deploymentName"],
        "components": released_components(current, generated, model),
        # The same model to the same target is one request, however often the step is retried.
        "clientToken": hashlib.sha256(f"{target_arn}|{model}|{version}".encode()).hexdigest(),
    }
    for key in ("deploymentPolicies", "iotJobConfiguration"):
        if current and current.get(key):
            request[key] = current[key]
    return request


def component_version(deployment: dict[str, Any] | None, name: str) -> str | None:
    """The version of ``name`` that ``deployment`` runs, if it runs it."""
    return ((deployment or {}).get("components") or {}).get(name, {}).get("componentVersion")


def deploy(gg: Any, request: dict[str, Any]) -> str:
    """Create the deployment; returns its id."""
    return gg.create_deployment(**request)["deploymentId"]
