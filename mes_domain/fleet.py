"""The edge fleet's contract: the names the EdgeFleet stack creates and the onboarding CLI
(``python -m mes_gateway``) and the pre-provisioning hook use, all derived from the plant config.

A gateway onboards by claim (fleet provisioning): the operator registers its serial in the
allow-list table with its site and line (and station, for a camera gateway); the gateway
connects with the claim certificate and calls RegisterThing with the template parameter
``SerialNumber``; the hook checks the serial and returns the thing name, the ``site`` and
``line`` attributes and the two thing groups; the template creates the thing, activates the
gateway's own certificate and attaches the Greengrass core policy.

- **A line gateway** joins its line's group (the line's deployment: nucleus with the disk
  spooler, DataCollector) and its site's group (no deployment targets a site group).
- **A camera gateway** joins its station's group (``<line group>:<station>``: nucleus, disk
  spooler, QualityInspection configured for the station; written by the stack) and the
  station's model group (``<station group>:models``: the model component only; written by the
  model pipeline). Each writer owns its group, so neither replaces the other's deployment; a core
  device runs the components of every group it is in and checks their version requirements
  across them (greengrass/v2/developerguide/manage-deployments.html).

The CLI finds what the stack created through SSM parameters (``ssm_parameter_name``) or the
EdgeFleet stack's outputs (``Output``). Pure: no AWS SDK. Only add to this module; the CLI
imports these names.
"""

from __future__ import annotations

import copy
import hashlib
import re
from enum import StrEnum

from mes_domain.naming import (
    IOT_POLICY_NAME,
    NameRule,
    gateway_role_alias,
    gateway_thing_prefix,
    stack_name,
    station_thing_group_name,
    thing_group_name,
)
from mes_domain.naming import MODEL_GROUP_SUFFIX as naming_model_group_suffix

# --- AWS's rules on the names below, as the API references state them ---

# CreateProvisioningTemplate templateName: 1 to 36 of [0-9A-Za-z_-]
# (docs.aws.amazon.com/iot/latest/apireference/API_CreateProvisioningTemplate.html).
PROVISIONING_TEMPLATE_NAME = NameRule(
    "IoT provisioning template name",
    36,
    r"[0-9A-Za-z_-]+",
    "docs.aws.amazon.com/iot/latest/apireference/API_CreateProvisioningTemplate.html",
)
# CreateThing thingName: 1 to 128 of [a-zA-Z0-9:_-]
# (docs.aws.amazon.com/iot/latest/apireference/API_CreateThing.html).
THING_NAME = NameRule(
    "IoT thing name",
    128,
    r"[a-zA-Z0-9:_-]+",
    "docs.aws.amazon.com/iot/latest/apireference/API_CreateThing.html",
)
# CreateSecret Name: 1 to 512 of letters, digits and /_+=.@-
# (docs.aws.amazon.com/secretsmanager/latest/apireference/API_CreateSecret.html).
SECRET_NAME = NameRule(
    "Secrets Manager secret name",
    512,
    r"[A-Za-z0-9/_+=.@-]+",
    "docs.aws.amazon.com/secretsmanager/latest/apireference/API_CreateSecret.html",
)
# PutParameter Name: up to 1011 characters of a-zA-Z0-9_.-/ for a hierarchy
# (docs.aws.amazon.com/systems-manager/latest/APIReference/API_PutParameter.html).
SSM_PARAMETER_NAME = NameRule(
    "SSM parameter name",
    1011,
    r"/[a-zA-Z0-9_./-]+",
    "docs.aws.amazon.com/systems-manager/latest/APIReference/API_PutParameter.html",
)

# --- the Greengrass software every gateway runs ---

# The nucleus every deployment pins (the installer should install the same one) and the disk
# spooler plugin, which needs nucleus 2.11.0 or later (mes_domain.edge_spooler).
NUCLEUS_VERSION = "2.13.0"
DISK_SPOOLER_VERSION = "1.0.0"

# The Greengrass data plane actions of the minimal core device policy, all on "*"
# (docs.aws.amazon.com/greengrass/v2/developerguide/device-auth.html): component resolution and
# artifacts, large deployment documents (nucleus 2.3.0+), the device's thing groups (2.5.0+).
CORE_DEVICE_GREENGRASS_ACTIONS = (
    "greengrass:GetComponentVersionArtifact",
    "greengrass:ResolveComponentCandidates",
    "greengrass:GetDeploymentConfiguration",
    "greengrass:ListThingGroupsForCoreDevice",
)

# --- our components' recipes, as the cloud gets them ---

