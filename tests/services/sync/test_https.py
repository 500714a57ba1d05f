"""Sync over HTTPS at its boundary: the cloud's ``sync_router`` on a real uvicorn server on a
loopback port, each instance on its own PostgreSQL database, the edge's ``SyncWorker`` with the
``HttpsTransport``. Plain HTTP on 127.0.0.1 stands in for API Gateway's HTTPS."""

from __future__ import annotations

import datetime
import logging
import threading
import time
from collections.abc import Iterator
from unittest import mock

import httpx
import pytest
from botocore.credentials import Credentials

from mes_domain.production import SyncBatch, SyncMessage
from services.common.app import create_app
from services.common.aws import SigV4Auth
from services.common.db import now_ms
from services.common.sync import (
    SyncWorker,
    TransportRejected,
    TransportUnavailable,
    sync_router,
)
from services.common.transports import make_transport
from services.common.transports.https import HttpsTransport
from services.common.transports.kafka import KafkaTransport
from tests.services.sync.conftest import HANDLERS, NOTE, TABLES, Instance, UvicornThread

EDGE = "berlin"
CLOUD = "cloud"


@pytest.fixture
def cloud(make_instance) -> Instance:
    return make_instance(CLOUD)


@pytest.fixture
def edge(make_instance) -> Instance:
    return make_instance(EDGE)


@pytest.fixture
def server(cloud: Instance) -> Iterator[UvicornThread]:
    app = create_app(
        "sync test",
        "0",
        [sync_router(cloud.sessions, TABLES, CLOUD, HANDLERS, peers=[EDGE, "munich"])],
        lambda: True,
    )
    running = UvicornThread(app)
    running.start()
    yield running
    running.stop()


def worker(edge: Instance, transport, **options) -> SyncWorker:
    return SyncWorker(edge.sessions, TABLES, EDGE, CLOUD, transport, HANDLERS, **options)


def note_message(origin: str, sequence: int) -> dict:
    return SyncMessage(
        origin=origin,
        sequence=sequence,
        kind=NOTE,
        payload={"text": f"{origin}-{sequence}"},
        created_at=now_ms(),
    ).model_dump(mode="json")


def sequences(instance: Instance, origin: str) -> list[int]:
    return [seq for from_, seq, _ in instance.notes() if from_ == origin]


def test_the_router_applies_batches_hands_out_messages_and_names_bad_fields(
    cloud: Instance, server: UvicornThread
) -> None:
    cloud.enqueue_notes(EDGE, ["a", "b", "c"])
    with httpx.Client(base_url=server.url) as client:
        applied = client.post(
            "/sync/inbox", json={"messages": [note_message(EDGE, n) for n in (1, 2)]}
        )
        mixed = client.post(
            "/sync/inbox", json={"messages": [note_message(EDGE, 3), note_message("munich", 4)]}
        )
        no_time = client.post(
            "/sync/inbox",
            json={
                "messages": [{k: v for k, v in note_message(EDGE, 3).items() if k != "created_at"}]
            },
        )
        own = client.post("/sync/inbox", json={"messages": [note_message(CLOUD, 1)]})
        stranger = client.post("/sync/inbox", json={"messages": [note_message("paris", 1)]})
        first_two = client.get("/sync/outbox", params={"for": EDGE, "after": 0, "limit": 2})
        rest = client.get("/sync/outbox", params={"for": EDGE, "after": 2})
        nameless = client.get("/sync/outbox", params={"after": 0})

    assert (applied.status_code, applied.json()) == (200, {"origin": EDGE, "applied_through": 2})
    assert mixed.status_code == 422 and mixed.json()["detail"][0]["field"] == "messages"
    assert no_time.status_code == 422
    assert no_time.json()["detail"][0]["field"] == "messages.0.created_at"
    assert own.status_code == 422 and own.json()["detail"][0]["field"] == "messages.0.origin"
    assert stranger.status_code == 422
    assert stranger.json()["detail"][0]["field"] == "messages.0.origin"
    assert [m["payload"]["text"] for m in first_two.json()] == ["a", "b"]
    assert [(m["origin"], m["sequence"]) for m in rest.json()] == [(CLOUD, 3)]
    assert nameless.status_code == 422 and nameless.json()["detail"][0]["field"] == "for"
    # Only the valid batch was applied; ``after=2`` acknowledged the first two.
    assert sequences(cloud, EDGE) == [1, 2]
    assert cloud.unsent(EDGE) == 1


