"""Given raw device payloads, when validated, then bad ones are rejected with a clear reason."""

import json
import math

import pytest
from pydantic import ValidationError

from mes_domain.contracts import (
    EPOCH_2000_MS,
    MAX_PAYLOAD_BYTES,
    InspectionResult,
    MachineEvent,
    PartCount,
    PayloadTooLarge,
    StateChange,
    TelemetryBatch,
    TopicMismatch,
    parse_station_message,
)
from mes_domain.topics import MessageKind, StationTopic

NOW_MS = 1_763_800_000_000  # fixed clock for the future-timestamp rule
CONTEXT = {"now_ms": NOW_MS}
TOPIC = StationTopic("berlin", "body-line-1", "press-01", MessageKind.TELEMETRY)


def telemetry(**overrides):
    payload = {
        "v": 1,
        "site": "berlin",
        "line": "body-line-1",
        "station": "press-01",
        "batch_id": "b-0001",
        "readings": [
            {
                "ts": NOW_MS - 1000,
                "tag": "ram_force",
                "value": 812.5,
                "unit": "kN",
                "quality": "GOOD",
            },
            {"ts": NOW_MS - 500, "tag": "program_number", "value": "P-17", "quality": "UNCERTAIN"},
            {"ts": NOW_MS, "tag": "fixture_clamped", "value": True, "quality": "GOOD"},
        ],
    }
    payload.update(overrides)
    return payload


def errors_of(model, payload):
    with pytest.raises(ValidationError) as info:
        model.model_validate(payload, context=CONTEXT)
    return info.value.errors()


def test_valid_batch_keeps_value_types():
    batch = TelemetryBatch.model_validate(telemetry(), context=CONTEXT)
    assert [type(r.value) for r in batch.readings] == [float, str, bool]
    assert batch.readings[0].unit == "kN"


@pytest.mark.parametrize("version", [2, 0, "1", True, None])
def test_unknown_version_is_rejected_clearly(version):
    (error,) = errors_of(TelemetryBatch, telemetry(v=version))
    assert error["loc"] == ("v",)
    assert "unsupported payload version" in error["msg"] and "v=1" in error["msg"]


@pytest.mark.parametrize("missing", ["v", "site", "line", "station", "batch_id", "readings"])
def test_missing_field_is_named(missing):
    payload = telemetry()
    del payload[missing]
    (error,) = errors_of(TelemetryBatch, payload)
    assert (error["type"], error["loc"]) == ("missing", (missing,))


def test_missing_reading_quality_is_named():
    payload = telemetry()
    del payload["readings"][1]["quality"]
    (error,) = errors_of(TelemetryBatch, payload)
    assert error["loc"] == ("readings", 1, "quality")


def test_empty_batch_is_rejected():
    assert errors_of(TelemetryBatch, telemetry(readings=[]))[0]["loc"] == ("readings",)


def test_unknown_field_is_rejected():
    assert errors_of(TelemetryBatch, telemetry(extra=1))[0]["type"] == "extra_forbidden"


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_reading_values_are_rejected(bad):
    payload = telemetry()
    payload["readings"][0]["value"] = bad
    errors = errors_of(TelemetryBatch, payload)
    assert errors and all(e["loc"][:3] == ("readings", 0, "value") for e in errors)


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity", "1e999"])
def test_non_finite_json_literals_are_rejected(literal):
    raw = json.dumps(telemetry()).replace("812.5", literal)
    with pytest.raises(ValidationError):
        TelemetryBatch.model_validate_json(raw, context=CONTEXT)


def test_non_finite_inspection_score_is_rejected():
    payload = inspection()
    payload["score"] = math.nan
    assert errors_of(InspectionResult, payload)[0]["loc"] == ("score",)


def test_an_error_result_carries_a_reason_and_a_verdict_carries_its_score():
    error = inspection(verdict="ERROR", score=None, threshold=None, reason="truncated JPEG")
    assert InspectionResult.model_validate(error, context=CONTEXT).reason == "truncated JPEG"
    (missing_reason,) = errors_of(InspectionResult, {**error, "reason": None})
    assert "needs a reason" in missing_reason["msg"]
    (missing_score,) = errors_of(InspectionResult, inspection(score=None))
    assert "DEFECT result needs a score and a threshold" in missing_score["msg"]


