"""Onboarding simulated end to end through ``python -m mes_gateway``: moto for the allow-list
table, the claim secret, IoT (endpoints, thing groups, the claim certificate), CloudFormation
outputs and SSM; botocore's Stubber for Greengrass V2, which moto does not implement."""

from __future__ import annotations

import ast
import json
import re
import zipfile
from datetime import UTC, datetime

import pytest
import yaml

from mes_domain.fleet import (
    NUCLEUS_VERSION,
    AllowListAttribute,
    GatewayStatus,
    gateway_thing_groups,
    gateway_thing_name,
    role_alias_name,
)
from mes_gateway.bundle import FOLDER
from mes_gateway.nucleus_config import CLAIM_CERTIFICATE, CLAIM_PRIVATE_KEY
from tests.conftest import PROJECT_ROOT
from tests.mes_gateway.conftest import FAKE_CREDENTIALS, REGION, TEMPLATE

SERIAL = "GW-0001"


def read_bundle(path) -> dict[str, str]:
    """The bundle's text files by name; the offline zip and jar as their size."""
    with zipfile.ZipFile(path) as archive:
        return {
            name.removeprefix(f"{FOLDER}/"): archive.read(name).decode()
            if not name.endswith((".zip", ".jar"))
            else f"{archive.getinfo(name).file_size} bytes"
            for name in archive.namelist()
        }


def plugin_configuration(files: dict[str, str]) -> dict:
    return yaml.safe_load(files["config.yaml"])["services"][
        "aws.greengrass.FleetProvisioningByClaim"
    ]["configuration"]


# --- register ------------------------------------------------------------------------------------


def test_register_adds_the_gateway_to_the_allow_list(cli, cloud, places):
    (site, line), _ = places
    code, out, err = cli("register", "--site", site, "--line", line, "--serial", SERIAL)
    assert (code, err) == (0, "")
    item = cloud.item(SERIAL)
    registered_at = datetime.fromisoformat(item.pop(AllowListAttribute.REGISTERED_AT))
    assert abs((datetime.now(UTC) - registered_at).total_seconds()) < 60
    assert item == {
        AllowListAttribute.SERIAL: SERIAL,
        AllowListAttribute.SITE: site,
        AllowListAttribute.LINE: line,
        AllowListAttribute.STATUS: GatewayStatus.REGISTERED,
        AllowListAttribute.THING_NAME: gateway_thing_name(cloud.prefix, SERIAL),
    }
    assert gateway_thing_name(cloud.prefix, SERIAL) in out


def test_register_a_camera_gateway_for_its_station(cli, cloud, places):
    _, (site, line, station) = places
    code, _, err = cli(
        "register", "--site", site, "--line", line, "--station", station, "--serial", SERIAL
    )
    assert (code, err) == (0, "")
    assert cloud.item(SERIAL)[AllowListAttribute.STATION] == station


def test_register_rejects_a_duplicate_serial_and_keeps_the_first(cli, cloud, places, plant):
    (site, line), _ = places
    assert cli("register", "--site", site, "--line", line, "--serial", SERIAL)[0] == 0
    first = cloud.item(SERIAL)
    other_line = plant.sites[0].lines[1].id
    code, out, err = cli("register", "--site", site, "--line", other_line, "--serial", SERIAL)
    assert code == 2 and out == ""
    assert f"serial '{SERIAL}' is already registered for {site}/{line}" in err
    assert "a replacement gateway needs its own serial" in err
    assert cloud.item(SERIAL) == first


@pytest.mark.parametrize(
    "serial", ["", "GW 0001", "GW/0001", "gw:1", "x" * 49, "GW-0001;rm", "GW-ÄÖ"]
)
def test_register_rejects_a_malformed_serial(cli, cloud, places, serial):
    (site, line), _ = places
    code, _, err = cli("register", "--site", site, "--line", line, "--serial", serial)
    assert code == 2 and "is malformed" in err
    scanned = cloud.clients["dynamodb"].scan(TableName="mes-gateway-allow-list")
    assert scanned["Count"] == 0


