"""Names of the AWS resources the stacks build from a plant config, and AWS's limits on them.

The stacks name these resources only through the functions below, and ``Plant`` checks every
name they derive from a config (``derived_names``) against its rule, so a config that loads
also deploys: a name over its limit is a config error naming the field, not a failed deploy.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from mes_domain.topics import MessageKind, StationTopic

if TYPE_CHECKING:
    from mes_domain.plant import Plant

FieldPath = tuple[str | int, ...]


@dataclass(frozen=True, slots=True)
class NameRule:
    """What AWS accepts as one kind of name: at most ``max_length`` characters matching
    ``pattern`` (the whole name), as documented at ``source``."""

    what: str
    max_length: int
    pattern: str
    source: str
    min_length: int = 1

    def problem(self, name: str) -> str | None:
        """Why AWS would refuse ``name``, or None."""
        if not self.min_length <= len(name) <= self.max_length:
            return (
                f"{len(name)} characters long; AWS allows {self.min_length} to "
                f"{self.max_length} ({self.source})"
            )
        if not re.fullmatch(self.pattern, name):
            return f"not of the form {self.pattern} ({self.source})"
        return None


# Each limit as the API reference states it (the page is the rule's source).
STACK_NAME = NameRule(
    "CloudFormation stack name",
    128,
    r"[A-Za-z][A-Za-z0-9-]*",
    "docs.aws.amazon.com/AWSCloudFormation/latest/APIReference/API_CreateStack.html",
)
KMS_ALIAS = NameRule(
    "KMS alias",
    256,
    r"alias/[a-zA-Z0-9:/_-]+",
    "docs.aws.amazon.com/kms/latest/APIReference/API_CreateAlias.html",
)
SNS_TOPIC_NAME = NameRule(
    "SNS topic name",
    256,
    r"[A-Za-z0-9_-]+",
    "docs.aws.amazon.com/sns/latest/api/API_CreateTopic.html",
)
# CDK's sns.Topic refuses longer display names at synth (aws-sns/lib/topic.js); the display
# name is the e-mail sender name (docs.aws.amazon.com/sns/latest/api/API_SetTopicAttributes.html).
SNS_DISPLAY_NAME = NameRule(
    "SNS topic display name",
    100,
    r"[^\x00-\x1f]+",
    "aws-cdk-lib aws-sns Topic; docs.aws.amazon.com/sns/latest/api/API_SetTopicAttributes.html",
)
EVENT_BUS_NAME = NameRule(
    "EventBridge event bus name",
    256,
    r"[/.\-_A-Za-z0-9]+",
    "docs.aws.amazon.com/eventbridge/latest/APIReference/API_CreateEventBus.html",
)
STATE_MACHINE_NAME = NameRule(
    "Step Functions state machine name",
    80,
    r"[0-9A-Za-z_-]+",  # the characters CloudWatch logging accepts
    "docs.aws.amazon.com/step-functions/latest/apireference/API_StateMachineListItem.html",
)
USER_POOL_NAME = NameRule(
    "Cognito user pool name",
    128,
    r"[\w\s+=,.@-]+",
    "docs.aws.amazon.com/cognito-user-identity-pools/latest/APIReference/API_CreateUserPool.html",
)
COGNITO_GROUP_NAME = NameRule(
    "Cognito group name",
    128,
    r"[^\s]+",
    "docs.aws.amazon.com/cognito-user-identity-pools/latest/APIReference/API_CreateGroup.html",
)
TIMESTREAM_NAME = NameRule(
    "Timestream database or table name",
    256,
    r"[a-zA-Z0-9_.-]+",
    "docs.aws.amazon.com/timestream/latest/developerguide/API_CreateDatabase.html",
    min_length=3,
)
IOT_POLICY_NAME = NameRule(
    "IoT policy name",
    128,
    r"[\w+=,.@-]+",
    "docs.aws.amazon.com/iot/latest/apireference/API_CreatePolicy.html",
)
IOT_RULE_NAME = NameRule(
    "IoT rule name",
    128,
    r"[a-zA-Z0-9_]+",
    "docs.aws.amazon.com/iot/latest/apireference/API_CreateTopicRule.html",
)
THING_GROUP_NAME = NameRule(
    "IoT thing group name",
    128,
    r"[a-zA-Z0-9:_-]+",
    "docs.aws.amazon.com/iot/latest/apireference/API_CreateThingGroup.html",
)
ROLE_ALIAS = NameRule(
    "IoT role alias",
    128,
    r"[\w=,@-]+",
    "docs.aws.amazon.com/iot/latest/apireference/API_CreateRoleAlias.html",
)
# The SiteWise gateway's CoreDeviceThingName (GreengrassV2 object of CreateGateway).
CORE_DEVICE_THING_NAME = NameRule(
    "Greengrass core device thing name",
    128,
    r"[a-zA-Z0-9:_-]+",
    "docs.aws.amazon.com/iot-sitewise/latest/APIReference/API_GreengrassV2.html",
)
SITEWISE_NAME = NameRule(
    "SiteWise asset or asset model name",
    256,
    r"[^\u0000-\u001F\u007F]+",
    "docs.aws.amazon.com/iot-sitewise/latest/APIReference/API_CreateAsset.html",
)
DASHBOARD_NAME = NameRule(
    "CloudWatch dashboard name",
    255,
    r"[A-Za-z0-9_-]+",
    "docs.aws.amazon.com/AmazonCloudWatch/latest/APIReference/API_PutDashboard.html",
)

# --- the names, one function each: the stacks call these, and so does the validator ---

STACK_CAPABILITIES = ("Platform", "Iiot", "SiteWise", "Quality", "Enterprise", "Kpi")


def stack_name(prefix: str, capability: str) -> str:
    return f"{prefix}-{capability}"


def key_alias(prefix: str, purpose: str) -> str:
    return f"alias/{prefix}/{purpose}"


KEY_PURPOSES = ("data", "logs")


def alarm_topic_name(prefix: str) -> str:
    return f"{prefix}-alarms"


def alarm_display_name(plant_name: str) -> str:
    return f"{plant_name} alarms"


def event_bus_name(prefix: str) -> str:
    return f"{prefix}-events"


def model_pipeline_name(prefix: str) -> str:
    return f"{prefix}-quality-model-pipeline"


def quality_user_pool_name(prefix: str) -> str:
    return f"{prefix}-quality-experts"


def telemetry_database_name(prefix: str) -> str:
    return f"{prefix}-telemetry"


def plant_dashboard_name(prefix: str) -> str:
    return f"{prefix}-plant"


def gateway_policy_name(prefix: str) -> str:
    return f"{prefix}-gateway"


def gateway_role_alias(prefix: str, site: str, line: str) -> str:
    """The role alias of a line's gateways. "@" occurs in no id, so no two lines share an
    alias."""
    return f"{gateway_policy_name(prefix)}@{site}@{line}"


def gateway_line_policy_name(prefix: str, site: str, line: str) -> str:
    """The IoT policy of a line's gateways, named like its role alias (another namespace)."""
    return gateway_role_alias(prefix, site, line)


