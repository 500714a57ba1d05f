"""Sync over Kafka at the confluent-kafka boundary, with a fake producer and consumer over an
in-memory log: no Kafka broker is reachable here (Debian, PyPI and npm ship none, and MSK
Serverless is only in AWS), so the fakes keep what the transport relies on: one ordered log
per topic, offsets, a consumer group's committed offset, ``seek``. Real librdkafka is still
given the configuration, to check that it accepts every setting."""

from __future__ import annotations

import json
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import pytest

from mes_domain.production import SyncAck, SyncBatch, SyncMessage
from services.common.aws import msk_oauth_callback
from services.common.db import now_ms
from services.common.sync import SyncWorker, TransportUnavailable
from services.common.transports.kafka import (
    TOPIC_ALREADY_EXISTS,
    KafkaTransport,
    msk_iam_config,
)
from tests.greengrass.broker import free_port
from tests.services.sync.conftest import HANDLERS, NOTE, TABLES, Instance, Outbox

REGION = "eu-central-1"
# The signer's tokens live 15 minutes; librdkafka refuses one that has expired.
TOKEN_EXPIRY_MS = int(time.time() * 1000) + 900_000


@dataclass
class Record:
    _topic: str
    _offset: int
    _key: bytes
    _value: bytes
    _headers: list[tuple[str, bytes]]

    def topic(self) -> str:
        return self._topic

    def partition(self) -> int:
        return 0

    def offset(self) -> int:
        return self._offset

    def key(self) -> bytes:
        return self._key

    def value(self) -> bytes:
        return self._value

    def headers(self) -> list[tuple[str, bytes]]:
        return self._headers

    def error(self) -> None:
        return None


@dataclass
class FakeKafka:
    """The log: records per topic (one partition), committed offsets per group and topic."""

    topics: dict[str, list[Record]] = field(default_factory=lambda: defaultdict(list))
    committed: dict[tuple[str, str], int] = field(default_factory=dict)
    configs: list[dict[str, Any]] = field(default_factory=list)
    undeliverable: set[int] = field(default_factory=set)  # sequences the broker refuses
    failing_commits: int = 0
    created: list[str] = field(default_factory=list)  # topics created, in order
    requested: list[str] = field(default_factory=list)  # every topic creation asked for
    failing_creations: int = 0  # the next create_topics calls that fail

    def admin(self, config: dict[str, Any]) -> FakeAdmin:
        self.configs.append(config)
        return FakeAdmin(self)

    def producer(self, config: dict[str, Any]) -> FakeProducer:
        self.configs.append(config)
        return FakeProducer(self)

    def consumer(self, config: dict[str, Any]) -> FakeConsumer:
        self.configs.append(config)
        return FakeConsumer(self, config["group.id"])

    def values(self, topic: str) -> list[dict[str, Any]]:
        return [json.loads(record.value()) for record in self.topics[topic]]


class KafkaError:
    """confluent_kafka.KafkaError's shape: the KafkaException's first argument."""

    def __init__(self, code: int) -> None:
        self._code = code

    def code(self) -> int:
        return self._code


class Done:
    """A create_topics future that has finished."""

    def __init__(self, error: Exception | None = None) -> None:
        self._error = error

    def result(self) -> None:
        if self._error is not None:
            raise self._error


class FakeAdmin:
    def __init__(self, kafka: FakeKafka) -> None:
        self.kafka = kafka

    def create_topics(self, new_topics: list[str], request_timeout: float = -1) -> dict:
        futures = {}
        for topic in new_topics:
            self.kafka.requested.append(topic)
            if self.kafka.failing_creations:
                self.kafka.failing_creations -= 1
                futures[topic] = Done(Exception(KafkaError(7)))  # REQUEST_TIMED_OUT
            elif topic in self.kafka.topics:
                futures[topic] = Done(Exception(KafkaError(TOPIC_ALREADY_EXISTS)))
            else:
                self.kafka.topics[topic]  # noqa: B018 - the defaultdict makes the topic
                self.kafka.created.append(topic)
                futures[topic] = Done()
        return futures


class FakeProducer:
    def __init__(self, kafka: FakeKafka) -> None:
        self.kafka = kafka
        self.queued: list[tuple[Any, ...]] = []

    def produce(self, topic, key=None, value=None, headers=None, on_delivery=None) -> None:
        self.queued.append((topic, key, value, headers or [], on_delivery))

    def flush(self, _timeout: float = -1) -> int:
        for topic, key, value, headers, on_delivery in self.queued:
            sequence = json.loads(value)["sequence"]
            if sequence in self.kafka.undeliverable:
                on_delivery("KafkaError{code=MSG_TIMED_OUT}", None)
                continue
            log = self.kafka.topics[topic]
            log.append(Record(topic, len(log), key, value, headers))
            on_delivery(None, log[-1])
        self.queued = []
        return 0


