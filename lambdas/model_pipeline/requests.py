"""The execution input and each step's event and output, validated at every boundary.

Step events are the state machine's whole state, so each model ignores the keys it does not
use; outputs are plain dicts (``model_dump(mode="json")``) that Step Functions stores under
the step's result path.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

from lambdas.model_pipeline.layout import MODEL_VERSION_PATTERN, station_key
from mes_domain.ids import Identifier

ModelVersion = Annotated[str, Field(pattern=MODEL_VERSION_PATTERN, max_length=64)]


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")


class StationPath(_Model):
    site: Identifier
    line: Identifier
    station: Identifier

    @property
    def station_key(self) -> str:
        return station_key(self.site, self.line, self.station)


class TrainingRequest(StationPath):
    """The execution input: train a model for one camera station."""

    requested_by: Annotated[str, Field(min_length=1, max_length=256)]
    # The requester's Cognito ``sub``: stable, unlike an e-mail, so an approver can be told apart.
    requested_by_sub: Annotated[str, Field(min_length=1, max_length=128)] | None = None


class DatasetSummary(_Model):
    """Output of validate_dataset; stored under ``dataset``."""

    bucket: str
    prefix: str
    good_images: Annotated[int, Field(ge=0)]
    defect_images: Annotated[int, Field(ge=0)]
    content_hash: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
    # The station camera's region of interest (left, top, width, height), from the plant config.
    roi: tuple[int, int, int, int] | None = None


class TrainingResult(_Model):
    """Output of train_model; stored under ``training``."""

    model_version: ModelVersion
    s3_prefix: str
    card: dict[str, Any]


class GateResult(_Model):
    """Output of evaluate_model; stored under ``evaluation``."""

    passed: bool
    reasons: list[str] = []
    unmeasured: list[str] = []


class RegistrationResult(_Model):
    """Output of register_model; stored under ``registration``."""

    status: str


class ComponentResult(_Model):
    """Output of publish_component; stored under ``component``."""

    component_name: str
    component_version: ModelVersion
    arn: str


class DeploymentResult(_Model):
    """Output of deploy_model; stored under ``deployment``."""

    deployment_id: str


class TrainEvent(TrainingRequest):
    dataset: DatasetSummary


class EvaluateEvent(_Model):
    training: TrainingResult


class RegisterEvent(TrainingRequest):
    dataset: DatasetSummary
    training: TrainingResult
    evaluation: GateResult


class ApprovalWaitEvent(StationPath):
    """request_approval's payload: the task token and the model waiting for a decision."""

    task_token: Annotated[str, Field(min_length=1, max_length=2048)]
    model_version: ModelVersion


class PublishEvent(StationPath):
    training: TrainingResult


class DeployEvent(StationPath):
    training: TrainingResult
    component: ComponentResult
