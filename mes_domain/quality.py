"""Where quality images live, shared by the edge that uploads them and the cloud that trains
on them: ``datasets/{site}/{line}/{station}/{good|defect}/<image>`` in the dataset bucket; and
the station's models: ``models/{site}/{line}/{station}/{version}/`` in the model bucket."""

from __future__ import annotations

from mes_domain.ids import check_identifier

DATASET_ROOT = "datasets"
GOOD = "good"
DEFECT = "defect"
LABELS = (GOOD, DEFECT)


def dataset_prefix(site: str, line: str, station: str, *, root: str = DATASET_ROOT) -> str:
    """The station's folder in the dataset bucket, ending in ``/``."""
    levels = [check_identifier(level) for level in (site, line, station)]
    return "/".join(part for part in (root.strip("/"), *levels) if part) + "/"


MODEL_ROOT = "models"


def model_station_prefix(site: str, line: str, station: str) -> str:
    """The station's folder in the model bucket (one subfolder per model version), ending in
    ``/``: what the pipeline writes and the station's gateway reads."""
    return dataset_prefix(site, line, station, root=MODEL_ROOT)


def dataset_key(
    site: str, line: str, station: str, label: str, name: str, *, root: str = DATASET_ROOT
) -> str:
    """The key of one ``good`` or ``defect`` image of the station."""
    if label not in LABELS:
        raise ValueError(f"label {label!r} is not one of {', '.join(LABELS)}")
    if not name or "/" in name:
        raise ValueError(f"image name {name!r} must be a plain file name")
    return f"{dataset_prefix(site, line, station, root=root)}{label}/{name}"
