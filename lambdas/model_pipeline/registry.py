"""The model registry: one DynamoDB item per trained model, and its life cycle.

Table: partition key ``station`` ("site/line/station"), sort key ``model_version``. A model is
registered TRAINED (it passed the quality gate) or REJECTED (it did not), and then moves only
along ``ALLOWED_TRANSITIONS``::

    TRAINED -> APPROVED -> DEPLOYED
    TRAINED -> REJECTED

Every transition is a conditional write on the status it was read in, so of two concurrent
decisions on one model exactly one wins and the other gets ``InvalidTransition``.

This module depends only on boto3 and pydantic so the approval API can import it on its own::

    registry = ModelRegistry(os.environ["MODELS_TABLE"])
    registry.transition("berlin/body-line-1/vision-01", "1.0.1700000000",
                        ModelStatus.APPROVED, approved_by="jane")
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import ClientError
from pydantic import BaseModel, ConfigDict

from lambdas.common.aws import client


class ModelStatus(StrEnum):
    TRAINED = "TRAINED"  # passed the quality gate; waits for an expert's decision
    APPROVED = "APPROVED"
    REJECTED = "REJECTED"  # by the gate or by an expert; final
    DEPLOYED = "DEPLOYED"


ALLOWED_TRANSITIONS: dict[ModelStatus, frozenset[ModelStatus]] = {
    ModelStatus.TRAINED: frozenset({ModelStatus.APPROVED, ModelStatus.REJECTED}),
    ModelStatus.APPROVED: frozenset({ModelStatus.DEPLOYED}),
}

# Set automatically by a transition to the status on the left.
_STAMPS = {
    ModelStatus.APPROVED: "approved_at",
    ModelStatus.REJECTED: "rejected_at",
    ModelStatus.DEPLOYED: "deployed_at",
}
# What a caller may set along with a transition.
TRANSITION_FIELDS = frozenset(
    {
        "approved_by",
        "rejected_by",
        "decision_comment",
        "rejection_reasons",
        "deployment_id",
        "component_arn",
    }
)


class RegistryError(Exception):
    """Base of the registry's errors."""


class ModelNotFound(RegistryError):
    def __init__(self, station: str, version: str) -> None:
        super().__init__(f"no model {version} registered for station {station}")


class InvalidTransition(RegistryError):
    """A status change outside ``ALLOWED_TRANSITIONS`` (e.g. a second decision on a model)."""

    def __init__(
        self, current: ModelStatus, target: ModelStatus, station: str = "", version: str = ""
    ) -> None:
        self.current, self.target = ModelStatus(current), ModelStatus(target)
        model = f"model {station} {version}" if station else "a model"
        super().__init__(f"{model} cannot go from {self.current.value} to {self.target.value}")


class ApprovalNotPending(RegistryError):
    """The model is not waiting for a decision: no task token, or not TRAINED."""


def check_transition(
    current: ModelStatus, target: ModelStatus, station: str = "", version: str = ""
) -> None:
    """Raise ``InvalidTransition`` unless ``current -> target`` is allowed."""
    if ModelStatus(target) not in ALLOWED_TRANSITIONS.get(ModelStatus(current), frozenset()):
        raise InvalidTransition(current, target, station, version)


class Lineage(BaseModel):
    """Where the model came from: enough to find and re-check its training data."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    dataset_bucket: str
    dataset_prefix: str
    content_hash: str  # over the S3 keys and ETags the model was trained on
    good_images: int
    defect_images: int
    dataset_sha256: str | None = None  # mes_vision's hash over the image bytes


class Gate(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    passed: bool
    reasons: list[str] = []
    unmeasured: list[str] = []


class ModelRecord(BaseModel):
    """One registered model. ``card`` is mes_vision's model card (model.json) as a dict."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    station: str
    model_version: str
    status: ModelStatus
    requested_by: str | None = None
    requested_by_sub: str | None = None  # the requester's Cognito sub
    metrics: dict[str, float | None] = {}
    gate: Gate | None = None
    lineage: Lineage | None = None
    model_bucket: str | None = None
    model_prefix: str | None = None
    card: dict[str, Any] = {}
    approval_token: str | None = None  # the waiting execution's task token; treat as secret
    approval_requested_at: str | None = None
    approved_by: str | None = None
    approved_at: str | None = None
    rejected_by: str | None = None
    rejected_at: str | None = None
    decision_comment: str | None = None
    rejection_reasons: list[str] = []
    component_arn: str | None = None
    deployment_id: str | None = None
    deployed_at: str | None = None
    created_at: str | None = None
    updated_at: str | None = None

    def redacted(self) -> ModelRecord:
        """The record without its task token, for showing to people."""
        return self.model_copy(update={"approval_token": None})


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


_serializer = TypeSerializer()
_deserializer = TypeDeserializer()


def _to_dynamo(value: Any) -> Any:
    """DynamoDB numbers are Decimals; a non-finite float cannot be stored and becomes null."""
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, float):
        return Decimal(repr(value)) if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: _to_dynamo(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_to_dynamo(item) for item in value]
    return value


