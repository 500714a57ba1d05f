"""SiteWise Edge, as the seed draws it: with ``iiot.opcua_to_sitewise`` a SiteWise Edge gateway
per site reads the site's OPC UA servers and sends their values to AWS IoT SiteWise, an
alternative to the DataCollector's own OPC UA path.

Each gateway is an MQTT-enabled V3 gateway (``GatewayVersion`` 3) on a Greengrass v2 core
device named by ``mes_domain.naming.sitewise_gateway_thing_name``, which runs the
``aws.iot.SiteWiseEdgeCollectorOpcua`` and ``aws.iot.SiteWiseEdgePublisher`` components
(docs.aws.amazon.com/greengrass/v2/developerguide/iotsitewise-opcua-collector-component.html,
.../iotsitewise-publisher-component.html); issue 15 provisions the device and deploys them.
Its OPC UA capability (namespace ``iotsitewise:opcuacollector:3``, "OPC UA sources for an
MQTT-enabled gateway", docs.aws.amazon.com/iot-sitewise/latest/APIReference/
API_GatewayCapabilitySummary.html) lists one source per OPC UA connection of the site's lines:
its endpoint, security and a node filter per address (iot-sitewise/latest/userguide/
configure-opc-ua-source-cli.html, opc-ua-node-filters.html).

Node filters are browse-name paths from the Objects folder. An address given by NodeId has no
such path, so a source with one gets no filter and SiteWise Edge collects all of that server's
nodes (its default, all but ``/Server/``): nothing the config reads is left out. What SiteWise
Edge cannot take from this config is refused at synth, naming the connection: a pinned server
certificate (the capability needs its PEM, the config has a path on the gateway) and a user
name login (it needs a Secrets Manager secret).
"""

from __future__ import annotations

import json
import re
from typing import Any

from aws_cdk import aws_iotsitewise as iotsitewise
from constructs import Construct

from mes_domain.collection import (
    OpcUaAddress,
    OpcUaConnection,
    OpcUaSecurityMode,
    OpcUaSecurityPolicy,
    addresses_of,
)
from mes_domain.naming import sitewise_gateway_thing_name
from mes_domain.plant import Line, Plant, Site

COLLECTOR_COMPONENT = "aws.iot.SiteWiseEdgeCollectorOpcua"
PUBLISHER_COMPONENT = "aws.iot.SiteWiseEdgePublisher"
GATEWAY_VERSION = "3"  # MQTT-enabled V3 gateways; 2 is Classic streams (API_GreengrassV2.html)
# Required for V3 gateways (API_GreengrassV2.html): LINUX_AARCH64 | LINUX_AMD64 | WINDOWS_AMD64
CORE_DEVICE_OS = "LINUX_AMD64"
OPCUA_CAPABILITY = "iotsitewise:opcuacollector:3"
# The namespace's pattern (API_GatewayCapabilitySummary.html).
CAPABILITY_NAMESPACE = re.compile(r"[a-zA-Z]+:[a-zA-Z]+:[0-9]+")

SECURITY_POLICIES = {
    OpcUaSecurityPolicy.NONE: "NONE",
    OpcUaSecurityPolicy.BASIC256SHA256: "BASIC256_SHA256",
}
SECURITY_MODES = {
    OpcUaSecurityMode.NONE: "NONE",
    OpcUaSecurityMode.SIGN: "SIGN",
    OpcUaSecurityMode.SIGN_AND_ENCRYPT: "SIGN_AND_ENCRYPT",
}
# A browse name is "<namespace index>:<name>"; the node path has the names only.
BROWSE_NAME = re.compile(r"(\d+:)?(.+)")


def gateway_name(prefix: str, site: str) -> str:
    return f"{prefix} {site} SiteWise Edge"


