"""Dataset checks: which objects are training images, their content hash, enough of them.

A station's dataset is ``datasets/{site}/{line}/{station}/good/`` and ``.../defect/``; only image
files directly in those folders count, as mes_vision reads them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

from lambdas.model_pipeline.errors import DatasetInvalid
from lambdas.model_pipeline.layout import DEFECT, GOOD, dataset_prefix
from lambdas.model_pipeline.requests import DatasetSummary, TrainingRequest
from lambdas.model_pipeline.stations import NotACameraStation, camera_station
from mes_domain.plant import Plant, Station

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


@dataclass(frozen=True, slots=True)
class DatasetObject:
    key: str  # relative to the station's dataset prefix, e.g. "good/part-001.png"
    etag: str


class DatasetListing(Protocol):
    bucket: str

    def objects(self, prefix: str) -> list[DatasetObject]:
        """Every object under ``prefix``, keys relative to it."""
        ...


def is_image(relative_key: str, folder: str) -> bool:
    """An image file directly in ``folder`` (not in a subfolder), by its extension."""
    name = relative_key.removeprefix(f"{folder}/")
    return (
        relative_key.startswith(f"{folder}/")
        and bool(name)
        and "/" not in name
        and name.lower().endswith(IMAGE_SUFFIXES)
    )


def images(objects: Iterable[DatasetObject], folder: str) -> list[DatasetObject]:
    return sorted((o for o in objects if is_image(o.key, folder)), key=lambda o: o.key)


def content_hash(objects: Iterable[DatasetObject]) -> str:
    """sha256 over the sorted relative keys and ETags: changes when any image is added,
    removed, renamed or rewritten with other bytes."""
    digest = hashlib.sha256()
    for obj in sorted(objects, key=lambda o: o.key):
        digest.update(obj.key.encode())
        digest.update(b"\0")
        digest.update(obj.etag.strip('"').encode())
        digest.update(b"\n")
    return digest.hexdigest()


def training_images(
    objects: Sequence[DatasetObject],
) -> tuple[list[DatasetObject], list[DatasetObject]]:
    return images(objects, GOOD), images(objects, DEFECT)


def check_station(plant: Plant, request: TrainingRequest) -> Station:
    try:
        return camera_station(plant, request.site, request.line, request.station)
    except NotACameraStation as err:
        raise DatasetInvalid(str(err)) from None


def validate(
    request: TrainingRequest, plant: Plant, listing: DatasetListing, min_good: int
) -> DatasetSummary:
    """The dataset's summary, or ``DatasetInvalid`` naming the prefix and the count."""
    station = check_station(plant, request)
    prefix = dataset_prefix(request.site, request.line, request.station)
    good, defect = training_images(listing.objects(prefix))
    if len(good) < min_good:
        where = f"s3://{listing.bucket}/{prefix}{GOOD}/"
        found = f"has {len(good)} images" if good else "is missing or has no images"
        raise DatasetInvalid(
            f"{where} {found} (.png, .jpg, .jpeg); at least {min_good} good images are needed"
        )
    return DatasetSummary(
        bucket=listing.bucket,
        prefix=prefix,
        good_images=len(good),
        defect_images=len(defect),
        content_hash=content_hash([*good, *defect]),
        roi=station.camera.roi.as_tuple() if station.camera and station.camera.roi else None,
    )
