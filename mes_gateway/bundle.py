"""The gateway bundle: one zip with everything a blank gateway needs to onboard itself.

``mes-gateway/`` in the zip holds ``install.sh``, the nucleus ``config.yaml``, the claim
certificate and key (the only secret it carries), Amazon's root CA and, offline, the nucleus zip
and the fleet provisioning plugin. On the gateway: ``unzip gateway.zip && sudo
./mes-gateway/install.sh``.

No AWS SDK here: the values come from ``mes_gateway.api``.
"""

from __future__ import annotations

import os
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from mes_gateway.nucleus_config import (
    CLAIM_CERTIFICATE,
    CLAIM_PRIVATE_KEY,
    ROOT_CA,
    ProvisioningSettings,
    render_config_yaml,
)

TEMPLATES = Path(__file__).resolve().parent / "templates"
FOLDER = "mes-gateway"
INSTALL_SCRIPT = "install.sh"
CONFIG_FILE = "config.yaml"
# Offline only: the nucleus release zip and the plugin jar, named as the installer steps name
# them (fleet-provisioning.html, "Download the AWS IoT fleet provisioning plugin").
NUCLEUS_ZIP = "greengrass-nucleus.zip"
PLUGIN_JAR = "aws.greengrass.FleetProvisioningByClaim.jar"
# The installer inside the nucleus zip (fleet-provisioning.html: GreengrassInstaller/lib/...).
NUCLEUS_INSTALLER = "lib/Greengrass.jar"

# install.sh puts each value in double quotes: nothing a shell would expand may reach it.
_SHELL_SAFE = re.compile(r"[A-Za-z0-9._/:-]+")
_PLACEHOLDER = re.compile(r"@@([A-Z_]+)@@")
_PRIVATE_KEY = re.compile(r"-----BEGIN (?:[A-Z]+ )?PRIVATE KEY-----")
_CERTIFICATE = re.compile(r"-----BEGIN CERTIFICATE-----")


class BundleError(ValueError):
    """A bundle that cannot be written as asked; the message says why."""


@dataclass(frozen=True)
class ClaimCredentials:
    """The claim certificate and its private key, as the claim secret holds them."""

    certificate_pem: str
    private_key: str = field(repr=False)

    def __post_init__(self) -> None:
        if not _CERTIFICATE.search(self.certificate_pem):
            raise BundleError("the claim secret's certificate is not a PEM certificate")
        if not _PRIVATE_KEY.search(self.private_key):
            raise BundleError("the claim secret's private key is not a PEM private key")


@dataclass(frozen=True)
class OfflineFiles:
    """The nucleus zip and the plugin jar, for a gateway without internet."""

    nucleus_zip: Path
    plugin_jar: Path

    def check(self) -> None:
        for path in (self.nucleus_zip, self.plugin_jar):
            if not path.is_file():
                raise BundleError(f"{path}: no such file")
        for path in (self.nucleus_zip, self.plugin_jar):  # a jar is a zip too
            if not zipfile.is_zipfile(path):
                raise BundleError(f"{path}: not a zip or jar file")
        with zipfile.ZipFile(self.nucleus_zip) as nucleus:
            if NUCLEUS_INSTALLER not in nucleus.namelist():
                raise BundleError(
                    f"{self.nucleus_zip}: no {NUCLEUS_INSTALLER}: not a Greengrass nucleus release"
                )


def amazon_root_ca() -> str:
    """Amazon Root CA 1, which signs AWS IoT's ATS endpoints (fleet-provisioning.html)."""
    return (TEMPLATES / ROOT_CA).read_text()


def render_install_script(settings: ProvisioningSettings, thing_name: str) -> str:
    values = {
        "ROOT_PATH": settings.root_path,
        "NUCLEUS_VERSION": settings.nucleus_version,
        "CLAIM_CERTIFICATE": CLAIM_CERTIFICATE,
        "CLAIM_PRIVATE_KEY": CLAIM_PRIVATE_KEY,
        "ROOT_CA": ROOT_CA,
        "NUCLEUS_ZIP": NUCLEUS_ZIP,
        "PLUGIN_JAR": PLUGIN_JAR,
        "THING_NAME": thing_name,
    }
    for name, value in values.items():
        if not _SHELL_SAFE.fullmatch(value):
            raise BundleError(f"{name} {value!r} is not safe to put in install.sh")
    template = (TEMPLATES / INSTALL_SCRIPT).read_text()
    unknown = set(_PLACEHOLDER.findall(template)) - set(values)
    if unknown:
        raise BundleError(f"install.sh template has unknown placeholders {sorted(unknown)}")
    return _PLACEHOLDER.sub(lambda m: values[m.group(1)], template)


def bundle_files(
    settings: ProvisioningSettings, thing_name: str, claim: ClaimCredentials
) -> dict[str, tuple[bytes, int]]:
    """Each file of the bundle (path in ``FOLDER``) with its content and Unix mode."""
    return {
        INSTALL_SCRIPT: (render_install_script(settings, thing_name).encode(), 0o755),
        CONFIG_FILE: (render_config_yaml(settings).encode(), 0o644),
        CLAIM_CERTIFICATE: (claim.certificate_pem.encode(), 0o644),
        CLAIM_PRIVATE_KEY: (claim.private_key.encode(), 0o600),
        ROOT_CA: (amazon_root_ca().encode(), 0o644),
    }


def _add(archive: zipfile.ZipFile, name: str, data: bytes, mode: int) -> None:
    info = zipfile.ZipInfo(f"{FOLDER}/{name}", date_time=(2020, 1, 1, 0, 0, 0))
    info.create_system = 3  # Unix: unzip restores the mode below
    info.external_attr = (0o100000 | mode) << 16
    info.compress_type = zipfile.ZIP_DEFLATED
    archive.writestr(info, data)


def write_bundle(
    out: Path,
    files: dict[str, tuple[bytes, int]],
    offline: OfflineFiles | None = None,
) -> list[str]:
    """Write the zip, readable by its owner only (it holds the claim key); return its names."""
    if offline is not None:
        offline.check()
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(out.name + ".partial")
    descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(descriptor, "wb") as stream, zipfile.ZipFile(stream, "w") as archive:
            for name, (data, mode) in files.items():
                _add(archive, name, data, mode)
            if offline is not None:
                _add(archive, NUCLEUS_ZIP, offline.nucleus_zip.read_bytes(), 0o644)
                _add(archive, PLUGIN_JAR, offline.plugin_jar.read_bytes(), 0o644)
            names = archive.namelist()
        os.chmod(partial, 0o600)
        partial.replace(out)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return names
