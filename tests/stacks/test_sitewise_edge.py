"""SiteWise Edge, as the seed draws it: off by default; with ``iiot.opcua_to_sitewise`` one
SiteWise Edge gateway per site with OPC UA sources, on a Greengrass v2 core device, whose OPC UA
capability lists each connection's endpoint, security and node filters from the addresses."""

from __future__ import annotations

import inspect
import json
from pathlib import Path

import aws_cdk as cdk
import pytest
from aws_cdk.assertions import Template

from mes_domain.collection import OpcUaAddress, OpcUaConnection, addresses_of
from mes_domain.naming import CORE_DEVICE_THING_NAME, SITEWISE_NAME, sitewise_gateway_thing_name
from mes_domain.plant import Plant
from stacks.constructs import sitewise_edge as edge
from tests.conftest import synthesize
from tests.stacks import test_assembly as whole
from tests.stacks.assembly import Assembly
from tests.stacks.test_cfn_lint import lint

GATEWAY = "AWS::IoTSiteWise::Gateway"


def with_sitewise_edge(plant: Plant, **changes) -> Plant:
    document = plant.model_dump(mode="json")
    document["iiot"]["opcua_to_sitewise"] = True
    for change in changes.values():
        change(document)
    return Plant.model_validate(document)


@pytest.fixture(scope="module")
def edge_plant(demo_plant):
    return with_sitewise_edge(demo_plant)


@pytest.fixture(scope="module")
def edge_synthesized(edge_plant, tmp_path_factory):
    """The demo with SiteWise Edge on; synth runs the cdk-nag packs, so a finding fails."""
    return synthesize(edge_plant, tmp_path_factory.mktemp("sitewise-edge.out"))


@pytest.fixture(scope="module")
def gateway(edge_synthesized):
    stacks, _ = edge_synthesized
    (resource,) = Template.from_stack(stacks.iiot).find_resources(GATEWAY).values()
    return resource["Properties"]


def _gateways(plant: Plant) -> dict:
    stack = cdk.Stack(cdk.App(), "Edge")
    edge.SiteWiseEdgeGateways(stack, "SiteWiseEdge", plant=plant)
    return Template.from_stack(stack).find_resources(GATEWAY)


def _sources(properties) -> dict[str, dict]:
    (capability,) = properties["GatewayCapabilitySummaries"]
    assert capability["CapabilityNamespace"] == edge.OPCUA_CAPABILITY
    return {s["name"]: s for s in json.loads(capability["CapabilityConfiguration"])["sources"]}


def test_off_by_default_and_nothing_changes(demo_plant, synthesized):
    assert demo_plant.iiot.opcua_to_sitewise is False
    _, assembly = synthesized
    for template in Assembly(Path(assembly.directory)).templates():
        assert not [r for r in template.resources.values() if r["Type"] == GATEWAY]
    stacks, _ = synthesized
    assert stacks.iiot.sitewise_edge is None


def test_one_v3_gateway_per_site_on_its_greengrass_core_device(gateway):
    assert gateway["GatewayName"] == "MesDemo berlin SiteWise Edge"
    assert gateway["GatewayVersion"] == "3"  # MQTT-enabled; needs the OS (API_GreengrassV2)
    assert gateway["GatewayPlatform"] == {
        "GreengrassV2": {
            "CoreDeviceThingName": sitewise_gateway_thing_name("MesDemo", "berlin"),
            "CoreDeviceOperatingSystem": "LINUX_AMD64",
        }
    }
    assert edge.CAPABILITY_NAMESPACE.fullmatch(edge.OPCUA_CAPABILITY)
    assert len(edge.OPCUA_CAPABILITY) <= 512  # API_GatewayCapabilitySummary


def test_the_capability_lists_each_opcua_connection_with_its_endpoint_and_node_filters(
    edge_plant, gateway
):
    sources = _sources(gateway)
    site = edge_plant.sites[0]
    expected = {
        f"{line.id}/{c.name}": c
        for line in site.lines
        for c in line.collection.connections
        if isinstance(c, OpcUaConnection)
    }
    assert set(sources) == set(expected) == {"body-line-1/press-plc", "machining-line-1/cnc-plc"}
    for name, connection in expected.items():
        endpoint = sources[name]["endpoint"]
        assert endpoint["endpointUri"] == connection.endpoint
        assert (endpoint["securityPolicy"], endpoint["messageSecurityMode"]) == ("NONE", "NONE")
        assert endpoint["identityProvider"] == {"type": "Anonymous"}
        assert sources[name]["measurementDataStreamPrefix"] == f"/berlin/{name}"
    # press-plc's nodes are browse paths: one filter per node the config reads, no more
    press = sources["body-line-1/press-plc"]["endpoint"]["nodeFilterRules"]
    station = site.lines[0].stations[0]
    read = [t.source for t in station.tags] + addresses_of(station.state)
    read += addresses_of(station.counters)
    paths = {"/" + "/".join(n.split(":", 1)[1] for n in a.browse_path) for a in read}
    assert {rule["definition"]["rootPath"] for rule in press} == paths
    assert "/press-01/ram_force" in paths and len(press) == len(paths) == 6
    assert {(r["action"], r["definition"]["type"]) for r in press} == {("INCLUDE", "OpcUaRootPath")}
    # cnc-plc's nodes are NodeIds, which have no path: no filter, so none is left out
    assert sources["machining-line-1/cnc-plc"]["endpoint"]["nodeFilterRules"] == []


