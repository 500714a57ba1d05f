"""Versioned JSON payloads that devices and gateways publish on the MES topics.

Every payload carries ``"v": 1`` and epoch-millisecond UTC timestamps. Unknown versions,
missing fields, unknown fields, NaN or infinite numbers and implausible timestamps are
rejected with a message that says which field and why.
"""

from __future__ import annotations

import time
from enum import StrEnum
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    FiniteFloat,
    StrictBool,
    StrictInt,
    ValidationInfo,
    field_validator,
    model_validator,
)

from mes_domain.ids import Identifier
from mes_domain.topics import MessageKind, StationTopic

SCHEMA_VERSION = 1
EPOCH_2000_MS = 946_684_800_000
MAX_FUTURE_SKEW_MS = 15 * 60 * 1000
MAX_PAYLOAD_BYTES = 128 * 1024  # AWS IoT Core message size limit

NOW_MS_CONTEXT_KEY = "now_ms"  # validation context override of the clock, for replay and tests


def _now_ms(info: ValidationInfo) -> int:
    context = info.context or {}
    return int(context.get(NOW_MS_CONTEXT_KEY) or time.time() * 1000)


def check_since_2000(value: int) -> int:
    if value < EPOCH_2000_MS:
        raise ValueError(
            f"timestamp {value} is before 2000-01-01; timestamps are epoch milliseconds UTC"
        )
    return value


def check_observed_time(value: int, info: ValidationInfo) -> int:
    """An observation cannot lie in the future beyond clock skew."""
    if value > _now_ms(info) + MAX_FUTURE_SKEW_MS:
        raise ValueError(
            f"timestamp {value} is more than 15 minutes in the future; check the device clock"
        )
    return value


# When something happened: after 2000 and not beyond clock skew into the future.
EpochMillis = Annotated[int, AfterValidator(check_since_2000), AfterValidator(check_observed_time)]
# When something is planned to happen: after 2000, any time in the future.
ScheduledMillis = Annotated[int, AfterValidator(check_since_2000)]
ShortText = Annotated[str, Field(min_length=1, max_length=128)]
Description = Annotated[str, Field(max_length=1024)]


class StrictModel(BaseModel):
    """Frozen, rejects unknown fields and non-finite floats."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)


class Contract(StrictModel):
    """Base of every versioned payload."""

    v: int

    @field_validator("v", mode="before")
    @classmethod
    def _supported_version(cls, value: Any) -> int:
        if type(value) is not int or value != SCHEMA_VERSION:
            raise ValueError(
                f"unsupported payload version {value!r}; this platform reads v={SCHEMA_VERSION}"
            )
        return value


class ReadingQuality(StrEnum):
    GOOD = "GOOD"
    BAD = "BAD"
    UNCERTAIN = "UNCERTAIN"


class EquipmentState(StrEnum):
    RUNNING = "RUNNING"
    IDLE = "IDLE"
    PLANNED_STOP = "PLANNED_STOP"
    UNPLANNED_STOP = "UNPLANNED_STOP"
    SETUP = "SETUP"
    OFFLINE = "OFFLINE"


# ISO 22400 time elements: RUNNING is production time, these states are availability loss,
# PLANNED_STOP leaves planned busy time, and OFFLINE is a loss only inside the shift calendar.
AVAILABILITY_LOSS_STATES = frozenset(
    {EquipmentState.IDLE, EquipmentState.UNPLANNED_STOP, EquipmentState.SETUP}
)


class Verdict(StrEnum):
    GOOD = "GOOD"
    DEFECT = "DEFECT"
    ERROR = "ERROR"  # the image could not be inspected (corrupt, unreadable); ``reason`` says why


class Severity(StrEnum):
    INFO = "INFO"
    WARNING = "WARNING"
    ALARM = "ALARM"


ReadingValue = StrictBool | StrictInt | FiniteFloat | Annotated[str, Field(max_length=1024)]


class Reading(StrictModel):
    ts: EpochMillis
    tag: Identifier
    value: ReadingValue
    unit: Annotated[str, Field(max_length=32)] | None = None
    quality: ReadingQuality


class TelemetryBatch(Contract):
    """Many readings of one station in one message; ``batch_id`` de-duplicates redeliveries."""

    site: Identifier
    line: Identifier
    station: Identifier
    batch_id: Identifier
    readings: Annotated[list[Reading], Field(min_length=1)]


class StateChange(Contract):
    ts: EpochMillis
    state: EquipmentState
    reason_code: ShortText | None = None


class PartCount(Contract):
    """Parts finished since the station's previous count: a delta, never a running total."""

    ts: EpochMillis
    good: Annotated[int, Field(ge=0)]
    bad: Annotated[int, Field(ge=0)]
    order_id: ShortText | None = None