@pytest.mark.parametrize(
    ("where", "problem"),
    [
        (("nowhere", None, None), "site 'nowhere' is not in the plant config"),
        ((None, "line9", None), "line 'line9' is not a line of site"),
        ((None, None, "no-such-camera"), "is not a camera station of"),
    ],
)
def test_register_validates_site_line_and_station_against_the_plant(
    cli, cloud, places, where, problem
):
    (site, line), _ = places
    site, line = where[0] or site, where[1] or line
    station = ["--station", where[2]] if where[2] else []
    code, _, err = cli("register", "--site", site, "--line", line, *station, "--serial", SERIAL)
    assert code == 2 and problem in err
    assert cloud.item(SERIAL) is None


def test_register_checks_against_the_config_given(cli, cloud, places, tmp_path):
    """--config: another plant config, with its own sites."""
    document = yaml.safe_load((PROJECT_ROOT / "config" / "demo-plant.yaml").read_text())
    document["sites"][0]["id"] = "other-site"
    other = tmp_path / "other.yaml"
    other.write_text(yaml.safe_dump(document))
    (site, line), _ = places
    code, _, err = cli(
        "--config", str(other), "register", "--site", site, "--line", line, "--serial", SERIAL
    )
    assert code == 2 and f"site '{site}' is not in the plant config" in err
    code, _, err = cli(
        "--config",
        str(other),
        "register",
        "--site",
        "other-site",
        "--line",
        line,
        "--serial",
        SERIAL,
    )
    assert (code, err) == (0, "")


def test_an_invalid_plant_config_stops_before_any_aws_call(tmp_path, capsys):
    from mes_gateway.cli import main

    broken = tmp_path / "broken.yaml"
    broken.write_text("enterprise: acme\n")

    def no_aws(region, profile):
        raise AssertionError("no AWS call for an invalid config")

    code = main(["--config", str(broken), "status"], make_fleet=no_aws)
    assert code == 2 and "broken.yaml" in capsys.readouterr().err


# --- bundle --------------------------------------------------------------------------------------


def register_line_gateway(cli, places, serial=SERIAL):
    (site, line), _ = places
    assert cli("register", "--site", site, "--line", line, "--serial", serial)[0] == 0
    return site, line


def test_bundle_writes_what_the_gateway_needs(cli, cloud, places, tmp_path):
    site, line = register_line_gateway(cli, places)
    out = tmp_path / "gateway.zip"
    code, stdout, err = cli("bundle", "--serial", SERIAL, "--out", str(out))
    assert (code, err) == (0, "")
    assert "sudo ./mes-gateway/install.sh" in stdout
    files = read_bundle(out)
    configuration = plugin_configuration(files)
    # DescribeEndpoint's answers (moto makes up a new prefix on every call).
    data, credentials = (
        configuration.pop("iotDataEndpoint"),
        configuration.pop("iotCredentialEndpoint"),
    )
    assert re.fullmatch(rf"[a-z0-9]+-ats\.iot\.{REGION}\.amazonaws\.com", data)
    assert re.fullmatch(rf"[a-z0-9]+\.credentials\.iot\.{REGION}\.amazonaws\.com", credentials)
    assert configuration == {
        "rootPath": "/greengrass/v2",
        "awsRegion": REGION,
        "iotRoleAlias": role_alias_name(cloud.prefix, site, line),
        "provisioningTemplate": TEMPLATE,
        "claimCertificatePath": f"/greengrass/v2/{CLAIM_CERTIFICATE}",
        "claimCertificatePrivateKeyPath": f"/greengrass/v2/{CLAIM_PRIVATE_KEY}",
        "rootCaPath": "/greengrass/v2/AmazonRootCA1.pem",
        "templateParameters": {"SerialNumber": SERIAL},
    }
    # The nucleus every deployment pins, so the first deployment needs no nucleus restart.
    nucleus = yaml.safe_load(files["config.yaml"])["services"]["aws.greengrass.Nucleus"]
    assert nucleus == {"version": NUCLEUS_VERSION}
    assert f'NUCLEUS_VERSION="{NUCLEUS_VERSION}"' in files["install.sh"]
    # The claim credentials from Secrets Manager, and nothing else secret.
    assert files[CLAIM_CERTIFICATE] == cloud.claim_certificate_pem
    assert files[CLAIM_PRIVATE_KEY] == cloud.claim_private_key
    # Found through the SSM parameters the operator role may read: no DescribeStacks.
    assert cloud.describe_stacks_calls() == 0
    for name, text in files.items():
        if name != CLAIM_PRIVATE_KEY:
            assert "PRIVATE KEY" not in text, name
        assert not any(value in text for value in FAKE_CREDENTIALS.values()), name