@pytest.mark.parametrize(
    ("ts", "reason"),
    [
        (EPOCH_2000_MS - 1, "before 2000-01-01"),
        (1_763_800_000, "before 2000-01-01"),  # seconds instead of milliseconds
        (NOW_MS + 15 * 60 * 1000 + 1, "more than 15 minutes in the future"),
    ],
)
def test_implausible_timestamps_are_rejected(ts, reason):
    (error,) = errors_of(StateChange, {"v": 1, "ts": ts, "state": "RUNNING"})
    assert error["loc"] == ("ts",) and reason in error["msg"]


def test_timestamp_at_the_skew_limit_is_accepted():
    change = StateChange.model_validate(
        {"v": 1, "ts": NOW_MS + 15 * 60 * 1000, "state": "IDLE"}, context=CONTEXT
    )
    assert change.ts == NOW_MS + 15 * 60 * 1000


def test_future_rule_uses_the_real_clock_without_context():
    with pytest.raises(ValidationError, match="future"):
        StateChange.model_validate({"v": 1, "ts": 4_102_444_800_000, "state": "IDLE"})


@pytest.mark.parametrize("field", ["site", "line", "station", "batch_id"])
@pytest.mark.parametrize("bad_id", ["a+b", "a#b", "a/b"])
def test_ids_with_topic_wildcards_are_rejected(field, bad_id):
    (error,) = errors_of(TelemetryBatch, telemetry(**{field: bad_id}))
    assert error["loc"] == (field,) and "ids become MQTT topic levels" in error["msg"]


def test_tag_with_wildcard_is_rejected():
    payload = telemetry()
    payload["readings"][0]["tag"] = "force/peak"
    assert errors_of(TelemetryBatch, payload)[0]["loc"] == ("readings", 0, "tag")


def test_unknown_state_and_negative_counts_are_rejected():
    assert errors_of(StateChange, {"v": 1, "ts": NOW_MS, "state": "BROKEN"})[0]["loc"] == ("state",)
    errors = errors_of(PartCount, {"v": 1, "ts": NOW_MS, "good": -1, "bad": 0})
    assert errors[0]["loc"] == ("good",)


def inspection(**overrides):
    payload = {
        "v": 1,
        "ts": NOW_MS,
        "part_id": "P-000123",
        "verdict": "DEFECT",
        "score": 0.91,
        "threshold": 0.5,
        "model_id": "surface-defects",
        "model_version": "3",
        "latency_ms": 41.2,
    }
    payload.update(overrides)
    return payload


def test_contracts_are_frozen():
    change = StateChange.model_validate({"v": 1, "ts": NOW_MS, "state": "SETUP"}, context=CONTEXT)
    with pytest.raises(ValidationError):
        change.state = "RUNNING"


@pytest.mark.parametrize(
    ("kind", "payload", "model"),
    [
        (
            MessageKind.STATE,
            {"v": 1, "ts": NOW_MS, "state": "UNPLANNED_STOP", "reason_code": "JAM"},
            StateChange,
        ),
        (
            MessageKind.COUNT,
            {"v": 1, "ts": NOW_MS, "good": 10, "bad": 1, "order_id": "4711"},
            PartCount,
        ),
        (MessageKind.QUALITY, inspection(), InspectionResult),
        (
            MessageKind.EVENT,
            {"v": 1, "ts": NOW_MS, "code": "E42", "severity": "ALARM"},
            MachineEvent,
        ),
    ],
)
def test_parse_station_message_picks_the_contract_of_the_topic_kind(kind, payload, model):
    topic = StationTopic("berlin", "body-line-1", "press-01", kind)
    message = parse_station_message(topic, json.dumps(payload), now_ms=NOW_MS)
    assert type(message) is model


def test_parse_station_message_rejects_a_batch_for_another_station():
    other = telemetry(station="press-02")
    with pytest.raises(TopicMismatch, match="press-02"):
        parse_station_message(TOPIC, json.dumps(other), now_ms=NOW_MS)


def test_parse_station_message_rejects_oversized_payloads_before_parsing():
    raw = b" " * (MAX_PAYLOAD_BYTES + 1)
    with pytest.raises(PayloadTooLarge, match="exceeds"):
        parse_station_message(TOPIC, raw, now_ms=NOW_MS)


def test_parse_station_message_rejects_invalid_json():
    with pytest.raises(ValidationError, match="Invalid JSON"):
        parse_station_message(TOPIC, b"{not json", now_ms=NOW_MS)
