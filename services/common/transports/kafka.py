"""Sync over Kafka on MSK Serverless: each instance produces its messages for a peer to its own
topic ``mes-sync.<origin>`` (key = origin, value = the ``SyncMessage`` JSON, header
``mes-destination`` = the peer) and consumes the peer's topic in a consumer group of its own.

- Producer: ``acks=all`` and ``enable.idempotence=true``, so a retried produce neither loses nor
  doubles a message in the log; ``send`` flushes and acknowledges the last sequence the broker
  confirmed, which the worker marks sent.
- Consumer: ``enable.auto.commit=false``; ``commit`` moves the group's offsets only past what the
  worker has applied. A crash between applying and committing redelivers the batch, which the
  inbox skips (``outbox.apply_batch``): applied once.
- MSK Serverless requires IAM access control for every cluster (MSK developer guide, "What is
  MSK Serverless?") and clients with IAM reach the brokers over TLS on port 9098 (MSK developer
  guide, "Port information"): ``SASL_SSL`` with ``OAUTHBEARER`` and a token from the MSK IAM
  signer (``aws.msk_oauth_callback``), as the signer's confluent-kafka example configures it.

- Topics are created by the clients, once per transport, before the first produce or subscribe:
  an instance creates its own topic and the peer's, so neither waits on the other's first
  message. An existing topic counts as created (error TOPIC_ALREADY_EXISTS, 36, in the Kafka
  protocol); the replication factor is the cluster's (-1, KIP-464), one partition per topic as
  every record of a topic has the same key.

The confluent-kafka classes are injectable (``producer_factory``, ``consumer_factory``,
``admin_factory``), so the tests run against fakes: no Kafka broker is reachable from the test
machine (Debian, PyPI and npm ship none).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from mes_domain.production import SyncAck, SyncBatch, SyncMessage
from services.common.sync import TransportUnavailable

log = logging.getLogger("services.sync.kafka")

TOPIC_PREFIX = "mes-sync."
DESTINATION_HEADER = "mes-destination"
MSK_IAM_PORT = 9098  # MSK developer guide, "Port information": IAM access control from AWS
DEFAULT_FLUSH_TIMEOUT_S = 30.0
TOPIC_ALREADY_EXISTS = 36  # the Kafka protocol's error code (confluent_kafka.KafkaError too)
TOPIC_PARTITIONS = 1
CLUSTER_REPLICATION_FACTOR = -1  # the broker's default (KIP-464)
DEFAULT_POLL_TIMEOUT_S = 1.0


def topic_of(origin: str) -> str:
    return f"{TOPIC_PREFIX}{origin}"


def group_of(instance_id: str, origin: str) -> str:
    """One consumer group per reading instance and origin: the cloud reads each edge's topic in
    its own group, so one edge's rebalance never pauses another's."""
    return f"{TOPIC_PREFIX}{instance_id}.{origin}"


def msk_iam_config(
    bootstrap_servers: str, oauth_cb: Callable[[Any], tuple[str, float]]
) -> dict[str, Any]:
    """The librdkafka settings of an MSK IAM client (``bootstrap_servers`` on port 9098)."""
    return {
        "bootstrap.servers": bootstrap_servers,
        "security.protocol": "SASL_SSL",
        "sasl.mechanism": "OAUTHBEARER",
        "oauth_cb": oauth_cb,
    }


def _default_producer(config: dict[str, Any]) -> Any:
    from confluent_kafka import Producer

    return Producer(config)


def _default_consumer(config: dict[str, Any]) -> Any:
    from confluent_kafka import Consumer

    return Consumer(config)


def _default_admin(config: dict[str, Any]) -> Any:
    from confluent_kafka.admin import AdminClient

    return AdminClient(config)


def _new_topic(topic: str) -> Any:
    from confluent_kafka.admin import NewTopic

    return NewTopic(
        topic, num_partitions=TOPIC_PARTITIONS, replication_factor=CLUSTER_REPLICATION_FACTOR
    )


def _already_exists(exc: BaseException) -> bool:
    error = exc.args[0] if exc.args else None
    code = getattr(error, "code", None)
    return callable(code) and code() == TOPIC_ALREADY_EXISTS


def _partition(topic: str, partition: int, offset: int) -> Any:
    from confluent_kafka import TopicPartition

    return TopicPartition(topic, partition, offset)


@dataclass(frozen=True)
class _Fetched:
    topic: str
    partition: int
    offset: int
    sequence: int | None  # None: not for this instance, nothing to apply
    unreadable: bool = False  # for this instance but invalid now: read it again next time


class KafkaTransport:
    """``SyncTransport`` between ``instance_id`` and ``peer`` over Kafka."""

    def __init__(
        self,
        instance_id: str,
        peer: str,
        client_config: dict[str, Any],
        *,
        producer_factory: Callable[[dict[str, Any]], Any] = _default_producer,
        consumer_factory: Callable[[dict[str, Any]], Any] = _default_consumer,
        admin_factory: Callable[[dict[str, Any]], Any] = _default_admin,
        new_topic: Callable[[str], Any] = _new_topic,
        topic_partition: Callable[[str, int, int], Any] = _partition,
        flush_timeout_s: float = DEFAULT_FLUSH_TIMEOUT_S,
        poll_timeout_s: float = DEFAULT_POLL_TIMEOUT_S,
    ) -> None:
        self.instance_id = instance_id
        self.peer = peer
        self._client_config = dict(client_config)
        self._producer_factory = producer_factory
        self._consumer_factory = consumer_factory
        self._admin_factory = admin_factory
        self._new_topic = new_topic
        self._topic_partition = topic_partition
        self.flush_timeout_s = flush_timeout_s
        self.poll_timeout_s = poll_timeout_s
        self._producer: Any = None
        self._consumer: Any = None
        self._consumer_origin: str | None = None
        self._fetched: list[_Fetched] = []
        self._admin: Any = None
        self._topics_ready: set[str] = set()

    # -- configuration -----------------------------------------------------------------------

    def producer_config(self) -> dict[str, Any]:
        return {
            **self._client_config,
            "client.id": f"mes-sync-{self.instance_id}",
            "acks": "all",
            "enable.idempotence": True,
        }

    def consumer_config(self, origin: str, for_instance: str) -> dict[str, Any]:
        return {
            **self._client_config,
            "client.id": f"mes-sync-{for_instance}",
            "group.id": group_of(for_instance, origin),
            "enable.auto.commit": False,
            # A new group starts at the topic's beginning: the inbox skips what it has.
            "auto.offset.reset": "earliest",
        }

    # -- SyncTransport -------------------------------------------------------------------------

    def send(self, batch: SyncBatch) -> SyncAck:
        """Produce the batch to this instance's topic and wait until the broker has it."""
        origin = batch.messages[0].origin
        self._ensure_topic(topic_of(origin))
        if self._producer is None:
            self._producer = self._producer_factory(self.producer_config())
        failures: dict[int, str] = {}
        confirmed: set[int] = set()

        def delivered(sequence: int) -> Callable[[Any, Any], None]:
            def callback(error: Any, _message: Any) -> None:
                if error is None:
                    confirmed.add(sequence)
                else:
                    failures[sequence] = str(error)

            return callback

        try:
            for message in batch.messages:
                self._producer.produce(
                    topic_of(origin),
                    key=origin.encode(),
                    value=message.model_dump_json().encode(),
                    headers=[(DESTINATION_HEADER, self.peer.encode())],
                    on_delivery=delivered(message.sequence),
                )
        except BufferError as exc:  # the local queue is full: send the rest next round
            log.warning("Kafka producer queue full after %d messages: %s", len(confirmed), exc)
        except Exception as exc:  # noqa: BLE001 - KafkaException and friends
            raise TransportUnavailable("produce failed", str(exc)) from exc
        self._producer.flush(self.flush_timeout_s)
        through = batch.messages[0].sequence - 1
        for message in batch.messages:
            if message.sequence not in confirmed:
                break
            through = message.sequence
        if through < batch.messages[0].sequence:
            reason = next(iter(failures.values()), "not confirmed before the flush timeout")
            raise TransportUnavailable("not delivered", reason)
        return SyncAck(origin=origin, applied_through=through)

    def fetch(self, origin: str, for_instance: str, after: int, limit: int) -> list[SyncMessage]:
        """The next records of ``origin``'s topic for ``for_instance`` (at most ``limit``
        records read); sequences at or below ``after`` are returned too, the worker drops them."""
        consumer = self._consumer_for(origin, for_instance)
        try:
            records = consumer.consume(num_messages=limit, timeout=self.poll_timeout_s)
        except Exception as exc:  # noqa: BLE001 - KafkaException
            raise TransportUnavailable("consume failed", str(exc)) from exc
        messages: list[SyncMessage] = []
        for record in records:
            error = record.error()
            if error is not None:
                raise TransportUnavailable("consume failed", str(error))
            position = (record.topic(), record.partition(), record.offset())
            if not self._for(record, for_instance):
                self._fetched.append(_Fetched(*position, sequence=None))
                continue
            try:
                message = SyncMessage.model_validate_json(record.value())
            except ValidationError as exc:
                # Kept, not skipped: a sequence skipped would stop the inbox for good, and some
                # checks pass later (a sender's clock ahead of this one's).
                log.error("unreadable sync record at %s[%d]@%d: %s", *position, exc)
                self._fetched.append(_Fetched(*position, sequence=None, unreadable=True))
                break
            self._fetched.append(_Fetched(*position, sequence=message.sequence))
            messages.append(message)
        return messages

    def commit(self, ack: SyncAck) -> None:
        """Commit the fetched records up to the first one not applied (its sequence above
        ``ack``) per partition, and rewind the consumer to that one so it comes again."""
        if not self._fetched or self._consumer is None:
            return
        commits: dict[tuple[str, int], int] = {}
        rewinds: dict[tuple[str, int], int] = {}
        for record in self._fetched:
            key = (record.topic, record.partition)
            if key in rewinds:
                continue
            if not record.unreadable and (
                record.sequence is None or record.sequence <= ack.applied_through
            ):
                commits[key] = record.offset + 1
            else:
                rewinds[key] = record.offset
        self._fetched = []
        try:
            if commits:
                self._consumer.commit(
                    offsets=[self._topic_partition(t, p, o) for (t, p), o in commits.items()],
                    asynchronous=False,
                )
            for (topic, partition), offset in rewinds.items():
                self._consumer.seek(self._topic_partition(topic, partition, offset))
        except Exception as exc:  # noqa: BLE001 - KafkaException
            raise TransportUnavailable("commit failed", str(exc)) from exc

    def close(self) -> None:
        if self._producer is not None:
            self._producer.flush(self.flush_timeout_s)
        if self._consumer is not None:
            self._consumer.close()

    # -- helpers -------------------------------------------------------------------------------

    def _consumer_for(self, origin: str, for_instance: str) -> Any:
        if self._consumer is not None and self._consumer_origin != origin:
            raise ValueError(f"this transport reads {self._consumer_origin}, not {origin}")
        if self._consumer is None:
            self._ensure_topic(topic_of(origin))
            self._consumer = self._consumer_factory(self.consumer_config(origin, for_instance))
            self._consumer.subscribe([topic_of(origin)])
            self._consumer_origin = origin
        return self._consumer

    def _ensure_topic(self, topic: str) -> None:
        """Create ``topic`` unless this transport already has, or it exists; a failure is
        TransportUnavailable, so the worker tries again next round."""
        if topic in self._topics_ready:
            return
        if self._admin is None:
            self._admin = self._admin_factory(dict(self._client_config))
        try:
            futures = self._admin.create_topics(
                [self._new_topic(topic)], request_timeout=self.flush_timeout_s
            )
            futures[topic].result()
        except Exception as exc:  # noqa: BLE001 - KafkaException
            if not _already_exists(exc):
                raise TransportUnavailable("topic creation failed", str(exc)) from exc
        self._topics_ready.add(topic)

    @staticmethod
    def _for(record: Any, for_instance: str) -> bool:
        headers = dict(record.headers() or [])
        return headers.get(DESTINATION_HEADER, b"").decode() == for_instance
