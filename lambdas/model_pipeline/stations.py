"""The camera station a model is for, looked up in the plant config."""

from __future__ import annotations

from mes_domain.plant import Plant, Station


class NotACameraStation(ValueError):
    """The station is not in the plant, or does not inspect with a camera."""


def camera_station(plant: Plant, site: str, line: str, station: str) -> Station:
    try:
        found = plant.station(site, line, station).station
    except KeyError as err:
        raise NotACameraStation(err.args[0]) from None
    if found.camera is None:
        raise NotACameraStation(
            f"station {site}/{line}/{station} is a {found.kind.value} station, "
            "not camera_inspection: it has no quality model"
        )
    return found
