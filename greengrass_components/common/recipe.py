"""The project's own model of the recipe and gdk-config fields it uses.

The GDK CLI validates a recipe against its JSON schema after lower-casing every key
(recursively, keys only); these models do the same, so ``Recipe.load`` accepts what the GDK
accepts for these fields, and the tests need no copy of the schema.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator

COMPONENT_NAME = r"^[a-zA-Z0-9-_.]+$"
SEMVER = (
    r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    r"(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?"
    r"(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?$"
)
LIFECYCLE_STEPS = {"setenv", "bootstrap", "install", "startup", "run", "shutdown", "recover"}
IPC_SERVICES = {"aws.greengrass.ipc.pubsub", "aws.greengrass.ipc.mqttproxy"}


def lower_keys(value: Any, keep_names_under: frozenset[str] = frozenset()) -> Any:
    """Lower-case every mapping key, recursively, as the GDK CLI does before validating.

    Keys directly under a key in ``keep_names_under`` (component names) keep their case.
    """
    if isinstance(value, list):
        return [lower_keys(v, keep_names_under) for v in value]
    if not isinstance(value, dict):
        return value
    out = {}
    for key, item in value.items():
        low = str(key).lower()
        if low in keep_names_under and isinstance(item, dict):
            out[low] = {k: lower_keys(v, keep_names_under) for k, v in item.items()}
        else:
            out[low] = lower_keys(item, keep_names_under)
    return out


NAME_KEYS = frozenset({"componentdependencies"})


class Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Dependency(Strict):
    versionrequirement: Annotated[str, Field(min_length=1)]
    dependencytype: Literal["SOFT", "HARD", "soft", "hard"] = "HARD"


class Step(Strict):
    script: Annotated[str, Field(min_length=1)]
    timeout: int | None = None
    requiresprivilege: bool | None = None
    skipif: Annotated[str, Field(pattern=r"(onpath|exists)\s+.*")] | None = None
    setenv: dict[str, str | int | float | bool] | None = None


class Lifecycle(Strict):
    setenv: dict[str, str | int | float | bool] | None = None
    bootstrap: str | Step | None = None
    install: str | Step | None = None
    startup: str | Step | None = None
    run: str | Step | None = None
    shutdown: str | Step | None = None
    recover: str | Step | None = None

    def script(self, step: str) -> str:
        value = getattr(self, step)
        return value.script if isinstance(value, Step) else (value or "")


class Permission(Strict):
    read: Annotated[str, Field(pattern=r"(?i)^(NONE|OWNER|ALL)$")] = "OWNER"
    execute: Annotated[str, Field(pattern=r"(?i)^(NONE|OWNER|ALL)$")] = "NONE"


class Artifact(Strict):
    uri: Annotated[str, Field(min_length=1)]
    unarchive: Annotated[str, Field(pattern=r"(?i)^(ZIP|NONE)$")] = "NONE"
    permission: Permission | None = None


class Manifest(Strict):
    platform: dict[str, str] | None = None
    lifecycle: Lifecycle
    artifacts: list[Artifact] = []


class AccessPolicy(Strict):
    policydescription: str | None = None
    operations: Annotated[list[str], Field(min_length=1)]
    resources: Annotated[list[str], Field(min_length=1)]


class ComponentConfiguration(Strict):
    defaultconfiguration: dict[str, Any]

    @field_validator("defaultconfiguration")
    @classmethod
    def _access_control(cls, value: dict[str, Any]) -> dict[str, Any]:
        for service, policies in (value.get("accesscontrol") or {}).items():
            if service not in IPC_SERVICES:
                raise ValueError(f"accessControl names an unknown IPC service {service!r}")
            for policy in policies.values():
                AccessPolicy.model_validate(policy)
        return value


class Recipe(Strict):
    """A recipe after ``lower_keys``; ``raw`` keeps the original keys for configuration."""

    recipeformatversion: Literal["2020-01-25"]
    componentname: Annotated[str, Field(pattern=COMPONENT_NAME, max_length=128)]
    componentversion: Annotated[str, Field(pattern=SEMVER, max_length=64)]
    componentdescription: str = ""
    componentpublisher: str = ""
    componenttype: Annotated[str, Field(pattern=r"(?i)^aws\.greengrass\.generic$")] | None = None
    componentdependencies: dict[Annotated[str, Field(pattern=COMPONENT_NAME)], Dependency] = {}
    componentconfiguration: ComponentConfiguration | None = None
    manifests: Annotated[list[Manifest], Field(min_length=1)]

    @classmethod
    def load(cls, path: Path) -> tuple[Recipe, dict[str, Any]]:
        """The validated recipe (dependency names keep their case) and the raw document."""
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
        cls.model_validate(lower_keys(raw))  # exactly what the GDK validates
        return cls.model_validate(lower_keys(raw, NAME_KEYS)), raw

    def access_policies(self, service: str) -> list[AccessPolicy]:
        if self.componentconfiguration is None:
            return []
        control = self.componentconfiguration.defaultconfiguration.get("accesscontrol") or {}
        return [AccessPolicy.model_validate(p) for p in (control.get(service) or {}).values()]


class GdkBuild(Strict):
    build_system: Literal["zip", "maven", "gradle", "gradlew", "custom"]
    custom_build_command: list[str] | str | None = None
    options: dict[str, Any] | None = None


class GdkPublish(Strict):
    bucket: Annotated[str, Field(min_length=1)]
    region: str | None = None
    options: dict[str, Any] | None = None


class GdkComponent(Strict):
    author: str
    version: Annotated[str, Field(pattern=f"{SEMVER}|^NEXT_PATCH$")]
    build: GdkBuild
    publish: GdkPublish


class GdkConfig(Strict):
    component: Annotated[
        dict[Annotated[str, Field(pattern=COMPONENT_NAME)], GdkComponent],
        Field(min_length=1, max_length=1),
    ]
    gdk_version: Annotated[str, Field(pattern=SEMVER)]

    @classmethod
    def load(cls, path: Path) -> GdkConfig:
        config = cls.model_validate(json.loads(path.read_text(encoding="utf-8")))
        (component,) = config.component.values()
        if component.build.build_system == "custom" and not component.build.custom_build_command:
            raise ValueError("a custom build needs custom_build_command")
        return config