def test_bundle_of_a_camera_gateway_names_its_station_groups(cli, cloud, places, tmp_path):
    _, (site, line, station) = places
    cli("register", "--site", site, "--line", line, "--station", station, "--serial", SERIAL)
    code, stdout, err = cli("bundle", "--serial", SERIAL, "--out", str(tmp_path / "g.zip"))
    assert (code, err) == (0, "")
    assert ", ".join(gateway_thing_groups(cloud.prefix, site, line, station)) in stdout
    files = read_bundle(tmp_path / "g.zip")
    # A camera gateway uses its line's role alias.
    assert plugin_configuration(files)["iotRoleAlias"] == role_alias_name(cloud.prefix, site, line)


def test_bundle_refuses_an_unregistered_serial(cli, cloud, tmp_path):
    out = tmp_path / "gateway.zip"
    code, _, err = cli("bundle", "--serial", "GW-9999", "--out", str(out))
    assert code == 2 and "serial 'GW-9999' is not registered" in err
    assert not out.exists()


def test_bundle_refuses_a_serial_that_has_provisioned(cli, cloud, places, tmp_path):
    register_line_gateway(cli, places)
    cloud.mark_provisioned(SERIAL)
    out = tmp_path / "gateway.zip"
    code, _, err = cli("bundle", "--serial", SERIAL, "--out", str(out))
    assert code == 2 and "was provisioned already" in err and "own serial" in err
    assert not out.exists()


def test_bundle_refuses_while_the_claim_is_disabled(cli, cloud, places, tmp_path):
    register_line_gateway(cli, places)
    assert cli("revoke-claim")[0] == 0
    out = tmp_path / "gateway.zip"
    code, _, err = cli("bundle", "--serial", SERIAL, "--out", str(out))
    assert code == 2 and "restore-claim" in err
    assert not out.exists()


def test_bundle_installs_another_nucleus_when_asked(cli, cloud, places, tmp_path):
    register_line_gateway(cli, places)
    out = tmp_path / "gateway.zip"
    code, stdout, err = cli(
        "bundle", "--serial", SERIAL, "--out", str(out), "--nucleus-version", "2.15.0"
    )
    assert (code, err) == (0, "") and "nucleus 2.15.0" in stdout
    nucleus = yaml.safe_load(read_bundle(out)["config.yaml"])["services"]["aws.greengrass.Nucleus"]
    assert nucleus == {"version": "2.15.0"}
    code, _, err = cli(
        "bundle", "--serial", SERIAL, "--out", str(out), "--nucleus-version", "2.3.0"
    )
    assert code == 2 and "needs nucleus 2.4.0 or later" in err


def test_bundle_warns_when_it_may_not_check_the_claim(cli, fleet, cloud, places, tmp_path):
    """Credentials without iot:DescribeCertificate: the bundle is written, with a warning."""
    from botocore.stub import Stubber

    register_line_gateway(cli, places)
    iot = fleet.client("iot")
    endpoints = {
        kind: cloud.clients["iot"].describe_endpoint(endpointType=kind)["endpointAddress"]
        for kind in ("iot:Data-ATS", "iot:CredentialProvider")
    }
    with Stubber(iot) as stubber:
        stubber.add_client_error(
            "describe_certificate",
            service_error_code="AccessDeniedException",
            http_status_code=403,
            expected_params={"certificateId": cloud.claim_certificate_id},
        )
        for kind, address in endpoints.items():
            stubber.add_response(
                "describe_endpoint", {"endpointAddress": address}, {"endpointType": kind}
            )
        code, _, err = cli("bundle", "--serial", SERIAL, "--out", str(tmp_path / "g.zip"))
        stubber.assert_no_pending_responses()
    assert code == 0 and "warning: could not check that the claim certificate is ACTIVE" in err
    assert (tmp_path / "g.zip").exists()


def test_an_aws_refusal_is_named_not_a_traceback(cli, cloud, places, tmp_path):
    register_line_gateway(cli, places)
    from mes_domain.fleet import claim_secret_name

    cloud.clients["secretsmanager"].delete_secret(
        SecretId=claim_secret_name(cloud.prefix), ForceDeleteWithoutRecovery=True
    )
    code, _, err = cli("bundle", "--serial", SERIAL, "--out", str(tmp_path / "g.zip"))
    assert code == 2
    assert err.startswith("error: AWS refused GetSecretValue: ResourceNotFoundException")


