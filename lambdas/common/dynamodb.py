"""What the functions' DynamoDB table adapters share."""

from __future__ import annotations

from typing import Any

from botocore.exceptions import ClientError

from lambdas.common.aws import client


class Table:
    """A table by name; ``dynamodb`` (a boto3 client) is created on first use if not given."""

    def __init__(self, table: str, dynamodb: Any | None = None) -> None:
        self.table = table
        self._client = dynamodb

    @property
    def _db(self) -> Any:
        return self._client or client("dynamodb")


def string_attributes(item: dict[str, Any]) -> dict[str, str]:
    """The item's string attributes as plain strings; attributes of other types left out."""
    return {key: value["S"] for key, value in item.items() if "S" in value}


def conditional_check_failed(err: ClientError) -> bool:
    """True when a conditional write was refused because its condition did not hold."""
    return err.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException"