class InspectionResult(Contract):
    """A verdict on one part's image. GOOD and DEFECT carry the score and threshold; ERROR (no
    verdict could be reached) carries the reason instead, so no image goes unaccounted for."""

    ts: EpochMillis
    part_id: ShortText
    verdict: Verdict
    score: FiniteFloat | None = None
    threshold: FiniteFloat | None = None
    model_id: ShortText
    model_version: ShortText
    latency_ms: Annotated[float, Field(ge=0)]
    image_key: Annotated[str, Field(min_length=1, max_length=1024)] | None = None
    reason: Description | None = None

    @model_validator(mode="after")
    def _verdict_has_its_evidence(self) -> InspectionResult:
        if self.verdict is Verdict.ERROR:
            if not self.reason:
                raise ValueError("an ERROR result needs a reason")
        elif self.score is None or self.threshold is None:
            raise ValueError(f"a {self.verdict.value} result needs a score and a threshold")
        return self


class MachineEvent(Contract):
    """An alarm or notable event raised by a machine (kind ``event``)."""

    ts: EpochMillis
    code: ShortText
    severity: Severity
    message: Description | None = None


StationMessage = TelemetryBatch | StateChange | PartCount | InspectionResult | MachineEvent

CONTRACT_BY_KIND: dict[MessageKind, type[Contract]] = {
    MessageKind.TELEMETRY: TelemetryBatch,
    MessageKind.STATE: StateChange,
    MessageKind.COUNT: PartCount,
    MessageKind.QUALITY: InspectionResult,
    MessageKind.EVENT: MachineEvent,
}


class PayloadTooLarge(ValueError):
    pass


class TopicMismatch(ValueError):
    pass


def parse_station_message(
    topic: StationTopic, payload: bytes | str, *, now_ms: int | None = None
) -> StationMessage:
    """Validate a raw payload against the contract of the topic's kind.

    Raises ``PayloadTooLarge``, pydantic's ``ValidationError``, or ``TopicMismatch`` when a
    telemetry batch names another station than the topic it arrived on.
    """
    size = len(payload.encode() if isinstance(payload, str) else payload)
    if size > MAX_PAYLOAD_BYTES:
        raise PayloadTooLarge(f"payload of {size} bytes exceeds {MAX_PAYLOAD_BYTES} bytes")
    context = {NOW_MS_CONTEXT_KEY: now_ms} if now_ms is not None else None
    message = CONTRACT_BY_KIND[topic.kind].model_validate_json(payload, context=context)
    if isinstance(message, TelemetryBatch):
        named = (message.site, message.line, message.station)
        if named != (topic.site, topic.line, topic.station):
            raise TopicMismatch(
                f"batch {message.batch_id!r} names {'/'.join(named)} but arrived on {topic}"
            )
    return message  # type: ignore[return-value]


__all__ = [
    "CONTRACT_BY_KIND",
    "Contract",
    "EquipmentState",
    "InspectionResult",
    "MachineEvent",
    "PartCount",
    "PayloadTooLarge",
    "Reading",
    "ReadingQuality",
    "Severity",
    "StateChange",
    "StrictModel",
    "StationMessage",
    "TelemetryBatch",
    "TopicMismatch",
    "Verdict",
    "parse_station_message",
]
