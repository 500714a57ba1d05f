"""Names shared by the steps: S3 keys, registry keys, model versions and ARNs."""

from __future__ import annotations

import re

from mes_domain.fleet import model_thing_group_name
from mes_domain.quality import (  # noqa: F401 - shared with the edge
    DEFECT,
    GOOD,
    dataset_prefix,
    model_station_prefix,
)

MODEL_FILE = "model.onnx"  # the names mes_vision writes
CARD_FILE = "model.json"

# A Greengrass component version is semver; the patch number is the training time.
MODEL_VERSION_PATTERN = r"^\d+\.\d+\.\d+$"
_ARN = re.compile(r"^arn:(?P<partition>aws[a-z-]*):iot:(?P<region>[^:]+):(?P<account>\d{12}):")


def station_key(site: str, line: str, station: str) -> str:
    """The registry's partition key of a station."""
    return f"{site}/{line}/{station}"


def model_prefix(site: str, line: str, station: str, model_version: str) -> str:
    return f"{model_station_prefix(site, line, station)}{model_version}/"


def model_version(trained_at_epoch_s: float) -> str:
    """``1.0.<epoch seconds>``: valid semver that grows with every training."""
    return f"1.0.{int(trained_at_epoch_s)}"


def thing_group_arn(arn_prefix: str, prefix: str, site: str, line: str, station: str) -> str:
    """The ARN of the camera station's model group (mes_domain.fleet), where its models go and
    nothing else; ``arn_prefix`` ends in ``thinggroup/``."""
    return arn_prefix + model_thing_group_name(prefix, site, line, station)


def component_version_arn(thing_group_arn_prefix: str, name: str, version: str) -> str:
    """The ARN of a component version in the account and region of the thing groups."""
    match = _ARN.match(thing_group_arn_prefix)
    if not match:
        raise ValueError(f"{thing_group_arn_prefix!r} is not an IoT thing group ARN prefix")
    partition, region, account = match["partition"], match["region"], match["account"]
    return f"arn:{partition}:greengrass:{region}:{account}:components:{name}:versions:{version}"