def gateway_thing_prefix(prefix: str) -> str:
    """What every gateway's thing name (``mes_domain.fleet.gateway_thing_name``) starts with."""
    return f"{gateway_policy_name(prefix)}-"


def sitewise_gateway_thing_name(prefix: str, site: str) -> str:
    """The Greengrass core device (IoT thing) of a site's SiteWise Edge gateway (issue 15
    provisions it)."""
    return f"{prefix}-{site}-sitewise-edge"


def rule_name(prefix: str, kind: str) -> str:
    """IoT rule names allow only letters, digits and '_'."""
    return f"{prefix.replace('-', '_')}_{kind}"


# The kinds the IIoT stack routes with a topic rule of its own (stacks/constructs/ingest_rules):
# a gateway may address them straight to the rule through Basic Ingest. No rule reads events.
ROUTED_KINDS = frozenset(
    {MessageKind.TELEMETRY, MessageKind.STATE, MessageKind.COUNT, MessageKind.QUALITY}
)


def ingest_topic(topic: StationTopic, prefix: str | None) -> str:
    """Where a gateway publishes ``topic``: its rule's Basic Ingest topic when the kind has a
    rule and the stack ``prefix`` is known, else the topic itself (the broker)."""
    if prefix is None or topic.kind not in ROUTED_KINDS:
        return str(topic)
    return topic.basic_ingest(rule_name(prefix, topic.kind))


def thing_group_name(prefix: str, *ids: str) -> str:
    """``<prefix>-<site>`` for a site's gateways, ``<prefix>-<site>-<line>`` for a line's."""
    return "-".join((prefix, *ids))