def test_offline_options_are_checked_before_anything_is_written(cli, cloud, places, tmp_path):
    (site, line), _ = places
    code, _, err = cli(
        "register", "--site", site, "--line", line, "--serial", SERIAL, "--out",
        str(tmp_path / "g.zip"), "--offline",
    )  # fmt: skip
    assert code == 2 and "--offline needs --nucleus-zip and --plugin-jar" in err
    assert cloud.item(SERIAL) is None


def test_one_command_registers_and_writes_an_offline_bundle(cli, cloud, places, tmp_path):
    """The README's operator command: register --out, here with the offline files."""
    from tests.mes_gateway.test_bundle import fake_nucleus_zip

    (site, line), _ = places
    nucleus = fake_nucleus_zip(tmp_path / "greengrass-2.14.3.zip")
    plugin = fake_nucleus_zip(tmp_path / "fleetprovisioningbyclaim.jar")
    out = tmp_path / "gateway.zip"
    code, stdout, err = cli(
        "register", "--site", site, "--line", line, "--serial", SERIAL, "--out", str(out),
        "--offline", "--nucleus-zip", str(nucleus), "--plugin-jar", str(plugin),
    )  # fmt: skip
    assert (code, err) == (0, "")
    assert "registered" in stdout and "offline bundle" in stdout
    assert cloud.item(SERIAL)[AllowListAttribute.STATUS] == GatewayStatus.REGISTERED
    files = read_bundle(out)
    assert {"greengrass-nucleus.zip", "aws.greengrass.FleetProvisioningByClaim.jar"} <= set(files)


def test_discovery_falls_back_to_the_stacks_outputs(
    cli, cloud_without_parameters, places, tmp_path
):
    cloud = cloud_without_parameters
    register_line_gateway(cli, places)
    assert cloud.item(SERIAL) is not None
    code, _, err = cli("bundle", "--serial", SERIAL, "--out", str(tmp_path / "g.zip"))
    assert (code, err) == (0, "")
    files = read_bundle(tmp_path / "g.zip")
    assert plugin_configuration(files)["provisioningTemplate"] == TEMPLATE
    assert files[CLAIM_PRIVATE_KEY] == cloud.claim_private_key
    assert cloud.describe_stacks_calls() == 2  # once per command


def test_without_the_stack_the_cli_says_to_deploy_it(cli, cloud_without_parameters, places):
    cloud = cloud_without_parameters
    from mes_domain.fleet import edge_fleet_stack_name

    del cloud.stacks[edge_fleet_stack_name(cloud.prefix)]
    (site, line), _ = places
    code, _, err = cli("register", "--site", site, "--line", line, "--serial", SERIAL)
    assert code == 2 and f"deploy the {edge_fleet_stack_name(cloud.prefix)} stack first" in err


# --- status --------------------------------------------------------------------------------------


def test_status_joins_the_allow_list_and_the_core_devices(cli, cloud, greengrass, places):
    register_line_gateway(cli, places, "GW-0001")
    register_line_gateway(cli, places, "GW-0002")
    cloud.mark_provisioned("GW-0001")
    online = gateway_thing_name(cloud.prefix, "GW-0001")
    changed = datetime(2026, 1, 5, 6, 30, tzinfo=UTC)
    greengrass.core_devices(
        [
            {
                "coreDeviceThingName": online,
                "status": "HEALTHY",
                "lastStatusUpdateTimestamp": changed,
            },
            {"coreDeviceThingName": "MesDemo-plant1-sitewise-edge", "status": "UNHEALTHY"},
        ]
    )  # fmt: skip
    greengrass.installed(online, {"aws.greengrass.Nucleus": "2.14.3", "com.acme.mes.DataCollector": "1.0.0"})  # fmt: skip  # noqa: E501
    greengrass.installed("MesDemo-plant1-sitewise-edge", {})
    code, out, err = cli("status", "--json")
    assert (code, err) == (0, "")
    rows = {row["thing_name"]: row for row in json.loads(out)}
    assert rows[online]["core_status"] == "HEALTHY"
    assert rows[online]["registration"] == GatewayStatus.PROVISIONED
    assert rows[online]["last_status_change"] == changed.isoformat()
    assert rows[online]["components"] == {
        "aws.greengrass.Nucleus": "2.14.3",
        "com.acme.mes.DataCollector": "1.0.0",
    }
    waiting = rows[gateway_thing_name(cloud.prefix, "GW-0002")]
    assert (waiting["core_status"], waiting["registration"]) == ("NOT_SEEN", "REGISTERED")
    unregistered = rows["MesDemo-plant1-sitewise-edge"]
    assert (unregistered["core_status"], unregistered["serial"]) == ("UNHEALTHY", None)


