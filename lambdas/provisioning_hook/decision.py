"""Whether a gateway may provision, and as what: pure logic on the hook's input and the
gateway's allow-list record.

The input and output are those of AWS IoT's pre-provisioning hooks
(docs.aws.amazon.com/iot/latest/developerguide/pre-provisioning-hook.html): IoT passes the
RegisterThing ``parameters`` and the new ``certificateId``; provisioning proceeds only on
``"allowProvisioning": true``, and ``parameterOverrides`` are added to the template's
parameters. A refusal names no reason to the device (it gets ACCESS_DENIED); the log has it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from mes_domain.fleet import (
    AllowListAttribute,
    GatewayStatus,
    TemplateParameter,
    gateway_thing_groups,
    gateway_thing_name,
    is_valid_serial,
)

# An IoT certificate id is 64 hexadecimal characters
# (docs.aws.amazon.com/iot/latest/apireference/API_Certificate.html).
CERTIFICATE_ID = re.compile(r"[0-9a-fA-F]{64}")
# The plant config's identifiers (mes_domain.plant Identifier): what the record may name.
IDENTIFIER = re.compile(r"[a-z0-9][a-z0-9-]{0,63}")


class Refusal(StrEnum):
    MALFORMED = "malformed request"
    UNKNOWN = "serial not on the allow-list"
    USED = "serial already provisioned"
    RETIRED = "serial retired"
    BAD_RECORD = "allow-list record unusable"


@dataclass(frozen=True, slots=True)
class Request:
    serial: str
    certificate_id: str


@dataclass(frozen=True, slots=True)
class Grant:
    """What the template gets for an allowed gateway."""

    serial: str
    certificate_id: str
    thing_name: str
    site: str
    line: str
    thing_groups: tuple[str, str]
    retry: bool = False  # the same device asking again with the same certificate

    def response(self) -> dict[str, Any]:
        first, second = self.thing_groups
        return {
            "allowProvisioning": True,
            "parameterOverrides": {
                TemplateParameter.THING_NAME.value: self.thing_name,
                TemplateParameter.SITE.value: self.site,
                TemplateParameter.LINE.value: self.line,
                TemplateParameter.THING_GROUP.value: first,
                TemplateParameter.SECOND_THING_GROUP.value: second,
            },
        }


DENY: dict[str, Any] = {"allowProvisioning": False}


def parse(event: object) -> Request | Refusal:
    """The serial and new certificate id of a hook input, or MALFORMED."""
    if not isinstance(event, Mapping):
        return Refusal.MALFORMED
    parameters = event.get("parameters")
    certificate_id = event.get("certificateId")
    if not isinstance(parameters, Mapping) or not isinstance(certificate_id, str):
        return Refusal.MALFORMED
    serial = parameters.get(TemplateParameter.SERIAL_NUMBER.value)
    if not is_valid_serial(serial) or not CERTIFICATE_ID.fullmatch(certificate_id):
        return Refusal.MALFORMED
    # The device may not choose what the hook decides.
    decided = {p.value for p in TemplateParameter} - {TemplateParameter.SERIAL_NUMBER.value}
    if decided & set(parameters):
        return Refusal.MALFORMED
    return Request(serial=serial, certificate_id=certificate_id)


def decide(request: Request, record: Mapping[str, Any] | None, prefix: str) -> Grant | Refusal:
    """Allow a REGISTERED serial (or the retry of the device that provisioned it, with the
    same certificate); refuse an unknown, used or retired one, or a record that is not usable."""
    if record is None:
        return Refusal.UNKNOWN
    status = record.get(AllowListAttribute.STATUS.value)
    retry = (
        status == GatewayStatus.PROVISIONED.value
        and record.get(AllowListAttribute.CERTIFICATE_ID.value) == request.certificate_id
    )
    if status == GatewayStatus.RETIRED.value:
        return Refusal.RETIRED
    if status != GatewayStatus.REGISTERED.value and not retry:
        return Refusal.USED
    site = record.get(AllowListAttribute.SITE.value)
    line = record.get(AllowListAttribute.LINE.value)
    station = record.get(AllowListAttribute.STATION.value)
    ids = [site, line] + ([station] if station is not None else [])
    if not all(isinstance(i, str) and IDENTIFIER.fullmatch(i) for i in ids):
        return Refusal.BAD_RECORD
    return Grant(
        serial=request.serial,
        certificate_id=request.certificate_id,
        thing_name=gateway_thing_name(prefix, request.serial),
        site=site,
        line=line,
        thing_groups=gateway_thing_groups(prefix, site, line, station),
        retry=retry,
    )
