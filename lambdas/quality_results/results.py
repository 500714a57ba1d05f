"""Pure logic of the quality-results consumer: what one inspection result becomes.

The quality rule adds the MQTT topic to the device's payload (``TOPIC_FIELD``), because the
payload itself does not name its station. A GOOD or DEFECT result counts once per station and
part (``part_id``), in the KPI window that holds its timestamp, and becomes a part count of one
at its timestamp for the KPI engine and SiteWise; a DEFECT also becomes a non-conformance report
for PLM. An ERROR result reached no verdict: it is recorded, but counts neither way and raises
no non-conformance.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from lambdas.quality_results.contract import TOPIC_FIELD
from mes_domain.contracts import InspectionResult, PartCount, Verdict, parse_station_message
from mes_domain.enterprise import DefectSource, NonConformanceReport, SourceSystem
from mes_domain.topics import MessageKind, StationTopic, TopicError, parse_topic

VISION_DEFECT_CODE = "VISION_ANOMALY"
MINUTE_MS = 60_000


class MalformedResult(ValueError):
    """A message that is not an inspection result of a known station."""


@dataclass(frozen=True, slots=True)
class StationResult:
    topic: StationTopic
    result: InspectionResult

    @property
    def station_key(self) -> str:
        return f"{self.topic.site}/{self.topic.line}/{self.topic.station}"

    @property
    def counts(self) -> bool:
        return self.result.verdict is not Verdict.ERROR

    def part_count(self) -> PartCount:
        """One good or one bad part at the result's time: the count the KPI engine reads."""
        good = self.result.verdict is Verdict.GOOD
        return PartCount(v=1, ts=self.result.ts, good=int(good), bad=int(not good))

    @property
    def count_topic(self) -> StationTopic:
        return StationTopic(self.topic.site, self.topic.line, self.topic.station, MessageKind.COUNT)


def parse_message(body: str, *, now_ms: int | None = None) -> StationResult:
    """The station and result of one queue message; ``MalformedResult`` says what is wrong."""
    try:
        document = json.loads(body)
    except json.JSONDecodeError as err:
        raise MalformedResult(f"not JSON: {err}") from None
    if not isinstance(document, dict) or not isinstance(document.get(TOPIC_FIELD), str):
        raise MalformedResult(f"no {TOPIC_FIELD!r}: did it come through the quality rule?")
    raw_topic = document.pop(TOPIC_FIELD)
    try:
        topic = parse_topic(raw_topic).topic
    except TopicError as err:
        raise MalformedResult(str(err)) from None
    if topic.kind is not MessageKind.QUALITY:
        raise MalformedResult(f"topic {raw_topic!r} is not a quality topic")
    try:
        result = parse_station_message(topic, json.dumps(document), now_ms=now_ms)
    except ValueError as err:  # pydantic's ValidationError and PayloadTooLarge among them
        raise MalformedResult(str(err)) from None
    assert isinstance(result, InspectionResult)
    return StationResult(topic, result)


def window_start_ms(ts_ms: int, window_minutes: int) -> int:
    """The start of the KPI window holding ``ts_ms``; windows are aligned to the epoch."""
    window_ms = window_minutes * MINUTE_MS
    return ts_ms - ts_ms % window_ms


def ncr_id(item: StationResult) -> str:
    """Deterministic, so a report published twice is recognisably the same report."""
    return f"NCR-{item.topic.site}-{item.topic.line}-{item.topic.station}-{item.result.part_id}"


def nonconformance(item: StationResult, *, issued_at_ms: int) -> NonConformanceReport:
    result = item.result
    description = (
        f"Vision model {result.model_id} v{result.model_version} scored {result.score:.4g} "
        f"above its threshold {result.threshold:.4g}"
    )
    ncr = ncr_id(item)
    return NonConformanceReport(
        v=1,
        source_system=SourceSystem.MES,
        document_id=ncr,
        revision=0,
        issued_at=issued_at_ms,
        ncr_id=ncr,
        site=item.topic.site,
        line=item.topic.line,
        station=item.topic.station,
        part_id=result.part_id,
        defect_code=VISION_DEFECT_CODE,
        description=description,
        detected_at=result.ts,
        source=DefectSource.VISION,
        inspection=result,
    )
