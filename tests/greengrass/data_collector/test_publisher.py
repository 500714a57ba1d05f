"""The publisher, on the in-memory transport and a fake clock: batches within IoT Core's
128 KB, ids stable across restarts, Basic Ingest topics the stack's rules read, and a backlog
that drains oldest first within the per-connection quotas while live data keeps flowing."""

from __future__ import annotations

import json
from collections import Counter

import pytest
from data_collector.publisher import Planned, Publisher
from data_collector.spool import COUNT, EVENT, STATE, TELEMETRY, Row, Spool

from greengrass_components.common.transport import InMemoryTransport, TransportError
from mes_domain.collection import (
    IOT_CORE_BYTES_PER_S,
    IOT_CORE_MAX_PAYLOAD_BYTES,
    IOT_CORE_PUBLISHES_PER_S,
    CollectionSettings,
)
from mes_domain.contracts import TelemetryBatch, parse_station_message
from mes_domain.naming import ROUTED_KINDS, rule_name
from mes_domain.topics import MessageKind, parse_topic

T0 = 1_700_000_000_000
SITE, LINE, PREFIX = "berlin", "body-line-1", "mes-demo"
DEFAULTS = CollectionSettings()


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def reading(station: str, i: int, tag: str = "ram_force") -> Row:
    body = {"ts": T0 + i, "tag": tag, "value": i * 0.5, "quality": "GOOD"}
    return Row(station, TELEMETRY, T0 + i, json.dumps(body, separators=(",", ":")).encode())


def make(spool, transport, clock, stations=("press-01",), **overrides) -> Publisher:
    options = {
        "max_batch_bytes": DEFAULTS.max_batch_bytes,
        "max_batch_delay_ms": DEFAULTS.max_batch_delay_ms,
        "publishes_per_s": DEFAULTS.max_publishes_per_s,
        "bytes_per_s": DEFAULTS.max_publish_bytes_per_s,
        **overrides,
    }
    return Publisher(
        spool,
        transport,
        site=SITE,
        line=LINE,
        stations=stations,
        rule_prefix=PREFIX,
        clock=clock,
        **options,
    )


def drain(publisher: Publisher, clock: Clock, until: float) -> None:
    while clock.now < until:
        wait = publisher.step()
        if wait > 0:
            clock.now += wait


def batches(transport) -> list[TelemetryBatch]:
    out = []
    for message in transport.published:
        parsed = parse_topic(message.topic)
        if parsed.topic.kind is MessageKind.TELEMETRY:
            out.append(parse_station_message(parsed.topic, message.payload, now_ms=T0))
    return out


@pytest.fixture
def spool(tmp_path):
    spool = Spool(tmp_path / "spool.db", max_bytes=1 << 30)
    yield spool
    spool.close()


def test_the_budget_defaults_sit_within_iot_cores_per_connection_quotas():
    # https://docs.aws.amazon.com/general/latest/gr/iot-core.html#message-broker-limits
    assert IOT_CORE_MAX_PAYLOAD_BYTES == 128 * 1024
    assert (IOT_CORE_PUBLISHES_PER_S, IOT_CORE_BYTES_PER_S) == (100, 512 * 1024)
    # One second of burst on top of the rate: any one-second window stays within the quota
    assert 2 * DEFAULTS.max_publishes_per_s <= IOT_CORE_PUBLISHES_PER_S
    assert 2 * DEFAULTS.max_publish_bytes_per_s <= IOT_CORE_BYTES_PER_S
    with pytest.raises(ValueError):
        CollectionSettings(max_publishes_per_s=101)


def test_batches_are_cut_at_128_kb_measured_and_carry_every_reading_once(spool):
    transport, clock = InMemoryTransport(), Clock()
    spool.put([reading("press-01", i) for i in range(10_000)])
    publisher = make(spool, transport, clock)
    drain(publisher, clock, clock.now + 30)
    sizes = [len(m.payload) for m in transport.published]
    assert max(sizes) <= IOT_CORE_MAX_PAYLOAD_BYTES
    assert all(size > IOT_CORE_MAX_PAYLOAD_BYTES - 200 for size in sizes[:-1])  # full
    got = [r.ts for b in batches(transport) for r in b.readings]
    assert got == [T0 + i for i in range(10_000)]  # all, once, in order
    assert len({b.batch_id for b in batches(transport)}) == len(sizes)
    assert spool.stats()["spool_rows"] == 0


