"""The nucleus ``config.yaml`` that installs a gateway with the fleet provisioning plugin.

The installer reads it with ``--init-config``; the plugin
(``aws.greengrass.FleetProvisioningByClaim``) connects with the claim certificate, runs the
provisioning template with ``templateParameters`` and writes the ``system`` section (thing name,
device certificate and key) itself, so this file has none
(docs.aws.amazon.com/greengrass/v2/developerguide/fleet-provisioning.html, "Install the AWS IoT
Greengrass Core software"; the keys: fleet-provisioning-configuration.html).

Pure: no AWS SDK and no I/O; the values come from ``mes_gateway.api``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import yaml

from mes_domain.edge_spooler import NUCLEUS

FLEET_PROVISIONING_PLUGIN = "aws.greengrass.FleetProvisioningByClaim"
# Where the installer puts the Greengrass root: the documented default.
ROOT_PATH = "/greengrass/v2"
# The files of the bundle, relative to the Greengrass root once install.sh has copied them.
CLAIM_CERTIFICATE = "claim-certs/claim.pem.crt"
CLAIM_PRIVATE_KEY = "claim-certs/claim.private.pem.key"
ROOT_CA = "AmazonRootCA1.pem"
# The fleet provisioning plugin needs nucleus 2.4.0 or later (fleet-provisioning.html).
MIN_NUCLEUS = (2, 4, 0)
_VERSION = re.compile(r"(\d+)\.(\d+)\.(\d+)")
_HOST = re.compile(r"[a-z0-9]([a-z0-9.-]*[a-z0-9])?")


@dataclass(frozen=True)
class ProvisioningSettings:
    """What the plugin needs to provision one gateway."""

    region: str
    iot_data_endpoint: str
    iot_credential_endpoint: str
    role_alias: str
    provisioning_template: str
    nucleus_version: str
    template_parameters: dict[str, str] = field(default_factory=dict)
    root_path: str = ROOT_PATH

    def __post_init__(self) -> None:
        match = _VERSION.fullmatch(self.nucleus_version)
        if match is None:
            raise ValueError(f"nucleus version {self.nucleus_version!r} is not MAJOR.MINOR.PATCH")
        if tuple(int(p) for p in match.groups()) < MIN_NUCLEUS:
            raise ValueError(
                f"fleet provisioning needs nucleus {'.'.join(map(str, MIN_NUCLEUS))} or later, "
                f"not {self.nucleus_version}"
            )
        for name in ("iot_data_endpoint", "iot_credential_endpoint"):
            if not _HOST.fullmatch(getattr(self, name)):
                raise ValueError(f"{name} {getattr(self, name)!r} is not a host name")
        if not self.root_path.startswith("/") or self.root_path.rstrip("/") != self.root_path:
            raise ValueError(f"root path {self.root_path!r} must be absolute, without a final /")
        for key, value in self.template_parameters.items():
            if not isinstance(value, str) or not value:
                raise ValueError(f"template parameter {key!r} needs a non-empty string value")

    def path(self, relative: str) -> str:
        return f"{self.root_path}/{relative}"


def nucleus_config(settings: ProvisioningSettings) -> dict[str, Any]:
    """The ``--init-config`` document: the nucleus version and the plugin's configuration."""
    return {
        "services": {
            NUCLEUS: {"version": settings.nucleus_version},
            FLEET_PROVISIONING_PLUGIN: {
                "configuration": {
                    "rootPath": settings.root_path,
                    "awsRegion": settings.region,
                    "iotDataEndpoint": settings.iot_data_endpoint,
                    "iotCredentialEndpoint": settings.iot_credential_endpoint,
                    "iotRoleAlias": settings.role_alias,
                    "provisioningTemplate": settings.provisioning_template,
                    "claimCertificatePath": settings.path(CLAIM_CERTIFICATE),
                    "claimCertificatePrivateKeyPath": settings.path(CLAIM_PRIVATE_KEY),
                    "rootCaPath": settings.path(ROOT_CA),
                    "templateParameters": dict(settings.template_parameters),
                }
            },
        }
    }


def render_config_yaml(settings: ProvisioningSettings) -> str:
    return "---\n" + yaml.safe_dump(nucleus_config(settings), sort_keys=False)
