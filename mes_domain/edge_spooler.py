"""Where Greengrass keeps IoT Core messages while a gateway is offline: on disk, not in memory.

Our components publish to AWS IoT Core through the nucleus (IPC ``PublishToIoTCore``). The
nucleus' spooler keeps unsent messages in memory by default, 2.5 MB (``maxSizeInBytes``
2621440), and when that is full it discards the oldest messages to add new ones; a nucleus
restart loses all of them
(https://docs.aws.amazon.com/greengrass/v2/developerguide/greengrass-nucleus-component.html,
``mqtt.spooler``). At one InspectionResult of about 270 bytes per part, 2.5 MB is under
10,000 results, less than three hours of a one-second line; telemetry fills it far sooner.

So every deployment of our gateways also deploys the disk spooler plugin
(``aws.greengrass.DiskSpooler``, nucleus 2.11.0 or later) and sets the nucleus'
``mqtt.spooler.storageType`` to ``Disk`` with ``pluginName`` naming it, which keeps the spool
across restarts and power cycles
(https://docs.aws.amazon.com/greengrass/v2/developerguide/disk-spooler-component.html).
``maxSizeInBytes`` then bounds the disk spool and must stay below the device's free space.
QoS 0 messages are not spooled (``keepQos0WhenOffline`` false): ours are all QoS 1.

Pure: no I/O, nothing deployed here; ``with_disk_spooler`` adds both components to the
deployments of ``mes_domain.edge_deployment.line_deployments``.
"""

from __future__ import annotations

import json
import re
from typing import Any

NUCLEUS = "aws.greengrass.Nucleus"
DISK_SPOOLER = "aws.greengrass.DiskSpooler"
# The nucleus' defaults (greengrass-nucleus-component.html, mqtt.spooler).
IN_MEMORY_SPOOL_DEFAULT_BYTES = 2_621_440
# The disk spooler needs nucleus 2.11.0 or later (disk-spooler-component.html).
DISK_SPOOLER_MIN_NUCLEUS = (2, 11, 0)
# Our choice: 256 MB of disk per gateway, about 100 times the in-memory default.
DEFAULT_DISK_SPOOL_BYTES = 256 * 1024 * 1024

_VERSION = re.compile(r"(\d+)\.(\d+)\.(\d+)")


def nucleus_spooler_configuration(max_size_bytes: int = DEFAULT_DISK_SPOOL_BYTES) -> dict[str, Any]:
    """The nucleus configuration that puts the IoT Core spool on disk (a merge update)."""
    if max_size_bytes <= 0:
        raise ValueError("the spool needs a positive maxSizeInBytes")
    return {
        "mqtt": {
            "spooler": {
                "storageType": "Disk",
                "pluginName": DISK_SPOOLER,
                "maxSizeInBytes": max_size_bytes,
                "keepQos0WhenOffline": False,
            }
        }
    }


def spooler_components(
    nucleus_version: str,
    disk_spooler_version: str,
    max_size_bytes: int = DEFAULT_DISK_SPOOL_BYTES,
) -> dict[str, dict[str, Any]]:
    """The two entries of a deployment's ``components``: the nucleus (the version the gateway
    runs, with the spooler merge) and the disk spooler plugin."""
    match = _VERSION.fullmatch(nucleus_version)
    if match is None:
        raise ValueError(f"nucleus version {nucleus_version!r} is not MAJOR.MINOR.PATCH")
    if tuple(int(part) for part in match.groups()) < DISK_SPOOLER_MIN_NUCLEUS:
        needed = ".".join(map(str, DISK_SPOOLER_MIN_NUCLEUS))
        raise ValueError(f"the disk spooler needs nucleus {needed} or later, not {nucleus_version}")
    if not _VERSION.fullmatch(disk_spooler_version):
        raise ValueError(f"disk spooler version {disk_spooler_version!r} is not MAJOR.MINOR.PATCH")
    merge = json.dumps(nucleus_spooler_configuration(max_size_bytes), separators=(",", ":"))
    return {
        NUCLEUS: {"componentVersion": nucleus_version, "configurationUpdate": {"merge": merge}},
        DISK_SPOOLER: {"componentVersion": disk_spooler_version},
    }


def with_disk_spooler(
    document: dict[str, Any],
    nucleus_version: str,
    disk_spooler_version: str,
    max_size_bytes: int = DEFAULT_DISK_SPOOL_BYTES,
) -> dict[str, Any]:
    """A copy of a line's deployments document in which every deployment also deploys the disk
    spooler and sets the nucleus' spool to it."""
    extra = spooler_components(nucleus_version, disk_spooler_version, max_size_bytes)
    result = json.loads(json.dumps(document))
    for deployment in result["deployments"]:
        clash = set(extra) & set(deployment["components"])
        if clash:
            raise ValueError(f"{deployment['deploymentName']} already deploys {sorted(clash)}")
        deployment["components"].update(json.loads(json.dumps(extra)))
    return result
