"""Writing records to a Timestream table, with refused records reported one by one."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from lambdas.common.aws import client
from mes_domain.contracts import PartCount, StateChange
from mes_domain.topics import StationTopic

MAX_RECORDS_PER_WRITE = 100  # Timestream WriteRecords accepts at most 100 records per call


def event_record(topic: StationTopic, event: StateChange | PartCount) -> dict[str, Any]:
    """The events table's record of a state change or part count: one multi-measure record
    named after the topic's kind (``state`` or ``count``), at the event's time. Writing the
    same record twice is idempotent in Timestream."""
    if isinstance(event, StateChange):
        measures = [("state", "VARCHAR", event.state.value)]
        optional = [("reason_code", event.reason_code)]
    else:
        measures = [("good", "BIGINT", str(event.good)), ("bad", "BIGINT", str(event.bad))]
        optional = [("order_id", event.order_id)]
    measures += [(name, "VARCHAR", value) for name, value in optional if value is not None]
    return {
        "Dimensions": [
            {"Name": "site", "Value": topic.site},
            {"Name": "line", "Value": topic.line},
            {"Name": "station", "Value": topic.station},
        ],
        "MeasureName": topic.kind.value,
        "MeasureValueType": "MULTI",
        "MeasureValues": [{"Name": n, "Value": v, "Type": t} for n, t, v in measures],
        "Time": str(event.ts),
        "TimeUnit": "MILLISECONDS",
    }


@dataclass(frozen=True, slots=True)
class Rejection:
    index: int  # position of the record in the WriteRecords call
    reason: str


class WriteFailed(Exception):
    """A call that failed as a whole (after retries): the caller retries its input later."""


class TimestreamRecordWriter:
    def __init__(self, database: str, table: str, timestream: Any | None = None) -> None:
        self._database = database
        self._table = table
        self._client = timestream

    def write(self, records: list[dict]) -> list[Rejection]:
        """Write up to 100 records; return the ones Timestream rejected, with its reasons."""
        timestream = self._client or client("timestream-write")
        try:
            timestream.write_records(
                DatabaseName=self._database, TableName=self._table, Records=records
            )
        except ClientError as err:
            if err.response.get("Error", {}).get("Code") == "RejectedRecordsException":
                return [
                    Rejection(r["RecordIndex"], r.get("Reason", "no reason given"))
                    for r in err.response.get("RejectedRecords", [])
                ]
            raise WriteFailed(str(err)) from err
        except BotoCoreError as err:
            raise WriteFailed(str(err)) from err
        return []
