"""The allow-list table (DynamoDB): read a serial's record, claim it for one certificate."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import ClientError

from lambdas.common.dynamodb import Table, conditional_check_failed, string_attributes
from mes_domain.fleet import AllowListAttribute as A
from mes_domain.fleet import GatewayStatus


class AllowList(Table):
    def get(self, serial: str) -> dict[str, Any] | None:
        """The serial's record as plain strings, or None. Strongly consistent: a serial just
        provisioned must read as used."""
        item = self._db.get_item(
            TableName=self.table, Key={A.SERIAL.value: {"S": serial}}, ConsistentRead=True
        ).get("Item")
        if item is None:
            return None
        return string_attributes(item)

    def claim(self, serial: str, certificate_id: str, thing_name: str) -> bool:
        """Mark the serial PROVISIONED for ``certificate_id`` if it is still REGISTERED (or
        already is, for that certificate). False if another request took it first."""
        now = datetime.now(UTC).isoformat(timespec="seconds")
        try:
            self._db.update_item(
                TableName=self.table,
                Key={A.SERIAL.value: {"S": serial}},
                UpdateExpression="SET #status = :provisioned, #cert = :cert, #thing = :thing, "
                "#at = if_not_exists(#at, :now)",
                ConditionExpression="#status = :registered OR "
                "(#status = :provisioned AND #cert = :cert)",
                ExpressionAttributeNames={
                    "#status": A.STATUS.value,
                    "#cert": A.CERTIFICATE_ID.value,
                    "#thing": A.THING_NAME.value,
                    "#at": A.PROVISIONED_AT.value,
                },
                ExpressionAttributeValues={
                    ":provisioned": {"S": GatewayStatus.PROVISIONED.value},
                    ":registered": {"S": GatewayStatus.REGISTERED.value},
                    ":cert": {"S": certificate_id},
                    ":thing": {"S": thing_name},
                    ":now": {"S": now},
                },
            )
        except ClientError as err:
            if conditional_check_failed(err):
                return False
            raise
        return True