# The artifact URI of a source recipe (greengrass_components/*/recipe.yaml) is the GDK CLI's
# template, whose words `gdk component publish` replaces with its bucket, the component's name
# and version (greengrass/v2/developerguide/greengrass-development-kit-cli-component.html).
# The EdgeFleet stack publishes each component with the URI of its uploaded artifact instead:
# no placeholder reaches the cloud.
GDK_ARTIFACT_URI_PREFIX = "s3://BUCKET_NAME/COMPONENT_NAME/COMPONENT_VERSION/"
GDK_PLACEHOLDERS = ("BUCKET_NAME", "COMPONENT_NAME", "COMPONENT_VERSION")


def _artifacts(recipe: dict[str, object]) -> list[dict[str, object]]:
    manifests = recipe.get("Manifests") or []
    return [
        artifact
        for manifest in manifests  # type: ignore[union-attr]
        for artifact in (manifest.get("Artifacts") or [])
    ]


def gdk_artifact_files(recipe: dict[str, object]) -> list[str]:
    """The file names of a source recipe's artifacts, in order (``<file>`` of each
    ``s3://BUCKET_NAME/COMPONENT_NAME/COMPONENT_VERSION/<file>``)."""
    files = []
    for artifact in _artifacts(recipe):
        uri = str(artifact.get("Uri") or artifact.get("URI") or "")
        if uri.startswith(GDK_ARTIFACT_URI_PREFIX):
            files.append(uri.removeprefix(GDK_ARTIFACT_URI_PREFIX))
    return files


def published_recipe(recipe: dict[str, object], artifact_uris: dict[str, str]) -> dict[str, object]:
    """``recipe`` with each GDK artifact URI replaced by ``artifact_uris[<file>]``. Refuses a
    file without a URI and any artifact URI still naming a GDK placeholder."""
    published = copy.deepcopy(recipe)
    for artifact in _artifacts(published):
        key = "Uri" if "Uri" in artifact else "URI"
        uri = str(artifact.get(key) or "")
        if uri.startswith(GDK_ARTIFACT_URI_PREFIX):
            name = uri.removeprefix(GDK_ARTIFACT_URI_PREFIX)
            if name not in artifact_uris:
                raise ValueError(f"no uploaded artifact for {uri}")
            artifact[key] = uri = artifact_uris[name]
        if any(word in uri for word in GDK_PLACEHOLDERS):
            raise ValueError(f"artifact URI {uri!r} still names a GDK placeholder")
    return published


# --- the stack ---

CAPABILITY = "EdgeFleet"


def edge_fleet_stack_name(prefix: str) -> str:
    return stack_name(prefix, CAPABILITY)


# --- serials and thing names ---

# A serial goes into the thing name (THING_NAME): letters, digits, "_" and "-"; 48 at most, so
# that the longest prefix (64) plus "-gateway-" plus the serial stays within 128.
SERIAL_PATTERN = r"[A-Za-z0-9_-]{1,48}"
SERIAL_MAX_LENGTH = 48


def is_valid_serial(serial: object) -> bool:
    return isinstance(serial, str) and re.fullmatch(SERIAL_PATTERN, serial) is not None


def gateway_thing_name(prefix: str, serial: str) -> str:
    """The IoT thing (Greengrass core device) of the gateway with ``serial``. One serial, one
    thing: a replacement gateway has a new serial, so a new thing in the same groups."""
    if not is_valid_serial(serial):
        raise ValueError(f"serial {serial!r} is not of the form {SERIAL_PATTERN}")
    return f"{gateway_thing_prefix(prefix)}{serial}"


# --- thing groups ---

MODEL_GROUP_SUFFIX = naming_model_group_suffix  # ":models"


def line_thing_group_name(prefix: str, site: str, line: str) -> str:
    return thing_group_name(prefix, site, line)


def site_thing_group_name(prefix: str, site: str) -> str:
    return thing_group_name(prefix, site)


def camera_thing_group_name(prefix: str, site: str, line: str, station: str) -> str:
    return station_thing_group_name(prefix, site, line, station)


def model_thing_group_name(prefix: str, site: str, line: str, station: str) -> str:
    """``<station group>:models``: the group only the model pipeline deploys to. Two ":" set it
    apart from every station group (one ":") and line or site group (none)."""
    return station_thing_group_name(prefix, site, line, station) + MODEL_GROUP_SUFFIX


def gateway_thing_groups(
    prefix: str, site: str, line: str, station: str | None = None
) -> tuple[str, str]:
    """The two groups a gateway joins at provisioning: (its deployment's group, the other).
    A line gateway: its line's group and its site's; a camera gateway (``station`` given): its
    station's group and the station's model group."""
    if station is None:
        return (line_thing_group_name(prefix, site, line), site_thing_group_name(prefix, site))
    return (
        camera_thing_group_name(prefix, site, line, station),
        model_thing_group_name(prefix, site, line, station),
    )