def _from_dynamo(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {key: _from_dynamo(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_from_dynamo(item) for item in value]
    return value


def _attr(value: Any) -> dict:
    return _serializer.serialize(_to_dynamo(value))


def to_item(record: ModelRecord) -> dict[str, dict]:
    data = record.model_dump(mode="json", exclude_none=True)
    # The card is stored as its JSON text: exact, and free of DynamoDB's number rules.
    data["card"] = json.dumps(data.get("card", {}), sort_keys=True)
    return {key: _attr(value) for key, value in data.items()}


def from_item(item: dict[str, dict]) -> ModelRecord:
    data = {key: _from_dynamo(_deserializer.deserialize(value)) for key, value in item.items()}
    if isinstance(data.get("card"), str):
        data["card"] = json.loads(data["card"])
    return ModelRecord.model_validate(data)


def _conditional_check_failed(err: ClientError) -> bool:
    return err.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException"


class ModelRegistry:
    """The registry table. ``dynamodb`` (a boto3 client) is created on first use if not given."""

    def __init__(
        self,
        table_name: str,
        dynamodb: Any | None = None,
        clock: Callable[[], str] = now_iso,
    ) -> None:
        self.table_name = table_name
        self._client = dynamodb
        self._clock = clock

    @property
    def _dynamodb(self) -> Any:
        return self._client or client("dynamodb")

    @staticmethod
    def _key(station: str, version: str) -> dict[str, dict]:
        return {"station": {"S": station}, "model_version": {"S": version}}

    def register(self, record: ModelRecord) -> ModelRecord:
        """Store a new record; if the model is already registered, return it unchanged.

        A retried step therefore neither duplicates a model nor moves its status back.
        """
        now = self._clock()
        record = record.model_copy(update={"created_at": now, "updated_at": now})
        try:
            self._dynamodb.put_item(
                TableName=self.table_name,
                Item=to_item(record),
                ConditionExpression="attribute_not_exists(#station)",
                ExpressionAttributeNames={"#station": "station"},
            )
        except ClientError as err:
            if _conditional_check_failed(err):
                return self.get(record.station, record.model_version)
            raise
        return record

    def get(self, station: str, version: str) -> ModelRecord:
        """The record (read consistently); ``ModelNotFound`` if there is none."""
        response = self._dynamodb.get_item(
            TableName=self.table_name, Key=self._key(station, version), ConsistentRead=True
        )
        if "Item" not in response:
            raise ModelNotFound(station, version)
        return from_item(response["Item"])

    def list(self, station: str | None = None) -> list[ModelRecord]:
        """One station's models, newest first, or every model; all pages."""
        return list(self._pages(station))

    def _pages(self, station: str | None) -> Iterator[ModelRecord]:
        if station is None:
            request: dict[str, Any] = {"TableName": self.table_name}
            call = self._dynamodb.scan
        else:
            request = {
                "TableName": self.table_name,
                "KeyConditionExpression": "#station = :station",
                "ExpressionAttributeNames": {"#station": "station"},
                "ExpressionAttributeValues": {":station": {"S": station}},
                "ScanIndexForward": False,  # versions grow with the training time
            }
            call = self._dynamodb.query
        while True:
            page = call(**request)
            yield from (from_item(item) for item in page.get("Items", []))
            if "LastEvaluatedKey" not in page:
                return
            request["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def transition(
        self, station: str, version: str, new_status: ModelStatus, **fields: Any
    ) -> ModelRecord:
        """Move a model to ``new_status``, setting ``fields`` (see ``TRANSITION_FIELDS``).

        Raises ``ModelNotFound``, or ``InvalidTransition`` naming both states when the move is
        not allowed or another writer changed the status first. Leaving TRAINED removes the
        task token: it can be used once only.
        """
        unknown = sorted(set(fields) - TRANSITION_FIELDS)
        if unknown:
            raise ValueError(f"cannot set {', '.join(unknown)} in a transition")
        new_status = ModelStatus(new_status)
        current = self.get(station, version)
        check_transition(current.status, new_status, station, version)
        now = self._clock()
        values = {
            "status": new_status.value,
            "updated_at": now,
            _STAMPS[new_status]: now,
            **{key: value for key, value in fields.items() if value is not None},
        }
        names = {f"#f{i}": key for i, key in enumerate(values)}
        attrs = {f":v{i}": _attr(value) for i, value in enumerate(values.values())}
        expression = "SET " + ", ".join(f"#f{i} = :v{i}" for i in range(len(values)))
        if current.status is ModelStatus.TRAINED:
            names["#token"] = "approval_token"
            expression += " REMOVE #token"
        names["#status"] = "status"
        attrs[":expected"] = {"S": current.status.value}
        try:
            response = self._dynamodb.update_item(
                TableName=self.table_name,
                Key=self._key(station, version),
                UpdateExpression=expression,
                ConditionExpression="#status = :expected",
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=attrs,
                ReturnValues="ALL_NEW",
            )
        except ClientError as err:
            if _conditional_check_failed(err):
                # Someone else moved it since we read it: report the status they left.
                latest = self.get(station, version)
                raise InvalidTransition(latest.status, new_status, station, version) from None
            raise
        return from_item(response["Attributes"])

    def store_approval_token(self, station: str, version: str, task_token: str) -> None:
        """Keep the waiting execution's task token on a TRAINED model, for the approval API.

        A retried step overwrites the token with the newest one. Raises ``ModelNotFound``, or
        ``ApprovalNotPending`` when the model is not TRAINED.
        """
        now = self._clock()
        try:
            self._dynamodb.update_item(
                TableName=self.table_name,
                Key=self._key(station, version),
                UpdateExpression="SET #token = :token, #asked = :now, #updated = :now",
                ConditionExpression="#status = :trained",
                ExpressionAttributeNames={
                    "#token": "approval_token",
                    "#asked": "approval_requested_at",
                    "#updated": "updated_at",
                    "#status": "status",
                },
                ExpressionAttributeValues={
                    ":token": {"S": task_token},
                    ":now": {"S": now},
                    ":trained": {"S": ModelStatus.TRAINED.value},
                },
            )
        except ClientError as err:
            if _conditional_check_failed(err):
                status = self.get(station, version).status
                raise ApprovalNotPending(
                    f"model {station} {version} is {status.value}, not TRAINED: "
                    "it cannot wait for approval"
                ) from None
            raise