class FakeConsumer:
    def __init__(self, kafka: FakeKafka, group: str) -> None:
        self.kafka = kafka
        self.group = group
        self.topic = ""
        self.position = 0

    def subscribe(self, topics: list[str]) -> None:
        (self.topic,) = topics
        self.position = self.kafka.committed.get((self.group, self.topic), 0)

    def consume(self, num_messages: int = 1, timeout: float = -1) -> list[Record]:
        records = self.kafka.topics[self.topic][self.position : self.position + num_messages]
        self.position += len(records)
        return records

    def commit(self, offsets=None, asynchronous: bool = True) -> None:
        if self.kafka.failing_commits:
            self.kafka.failing_commits -= 1
            raise RuntimeError("the process died before committing")
        for partition in offsets:
            self.kafka.committed[(self.group, partition.topic)] = partition.offset

    def seek(self, partition) -> None:
        self.position = partition.offset

    def close(self) -> None:
        pass


def signer(region: str) -> tuple[str, int]:
    assert region == REGION
    return f"signed-token-for-{region}", TOKEN_EXPIRY_MS


def client_config() -> dict[str, Any]:
    return msk_iam_config("boot-1.example:9098", msk_oauth_callback(REGION, signer))


def kafka_transport(kafka: FakeKafka, instance: str, peer: str) -> KafkaTransport:
    return KafkaTransport(
        instance,
        peer,
        client_config(),
        producer_factory=kafka.producer,
        consumer_factory=kafka.consumer,
        admin_factory=kafka.admin,
        new_topic=str,  # the fake admin takes the topic's name
        poll_timeout_s=0,
    )


def batch(origin: str, first: int, last: int) -> SyncBatch:
    return SyncBatch(
        messages=[
            SyncMessage(
                origin=origin, sequence=n, kind=NOTE, payload={"text": f"t{n}"}, created_at=now_ms()
            )
            for n in range(first, last + 1)
        ]
    )


def test_clients_use_sasl_ssl_oauthbearer_with_the_msk_token_idempotence_and_manual_commits():
    kafka = FakeKafka()
    transport = kafka_transport(kafka, "berlin", "cloud")

    transport.send(batch("berlin", 1, 1))
    transport.fetch("cloud", "berlin", 0, 10)

    admin, producer, consumer = kafka.configs
    assert admin == client_config() | {"oauth_cb": admin["oauth_cb"]}
    for config in (admin, producer, consumer):
        assert config["bootstrap.servers"] == "boot-1.example:9098"
        assert config["security.protocol"] == "SASL_SSL"
        assert config["sasl.mechanism"] == "OAUTHBEARER"
        # The signer's expiry is in ms; confluent-kafka wants seconds since the epoch.
        assert config["oauth_cb"]("") == ("signed-token-for-eu-central-1", TOKEN_EXPIRY_MS / 1000)
    assert (producer["acks"], producer["enable.idempotence"]) == ("all", True)
    assert consumer["enable.auto.commit"] is False
    assert consumer["group.id"] == "mes-sync.berlin.cloud"
    assert consumer["auto.offset.reset"] == "earliest"


def test_librdkafka_accepts_the_configuration() -> None:
    """Unknown or misspelt settings fail here. The clients ask ``oauth_cb`` for a token as they
    start (and fail if none comes); nothing listens on the loopback port they are given."""
    from confluent_kafka import Consumer, Producer

    transport = KafkaTransport("berlin", "cloud", client_config())
    quiet = {"bootstrap.servers": f"127.0.0.1:{free_port()}", "log_level": 0}

    producer = Producer({**transport.producer_config(), **quiet})
    consumer = Consumer({**transport.consumer_config("cloud", "berlin"), **quiet})

    assert producer.flush(0) == 0
    consumer.close()


def test_send_produces_to_the_origin_topic_keyed_by_origin_and_acknowledges_what_the_broker_has():
    kafka = FakeKafka(undeliverable={4})
    transport = kafka_transport(kafka, "berlin", "cloud")

    ack = transport.send(batch("berlin", 1, 5))

    assert (ack.origin, ack.applied_through) == ("berlin", 3)  # 4 failed: 5 is not counted
    records = kafka.topics["mes-sync.berlin"]
    assert [r.key() for r in records] == [b"berlin"] * 4
    assert [r.headers() for r in records] == [[("mes-destination", b"cloud")]] * 4
    assert [v["sequence"] for v in kafka.values("mes-sync.berlin")] == [1, 2, 3, 5]
    with pytest.raises(TransportUnavailable) as refused:
        transport.send(batch("berlin", 4, 4))
    assert "MSG_TIMED_OUT" in str(refused.value)


def test_commit_stops_at_the_first_record_not_applied_and_rewinds_to_it() -> None:
    kafka = FakeKafka()
    kafka_transport(kafka, "berlin", "cloud").send(batch("berlin", 1, 4))
    reader = kafka_transport(kafka, "cloud", "berlin")

    fetched = reader.fetch("berlin", "cloud", 0, 10)
    reader.commit(SyncAck(origin="berlin", applied_through=2))

    assert [m.sequence for m in fetched] == [1, 2, 3, 4]
    assert kafka.committed[("mes-sync.cloud.berlin", "mes-sync.berlin")] == 2
    assert [m.sequence for m in reader.fetch("berlin", "cloud", 2, 10)] == [3, 4]


