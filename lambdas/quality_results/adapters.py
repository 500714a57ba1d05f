"""DynamoDB, EventBridge, Timestream and SiteWise behind the quality-results logic.

One transaction writes the inspection record (conditional on the part being new at its
station), adds the verdict to the window's counts and stores a DEFECT's non-conformance, so a
redelivered message changes nothing. The report goes to EventBridge after the transaction and
is flagged as published; a redelivery publishes a report whose flag is still unset, so a
failure between the two loses no report (a consumer may see one twice, with the same ncr_id).

The part count of a counted result goes to the KPI engine's events table and to the station's
SiteWise count alias at the result's timestamp. Both keep one value per time, so sending the
stored result's count again after a redelivery is idempotent: nothing is lost or doubled.

Every result received also goes to the bus as a data lake row (``mes_domain.lake``), at least
once: a redelivery sends it again, and the lake's queries keep one row per part and time.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

from botocore.exceptions import ClientError

from lambdas.common.aws import client
from lambdas.common.timestream import TimestreamRecordWriter, event_record
from lambdas.quality_results.results import StationResult, window_start_ms
from mes_domain import lake
from mes_domain.contracts import InspectionResult, Verdict
from mes_domain.enterprise import NonConformanceReport
from mes_domain.sitewise import BAD_COUNT, GOOD_COUNT, property_alias

EVENT_SOURCE = "mes.quality"
NONCONFORMANCE_DETAIL_TYPE = "NonConformance"


class PublishFailed(RuntimeError):
    pass


class CountFailed(RuntimeError):
    """A part count the store or SiteWise refused; the message is retried, then dead-lettered."""


def _attribute(value: Any) -> dict:
    if isinstance(value, str):
        return {"S": value}
    if isinstance(value, bool):
        return {"BOOL": value}
    if isinstance(value, int | float | Decimal):
        return {"N": str(value)}
    raise TypeError(f"no DynamoDB type for {value!r}")


def _item(fields: dict[str, Any]) -> dict[str, dict]:
    return {name: _attribute(value) for name, value in fields.items() if value is not None}


class QualityStore:
    def __init__(self, records_table: str, counts_table: str, nonconformances_table: str):
        self.records_table = records_table
        self.counts_table = counts_table
        self.nonconformances_table = nonconformances_table

    def record(
        self, item: StationResult, window_minutes: int, report: NonConformanceReport | None
    ) -> bool:
        """Write the result once; False when this station already has a result for the part."""
        result = item.result
        fields = result.model_dump(mode="json", exclude={"v"})
        operations: list[dict] = [
            {
                "Put": {
                    "TableName": self.records_table,
                    "Item": _item({"station": item.station_key, **fields}),
                    "ConditionExpression": "attribute_not_exists(part_id)",
                }
            }
        ]
        if item.counts:
            good = int(result.verdict is Verdict.GOOD)
            operations.append(
                {
                    "Update": {
                        "TableName": self.counts_table,
                        "Key": _item(
                            {
                                "station": item.station_key,
                                "window_start": window_start_ms(result.ts, window_minutes),
                            }
                        ),
                        "UpdateExpression": "ADD good_parts :good, bad_parts :bad",
                        "ExpressionAttributeValues": {
                            ":good": _attribute(good),
                            ":bad": _attribute(1 - good),
                        },
                    }
                }
            )
        if report is not None:
            operations.append(
                {
                    "Put": {
                        "TableName": self.nonconformances_table,
                        "Item": _item(
                            {
                                "ncr_id": report.ncr_id,
                                "station": item.station_key,
                                "part_id": result.part_id,
                                "detected_at": result.ts,
                                "score": result.score,
                                "model_id": result.model_id,
                                "model_version": result.model_version,
                                "image_key": result.image_key,
                                "report": report.model_dump_json(),
                                "published": False,
                            }
                        ),
                        "ConditionExpression": "attribute_not_exists(ncr_id)",
                    }
                }
            )
        try:
            client("dynamodb").transact_write_items(TransactItems=operations)
        except ClientError as err:
            reasons = err.response.get("CancellationReasons", [])
            if any(reason.get("Code") == "ConditionalCheckFailed" for reason in reasons):
                return False
            raise
        return True

    def stored_result(self, item: StationResult) -> StationResult:
        """The result first recorded for the item's station and part."""
        found = client("dynamodb").get_item(
            TableName=self.records_table,
            Key={"station": {"S": item.station_key}, "part_id": {"S": item.result.part_id}},
            ConsistentRead=True,
        )["Item"]
        fields = {
            name: (value["S"] if "S" in value else float(value["N"]))
            for name, value in found.items()
            if name != "station"
        }
        fields["ts"] = int(fields["ts"])
        result = InspectionResult.model_validate({"v": 1, **fields})
        return StationResult(item.topic, result)

    def unpublished_report(self, ncr_id: str) -> NonConformanceReport | None:
        found = client("dynamodb").get_item(
            TableName=self.nonconformances_table,
            Key={"ncr_id": {"S": ncr_id}},
            ConsistentRead=True,
        )
        item = found.get("Item")
        if item is None or item["published"]["BOOL"]:
            return None
        return NonConformanceReport.model_validate_json(item["report"]["S"])

    def mark_published(self, ncr_id: str) -> None:
        client("dynamodb").update_item(
            TableName=self.nonconformances_table,
            Key={"ncr_id": {"S": ncr_id}},
            UpdateExpression="SET published = :yes",
            ExpressionAttributeValues={":yes": {"BOOL": True}},
        )


