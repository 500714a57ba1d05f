"""The component's configuration: the recipe's DefaultConfiguration merged with the deployment's.

Keys are camelCase as in Greengrass configuration. Relative paths resolve against the working
directory, which Greengrass sets to the component's work folder.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from mes_domain.ids import Identifier
from mes_domain.topics import MessageKind, StationTopic, TopicError, parse_topic

GREENGRASS_COMPONENT_NAME = re.compile(r"[a-zA-Z0-9-_.]{1,128}")
# S3 bucket names: 3-63 lower-case letters, digits, dots and hyphens.
BUCKET_NAME = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")


class Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)


class StationConfig(Section):
    site: Identifier
    line: Identifier
    station: Identifier


class CameraConfig(Section):
    """Where images come from: a watched folder and/or a trigger message with an image path."""

    inbox_dir: Path = Field(alias="inboxDir")
    poll_interval_ms: Annotated[int, Field(ge=10, le=60_000)] = Field(250, alias="pollIntervalMs")
    # A file is read only after its size and mtime held still for two polls and this long.
    settle_ms: Annotated[int, Field(ge=0, le=600_000)] = Field(500, alias="settleMs")
    trigger_topic: str | None = Field(None, alias="triggerTopic")
    # Trigger messages may only name images under this folder, or anything readable could be
    # uploaded to the dataset bucket. Not the inbox, where the watcher would take them too.
    trigger_root: Path | None = Field(None, alias="triggerRoot")
    # Triggers wait here (SQLite, in the work folder) until their result is published, so a
    # crash or kill -9 loses none. When full, the oldest are dropped and counted.
    trigger_queue: Path = Field(Path("triggers.sqlite3"), alias="triggerQueue")
    trigger_queue_max_items: Annotated[int, Field(ge=1, le=1_000_000)] = Field(
        10_000, alias="triggerQueueMaxItems"
    )

    @model_validator(mode="after")
    def _trigger_root(self) -> CameraConfig:
        if self.trigger_topic and self.trigger_root is None:
            raise ValueError("triggerTopic needs a triggerRoot folder")
        if self.trigger_root is not None:
            inbox = self.inbox_dir.resolve()
            root = self.trigger_root.resolve()
            if root.is_relative_to(inbox) or inbox.is_relative_to(root):
                raise ValueError("triggerRoot and inboxDir must not contain one another")
        return self


class ModelConfig(Section):
    """Which model component to use. ``dir`` overrides the path given on the command line."""

    component_name: str = Field(alias="componentName", pattern=GREENGRASS_COMPONENT_NAME.pattern)
    # Empty: taken from the model component's configuration (modelId, modelVersion) on
    # Greengrass, else the component name and the model's sha256.
    model_id: Annotated[str, Field(max_length=128)] = Field("", alias="modelId")
    version: Annotated[str, Field(max_length=64)] = ""
    dir: Path | None = None

    @field_validator("dir", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: Any) -> Any:
        return None if value == "" else value

    intra_op_threads: Annotated[int, Field(ge=1, le=64)] = Field(2, alias="intraOpThreads")


class CaptureConfig(Section):
    """What is kept for retraining, how much of it, and where it is uploaded."""

    dir: Path
    good_sample_rate: Annotated[float, Field(ge=0, le=1)] = Field(0.02, alias="goodSampleRate")
    max_bytes: Annotated[int, Field(ge=0)] = Field(2 * 1024**3, alias="maxBytes")
    max_files: Annotated[int, Field(ge=0)] = Field(20_000, alias="maxFiles")
    # Keep at least this much free on the capture file system, whatever the bounds say.
    min_free_bytes: Annotated[int, Field(ge=0)] = Field(512 * 1024**2, alias="minFreeBytes")
    upload_bucket: str = Field("", alias="uploadBucket")
    upload_prefix: Annotated[str, Field(max_length=256)] = Field("datasets", alias="uploadPrefix")

    @model_validator(mode="after")
    def _bucket_name(self) -> CaptureConfig:
        if self.upload_bucket and not BUCKET_NAME.fullmatch(self.upload_bucket):
            raise ValueError(f"uploadBucket {self.upload_bucket!r} is not an S3 bucket name")
        if self.upload_prefix.startswith("/") or self.upload_prefix.endswith("/"):
            raise ValueError("uploadPrefix must not start or end with '/'")
        return self


class ComponentConfig(Section):
    station: StationConfig
    camera: CameraConfig
    model: ModelConfig
    capture: CaptureConfig
    # The direct topic or its Basic Ingest form; default mes/v1/{site}/{line}/{station}/quality.
    publish_topic: str = Field("", alias="publishTopic")
    # Greengrass adds accessControl to the configuration; it is the recipe's concern, not ours.
    access_control: dict[str, Any] | None = Field(None, alias="accessControl")

    @property
    def quality_topic(self) -> StationTopic:
        s = self.station
        return StationTopic(s.site, s.line, s.station, MessageKind.QUALITY)

    @model_validator(mode="after")
    def _topic_is_this_stations_quality_topic(self) -> ComponentConfig:
        if not self.publish_topic:
            object.__setattr__(self, "publish_topic", str(self.quality_topic))
            return self
        try:
            parsed = parse_topic(self.publish_topic)
        except TopicError as exc:
            raise ValueError(f"publishTopic: {exc}") from None
        if parsed.topic != self.quality_topic:
            raise ValueError(
                f"publishTopic {self.publish_topic!r} is not the quality topic of "
                f"{self.quality_topic}"
            )
        return self


# Set per station by the deployment (mes_domain.edge_deployment), never by the recipe.
STATION_KEYS = ("station.site", "station.line", "station.station")


class NotConfigured(ValueError):
    """The configuration names no station: the component was deployed without its station."""


def parse_config(data: dict[str, Any]) -> ComponentConfig:
    """Validate a configuration document; raises ``NotConfigured`` naming the station keys the
    deployment did not set, else pydantic's ``ValidationError`` saying where."""
    station = data.get("station") if isinstance(data.get("station"), dict) else {}
    missing = [key for key in STATION_KEYS if not station.get(key.split(".")[1])]
    if missing:
        raise NotConfigured(
            f"no station configured: {', '.join(missing)} missing; the deployment sets them "
            "with publishTopic, camera.triggerTopic and accessControl (python -m "
            "greengrass_components.deployments)"
        )
    return ComponentConfig.model_validate(data)
