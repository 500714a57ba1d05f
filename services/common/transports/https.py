"""Sync over HTTPS: the edge pushes to the cloud's ``POST /sync/inbox`` and pulls from its
``GET /sync/outbox``, in AWS through API Gateway with IAM authorization (``aws.SigV4Auth``)."""

from __future__ import annotations

from typing import Any

import httpx
from pydantic import TypeAdapter, ValidationError

from mes_domain.production import SyncAck, SyncBatch, SyncMessage
from services.common.sync import TransportRejected, TransportUnavailable

# API Gateway gives up on its integration after 29 s by default (API Gateway developer guide,
# "Quotas for configuring and running a REST API": integration timeout 50 ms - 29 s) and answers
# 504; waiting a little longer lets that answer arrive instead of a client-side timeout.
DEFAULT_TIMEOUT_S = 30.0
CONNECT_TIMEOUT_S = 10.0
_MESSAGES = TypeAdapter(list[SyncMessage])


def _detail(response: httpx.Response) -> Any:
    try:
        body = response.json()
    except ValueError:
        return response.text[:500]
    if isinstance(body, dict):
        return body.get("detail", body.get("message", body))
    return body


class HttpsTransport:
    """``SyncTransport`` against a peer's base URL (``https://<api>/<stage>`` in AWS)."""

    def __init__(
        self,
        base_url: str,
        auth: httpx.Auth | None = None,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self._client = httpx.Client(
            base_url=base_url,
            auth=auth,
            timeout=httpx.Timeout(timeout_s, connect=min(CONNECT_TIMEOUT_S, timeout_s)),
            transport=transport,
            headers={"accept": "application/json"},
        )

    def send(self, batch: SyncBatch) -> SyncAck:
        response = self._request(
            "POST",
            "/sync/inbox",
            content=batch.model_dump_json(),
            headers={"content-type": "application/json"},
        )
        return self._parse(response, SyncAck.model_validate_json)

    def fetch(self, origin: str, for_instance: str, after: int, limit: int) -> list[SyncMessage]:
        response = self._request(
            "GET", "/sync/outbox", params={"for": for_instance, "after": after, "limit": limit}
        )
        messages = self._parse(response, _MESSAGES.validate_json)
        return [m for m in messages if m.origin == origin]

    def commit(self, ack: SyncAck) -> None:
        """Nothing to do: the next fetch says how far this instance got."""

    def close(self) -> None:
        self._client.close()

    def _request(self, method: str, path: str, **options: Any) -> httpx.Response:
        try:
            response = self._client.request(method, path, **options)
        except httpx.TimeoutException as exc:
            raise TransportUnavailable("timeout", str(exc)) from exc
        except httpx.ConnectError as exc:
            raise TransportUnavailable("cannot connect", str(exc)) from exc
        except httpx.TransportError as exc:  # reset, closed mid-response, protocol errors
            raise TransportUnavailable("connection lost", str(exc)) from exc
        status = response.status_code
        if status == 429 or status >= 500:
            raise TransportUnavailable(f"HTTP {status}", str(_detail(response)))
        if status >= 400:
            raise TransportRejected(status, _detail(response))
        return response

    @staticmethod
    def _parse(response: httpx.Response, parse: Any) -> Any:
        try:
            return parse(response.content)
        except ValidationError as exc:
            # Not the peer's sync API answering (a captive proxy, a wrong base URL).
            raise TransportUnavailable("invalid response", str(exc)[:500]) from exc
