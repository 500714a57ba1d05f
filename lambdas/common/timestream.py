"""Writing records to a Timestream table, with refused records reported one by one."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from lambdas.common.aws import client
from mes_domain.contracts import PartCount, StateChange
from mes_domain.topics import StationTopic

# Timestream for LiveAnalytics service limits (Developer Guide, "Quotas", "Service limits"):
MAX_RECORDS_PER_WRITE = 100  # records per WriteRecords request
MAX_MEASURES_PER_RECORD = 256  # measures per multi-measure record
MAX_MEASURE_VALUE_BYTES = 2048  # size of the measure values of one multi-measure record

# Size of a measure value (Developer Guide, "Metering and pricing", "Writes").
_FIXED_VALUE_BYTES = {"BOOLEAN": 1, "BIGINT": 8, "DOUBLE": 8, "TIMESTAMP": 8}


def measure_value_bytes(value_type: str, value: str) -> int:
    """1 byte for a boolean, 8 for bigint, double and timestamp, UTF-8 length for varchar."""
    return _FIXED_VALUE_BYTES.get(value_type) or len(value.encode())


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
