"""DynamoDB and EventBridge behind the quality-results logic.

One transaction writes the inspection record (conditional on the part being new at its
station), adds the verdict to the window's counts and stores a DEFECT's non-conformance, so a
redelivered message changes nothing. The report goes to EventBridge after the transaction and
is flagged as published; a redelivery publishes a report whose flag is still unset, so a
failure between the two loses no report (a consumer may see one twice, with the same ncr_id).
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

from botocore.exceptions import ClientError

from lambdas.common.aws import client
from lambdas.quality_results.results import StationResult, window_start_ms
from mes_domain.contracts import Verdict
from mes_domain.enterprise import NonConformanceReport

EVENT_SOURCE = "mes.quality"
NONCONFORMANCE_DETAIL_TYPE = "NonConformance"


class PublishFailed(RuntimeError):
    pass


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