def publish_nonconformance(event_bus_name: str, report: NonConformanceReport) -> None:
    response = client("events").put_events(
        Entries=[
            {
                "Source": EVENT_SOURCE,
                "DetailType": NONCONFORMANCE_DETAIL_TYPE,
                "Detail": json.dumps(
                    {"schema_version": report.v, **report.model_dump(mode="json")}
                ),
                "EventBusName": event_bus_name,
            }
        ]
    )
    if response.get("FailedEntryCount"):
        entry = response["Entries"][0]
        raise PublishFailed(
            f"{report.ncr_id}: {entry.get('ErrorCode')} {entry.get('ErrorMessage')}"
        )


def publish_inspection(event_bus_name: str, item: StationResult) -> None:
    """The result as a row of the lake's inspection_results table, with its topic's station."""
    topic = item.topic
    row = lake.station_row(
        lake.INSPECTION_RESULTS, item.result, topic.site, topic.line, topic.station
    )
    response = client("events").put_events(
        Entries=[
            {
                "Source": lake.INSPECTION_EVENT_SOURCE,
                "DetailType": lake.INSPECTION_EVENT_DETAIL_TYPE,
                "Detail": json.dumps(row, separators=(",", ":")),
                "EventBusName": event_bus_name,
            }
        ]
    )
    if response.get("FailedEntryCount"):
        entry = response["Entries"][0]
        raise PublishFailed(
            f"{item.station_key} {item.result.part_id}: "
            f"{entry.get('ErrorCode')} {entry.get('ErrorMessage')}"
        )


class CountSinks:
    """Where a counted result's part count goes: the KPI engine's events and SiteWise."""

    def __init__(self, database: str, events_table: str) -> None:
        self.events = TimestreamRecordWriter(database, events_table)

    def add(self, item: StationResult) -> None:
        count = item.part_count()
        rejected = self.events.write([event_record(item.count_topic, count)])
        if rejected:
            raise CountFailed(f"events table refused {item.result.part_id}: {rejected[0].reason}")
        topic = item.topic
        seconds, millis = divmod(count.ts, 1000)
        # Only the alias that counts: a GOOD and a DEFECT at one instant never overwrite.
        name, value = (GOOD_COUNT, count.good) if count.good else (BAD_COUNT, count.bad)
        entries = [
            {
                "entryId": name,
                "propertyAlias": property_alias(topic.site, topic.line, topic.station, name),
                "propertyValues": [
                    {
                        "value": {"integerValue": value},
                        "timestamp": {"timeInSeconds": seconds, "offsetInNanos": millis * 10**6},
                        "quality": "GOOD",
                    }
                ],
            }
        ]
        response = client("iotsitewise").batch_put_asset_property_value(entries=entries)
        if response.get("errorEntries"):
            raise CountFailed(f"SiteWise refused {item.result.part_id}: {response['errorEntries']}")