def test_the_worker_pushes_and_pulls_in_batches(
    edge: Instance, cloud: Instance, server: UvicornThread
) -> None:
    edge.enqueue_notes(CLOUD, [f"e{n}" for n in range(7)])
    cloud.enqueue_notes(EDGE, [f"c{n}" for n in range(4)])
    sync = worker(edge, HttpsTransport(server.url), batch_size=3)

    first = sync.step()
    second = sync.step()

    assert (first.pushed, first.applied) == (7, 4)
    assert (second.pushed, second.applied) == (0, 0)
    assert sequences(cloud, EDGE) == list(range(1, 8))
    assert sequences(edge, CLOUD) == [1, 2, 3, 4]
    assert (edge.unsent(CLOUD), cloud.unsent(EDGE)) == (0, 0)


class CountingTransport:
    def __init__(self, inner: HttpsTransport) -> None:
        self.inner = inner
        self.failures = 0

    def send(self, batch):
        return self._count(self.inner.send, batch)

    def fetch(self, *args):
        return self._count(self.inner.fetch, *args)

    def commit(self, ack) -> None:
        self.inner.commit(ack)

    def _count(self, call, *args):
        try:
            return call(*args)
        except TransportUnavailable:
            self.failures += 1
            raise


def wait_until(condition, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_an_edge_offline_backs_off_keeps_working_and_catches_up_without_loss_or_doubles(
    edge: Instance, cloud: Instance, server: UvicornThread, caplog: pytest.LogCaptureFixture
) -> None:
    transport = CountingTransport(HttpsTransport(server.url, timeout_s=2))
    sync = worker(
        edge, transport, batch_size=4, interval_s=0.02, initial_backoff_s=0.02, max_backoff_s=0.1
    )
    edge.enqueue_notes(CLOUD, [f"e{n}" for n in range(5)])
    cloud.enqueue_notes(EDGE, [f"c{n}" for n in range(3)])
    sync.step()

    server.stop()
    with pytest.raises(TransportUnavailable) as down:
        transport.inner.send(SyncBatch(messages=[SyncMessage(**note_message(EDGE, 6))]))
    assert down.value.reason == "cannot connect"

    stop = threading.Event()
    running = threading.Thread(target=sync.run, args=(stop,))
    with caplog.at_level(logging.INFO, logger="services.sync"):
        running.start()
        # The link is down; both instances go on writing their outboxes.
        edge.enqueue_notes(CLOUD, [f"offline-e{n}" for n in range(6)])
        cloud.enqueue_notes(EDGE, [f"offline-c{n}" for n in range(4)])
        wait_until(lambda: transport.failures >= 4)
        server.start()
        wait_until(lambda: edge.unsent(CLOUD) == 0 and edge.cursor(CLOUD) == 7)
        stop.set()
        running.join(timeout=10)

    assert sequences(cloud, EDGE) == list(range(1, 12))  # 5 + 6, each once, in order
    assert sequences(edge, CLOUD) == list(range(1, 8))  # 3 + 4
    assert len(cloud.notes()) == 11 and len(edge.notes()) == 7
    failed = [r for r in caplog.records if "failed (cannot connect)" in r.getMessage()]
    recovered = [r for r in caplog.records if "works again" in r.getMessage()]
    assert len(failed) == 1, "one log line per kind of failure, not per attempt"
    assert len(recovered) == 1


class LoseFirstInboxResponse(httpx.HTTPTransport):
    """Forwards to the server, which applies the batch, then drops the first inbox response,
    as a proxy whose connection breaks on the way back would."""

    def __init__(self) -> None:
        super().__init__()
        self.dropped = 0

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = super().handle_request(request)
        if request.url.path == "/sync/inbox" and not self.dropped:
            response.read()
            response.close()
            self.dropped += 1
            raise httpx.ReadError("connection reset by peer", request=request)
        return response


def test_a_batch_whose_response_was_lost_is_sent_again_and_applied_once(
    edge: Instance, cloud: Instance, server: UvicornThread
) -> None:
    lossy = LoseFirstInboxResponse()
    sync = worker(edge, HttpsTransport(server.url, transport=lossy))
    edge.enqueue_notes(CLOUD, ["a", "b", "c", "d"])

    with pytest.raises(TransportUnavailable) as lost:
        sync.step()
    assert lost.value.reason == "connection lost"
    assert cloud.cursor(EDGE) == 4 and edge.unsent(CLOUD) == 4  # applied there, not marked here

    assert sync.step().pushed == 4  # sent again and acknowledged; the cloud skipped them
    assert lossy.dropped == 1
    assert edge.unsent(CLOUD) == 0
    assert sequences(cloud, EDGE) == [1, 2, 3, 4]


@pytest.mark.parametrize(
    ("status", "raised", "reason"),
    [
        (429, TransportUnavailable, "HTTP 429"),
        (503, TransportUnavailable, "HTTP 503"),
        (504, TransportUnavailable, "HTTP 504"),
        (403, TransportRejected, "rejected 403"),
    ],
)
def test_http_errors_map_to_unavailable_or_rejected(status, raised, reason) -> None:
    answer = {"message": "Forbidden"} if status == 403 else {"detail": "busy"}
    transport = HttpsTransport(
        "https://sync.example",
        transport=httpx.MockTransport(lambda request: httpx.Response(status, json=answer)),
    )

    with pytest.raises(raised) as failed:
        transport.fetch(CLOUD, EDGE, 0, 10)

    assert failed.value.reason == reason
    if raised is TransportRejected:
        assert failed.value.detail == "Forbidden"


def test_sigv4_signs_as_the_aws_test_suite_says() -> None:
    """SigV4 test suite, ``get-vanilla`` (published credentials, time and signature)."""
    credentials = Credentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY")
    seen: list[httpx.Request] = []
    client = httpx.Client(
        auth=SigV4Auth("us-east-1", service="service", credentials=lambda: credentials),
        transport=httpx.MockTransport(lambda request: seen.append(request) or httpx.Response(200)),
    )
    at = datetime.datetime(2015, 8, 30, 12, 36, 0)
    with mock.patch("botocore.auth.get_current_datetime", return_value=at):
        client.get("https://example.amazonaws.com/")

    assert seen[0].headers["x-amz-date"] == "20150830T123600Z"
    assert seen[0].headers["authorization"] == (
        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, "
        "SignedHeaders=host;x-amz-date, "
        "Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"
    )


def test_sigv4_signs_the_body_and_passes_the_session_token() -> None:
    credentials = Credentials("AKID", "secret", token="session-token")
    seen: list[httpx.Request] = []
    transport = HttpsTransport(
        "https://abc.execute-api.eu-central-1.amazonaws.com/prod",
        auth=SigV4Auth("eu-central-1", credentials=lambda: credentials),
        transport=httpx.MockTransport(
            lambda request: (
                seen.append(request)
                or httpx.Response(200, json={"origin": EDGE, "applied_through": 1})
            )
        ),
    )

    transport.send(SyncBatch(messages=[SyncMessage(**note_message(EDGE, 1))]))

    headers = seen[0].headers
    assert headers["x-amz-security-token"] == "session-token"
    assert "/eu-central-1/execute-api/aws4_request" in headers["authorization"]
    assert (
        "SignedHeaders=content-type;host;x-amz-date;x-amz-security-token"
        in (headers["authorization"])
    )


def test_make_transport_signs_https_in_aws_and_configures_kafka_for_msk_iam() -> None:
    signed = make_transport(
        "https", EDGE, CLOUD, url="https://api.example/prod", region="eu-west-1"
    )
    local = make_transport("https", EDGE, CLOUD, url="http://127.0.0.1:8080")
    kafka = make_transport(
        "kafka", CLOUD, EDGE, bootstrap_servers="boot.example:9098", region="eu-west-1"
    )

    assert isinstance(signed._client.auth, SigV4Auth) and signed._client.auth.region == "eu-west-1"
    assert local._client.auth is None
    assert isinstance(kafka, KafkaTransport)
    assert kafka.producer_config()["sasl.mechanism"] == "OAUTHBEARER"
    with pytest.raises(ValueError, match="bootstrap"):
        make_transport("kafka", CLOUD, EDGE, region="eu-west-1")