def sequences(instance: Instance, origin: str) -> list[int]:
    return [seq for from_, seq, _ in instance.notes() if from_ == origin]


def test_both_workers_sync_and_a_crash_before_the_commit_redelivers_a_batch_applied_once(
    make_instance,
) -> None:
    kafka = FakeKafka()
    edge, cloud = make_instance("berlin"), make_instance("cloud")

    def worker(instance: Instance, peer: str) -> SyncWorker:
        transport = kafka_transport(kafka, instance.name, peer)
        return SyncWorker(instance.sessions, TABLES, instance.name, peer, transport, HANDLERS)

    edge.enqueue_notes("cloud", [f"e{n}" for n in range(5)])
    cloud.enqueue_notes("berlin", [f"c{n}" for n in range(3)])
    cloud.enqueue_notes("munich", ["for another site"])  # same topic, not for berlin
    assert worker(edge, "cloud").step().pushed == 5
    assert worker(cloud, "munich").push() == 1

    kafka.failing_commits = 1
    with pytest.raises(TransportUnavailable):
        worker(cloud, "berlin").step()  # pushed 3, applied berlin's 5, died before committing
    assert sequences(cloud, "berlin") == [1, 2, 3, 4, 5]
    assert kafka.committed.get(("mes-sync.cloud.berlin", "mes-sync.berlin")) is None

    # The edge died after producing 4 and 5 but before marking them sent: it produces them again.
    with edge.sessions.begin() as session:
        session.query(Outbox).filter(Outbox.sequence >= 4).update({"sent_at": None})
    edge.enqueue_notes("cloud", ["e5", "e6"])
    assert worker(edge, "cloud").step().applied == 3  # and takes the cloud's 3, not munich's

    restarted = worker(cloud, "berlin")  # a new consumer in the group: from the committed offset
    assert restarted.step().applied == 2  # 1..5 again, then 4, 5 again: skipped; 6, 7 applied
    assert [v["sequence"] for v in kafka.values("mes-sync.berlin")] == [1, 2, 3, 4, 5, 4, 5, 6, 7]
    assert sequences(cloud, "berlin") == [1, 2, 3, 4, 5, 6, 7]
    assert sequences(edge, "cloud") == [1, 2, 3]
    assert kafka.committed[("mes-sync.cloud.berlin", "mes-sync.berlin")] == 9
    assert restarted.step().applied == 0


def test_each_instance_creates_its_own_topic_and_its_peer_s_once_and_an_existing_one_is_kept():
    kafka = FakeKafka()
    berlin = kafka_transport(kafka, "berlin", "cloud")
    cloud = kafka_transport(kafka, "cloud", "berlin")

    berlin.fetch("cloud", "berlin", 0, 10)  # the cloud's topic, before the cloud wrote to it
    berlin.send(batch("berlin", 1, 2))
    berlin.send(batch("berlin", 3, 3))
    cloud.fetch("berlin", "cloud", 0, 10)  # exists already: TOPIC_ALREADY_EXISTS is fine
    cloud.send(batch("cloud", 1, 1))

    assert kafka.created == ["mes-sync.cloud", "mes-sync.berlin"]
    # Once per transport and topic, as each first reads or writes it.
    assert kafka.requested == [
        "mes-sync.cloud",  # berlin reads
        "mes-sync.berlin",  # berlin writes
        "mes-sync.berlin",  # the cloud reads
        "mes-sync.cloud",  # the cloud writes
    ]
    assert [m["sequence"] for m in kafka.values("mes-sync.berlin")] == [1, 2, 3]
    assert [m["sequence"] for m in kafka.values("mes-sync.cloud")] == [1]


def test_a_failed_topic_creation_is_retried_on_the_next_round_and_sends_nothing_meanwhile():
    kafka = FakeKafka(failing_creations=1)
    transport = kafka_transport(kafka, "berlin", "cloud")

    with pytest.raises(TransportUnavailable, match="topic creation failed"):
        transport.send(batch("berlin", 1, 1))
    assert "mes-sync.berlin" not in kafka.topics  # nothing produced, no topic

    assert transport.send(batch("berlin", 1, 1)).applied_through == 1
    assert kafka.created == ["mes-sync.berlin"]


def test_new_topics_take_the_cluster_s_replication_and_one_partition() -> None:
    from confluent_kafka.admin import NewTopic

    from services.common.transports.kafka import _new_topic

    topic = _new_topic("mes-sync.berlin")
    assert isinstance(topic, NewTopic)
    assert (topic.topic, topic.num_partitions, topic.replication_factor) == (
        "mes-sync.berlin",
        1,
        -1,
    )
