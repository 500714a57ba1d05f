"""Plants for the stack tests beyond the demo: the optional SiteWise Monitor on, the largest
line the config allows, and the containers platform on."""

from __future__ import annotations

from mes_domain import naming
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


OUTPOST_ARN = "arn:aws:outposts:eu-central-1:123456789012:outpost/op-0123456789abcdef0"
CONNECTION_ARN = (
    "arn:aws:codeconnections:eu-central-1:123456789012:connection/"
    "0123abcd-4567-89ef-0123-456789abcdef"
)


def with_containers(document: dict, *, edge_site: str = "outposts", bus: str = "msk") -> dict:
    """The containers platform on with each of its options: MSK, an Outposts edge site, a
    public endpoint for two networks, a domain, multi-AZ and a CodeConnections source."""
    document["capabilities"] = {"eks": True}
    document["deployment"]["edge_site"] = edge_site
    document["containers"] = {
        "endpoint_access": "public_and_private",
        "public_access_cidrs": ["203.0.113.0/24", "198.51.100.16/28"],
        "service_bus": bus,
        "database": {"multi_az": True},
        "domain": {
            "hosted_zone_id": "Z0123456789ABCDEFGHIJ",
            "zone_name": "mes.example.com",
            "record_name": "api.mes.example.com",
        },
        "pipeline": {
            "source": {
                "provider": "codeconnections",
                "connection_arn": CONNECTION_ARN,
                "repository": "acme/mes-platform",
                "branch": "main",
            },
            "approval_emails": ["release-manager@example.com"],
        },
    }
    if edge_site == "outposts":
        document["containers"]["outpost"] = {
            "outpost_arn": OUTPOST_ARN,
            "availability_zone": "eu-central-1a",
            "subnet_cidr": "10.40.240.0/24",
            "site": document["sites"][0]["id"],
            "database_host": "mes-edge-db.berlin.example.com",
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
    """The demo plant with SiteWise Monitor, the largest line allowed and the containers
    platform with every option (an Outposts edge site, MSK, a domain)."""
    document = with_containers(with_monitor(demo.model_dump(mode="json")))
    lines = document["sites"][0]["lines"]
    # its stations read their machines like the template station, over the same connections
    lines.append({**largest_line(lines[0]["stations"][0]), "collection": lines[0]["collection"]})
    return Plant.model_validate(document)


ALARM_EMAILS = ["plant-it@example.com", "shift-lead@example.com"]


def longest_names(demo: Plant) -> Plant:
    """The demo plant with every config value that goes into a resource name as long as the
    config allows: the prefix, the plant's name, a camera line whose site and line ids fill its
    role alias or a camera model group, a line without camera that fills its role alias (its
    thing group is 8 characters shorter), 64-character station ids and tags, 128-character
    display names; with alarm e-mails and SiteWise Monitor on."""
    document = with_monitor(demo.model_dump(mode="json"))
    document["deployment"]["stack_prefix"] = "M" + "p" * (
        naming.STATE_MACHINE_NAME.max_length - len(naming.model_pipeline_name("")) - 1
    )
    document["deployment"]["alarm_emails"] = ALARM_EMAILS
    document["name"] = "N" * (
        naming.SNS_DISPLAY_NAME.max_length - len(naming.alarm_display_name(""))
    )
    prefix = document["deployment"]["stack_prefix"]
    alias_room = naming.ROLE_ALIAS.max_length - len(naming.gateway_role_alias(prefix, "", ""))
    group_room = naming.THING_GROUP_NAME.max_length - len(naming.thing_group_name(prefix, "", ""))
    site = document["sites"][0]
    site["id"] = "s" * (alias_room // 2)
    site["name"] = "S" * 128
    camera_line, other_line = site["lines"]
    # its camera station's model group (":<station>:models", one-character station) is longer
    # than its role alias, so that fills 128 first
    model_room = group_room - len(naming.MODEL_GROUP_SUFFIX) - len(":0")
    camera_line["id"] = "c" * (min(alias_room, model_room) - len(site["id"]))
    other_line["id"] = "o" * (min(group_room, alias_room) - len(site["id"]))
    for line in (camera_line, other_line):
        line["name"] = "L" * 128
        # a camera station's gateway group is the line's group, ":" and the station id
        camera_room = naming.THING_GROUP_NAME.max_length - len(
            naming.station_thing_group_name(prefix, site["id"], line["id"], "")
            + naming.MODEL_GROUP_SUFFIX  # its model group, the longer name
        )
        for number, station in enumerate(line["stations"]):
            room = min(64, camera_room) if station.get("camera") else 64
            station["id"] = f"{number}".ljust(room, "t")
            station["name"] = "T" * 128
            for tag_number, tag in enumerate(station["tags"]):
                tag["name"] = f"t{tag_number}".ljust(64, "g")
    return Plant.model_validate(document)