def test_status_prints_a_table_for_people(cli, cloud, greengrass, places):
    site, line = register_line_gateway(cli, places)
    thing = gateway_thing_name(cloud.prefix, SERIAL)
    greengrass.core_devices([{"coreDeviceThingName": thing, "status": "UNHEALTHY"}])
    greengrass.installed(thing, {"com.acme.mes.DataCollector": "1.0.1"})
    code, out, _ = cli("status")
    header, row = out.splitlines()
    assert header.split()[:3] == ["THING", "SITE/LINE", "REGISTRATION"]
    assert row.split() == [
        thing,
        f"{site}/{line}",
        "REGISTERED",
        "UNHEALTHY",
        "-",
        "com.acme.mes.DataCollector=1.0.1",
    ]


# --- the claim certificate ------------------------------------------------------------------


def test_revoke_and_restore_the_claim_certificate(cli, cloud):
    def status():
        description = cloud.clients["iot"].describe_certificate(
            certificateId=cloud.claim_certificate_id
        )
        return description["certificateDescription"]["status"]

    code, out, _ = cli("revoke-claim")
    assert code == 0 and cloud.claim_certificate_id in out
    assert status() == "INACTIVE"
    assert cli("restore-claim")[0] == 0
    assert status() == "ACTIVE"


# --- the rules of the package ---------------------------------------------------------------


def imported_roots(path) -> set[str]:
    roots = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            roots |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            roots.add(node.module.split(".")[0])
    return roots


def test_only_the_adapter_imports_the_aws_sdk():
    modules = sorted((PROJECT_ROOT / "mes_gateway").glob("*.py"))
    sdk = {p.name for p in modules if imported_roots(p) & {"boto3", "botocore"}}
    assert sdk == {"aws.py"}


def test_the_cli_imports_no_runtime_package():
    runtime = {"lambdas", "greengrass_components", "mes_vision", "aws_cdk", "aws_lambda_powertools"}
    offenders = {
        p.name: imported_roots(p) & runtime
        for p in (PROJECT_ROOT / "mes_gateway").glob("*.py")
        if imported_roots(p) & runtime
    }
    assert offenders == {}


# --- the contract with the pre-provisioning hook ---------------------------------------------


@pytest.mark.parametrize("camera", [False, True])
def test_the_hook_grants_what_register_wrote_and_the_bundle_sends(
    cli, cloud, places, tmp_path, camera
):
    """The allow-list item register writes and the templateParameters the plugin sends, as the
    pre-provisioning hook (lambdas/provisioning_hook) decides on them."""
    from lambdas.provisioning_hook.decision import Grant, decide, parse

    (site, line), (camera_site, camera_line, station) = places
    where = (
        ["--site", camera_site, "--line", camera_line, "--station", station]
        if camera
        else ["--site", site, "--line", line]
    )
    out = tmp_path / "g.zip"
    code, stdout, err = cli("register", *where, "--serial", SERIAL, "--out", str(out))
    assert (code, err) == (0, "")
    request = parse(
        {"parameters": plugin_configuration(read_bundle(out))["templateParameters"],
         "certificateId": "ab" * 32}
    )  # fmt: skip
    grant = decide(request, cloud.item(SERIAL), cloud.prefix)
    assert isinstance(grant, Grant)
    assert grant.thing_name == gateway_thing_name(cloud.prefix, SERIAL)
    expected = (
        gateway_thing_groups(cloud.prefix, camera_site, camera_line, station)
        if camera
        else gateway_thing_groups(cloud.prefix, site, line)
    )
    assert grant.thing_groups == expected
    assert ", ".join(expected) in stdout