# A camera station's model group is its group and this suffix (mes_domain.fleet).
MODEL_GROUP_SUFFIX = ":models"


def station_thing_group_name(prefix: str, site: str, line: str, station: str) -> str:
    """``<line group>:<station>``: the group of a camera station's own gateway. ":" occurs in no
    id, so it never names a site or line group."""
    return f"{thing_group_name(prefix, site, line)}:{station}"


# Members of a site's group may decide on that site's models; the quality stack creates one per
# site with camera stations. A group name is 1 to 128 characters (COGNITO_GROUP_NAME): the prefix
# plus a 64-character id is 74.
APPROVERS_GROUP_PREFIX = "approvers-"


def approvers_group_name(site: str) -> str:
    """The Cognito group whose members may approve or reject models of ``site``."""
    return f"{APPROVERS_GROUP_PREFIX}{site}"


def line_path(site: str, line: str) -> str:
    return f"{site}/{line}"


def site_asset_name(site: str) -> str:
    return site


def line_asset_name(site: str, line: str) -> str:
    return line_path(site, line)


def station_asset_name(site: str, line: str, station: str) -> str:
    return f"{line_path(site, line)}/{station}"


def site_model_name(prefix: str, site: str) -> str:
    return f"{prefix} {site} site"


def line_model_name(prefix: str, site: str, line: str) -> str:
    return f"{prefix} {line_path(site, line)} line"


def station_model_label(kind: str, ideal_cycle_time_s: float, ordinal: int = 1) -> str:
    """A station model's label; models alike in kind and cycle time are numbered apart."""
    label = f"{kind} station, {ideal_cycle_time_s:g} s cycle"
    return label if ordinal == 1 else f"{label} ({ordinal})"


def station_model_name(prefix: str, site: str, line: str, label: str) -> str:
    return f"{prefix} {line_path(site, line)} {label}"


# --- every name a plant config derives, with the field to blame ---


@dataclass(frozen=True, slots=True)
class DerivedName:
    """``name``, built from the config value ``value`` at ``field`` (and ``also``)."""

    field: FieldPath
    value: str
    rule: NameRule
    name: str
    also: str = ""  # the other fields the name is built from


PREFIX: FieldPath = ("deployment", "stack_prefix")


def field_text(path: FieldPath) -> str:
    """``sites[0].lines[1].id``: a field path as the config loader prints it."""
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    return text