def model_group_deployment(
    prefix: str, site: str, line: str, station: str, component: str, version: str
) -> dict[str, object]:
    """The model pipeline's deployment of a station's model: the model component alone, to the
    station's model group (the stack's deployment of the station group is never touched)."""
    group = model_thing_group_name(prefix, site, line, station)
    return {
        "deploymentName": f"{group} model",
        "targetThingGroupName": group,
        "components": {component: {"componentVersion": version}},
    }


# --- IoT names ---


def provisioning_template_name(prefix: str) -> str:
    """``<prefix>-gateways``; a prefix too long for the template's 36 characters is cut and
    made unique again with a hash of the whole prefix."""
    name = f"{prefix}-gateways"
    if len(name) <= PROVISIONING_TEMPLATE_NAME.max_length:
        return name
    digest = hashlib.sha256(prefix.encode()).hexdigest()[:8]
    room = PROVISIONING_TEMPLATE_NAME.max_length - len(f"-{digest}-gateways")
    return f"{prefix[:room]}-{digest}-gateways"


def claim_policy_name(prefix: str) -> str:
    return f"{prefix}-gateway-claim"


def core_device_policy_name(prefix: str) -> str:
    """The Greengrass core device policy the template attaches to each gateway's certificate."""
    return f"{prefix}-greengrass-core"


def role_alias_name(prefix: str, site: str, line: str) -> str:
    """The role alias of a line's gateways (Greengrass nucleus ``iotRoleAlias``)."""
    return gateway_role_alias(prefix, site, line)


def claim_secret_name(prefix: str) -> str:
    """The secret holding the claim certificate and its private key (``ClaimSecretField``)."""
    return f"{prefix}/edge-fleet/claim-certificate"


class ClaimSecretField(StrEnum):
    """The keys of the claim secret's JSON ``SecretString``."""

    CERTIFICATE_ID = "certificateId"
    CERTIFICATE_ARN = "certificateArn"
    CERTIFICATE_PEM = "certificatePem"
    PRIVATE_KEY = "privateKey"


# --- the provisioning template's parameters ---


class TemplateParameter(StrEnum):
    """Parameters of the provisioning template. The gateway sends ``SERIAL_NUMBER`` (the
    nucleus' fleet provisioning plugin ``templateParameters``); the hook returns the others as
    ``parameterOverrides``; AWS IoT fills ``CERTIFICATE_ID``."""

    SERIAL_NUMBER = "SerialNumber"
    THING_NAME = "ThingName"
    SITE = "Site"
    LINE = "Line"
    THING_GROUP = "ThingGroup"
    SECOND_THING_GROUP = "SecondThingGroup"
    CERTIFICATE_ID = "AWS::IoT::Certificate::Id"


# The attributes the provisioning template gives a gateway thing (its site, line and serial).
THING_ATTRIBUTE_SITE = "site"
THING_ATTRIBUTE_LINE = "line"
THING_ATTRIBUTE_SERIAL = "serial"


# --- the allow-list table ---


class AllowListAttribute(StrEnum):
    """The allow-list table's attributes; ``SERIAL`` is its partition key (a string)."""

    SERIAL = "serial"
    SITE = "site"
    LINE = "line"
    STATION = "station"  # only for a camera gateway
    STATUS = "status"
    THING_NAME = "thing_name"
    REGISTERED_AT = "registered_at"  # ISO 8601, UTC
    PROVISIONED_AT = "provisioned_at"  # ISO 8601, UTC, set by the hook
    CERTIFICATE_ID = "certificate_id"  # the gateway's own certificate, set by the hook
    # Set by the gateway health function from AWS IoT's connect/disconnect events:
    CONNECTIVITY = "connectivity"  # Connectivity
    CONNECTIVITY_AT = "connectivity_at"  # the event's timestamp, ms since the epoch (a number)


class GatewayStatus(StrEnum):
    """REGISTERED: expected, may provision once. PROVISIONED: used; the hook refuses it again.
    RETIRED: taken out of service by the operator; refused."""

    REGISTERED = "REGISTERED"
    PROVISIONED = "PROVISIONED"
    RETIRED = "RETIRED"


# --- gateway health: the plant dashboard's online, unhealthy and offline gateways ---


class Connectivity(StrEnum):
    """A gateway's MQTT connection as AWS IoT's lifecycle events last reported it."""

    CONNECTED = "CONNECTED"
    DISCONNECTED = "DISCONNECTED"


# The lifecycle events' eventType (iot/latest/developerguide/life-cycle-events.html).
PRESENCE_EVENT_TYPES = {
    "connected": Connectivity.CONNECTED,
    "disconnected": Connectivity.DISCONNECTED,
}
# Every lifecycle event of a client: $aws/events/presence/connected|disconnected/<clientId>.
PRESENCE_TOPIC_FILTER = "$aws/events/presence/+/+"


