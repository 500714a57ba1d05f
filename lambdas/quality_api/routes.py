"""The quality experts' API: upload URLs for images, start a training, list models with their
cards, approve or reject one, and follow its deployment.

Every route is for one camera station of the plant (``/stations/{site}/{line}/{station}``); the
reviewer of a decision is the signed-in Cognito user, never a field of the request, and must be
in the site's approvers group and, to approve, not the expert who requested the training.
"""

from __future__ import annotations

import re
import uuid
from functools import cache
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response, content_types
from aws_lambda_powertools.event_handler.exceptions import (
    BadRequestError,
    ForbiddenError,
    NotFoundError,
)
from pydantic import BaseModel, ValidationError

from lambdas.common.aws import client
from lambdas.common.plant import load_plant
from lambdas.model_pipeline.approval import decide
from lambdas.model_pipeline.layout import DEFECT, GOOD, dataset_prefix, station_key
from lambdas.model_pipeline.registry import (
    ApprovalNotPending,
    InvalidTransition,
    ModelNotFound,
    ModelRecord,
    ModelRegistry,
)
from lambdas.model_pipeline.requests import TrainingRequest
from lambdas.model_pipeline.stations import NotACameraStation, camera_station
from lambdas.quality_api.access import NotAllowed, check_decision
from lambdas.quality_api.contract import DecisionRequest, UploadRequest
from lambdas.quality_api.errors import MAX_MESSAGE_CHARS, names_excerpt, validation_details
from lambdas.quality_api.settings import Settings
from mes_domain.plant import Plant

IMAGE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}\.(png|jpe?g)$", re.IGNORECASE)
STATION = "/stations/<site>/<line>/<station>"

app = APIGatewayRestResolver()


@cache
def settings() -> Settings:
    return Settings.from_environ()


@cache
def plant() -> Plant:
    return load_plant(settings().plant_file)


@cache
def registry() -> ModelRegistry:
    return ModelRegistry(settings().models_table)


def _body(model: type[BaseModel]) -> Any:
    try:
        return model.model_validate(app.current_event.json_body or {})
    except ValidationError as err:
        raise BadRequestError(validation_details(err)) from None
    except ValueError as err:  # a body that is not JSON
        raise BadRequestError(f"the body is not JSON: {str(err)[:MAX_MESSAGE_CHARS]}") from None


def _camera_station(site: str, line: str, station: str) -> None:
    try:
        camera_station(plant(), site, line, station)
    except NotACameraStation as err:
        raise NotFoundError(str(err)) from None


def _claims() -> dict[str, Any]:
    return app.current_event.request_context.authorizer.claims or {}


def _user() -> str:
    claims = _claims()
    user = claims.get("email") or claims.get("cognito:username")
    if not user:
        raise BadRequestError("the request carries no signed-in user")
    return user


def _user_id() -> str:
    """The signed-in user's Cognito ``sub``: it names the same person for good."""
    sub = _claims().get("sub")
    if not sub:
        raise BadRequestError("the request carries no signed-in user id (sub)")
    return sub


def _conflict(message: str) -> Response:
    return Response(409, content_types.APPLICATION_JSON, {"message": message})


@app.post(f"{STATION}/uploads")
def upload_urls(site: str, line: str, station: str) -> dict:
    """Pre-signed PUT URLs, one per file, under the station's dataset prefix."""
    _camera_station(site, line, station)
    request = _body(UploadRequest)
    bad = [name for name in request.files if not IMAGE_NAME.match(name)]
    if bad:
        raise BadRequestError(f"not PNG or JPEG file names: {names_excerpt(bad)}")
    kind = GOOD if request.kind == "good" else DEFECT
    prefix = dataset_prefix(site, line, station) + f"{kind}/"
    expires = settings().upload_url_seconds
    uploads = []
    for name in request.files:
        # A unique prefix, so two uploads of "img1.png" never overwrite each other.
        key = f"{prefix}{uuid.uuid4().hex[:12]}-{name}"
        url = client("s3").generate_presigned_url(
            "put_object",
            Params={"Bucket": settings().dataset_bucket, "Key": key},
            ExpiresIn=expires,
        )
        uploads.append({"file": name, "key": key, "url": url})
    return {"uploads": uploads, "expires_in": expires}


@app.post(f"{STATION}/trainings")
def start_training(site: str, line: str, station: str) -> Response:
    _camera_station(site, line, station)
    request = TrainingRequest(
        site=site, line=line, station=station, requested_by=_user(), requested_by_sub=_user_id()
    )
    execution = client("stepfunctions").start_execution(
        stateMachineArn=settings().state_machine_arn, input=request.model_dump_json()
    )
    body = {"execution_arn": execution["executionArn"], "started_at": str(execution["startDate"])}
    return Response(202, content_types.APPLICATION_JSON, body)


@app.get(f"{STATION}/models")
def list_models(site: str, line: str, station: str) -> dict:
    _camera_station(site, line, station)
    records = registry().list(station_key(site, line, station))
    return {"models": [record.redacted().model_dump(mode="json") for record in records]}


def _record(site: str, line: str, station: str, version: str) -> ModelRecord:
    try:
        return registry().get(station_key(site, line, station), version)
    except ModelNotFound as err:
        raise NotFoundError(str(err)) from None


@app.get(f"{STATION}/models/<version>")
def get_model(site: str, line: str, station: str, version: str) -> dict:
    record = _record(site, line, station, version)
    return record.redacted().model_dump(mode="json")


@app.post(f"{STATION}/models/<version>/decision")
def decide_model(site: str, line: str, station: str, version: str) -> Response | dict:
    request = _body(DecisionRequest)
    key = station_key(site, line, station)
    try:
        check_decision(_claims(), site, _record(site, line, station, version), request.decision)
    except NotAllowed as err:
        raise ForbiddenError(str(err)) from None
    try:
        record = decide(
            registry(), client("stepfunctions"), key, version,
            request.decision, _user(), request.comment,
        )  # fmt: skip
    except ModelNotFound as err:
        raise NotFoundError(str(err)) from None
    except (InvalidTransition, ApprovalNotPending) as err:
        return _conflict(str(err))
    except ValueError as err:
        raise BadRequestError(str(err)) from None
    return record.redacted().model_dump(mode="json")


@app.get(f"{STATION}/models/<version>/deployment")
def deployment_status(site: str, line: str, station: str, version: str) -> dict:
    record = _record(site, line, station, version)
    if record.deployment_id is None:
        return {"model_version": version, "status": record.status.value, "deployment": None}
    deployment = client("greengrassv2").get_deployment(deploymentId=record.deployment_id)
    return {
        "model_version": version,
        "status": record.status.value,
        "deployment": {
            "deployment_id": record.deployment_id,
            "status": deployment.get("deploymentStatus"),
            "target_arn": deployment.get("targetArn"),
            "revision_id": deployment.get("revisionId"),
        },
    }
