"""The services' AWS adapters, the only module under ``services/`` that touches the AWS SDK:
SigV4 signing of the sync requests to API Gateway, the MSK IAM token for Kafka, the RDS IAM
database authentication token, and EventBridge ``PutEvents``, and reads of the enterprise
interface's DynamoDB document store.

Credentials come from botocore's default chain: the task role in the cloud and, on a Greengrass
core, the token exchange service (``aws.greengrass.TokenExchangeService`` sets
``AWS_CONTAINER_CREDENTIALS_FULL_URI`` and ``AWS_CONTAINER_AUTHORIZATION_TOKEN``, which the SDK's
container provider reads; Greengrass developer guide, "Token exchange service"). On EKS, Pod
Identity sets ``AWS_CONTAINER_CREDENTIALS_FULL_URI`` and ``AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE``,
which the same provider reads from botocore 1.34.41 on (EKS user guide, "Use pod identity with
the AWS SDK").
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Sequence
from decimal import Decimal
from typing import Any

import httpx
from botocore.auth import SigV4Auth as BotocoreSigV4
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials
from botocore.session import Session as BotocoreSession

# botocore's standard retry mode backs off exponentially, with jitter, on throttling.
RETRY_CONFIG = Config(retries={"mode": "standard", "max_attempts": 8})
EXECUTE_API = "execute-api"
# PutEvents takes at most 10 entries per request (EventBridge API reference, PutEvents:
# "Entries ... Array Members: Minimum number of 1 item. Maximum number of 10 items").
MAX_PUT_EVENTS_ENTRIES = 10


def default_credentials() -> Credentials:
    credentials = BotocoreSession().get_credentials()
    if credentials is None:
        raise RuntimeError("no AWS credentials in the default chain (environment, role, TES)")
    return credentials


class SigV4Auth(httpx.Auth):
    """Signs each httpx request with SigV4 for API Gateway's IAM authorization
    (``execute-api``). Only the host, the content type and the body are signed: headers a proxy
    may add or rewrite (user agent, connection, encoding) would break the signature."""

    requires_request_body = True

    def __init__(
        self,
        region: str,
        service: str = EXECUTE_API,
        credentials: Callable[[], Credentials] = default_credentials,
    ) -> None:
        self.region = region
        self.service = service
        self._credentials = credentials
        self._resolved: Credentials | None = None

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        if self._resolved is None:
            self._resolved = self._credentials()
        # Refreshable credentials (TES, roles) renew themselves when read frozen.
        frozen = self._resolved.get_frozen_credentials()
        headers = {"host": request.url.netloc.decode("ascii")}
        if "content-type" in request.headers:
            headers["content-type"] = request.headers["content-type"]
        signed = AWSRequest(
            method=request.method, url=str(request.url), data=request.content, headers=headers
        )
        BotocoreSigV4(frozen, self.service, self.region).add_auth(signed)
        for name in ("Authorization", "X-Amz-Date", "X-Amz-Security-Token"):
            if name in signed.headers:
                request.headers[name] = signed.headers[name]
        yield request


def msk_oauth_callback(
    region: str, generate_token: Callable[[str], tuple[str, int]] | None = None
) -> Callable[[Any], tuple[str, float]]:
    """confluent-kafka's ``oauth_cb`` for MSK IAM: a SigV4-signed token from the MSK signer.

    The signer returns ``(token, expiry in milliseconds since the epoch)``
    (aws-msk-iam-sasl-signer-python); confluent-kafka wants ``(token, expiry_time)`` with the
    expiry "in seconds since the epoch as a floating point number" (confluent-kafka-python docs,
    ``oauth_cb``)."""
    if generate_token is None:
        from aws_msk_iam_sasl_signer import MSKAuthTokenProvider

        generate_token = MSKAuthTokenProvider.generate_auth_token

    def oauth_cb(_oauth_config: Any) -> tuple[str, float]:
        token, expiry_ms = generate_token(region)
        return token, expiry_ms / 1000

    return oauth_cb


class RdsAuthTokens:
    """The password of a connection with RDS IAM database authentication, as the engine's
    ``(host, port, user) -> str`` provider: ``generate_db_auth_token``, a SigV4-presigned
    ``host:port/?Action=connect&DBUser=<user>&...`` signed locally (no network call).

    A token lets a connection in for 15 minutes after it is made; the connection it opened
    stays open past that ("Each token has a lifetime of 15 minutes ... The token is only used
    for authentication and doesn't affect the session after it is established": RDS user guide,
    "IAM database authentication"), so a fresh one per new connection is all it takes. The same
    page suits IAM authentication to fewer than 200 new connections a second: pooled engines
    open a handful."""

    def __init__(self, region: str, client: Any = None) -> None:
        self.region = region
        self._client = client

    @property
    def client(self) -> Any:
        if self._client is None:
            import boto3

            self._client = boto3.client("rds", region_name=self.region, config=RETRY_CONFIG)
        return self._client

    def __call__(self, host: str, port: int, user: str) -> str:
        return self.client.generate_db_auth_token(
            DBHostname=host, Port=port, DBUsername=user, Region=self.region
        )


class EventBridgePublisher:
    """``BusPublisher`` on EventBridge: one ``PutEvents`` call for up to 10 entries."""

    max_entries = MAX_PUT_EVENTS_ENTRIES

    def __init__(self, client: Any = None) -> None:
        self._client = client

    @property
    def client(self) -> Any:
        # Created on first use, never at import time, so moto intercepts it in tests.
        if self._client is None:
            import boto3

            self._client = boto3.client("events", config=RETRY_CONFIG)
        return self._client

    def put(self, entries: Sequence[dict[str, Any]]) -> list[str | None]:
        """Each entry's error code, ``None`` where EventBridge accepted it. PutEvents answers
        per entry and in request order; a failed entry carries ``ErrorCode`` and must be sent
        again (EventBridge user guide, "Sending events with PutEvents": "Handling failures")."""
        if not 0 < len(entries) <= self.max_entries:
            raise ValueError(f"PutEvents takes 1 to {self.max_entries} entries, not {len(entries)}")
        answer = self.client.put_events(Entries=list(entries))
        results = answer.get("Entries", [])
        if answer.get("FailedEntryCount", 0) == 0 and len(results) == len(entries):
            return [None] * len(entries)
        errors: list[str | None] = []
        for index in range(len(entries)):
            result = results[index] if index < len(results) else {"ErrorCode": "NoResult"}
            errors.append(None if "EventId" in result else result.get("ErrorCode") or "Unknown")
        return errors


class DynamoDbStore:
    """The enterprise interface's document store (``mes_domain.enterprise``'s store keys): one
    item per business object, read consistently so a document just stored is found."""

    def __init__(self, client: Any = None) -> None:
        self._client = client

    @property
    def client(self) -> Any:
        if self._client is None:
            import boto3

            self._client = boto3.resource("dynamodb", config=RETRY_CONFIG).meta.client
        return self._client

    def get(self, table: str, key: tuple[str, str]) -> dict[str, Any] | None:
        """The item's attributes as plain JSON values (numbers as int or float), or None."""
        answer = self.client.get_item(
            TableName=table, Key={"pk": key[0], "sk": key[1]}, ConsistentRead=True
        )
        item = answer.get("Item")
        return None if item is None else _plain(item)


def _plain(value: Any) -> Any:
    """DynamoDB's Decimals as int where whole, else float; the documents' models take both."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value
