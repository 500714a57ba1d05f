"""The onboarding API: register a gateway, write its bundle, list the fleet's health, disable
or restore the claim certificate. The CLI (``mes_gateway.cli``) is one front end; a web front
end can call the same ``Onboarding`` methods, which return plain dataclasses (``asdict``) and
raise ``OnboardingError`` with a message meant for the operator.

The names come from ``mes_domain.fleet``; the AWS calls from a ``Fleet`` (``mes_gateway.aws``
in use, moto and Stubber in the tests).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from mes_domain.fleet import (
    NUCLEUS_VERSION,
    SERIAL_PATTERN,
    AllowListAttribute,
    ClaimSecretField,
    GatewayStatus,
    Output,
    Parameter,
    TemplateParameter,
    claim_secret_name,
    edge_fleet_stack_name,
    gateway_thing_groups,
    gateway_thing_name,
    is_valid_serial,
    provisioning_template_name,
    role_alias_name,
    ssm_parameter_name,
)
from mes_domain.plant import Plant
from mes_gateway.bundle import (
    BundleError,
    ClaimCredentials,
    OfflineFiles,
    bundle_files,
    write_bundle,
)
from mes_gateway.nucleus_config import ProvisioningSettings

# AWS IoT's ATS data endpoint and the credentials provider's (fleet-provisioning.html,
# "Retrieve AWS IoT endpoints").
DATA_ENDPOINT = "iot:Data-ATS"
CREDENTIAL_ENDPOINT = "iot:CredentialProvider"
# UpdateCertificate: a device cannot connect with a certificate that is not ACTIVE; INACTIVE
# can be made ACTIVE again (docs.aws.amazon.com/iot/latest/apireference/API_UpdateCertificate.html).
ACTIVE = "ACTIVE"
INACTIVE = "INACTIVE"
NOT_SEEN = "NOT_SEEN"  # registered, but no core device reported yet


class OnboardingError(Exception):
    """A request the operator must change: the message says what and why."""


class Fleet(Protocol):
    """The AWS calls the API needs (``mes_gateway.aws.AwsFleet``)."""

    region: str

    def stack_outputs(self, stack_name: str) -> dict[str, str] | None: ...
    def parameter(self, name: str) -> str | None: ...
    def endpoint(self, endpoint_type: str) -> str: ...
    def put_new_gateway(self, table: str, item: dict[str, str]) -> bool: ...
    def get_gateway(self, table: str, serial: str) -> dict[str, Any] | None: ...
    def list_gateways(self, table: str) -> list[dict[str, Any]]: ...
    def secret_json(self, secret_id: str) -> dict[str, Any]: ...
    def certificate_status(self, certificate_id: str) -> str | None: ...
    def set_certificate_status(self, certificate_id: str, status: str) -> None: ...
    def core_devices(self) -> list[dict[str, Any]]: ...
    def installed_components(self, thing_name: str) -> list[dict[str, Any]]: ...


@dataclass(frozen=True)
class FleetResources:
    """What the EdgeFleet stack created, as its outputs or SSM parameters name it."""

    allow_list_table: str
    provisioning_template: str
    claim_secret: str
    claim_certificate_id: str | None


@dataclass(frozen=True)
class Gateway:
    """One allow-list entry."""

    serial: str
    site: str
    line: str
    station: str | None
    status: str
    thing_name: str
    registered_at: str | None = None
    provisioned_at: str | None = None

    @classmethod
    def from_item(cls, item: dict[str, Any]) -> Gateway:
        a = AllowListAttribute
        return cls(
            serial=item[a.SERIAL],
            site=item[a.SITE],
            line=item[a.LINE],
            station=item.get(a.STATION),
            status=item.get(a.STATUS, ""),
            thing_name=item.get(a.THING_NAME, ""),
            registered_at=item.get(a.REGISTERED_AT),
            provisioned_at=item.get(a.PROVISIONED_AT),
        )

    def to_item(self) -> dict[str, str]:
        a = AllowListAttribute
        item = {
            a.SERIAL.value: self.serial,
            a.SITE.value: self.site,
            a.LINE.value: self.line,
            a.STATUS.value: self.status,
            a.THING_NAME.value: self.thing_name,
        }
        if self.station is not None:
            item[a.STATION.value] = self.station
        if self.registered_at is not None:
            item[a.REGISTERED_AT.value] = self.registered_at
        return item


@dataclass(frozen=True)
class BundleReport:
    path: str
    serial: str
    thing_name: str
    thing_groups: tuple[str, str]
    nucleus_version: str
    offline: bool
    files: list[str]
    warnings: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class GatewayHealth:
    """A gateway as the allow-list and Greengrass see it. ``core_status`` is HEALTHY or
    UNHEALTHY as Greengrass reports it, or NOT_SEEN before the gateway's first report."""

    thing_name: str
    serial: str | None
    site: str | None
    line: str | None
    station: str | None
    registration: str | None
    core_status: str
    last_status_change: str | None
    components: dict[str, str] = field(default_factory=dict)