def node_path(address: OpcUaAddress) -> str | None:
    """The node filter path of an address given by browse path; None for a NodeId."""
    if address.browse_path is None:
        return None
    return "/" + "/".join(BROWSE_NAME.fullmatch(name).group(2) for name in address.browse_path)


def _line_addresses(line: Line) -> list[OpcUaAddress]:
    found: list[Any] = []
    for station in line.stations:
        found += [tag.source for tag in station.tags if tag.source is not None]
        found += addresses_of(station.state) + addresses_of(station.counters)
    return [address for address in found if isinstance(address, OpcUaAddress)]


def _source(site: Site, line: Line, connection: OpcUaConnection) -> dict[str, Any]:
    where = f"line {site.id}/{line.id} connection {connection.name}"
    if connection.server_certificate is not None:
        raise ValueError(
            f"{where}: SiteWise Edge trusts a server certificate by its PEM in the gateway's "
            "capability, not by a file on the gateway; remove server_certificate or turn "
            "iiot.opcua_to_sitewise off"
        )
    if connection.username is not None:
        raise ValueError(
            f"{where}: SiteWise Edge logs in with a Secrets Manager secret, not a password "
            "file; remove username or turn iiot.opcua_to_sitewise off"
        )
    addresses = [a for a in _line_addresses(line) if a.connection == connection.name]
    paths = [node_path(address) for address in addresses]
    rules = []
    if None not in paths:  # a NodeId has no path: then collect all, leave nothing out
        rules = [
            {"action": "INCLUDE", "definition": {"type": "OpcUaRootPath", "rootPath": path}}
            for path in dict.fromkeys(paths)
        ]
    return {
        "name": f"{line.id}/{connection.name}",
        "endpoint": {
            # Like the DataCollector: the server certificate is not pinned in the config.
            "certificateTrust": {"type": "TrustAny"},
            "endpointUri": connection.endpoint,
            "securityPolicy": SECURITY_POLICIES[connection.security_policy],
            "messageSecurityMode": SECURITY_MODES[connection.security_mode],
            "identityProvider": {"type": "Anonymous"},
            "nodeFilterRules": rules,
        },
        # Data streams are named per account: the prefix keeps two sites' or lines' apart.
        "measurementDataStreamPrefix": f"/{site.id}/{line.id}/{connection.name}",
    }


def opcua_sources(site: Site) -> list[dict[str, Any]]:
    """One source per OPC UA connection of the site's lines."""
    return [
        _source(site, line, connection)
        for line in site.lines
        for connection in line.collection.connections
        if isinstance(connection, OpcUaConnection)
    ]


def capability_configuration(site: Site) -> str:
    return json.dumps({"sources": opcua_sources(site)}, separators=(",", ":"))


class SiteWiseEdgeGateways(Construct):
    """A SiteWise Edge gateway for each site with an OPC UA connection."""

    def __init__(self, scope: Construct, construct_id: str, *, plant: Plant) -> None:
        super().__init__(scope, construct_id)
        prefix = plant.deployment.stack_prefix
        self.gateways: dict[str, iotsitewise.CfnGateway] = {}
        for site in plant.sites:
            if not opcua_sources(site):
                continue
            self.gateways[site.id] = iotsitewise.CfnGateway(
                self,
                f"Gateway-{site.id}",
                gateway_name=gateway_name(prefix, site.id),
                gateway_version=GATEWAY_VERSION,
                gateway_platform=iotsitewise.CfnGateway.GatewayPlatformProperty(
                    greengrass_v2=iotsitewise.CfnGateway.GreengrassV2Property(
                        core_device_thing_name=sitewise_gateway_thing_name(prefix, site.id),
                        core_device_operating_system=CORE_DEVICE_OS,
                    )
                ),
                gateway_capability_summaries=[
                    iotsitewise.CfnGateway.GatewayCapabilitySummaryProperty(
                        capability_namespace=OPCUA_CAPABILITY,
                        capability_configuration=capability_configuration(site),
                    )
                ],
            )