def test_a_few_live_readings_wait_for_the_batch_delay(spool):
    transport, clock = InMemoryTransport(), Clock()
    publisher = make(spool, transport, clock)
    spool.put([reading("press-01", i) for i in range(3)])
    assert publisher.step() > 0 and transport.published == []
    clock.now += DEFAULTS.max_batch_delay_ms / 1000 - 0.01
    publisher.step()
    assert transport.published == []
    clock.now += 0.02
    assert publisher.step() == 0
    (batch,) = batches(transport)
    assert len(batch.readings) == 3


def test_topics_are_basic_ingest_to_the_stacks_rules_and_events_go_to_the_broker(spool):
    transport, clock = InMemoryTransport(), Clock()
    spool.put(
        [
            Row("press-01", STATE, T0, b'{"v":1,"ts":1700000000000,"state":"RUNNING"}'),
            Row("press-01", COUNT, T0, b'{"v":1,"ts":1700000000000,"good":3,"bad":0}'),
            Row("press-01", EVENT, T0, b'{"v":1,"ts":1700000000000,"code":"X","severity":"INFO"}'),
            reading("press-01", 1),
        ]
    )
    publisher = make(spool, transport, clock)
    drain(publisher, clock, clock.now + 5)
    topics = {parse_topic(m.topic).topic.kind: m.topic for m in transport.published}
    for kind in (MessageKind.TELEMETRY, MessageKind.STATE, MessageKind.COUNT):
        assert topics[kind] == (
            f"$aws/rules/{rule_name(PREFIX, kind)}/mes/v1/{SITE}/{LINE}/press-01/{kind}"
        )
    assert topics[MessageKind.EVENT] == f"mes/v1/{SITE}/{LINE}/press-01/event"
    for message in transport.published:
        parse_station_message(parse_topic(message.topic).topic, message.payload, now_ms=T0)


def test_the_stacks_rules_are_the_routed_kinds_with_those_names():
    """The stack and the component agree by construction; this checks the construct."""
    from aws_cdk import App, Stack
    from aws_cdk import aws_kinesis as kinesis
    from aws_cdk import aws_s3 as s3
    from aws_cdk import aws_sqs as sqs

    from stacks.constructs.ingest_rules import IngestRules

    stack = Stack(App(), "Rules")
    rules = IngestRules(
        stack,
        "Rules",
        prefix=PREFIX,
        telemetry_stream=kinesis.Stream(stack, "S"),
        quality_queue=sqs.Queue(stack, "Q"),
        error_bucket=s3.Bucket(stack, "B"),
    )
    assert set(rules.rules) == ROUTED_KINDS
    for kind, rule in rules.rules.items():
        assert rule.rule_name == rule_name(PREFIX, kind)


def test_a_batch_keeps_its_id_and_rows_across_a_failure_and_a_restart(tmp_path):
    path = tmp_path / "spool.db"
    spool = Spool(path, max_bytes=1 << 30)
    spool.put([reading("press-01", i) for i in range(100)])
    transport, clock = InMemoryTransport(), Clock()
    transport.fail_publishes = True
    publisher = make(spool, transport, clock)
    planned = publisher.plan()
    assert isinstance(planned, Planned)
    spool.close()  # the collector dies before the broker answered
    spool = Spool(path, max_bytes=1 << 30)
    spool.put([reading("press-01", 100 + i) for i in range(5)])  # more, after the restart
    transport = InMemoryTransport()
    publisher = make(spool, transport, clock)
    drain(publisher, clock, clock.now + 5)
    first, second = batches(transport)
    assert first.batch_id == planned.batch  # the same id: the cloud drops a copy it has
    assert [r.ts for r in first.readings] == [T0 + i for i in range(100)]
    assert [r.ts for r in second.readings] == [T0 + 100 + i for i in range(5)]
    spool.close()