def derived_names(plant: Plant) -> Iterator[DerivedName]:
    """Every config-derived name the stacks give a resource whose name AWS limits."""
    from mes_domain import fleet  # fleet builds on this module's names

    prefix = plant.deployment.stack_prefix
    by_prefix = [
        *((STACK_NAME, stack_name(prefix, c)) for c in STACK_CAPABILITIES),
        *((KMS_ALIAS, key_alias(prefix, p)) for p in KEY_PURPOSES),
        (SNS_TOPIC_NAME, alarm_topic_name(prefix)),
        (EVENT_BUS_NAME, event_bus_name(prefix)),
        (STATE_MACHINE_NAME, model_pipeline_name(prefix)),
        (USER_POOL_NAME, quality_user_pool_name(prefix)),
        (TIMESTREAM_NAME, telemetry_database_name(prefix)),
        (DASHBOARD_NAME, plant_dashboard_name(prefix)),
        (IOT_POLICY_NAME, gateway_policy_name(prefix)),
        (IOT_POLICY_NAME, fleet.claim_policy_name(prefix)),
        (IOT_POLICY_NAME, fleet.core_device_policy_name(prefix)),
        *((IOT_RULE_NAME, rule_name(prefix, kind)) for kind in MessageKind),
    ]
    if plant.capabilities.eks:
        by_prefix += _containers_names(plant)
    for rule, name in by_prefix:
        yield DerivedName(PREFIX, prefix, rule, name)
    yield DerivedName(("name",), plant.name, SNS_DISPLAY_NAME, alarm_display_name(plant.name))

    for i, site in enumerate(plant.sites):
        site_id: FieldPath = ("sites", i, "id")
        prefix_too = "deployment.stack_prefix"
        yield DerivedName(
            site_id, site.id, THING_GROUP_NAME, thing_group_name(prefix, site.id), prefix_too
        )
        yield DerivedName(
            site_id, site.id, SITEWISE_NAME, site_model_name(prefix, site.id), prefix_too
        )
        yield DerivedName(site_id, site.id, SITEWISE_NAME, site_asset_name(site.id))
        if plant.iiot.opcua_to_sitewise:
            yield DerivedName(
                site_id,
                site.id,
                CORE_DEVICE_THING_NAME,
                sitewise_gateway_thing_name(prefix, site.id),
                prefix_too,
            )
        for j, line in enumerate(site.lines):
            line_id: FieldPath = ("sites", i, "lines", j, "id")
            also = "deployment.stack_prefix or the site id"

            def named(rule: NameRule, name: str, also: str = also) -> DerivedName:
                return DerivedName(line_id, line.id, rule, name, also)  # noqa: B023

            yield named(THING_GROUP_NAME, thing_group_name(prefix, site.id, line.id))
            yield named(SITEWISE_NAME, line_model_name(prefix, site.id, line.id))
            yield named(SITEWISE_NAME, line_asset_name(site.id, line.id), "the site id")
            # Every line's gateways get credentials through its role alias (issue 15) and hold
            # its gateway policy.
            yield named(ROLE_ALIAS, gateway_role_alias(prefix, site.id, line.id))
            yield named(IOT_POLICY_NAME, gateway_line_policy_name(prefix, site.id, line.id))
            # Models of one label are numbered 1, 2, ...: at most as many as their stations.
            labels = [
                station_model_label(s.kind.value, s.ideal_cycle_time_s) for s in line.stations
            ]
            counts = Counter(labels)
            for label, s in dict(zip(labels, line.stations, strict=True)).items():
                for ordinal in range(1, counts[label] + 1):
                    numbered = station_model_label(s.kind.value, s.ideal_cycle_time_s, ordinal)
                    yield named(
                        SITEWISE_NAME, station_model_name(prefix, site.id, line.id, numbered)
                    )
            for k, station in enumerate(line.stations):
                station_field: FieldPath = ("sites", i, "lines", j, "stations", k, "id")
                yield DerivedName(
                    station_field,
                    station.id,
                    SITEWISE_NAME,
                    station_asset_name(site.id, line.id, station.id),
                    "the site or line id",
                )
                if station.camera is not None:  # the camera gateway's group and model group
                    group = station_thing_group_name(prefix, site.id, line.id, station.id)
                    for name in (group, f"{group}{MODEL_GROUP_SUFFIX}"):
                        yield DerivedName(
                            station_field,
                            station.id,
                            THING_GROUP_NAME,
                            name,
                            "deployment.stack_prefix, the site or line id",
                        )


CONTAINERS_STACK_CAPABILITIES = ("ContainersData", "Containers")


def _containers_names(plant: Plant) -> list[tuple[NameRule, str]]:
    """The containers platform's names (``capabilities.eks``): its stacks, what the
    ContainersData stack makes and the clusters."""
    from mes_domain import containers  # containers builds on this module's names
    from mes_domain.plant import EdgeSite

    prefix = plant.deployment.stack_prefix
    outposts = plant.deployment.edge_site is EdgeSite.OUTPOSTS
    capabilities = (*CONTAINERS_STACK_CAPABILITIES, *(("EdgeSite",) if outposts else ()))
    msk = plant.containers.service_bus is containers.ServiceBus.MSK
    return [
        *((STACK_NAME, stack_name(prefix, c)) for c in capabilities),
        *containers.containers_data_names(prefix, msk=msk),
        *containers.cluster_names(prefix, outposts=outposts),
    ]


def name_problems(plant: Plant) -> Iterator[tuple[FieldPath, str, str]]:
    """(field, value, message) for each derived name AWS would refuse, and for two thing
    groups of one name (a site ``a-b`` and a line ``b`` of site ``a`` would clash)."""
    groups: dict[str, DerivedName] = {}
    for derived in derived_names(plant):
        reason = derived.rule.problem(derived.name)
        if reason is not None:
            shorten = f"; shorten it or {derived.also}" if derived.also else ""
            yield (
                derived.field,
                derived.value,
                f"{derived.value!r} makes the {derived.rule.what} {derived.name!r} "
                f"{reason}{shorten}",
            )
        if derived.rule is THING_GROUP_NAME:
            clash = groups.setdefault(derived.name, derived)
            if clash is not derived:
                yield (
                    derived.field,
                    derived.value,
                    f"{derived.value!r} makes the IoT thing group name {derived.name!r}, "
                    f"which {field_text(clash.field)} makes too; names must be unique",
                )
