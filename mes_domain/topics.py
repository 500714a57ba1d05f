"""MQTT topics: ``mes/v1/{site}/{line}/{station}/{kind}`` and its Basic Ingest form.

Basic Ingest (``$aws/rules/<rule>/mes/v1/...``) delivers straight to one rule and skips the
broker's messaging charge, so devices use it when only a rule consumes the message.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

from mes_domain.ids import check_identifier

TOPIC_ROOT = "mes"
TOPIC_VERSION = "v1"
BASIC_INGEST_PREFIX = "$aws/rules/"
MAX_TOPIC_BYTES = 256  # AWS IoT Core limit for a topic name
RULE_NAME_PATTERN = re.compile(r"[A-Za-z0-9_]{1,128}")  # AWS IoT rule names
# Commands to one gateway; "cmd" is not a version level, so these never clash with station topics.
COMMAND_ROOT = f"{TOPIC_ROOT}/cmd/{TOPIC_VERSION}"


class MessageKind(StrEnum):
    TELEMETRY = "telemetry"
    STATE = "state"
    COUNT = "count"
    QUALITY = "quality"
    EVENT = "event"


class TopicError(ValueError):
    """A topic that is not an MES topic, with the reason."""


def check_rule_name(rule_name: str) -> str:
    if not RULE_NAME_PATTERN.fullmatch(rule_name):
        raise TopicError(f"rule name {rule_name!r} must be 1-128 letters, digits or '_'")
    return rule_name


@dataclass(frozen=True, slots=True)
class StationTopic:
    """The topic a station publishes one kind of message on."""

    site: str
    line: str
    station: str
    kind: MessageKind

    def __post_init__(self) -> None:
        for level in (self.site, self.line, self.station):
            try:
                check_identifier(level)
            except ValueError as err:
                raise TopicError(str(err)) from None
        object.__setattr__(self, "kind", _kind(self.kind))

    def __str__(self) -> str:
        return "/".join(
            (TOPIC_ROOT, TOPIC_VERSION, self.site, self.line, self.station, self.kind.value)
        )

    def basic_ingest(self, rule_name: str) -> str:
        """The same topic addressed straight to ``rule_name`` through Basic Ingest."""
        return f"{BASIC_INGEST_PREFIX}{check_rule_name(rule_name)}/{self}"


@dataclass(frozen=True, slots=True)
class ParsedTopic:
    topic: StationTopic
    rule_name: str | None  # set when the message came through Basic Ingest


def _kind(value: str) -> MessageKind:
    try:
        return MessageKind(value)
    except ValueError:
        known = ", ".join(kind.value for kind in MessageKind)
        raise TopicError(f"unknown message kind {value!r}; expected one of {known}") from None


def parse_topic(topic: str) -> ParsedTopic:
    """Parse a direct or Basic Ingest MES topic; raise ``TopicError`` saying what is wrong."""
    if len(topic.encode()) > MAX_TOPIC_BYTES:
        raise TopicError(f"topic is longer than {MAX_TOPIC_BYTES} bytes")
    rule_name = None
    rest = topic
    if topic.startswith(BASIC_INGEST_PREFIX):
        rule_name, _, rest = topic[len(BASIC_INGEST_PREFIX) :].partition("/")
        check_rule_name(rule_name)
    levels = rest.split("/")
    if len(levels) != 6 or levels[0] != TOPIC_ROOT:
        form = f"{TOPIC_ROOT}/{TOPIC_VERSION}/site/line/station/kind"
        raise TopicError(f"topic {topic!r} is not of the form {form}")
    if levels[1] != TOPIC_VERSION:
        raise TopicError(
            f"topic version {levels[1]!r} is not supported; expected {TOPIC_VERSION!r}"
        )
    site, line, station, kind = levels[2:]
    return ParsedTopic(StationTopic(site, line, station, _kind(kind)), rule_name)


def topic_filter(
    kind: MessageKind | str, *, site: str = "+", line: str = "+", station: str = "+"
) -> str:
    """A subscription or rule filter; each level left out matches any id (``+``)."""
    levels = [level if level == "+" else check_identifier(level) for level in (site, line, station)]
    return "/".join((TOPIC_ROOT, TOPIC_VERSION, *levels, _kind(kind).value))


def command_topic_filter(thing_name: str) -> str:
    """What one gateway subscribes to: ``mes/cmd/v1/{thing_name}/#``.

    ``thing_name`` may be an IoT policy variable such as ``${iot:Connection.Thing.ThingName}``.
    """
    if not thing_name.startswith("${"):
        check_identifier(thing_name)
    return f"{COMMAND_ROOT}/{thing_name}/#"