def _iso(timestamp: datetime | str | None) -> str | None:
    if timestamp is None or isinstance(timestamp, str):
        return timestamp
    return timestamp.astimezone(UTC).isoformat()


class Onboarding:
    """The onboarding operations for the plant ``plant`` through ``fleet``."""

    def __init__(
        self,
        plant: Plant,
        fleet: Fleet,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ):
        self.plant = plant
        self.fleet = fleet
        self.prefix = plant.deployment.stack_prefix
        self._now = now
        self._resources: FleetResources | None = None

    # --- discovery ---

    def resources(self) -> FleetResources:
        """The stack's SSM parameters first (the operator role may read them), its outputs for
        what they lack, and the names mes_domain.fleet derives where neither says."""
        if self._resources is not None:
            return self._resources
        stack = edge_fleet_stack_name(self.prefix)
        outputs: dict[str, str] | None = None

        def find(parameter: Parameter | None, output: Output) -> str | None:
            nonlocal outputs
            if parameter is not None:
                value = self.fleet.parameter(ssm_parameter_name(self.prefix, parameter))
                if value:
                    return value
            if outputs is None:
                outputs = self.fleet.stack_outputs(stack) or {}
            return outputs.get(output) or None

        table = find(Parameter.ALLOW_LIST_TABLE, Output.ALLOW_LIST_TABLE)
        if table is None:
            raise OnboardingError(
                f"no allow-list table in {self.fleet.region or 'this region'}: deploy the "
                f"{stack} stack first (neither the SSM parameter "
                f"{ssm_parameter_name(self.prefix, Parameter.ALLOW_LIST_TABLE)} nor its output "
                f"{Output.ALLOW_LIST_TABLE.value} exists)"
            )
        template = find(Parameter.PROVISIONING_TEMPLATE, Output.PROVISIONING_TEMPLATE)
        secret = find(Parameter.CLAIM_SECRET_ARN, Output.CLAIM_SECRET_ARN)
        self._resources = FleetResources(
            allow_list_table=table,
            provisioning_template=template or provisioning_template_name(self.prefix),
            claim_secret=secret or claim_secret_name(self.prefix),
            # The secret holds it too; the output only when the stack's outputs were read.
            claim_certificate_id=(outputs or {}).get(Output.CLAIM_CERTIFICATE_ID),
        )
        return self._resources

    # --- validation against the plant config ---

    def _check_place(self, site_id: str, line_id: str, station_id: str | None) -> None:
        sites = {site.id: site for site in self.plant.sites}
        if site_id not in sites:
            raise OnboardingError(
                f"site {site_id!r} is not in the plant config (sites: {', '.join(sorted(sites))})"
            )
        lines = {line.id: line for line in sites[site_id].lines}
        if line_id not in lines:
            raise OnboardingError(
                f"line {line_id!r} is not a line of site {site_id!r} "
                f"(lines: {', '.join(sorted(lines))})"
            )
        if station_id is None:
            return
        cameras = sorted(s.id for s in lines[line_id].stations if s.camera is not None)
        if station_id not in cameras:
            raise OnboardingError(
                f"station {station_id!r} is not a camera station of {site_id}/{line_id}: a "
                f"camera gateway serves one of {', '.join(cameras) or 'none'}"
            )

    @staticmethod
    def _check_serial(serial: str) -> None:
        if not is_valid_serial(serial):
            raise OnboardingError(
                f"serial {serial!r} is malformed: 1 to 48 letters, digits, '_' or '-' "
                f"({SERIAL_PATTERN}), as it becomes part of the thing name"
            )

    # --- register ---

    def register(self, site: str, line: str, serial: str, station: str | None = None) -> Gateway:
        """Add the gateway to the allow-list; the pre-provisioning hook accepts it once."""
        self._check_serial(serial)
        self._check_place(site, line, station)
        gateway = Gateway(
            serial=serial,
            site=site,
            line=line,
            station=station,
            status=GatewayStatus.REGISTERED.value,
            thing_name=gateway_thing_name(self.prefix, serial),
            registered_at=self._now().astimezone(UTC).isoformat(),
        )
        table = self.resources().allow_list_table
        if not self.fleet.put_new_gateway(table, gateway.to_item()):
            existing = self.fleet.get_gateway(table, serial)
            where = (
                f" for {existing[AllowListAttribute.SITE]}/{existing[AllowListAttribute.LINE]}"
                f" ({existing.get(AllowListAttribute.STATUS, '?')})"
                if existing
                else ""
            )
            raise OnboardingError(
                f"serial {serial!r} is already registered{where}: a serial onboards once; "
                "a replacement gateway needs its own serial"
            )
        return gateway

    def gateway(self, serial: str) -> Gateway:
        self._check_serial(serial)
        item = self.fleet.get_gateway(self.resources().allow_list_table, serial)
        if item is None:
            raise OnboardingError(
                f"serial {serial!r} is not registered: run `register --site S --line L "
                f"--serial {serial}` first"
            )
        return Gateway.from_item(item)

    # --- bundle ---

    def bundle(
        self,
        serial: str,
        out: Path,
        offline: OfflineFiles | None = None,
        nucleus_version: str | None = None,
    ) -> BundleReport:
        """Write the gateway's bundle to ``out``; only for a registered, unused serial."""
        gateway = self.gateway(serial)
        if gateway.status == GatewayStatus.PROVISIONED:
            when = gateway.provisioned_at or "date unknown"
            raise OnboardingError(
                f"serial {serial!r} was provisioned already ({when}, {gateway.thing_name}); the "
                "hook refuses it again: register the replacement gateway's own serial"
            )
        if gateway.status != GatewayStatus.REGISTERED:
            raise OnboardingError(f"serial {serial!r} is {gateway.status}: it cannot onboard")
        self._check_place(gateway.site, gateway.line, gateway.station)
        resources = self.resources()
        warnings: list[str] = []
        claim = self._claim(resources, warnings)
        groups = gateway_thing_groups(self.prefix, gateway.site, gateway.line, gateway.station)
        try:
            settings = ProvisioningSettings(
                region=self.fleet.region,
                iot_data_endpoint=self.fleet.endpoint(DATA_ENDPOINT),
                iot_credential_endpoint=self.fleet.endpoint(CREDENTIAL_ENDPOINT),
                role_alias=role_alias_name(self.prefix, gateway.site, gateway.line),
                provisioning_template=resources.provisioning_template,
                # The version every deployment pins, so the first one does not restart the
                # fresh nucleus to change it.
                nucleus_version=nucleus_version or NUCLEUS_VERSION,
                template_parameters={TemplateParameter.SERIAL_NUMBER.value: serial},
            )
            names = write_bundle(
                out, bundle_files(settings, gateway.thing_name, claim), offline=offline
            )
        except (BundleError, ValueError) as error:
            raise OnboardingError(str(error)) from None
        return BundleReport(
            path=str(out),
            serial=serial,
            thing_name=gateway.thing_name,
            thing_groups=groups,
            nucleus_version=settings.nucleus_version,
            offline=offline is not None,
            files=names,
            warnings=warnings,
        )

    def _claim(self, resources: FleetResources, warnings: list[str]) -> ClaimCredentials:
        secret = self.fleet.secret_json(resources.claim_secret)
        certificate_id = resources.claim_certificate_id or secret.get(
            ClaimSecretField.CERTIFICATE_ID
        )
        status = self.fleet.certificate_status(certificate_id) if certificate_id else None
        if status is None:
            warnings.append(
                "could not check that the claim certificate is ACTIVE (iot:DescribeCertificate)"
            )
        elif status != ACTIVE:
            raise OnboardingError(
                "the claim certificate is disabled, so the gateway could not provision: run "
                "`restore-claim` first (and `revoke-claim` once it has onboarded)"
            )
        try:
            return ClaimCredentials(
                certificate_pem=secret[ClaimSecretField.CERTIFICATE_PEM],
                private_key=secret[ClaimSecretField.PRIVATE_KEY],
            )
        except KeyError as missing:
            raise OnboardingError(f"the claim secret has no {missing} field") from None
        except BundleError as error:
            raise OnboardingError(str(error)) from None

    # --- status ---

    def status(self) -> list[GatewayHealth]:
        """Every registered gateway and every core device, joined on the thing name."""
        gateways = {
            g.thing_name: g
            for g in map(
                Gateway.from_item, self.fleet.list_gateways(self.resources().allow_list_table)
            )
        }
        devices = {d["coreDeviceThingName"]: d for d in self.fleet.core_devices()}
        rows = []
        for name in sorted(set(gateways) | set(devices)):
            gateway, device = gateways.get(name), devices.get(name)
            components = (
                {
                    c["componentName"]: c["componentVersion"]
                    for c in self.fleet.installed_components(name)
                }
                if device
                else {}
            )
            rows.append(
                GatewayHealth(
                    thing_name=name,
                    serial=gateway.serial if gateway else None,
                    site=gateway.site if gateway else None,
                    line=gateway.line if gateway else None,
                    station=gateway.station if gateway else None,
                    registration=gateway.status if gateway else None,
                    core_status=device["status"] if device else NOT_SEEN,
                    last_status_change=_iso(device.get("lastStatusUpdateTimestamp"))
                    if device
                    else None,
                    components=dict(sorted(components.items())),
                )
            )
        return rows

    # --- the claim certificate ---

    def claim_certificate_id(self) -> str:
        resources = self.resources()
        certificate_id = resources.claim_certificate_id or self.fleet.secret_json(
            resources.claim_secret
        ).get(ClaimSecretField.CERTIFICATE_ID)
        if not certificate_id:
            raise OnboardingError(
                "the claim certificate's id is neither a stack output nor in the claim secret"
            )
        return certificate_id

    def set_claim(self, active: bool) -> str:
        """Disable the claim certificate once the fleet is onboarded (no device can provision
        with it), or enable it again to onboard a replacement. Returns the certificate id."""
        certificate_id = self.claim_certificate_id()
        self.fleet.set_certificate_status(certificate_id, ACTIVE if active else INACTIVE)
        return certificate_id
