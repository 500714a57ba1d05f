"""Plants for the stack tests beyond the demo: the optional SiteWise Monitor on, and the largest
line the config allows."""

from __future__ import annotations

from mes_domain.plant import MAX_STATIONS_PER_LINE, Plant

ADMIN = "arn:aws:iam::123456789012:role/PlantEngineer"
VIEWER = "arn:aws:iam::123456789012:user/shift-lead"
LARGEST_LINE = "largest-line"
HEAVY_STATIONS = 12  # the first stations carry many tags with the longest names
HEAVY_TAGS = 150


def with_monitor(document: dict) -> dict:
    document["kpi"]["sitewise_monitor"] = {
        "enabled": True,
        "contact_email": "plant-it@example.com",
        "administrators": [ADMIN],
        "viewers": [VIEWER],
    }
    return document


def largest_line(template_station: dict) -> dict:
    """``MAX_STATIONS_PER_LINE`` stations that share no model (each its own cycle time), the
    most SiteWise resources a line can have; the first ``HEAVY_STATIONS`` have the biggest."""
    stations = []
    for index in range(MAX_STATIONS_PER_LINE):
        station = {**template_station, "ideal_cycle_time_s": 1 + index / 8}
        station["id"] = f"station-{index:03d}"
        if index < HEAVY_STATIONS:
            station["id"] = station["id"].ljust(64, "x")
            station["name"] = "N" * 128
            station["tags"] = [
                {"name": f"tag{tag:03d}".ljust(64, "y"), "unit": "u" * 32}
                for tag in range(HEAVY_TAGS)
            ]
        stations.append(station)
    return {"id": LARGEST_LINE, "name": "The largest line allowed", "stations": stations}


def full_plant(demo: Plant) -> Plant:
    """The demo plant with SiteWise Monitor and the largest line allowed."""
    document = with_monitor(demo.model_dump(mode="json"))
    lines = document["sites"][0]["lines"]
    lines.append(largest_line(lines[0]["stations"][0]))
    return Plant.model_validate(document)