class GatewayHealth(StrEnum):
    """ONLINE: connected, its core device not UNHEALTHY. UNHEALTHY: connected, a component
    BROKEN or ERRORED (Greengrass core device status UNHEALTHY). OFFLINE: provisioned but not
    connected (or never connected)."""

    ONLINE = "ONLINE"
    UNHEALTHY = "UNHEALTHY"
    OFFLINE = "OFFLINE"


# The census' CloudWatch metrics: one value each per run, dimension FLEET_METRICS_DIMENSION.
FLEET_METRICS_NAMESPACE = "MES/Fleet"
FLEET_METRICS_DIMENSION = "Prefix"
HEALTH_METRIC = {
    GatewayHealth.ONLINE: "GatewaysOnline",
    GatewayHealth.UNHEALTHY: "GatewaysUnhealthy",
    GatewayHealth.OFFLINE: "GatewaysOffline",
}
CENSUS_INTERVAL_MINUTES = 5
# Greengrass core device status (greengrass/v2/APIReference/API_CoreDevice.html).
CORE_DEVICE_UNHEALTHY = "UNHEALTHY"


def serial_of_thing(prefix: str, thing_name: str) -> str | None:
    """The serial of a gateway thing name (``gateway_thing_name``), or None for any other."""
    head = f"{prefix}-gateway-"
    if not thing_name.startswith(head):
        return None
    serial = thing_name.removeprefix(head)
    return serial if is_valid_serial(serial) else None


def gateway_health(
    status: str | None, connectivity: str | None, core_device_status: str | None
) -> GatewayHealth | None:
    """A gateway's health from its allow-list ``status`` and ``connectivity`` and its core
    device status; None for a gateway not in service (registered, not yet provisioned, or
    retired)."""
    if status != GatewayStatus.PROVISIONED:
        return None
    if connectivity != Connectivity.CONNECTED:
        return GatewayHealth.OFFLINE
    if core_device_status == CORE_DEVICE_UNHEALTHY:
        return GatewayHealth.UNHEALTHY
    return GatewayHealth.ONLINE


def census(
    gateways: list[dict[str, object]], core_device_statuses: dict[str, str]
) -> dict[GatewayHealth, int]:
    """How many provisioned gateways are online, unhealthy and offline. ``gateways``: the
    allow-list items (AllowListAttribute keys); ``core_device_statuses``: thing name -> status."""
    counts = dict.fromkeys(GatewayHealth, 0)
    for gateway in gateways:
        thing = str(gateway.get(AllowListAttribute.THING_NAME, ""))
        health = gateway_health(
            gateway.get(AllowListAttribute.STATUS),  # type: ignore[arg-type]
            gateway.get(AllowListAttribute.CONNECTIVITY),  # type: ignore[arg-type]
            core_device_statuses.get(thing),
        )
        if health is not None:
            counts[health] += 1
    return counts


# --- discovery ---


class Output(StrEnum):
    """The EdgeFleet stack's CloudFormation outputs (``edge_fleet_stack_name``)."""

    ALLOW_LIST_TABLE = "AllowListTableName"
    PROVISIONING_TEMPLATE = "ProvisioningTemplateName"
    CLAIM_SECRET_ARN = "ClaimSecretArn"
    CLAIM_CERTIFICATE_ID = "ClaimCertificateId"
    OPERATOR_ROLE_ARN = "OperatorRoleArn"


class Parameter(StrEnum):
    """The keys of the SSM parameters the stack writes (``ssm_parameter_name``)."""

    ALLOW_LIST_TABLE = "allow-list-table"
    PROVISIONING_TEMPLATE = "provisioning-template"
    CLAIM_SECRET_ARN = "claim-secret-arn"


def ssm_parameter_name(prefix: str, key: Parameter | str) -> str:
    return f"/{prefix}/edge-fleet/{Parameter(key).value}"


def name_problems(prefix: str) -> list[str]:
    """What AWS would refuse among the prefix-derived fleet names (the plant validator checks
    the per-line ones through mes_domain.naming)."""
    checks = [
        (PROVISIONING_TEMPLATE_NAME, provisioning_template_name(prefix)),
        (IOT_POLICY_NAME, claim_policy_name(prefix)),
        (IOT_POLICY_NAME, core_device_policy_name(prefix)),
        (SECRET_NAME, claim_secret_name(prefix)),
        (THING_NAME, gateway_thing_name(prefix, "x" * SERIAL_MAX_LENGTH)),
        *((SSM_PARAMETER_NAME, ssm_parameter_name(prefix, key)) for key in Parameter),
    ]
    problems = []
    for rule, name in checks:
        reason = rule.problem(name)
        if reason is not None:
            problems.append(f"{rule.what} {name!r}: {reason}")
    return problems