def test_backlog_drains_oldest_first_within_the_quotas_while_live_data_flows(spool):
    """One hour of two stations' readings is spooled (an outage); the link is back. Live
    readings keep coming at 400/s. Every one-second window stays within IoT Core's
    per-connection quotas, live readings go out within the batch delay, and the backlog
    drains in spool order."""
    transport, clock = InMemoryTransport(), Clock()
    stations = ("press-01", "weld-01")
    backlog_per_station = 30_000
    spool.put(
        [reading(s, i) for i in range(backlog_per_station) for s in stations]
    )  # interleaved, as the collector writes them
    publisher = make(spool, transport, clock, stations=stations)
    sent_at: list[tuple[float, int]] = []
    live_next = backlog_per_station
    end = clock.now + 40
    next_live = clock.now
    published = 0
    while clock.now < end:
        if clock.now >= next_live:  # 40 live readings per station every 0.1 s
            spool.put([reading(s, live_next + i) for i in range(40) for s in stations])
            live_next += 40
            next_live += 0.1
        wait = publisher.step()
        for message in transport.published[published:]:
            sent_at.append((clock.now, len(message.payload)))
        published = len(transport.published)
        clock.now += min(wait, max(0.0, next_live - clock.now)) if wait > 0 else 0.0
    # Quotas: every one-second window
    for start, _ in sent_at:
        window = [size for t, size in sent_at if start <= t < start + 1.0]
        assert len(window) <= IOT_CORE_PUBLISHES_PER_S
        assert sum(window) <= IOT_CORE_BYTES_PER_S
    all_batches = batches(transport)
    # The backlog drained completely, oldest first per station, nothing twice
    for station in stations:
        mine = [b for b in all_batches if b.station == station]
        ts = [r.ts for b in mine for r in b.readings]
        assert len(ts) == len(set(ts))
        backlog = [t for t in ts if t < T0 + backlog_per_station]
        assert backlog == sorted(backlog) == [T0 + i for i in range(backlog_per_station)]
    # Live data flowed during the drain: live batches were interleaved with backlog ones
    kinds = _live_flags(all_batches, backlog_per_station)
    first_backlog_end = max(i for i, live in enumerate(kinds) if not live)
    assert any(kinds[:first_backlog_end])
    assert publisher.stats.backlog_messages == kinds.count(False)
    # Until the backlog was gone the byte budget was used, not left idle
    until = sent_at[first_backlog_end][0] - 1000.0
    drained_bytes = sum(size for _, size in sent_at[: first_backlog_end + 1])
    assert drained_bytes >= 0.9 * DEFAULTS.max_publish_bytes_per_s * until


def _live_flags(all_batches, backlog_per_station):
    return [b.readings[0].ts >= T0 + backlog_per_station for b in all_batches]


def test_readings_spooled_during_a_link_loss_become_backlog_and_arrive_once(spool):
    transport, clock = InMemoryTransport(), Clock()
    publisher = make(spool, transport, clock)
    counter = Counter()
    i = 0
    for second in range(30):
        transport.fail_publishes = 5 <= second < 15  # a 10 s outage
        for _ in range(10):
            spool.put([reading("press-01", i + k) for k in range(20)])
            i += 20
            drain(publisher, clock, clock.now + 0.1)
    transport.fail_publishes = False
    drain(publisher, clock, clock.now + 10)
    for batch in batches(transport):
        counter.update(r.ts for r in batch.readings)
    assert set(counter) == {T0 + k for k in range(i)} and max(counter.values()) == 1
    assert publisher.stats.failures > 0 and publisher.stats.backlog_messages > 0


class RefusingTransport(InMemoryTransport):
    """A broker whose policy denies one topic (say events) and takes the rest."""

    def __init__(self, denied: str) -> None:
        super().__init__()
        self.denied = denied

    def publish(self, topic: str, payload: bytes) -> None:
        if topic.endswith(self.denied):
            raise TransportError(f"not authorized to publish to {topic}")
        super().publish(topic, payload)


def test_a_message_the_broker_refuses_never_blocks_the_others(spool):
    transport, clock = RefusingTransport("/event"), Clock()
    publisher = make(spool, transport, clock)
    spool.put(
        [Row("press-01", EVENT, T0, b'{"v":1,"ts":1700000000000,"code":"X","severity":"INFO"}')]
    )
    drain(publisher, clock, clock.now + 2)  # refused, retried, refused
    for second in range(5):
        spool.put([reading("press-01", second * 10 + i) for i in range(10)])
        spool.put(
            [Row("press-01", COUNT, T0 + second, b'{"v":1,"ts":1700000000000,"good":1,"bad":0}')]
        )
        drain(publisher, clock, clock.now + 2)
    got = [r.ts for b in batches(transport) for r in b.readings]
    assert got == [T0 + i for i in range(50)]
    assert sum(1 for m in transport.published if m.topic.endswith("/count")) == 5
    assert publisher.stats.failures >= 2  # the refused event is still retried, and kept
    assert spool.head("press-01", EVENT) is None and spool.assigned_batches()