def test_security_maps_to_sitewise_names_and_unmappable_settings_are_refused(demo_plant):
    def secure(document, **extra):
        (press,) = [
            c for c in document["sites"][0]["lines"][0]["collection"]["connections"]
            if c["name"] == "press-plc"
        ]  # fmt: skip
        press.update(
            security_policy="Basic256Sha256",
            security_mode="SignAndEncrypt",
            certificate="/greengrass/certs/opcua.der",
            private_key="/greengrass/certs/opcua.key",
            **extra,
        )

    (properties,) = _gateways(with_sitewise_edge(demo_plant, secure=secure)).values()
    endpoint = _sources(properties["Properties"])["body-line-1/press-plc"]["endpoint"]
    assert (endpoint["securityPolicy"], endpoint["messageSecurityMode"]) == (
        "BASIC256_SHA256",
        "SIGN_AND_ENCRYPT",
    )
    for extra, reason in (
        ({"server_certificate": "/certs/server.der"}, "server certificate by its PEM"),
        ({"username": "mes", "password_file": "/secrets/pw"}, "Secrets Manager secret"),
    ):
        plant = with_sitewise_edge(demo_plant, secure=lambda d, e=extra: secure(d, **e))
        with pytest.raises(
            ValueError, match=f"line berlin/body-line-1 connection press-plc: .*{reason}"
        ):
            _gateways(plant)


def test_a_site_without_opcua_gets_no_gateway(demo_plant):
    def second_site(document):
        other = json.loads(json.dumps(document["sites"][0]))
        other["id"] = "hamburg"
        for line in other["lines"]:
            line["collection"]["connections"] = [
                c for c in line["collection"]["connections"] if c["protocol"] != "opcua"
            ]
            for station in line["stations"]:
                if "opcua" in json.dumps(station):
                    station.update(state=None, counters=None)
                    for tag in station["tags"]:
                        if tag.get("source") and tag["source"]["protocol"] == "opcua":
                            tag["source"] = None
        document["sites"].append(other)

    plant = with_sitewise_edge(demo_plant, second_site=second_site)
    gateways = _gateways(plant).values()
    assert [g["Properties"]["GatewayName"] for g in gateways] == ["MesDemo berlin SiteWise Edge"]


def test_the_names_fit_their_rules(longest_plant):
    plant = with_sitewise_edge(longest_plant)  # the plant validator checks the thing name
    prefix = plant.deployment.stack_prefix
    for site in plant.sites:
        assert CORE_DEVICE_THING_NAME.problem(sitewise_gateway_thing_name(prefix, site.id)) is None
        # GatewayName: 1-256, no control characters (the CloudFormation registry schema)
        assert SITEWISE_NAME.problem(edge.gateway_name(prefix, site.id)) is None
    assert edge.node_path(OpcUaAddress(connection="c", node_id="ns=2;i=1")) is None


def test_the_iiot_template_is_cfn_lint_clean(edge_synthesized):
    _, assembly = edge_synthesized
    (template,) = Path(assembly.directory).glob("*Iiot*.template.json")
    assert GATEWAY in template.read_text()
    result = lint([template])
    findings = [line for line in result.stdout.splitlines() if ":E" in line or ":W" in line]
    assert findings == [] and result.returncode in (0, 8), result.stdout + result.stderr


WHOLE_ASSEMBLY_CHECKS = [
    check
    for name, check in inspect.getmembers(whole, inspect.isfunction)
    if name.startswith("test_") and list(inspect.signature(check).parameters) == ["assembly"]
]


def test_the_whole_assembly_checks_are_collected():
    # every check over an assembly alone (the handler-import check needs an SDK: no function
    # changes with SiteWise Edge)
    assert len(WHOLE_ASSEMBLY_CHECKS) >= 9


@pytest.mark.parametrize("check", WHOLE_ASSEMBLY_CHECKS, ids=lambda check: check.__name__)
def test_the_whole_assembly_checks_pass_with_sitewise_edge(check, edge_synthesized):
    _, assembly = edge_synthesized
    check(Assembly(Path(assembly.directory)))
