"""Publishes the spool: TelemetryBatch per station, StateChange, PartCount and events, within
a publish budget, live data first and the backlog oldest first in what budget is left.

* **What a message carries.** Telemetry of one station is batched up to ``max_batch_bytes``
  (measured, at most IoT Core's 128 KB) or until its oldest reading waited
  ``max_batch_delay_ms``, whichever comes first. A state, count or event row is one message,
  sent at once.
* **Where.** Routed kinds go through Basic Ingest to the rule the IIoT stack names with the
  same ``mes_domain.naming.rule_name``; events to the broker (no rule reads them).
* **Once, by id.** A batch's rows get its id in the spool before the publish; they are deleted
  when the broker acknowledged it. A failed publish, or a crash in between, sends the same rows
  under the same id again, and the cloud removes the duplicate.
* **Budget.** Token buckets of ``publishes_per_s`` messages and ``bytes_per_s`` bytes, one
  second of burst, below IoT Core's per-connection quotas (100 publishes/s, 512 KB/s:
  https://docs.aws.amazon.com/general/latest/gr/iot-core.html#message-broker-limits).
* **Backlog.** Rows spooled before the collector started, or before the link came back after
  a failure, are the backlog (ids below ``live_from``). Each step publishes a ready live
  message if there is one, else the oldest backlog batch, so the backlog drains oldest first
  with whatever budget live data leaves, and live data never waits behind it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from data_collector import batcher
from data_collector.spool import KINDS, TELEMETRY, Spool, Spooled
from greengrass_components.common.transport import Transport, TransportError
from mes_domain.naming import ingest_topic
from mes_domain.topics import MessageKind, StationTopic

log = logging.getLogger(__name__)

RETRY_MIN_S, RETRY_MAX_S = 0.5, 10.0
IDLE_S = 0.05  # how often an idle publisher looks at the spool when nobody wakes it
EPSILON_S, MIN_WAIT_S = 1e-6, 1e-3  # float round-off is not a wait; no wait is shorter


class TokenBucket:
    def __init__(self, rate: float, capacity: float, now: float) -> None:
        self.rate, self.capacity = rate, capacity
        self.tokens, self.at = capacity, now

    def wait(self, amount: float, now: float) -> float:
        """Seconds until ``amount`` tokens are there (0: now)."""
        self.tokens = min(self.capacity, self.tokens + (now - self.at) * self.rate)
        self.at = now
        return max(0.0, (min(amount, self.capacity) - self.tokens) / self.rate)

    def take(self, amount: float) -> None:
        self.tokens -= amount


@dataclass
class Planned:
    station: str
    kind: str
    topic: str
    payload: bytes
    batch: str
    readings: int
    live: bool


@dataclass
class PublisherStats:
    messages: int = 0
    readings: int = 0
    bytes: int = 0
    failures: int = 0
    backlog_messages: int = 0
    by_kind: dict[str, int] = field(default_factory=dict)


class Publisher:
    def __init__(
        self,
        spool: Spool,
        transport: Transport,
        *,
        site: str,
        line: str,
        stations: Iterable[str],
        rule_prefix: str | None,
        max_batch_bytes: int,
        max_batch_delay_ms: int,
        publishes_per_s: float,
        bytes_per_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.spool, self.transport = spool, transport
        self.site, self.line, self.rule_prefix = site, line, rule_prefix
        self.stations = list(dict.fromkeys([*stations, *spool.stations()]))
        self.max_batch_bytes = max_batch_bytes
        self.delay_s = max_batch_delay_ms / 1000
        self.clock = clock
        now = clock()
        self.publishes = TokenBucket(publishes_per_s, publishes_per_s, now)
        self.bytes = TokenBucket(bytes_per_s, max(bytes_per_s, max_batch_bytes), now)
        self.live_from = spool.max_id() + 1  # what is already spooled is backlog
        self.stats = PublisherStats()
        self._first_seen: dict[tuple[str, str], tuple[int, float]] = {}
        self._failures = 0
        self._batch_failures: dict[str, int] = {}
        self._retry_at = 0.0
        self._header = {s: batcher.header_size(site, line, s, spool.session) for s in self.stations}
        self._row_limit = max_batch_bytes // 40 + 1  # a spooled reading is over 40 bytes
        self._topics: dict[tuple[str, str], str] = {}

    def topic(self, station: str, kind: str) -> str:
        key = (station, kind)
        if key not in self._topics:
            topic = StationTopic(self.site, self.line, station, MessageKind(kind))
            self._topics[key] = ingest_topic(topic, self.rule_prefix)
        return self._topics[key]

    # -- choosing the next message ---------------------------------------------------------

    def plan(self) -> Planned | float:
        """The next message, its rows assigned to its batch, or seconds to wait for one."""
        now = self.clock()
        if now < self._retry_at:
            return self._retry_at - now
        candidate = self._next(now)
        if not isinstance(candidate, tuple):
            return candidate
        rows, live = candidate
        station, kind = rows[0].station, rows[0].kind
        batch = rows[0].batch or self.spool.batch_id(rows)
        if kind == TELEMETRY:
            payload = batcher.telemetry_payload(self.site, self.line, station, batch, rows)
        else:
            payload = rows[0].body
        wait = max(self.publishes.wait(1, now), self.bytes.wait(len(payload), now))
        if wait > EPSILON_S:
            return max(wait, MIN_WAIT_S)
        if rows[0].batch is None:
            self.spool.assign(rows)
        self.publishes.take(1)
        self.bytes.take(len(payload))
        readings = len(rows) if kind == TELEMETRY else 0
        return Planned(station, kind, self.topic(station, kind), payload, batch, readings, live)

    def _next(self, now: float) -> tuple[list[Spooled], bool] | float:
        # 1. A batch assigned but not acknowledged (a crash between publish and ack): the
        #    same rows under the same id, first, so the cloud can tell the copy. One that
        #    failed here waits behind what is ready (least-failed first), so a message the
        #    broker refuses (a topic the policy denies) never blocks the others.
        assigned = sorted(
            self.spool.assigned_batches(), key=lambda a: (self._batch_failures.get(a[0], 0), a[3])
        )
        if assigned and not self._batch_failures.get(assigned[0][0]):
            return self.spool.batch_rows(assigned[0][0]), False
        # 2. Live: state, count and events at once; telemetry when full or old enough.
        waits: list[float] = []
        ready: list[tuple[int, str, str]] = []
        backlog: list[tuple[int, str, str]] = []
        for station in self.stations:
            for kind in KINDS:
                if kind != TELEMETRY:
                    head = self.spool.head(station, kind)
                    if head is not None:
                        ready.append((head[0], station, kind))
                    continue
                live = self.spool.head(station, kind, min_id=self.live_from)
                if live is not None:
                    first_id, since = self._seen(station, kind, live[0], now)
                    if now - since >= self.delay_s - EPSILON_S or self._full(station, first_id):
                        ready.append((first_id, station, kind))
                    else:
                        waits.append(max(MIN_WAIT_S, since + self.delay_s - now))
                old = self.spool.head(station, kind)
                if old is not None and old[0] < self.live_from:
                    backlog.append((old[0], station, kind))
        for queue, live in ((ready, True), (backlog, False)):
            if queue:
                first_id, station, kind = min(queue)
                return self._rows(station, kind, first_id), live
        if assigned:
            return self.spool.batch_rows(assigned[0][0]), False
        return min([IDLE_S, *waits])

    def _seen(self, station: str, kind: str, head_id: int, now: float) -> tuple[int, float]:
        """When the collector first saw the current oldest live row: the batch delay counts
        from there, on the collector's clock, not the machine's."""
        known = self._first_seen.get((station, kind))
        if known is None or known[0] != head_id:
            known = (head_id, now)
            self._first_seen[(station, kind)] = known
        return known

    def _full(self, station: str, first_id: int) -> bool:
        size = self.spool.open_bytes(
            station, TELEMETRY, min_id=first_id, limit=self._row_limit
        )  # an upper bound of one batch's bodies; commas and header added below
        return size + self._header_size(station) >= self.max_batch_bytes

    def _header_size(self, station: str) -> int:
        if station not in self._header:
            self._header[station] = batcher.header_size(
                self.site, self.line, station, self.spool.session
            )
        return self._header[station]

    def _rows(self, station: str, kind: str, first_id: int) -> list[Spooled]:
        limit = self._row_limit if kind == TELEMETRY else 1
        rows = self.spool.open_rows(station, kind, min_id=first_id, limit=limit)
        if kind == TELEMETRY:
            rows = rows[: batcher.fit(rows, self._header_size(station), self.max_batch_bytes)]
        return rows

    # -- outcomes ------------------------------------------------------------------------

    def sent(self, planned: Planned) -> None:
        self.spool.ack([planned.batch])
        self._batch_failures.pop(planned.batch, None)
        if self._failures:
            self.live_from = self.spool.max_id() + 1
            log.info(
                "publishing again after %d failures; rows spooled meanwhile drain oldest first",
                self._failures,
            )
            self._failures = 0
            self._retry_at = 0.0
        stats = self.stats
        stats.messages += 1
        stats.readings += planned.readings
        stats.bytes += len(planned.payload)
        stats.backlog_messages += 0 if planned.live else 1
        stats.by_kind[planned.kind] = stats.by_kind.get(planned.kind, 0) + 1

    def failed(self, planned: Planned, error: Exception) -> None:
        """The rows keep their batch id; the same message is tried again after a backoff."""
        self._failures += 1
        self._batch_failures[planned.batch] = self._batch_failures.get(planned.batch, 0) + 1
        self.stats.failures += 1
        delay = min(RETRY_MAX_S, RETRY_MIN_S * 2 ** min(self._failures - 1, 10))
        self._retry_at = self.clock() + delay
        level = logging.WARNING if self._failures == 1 else logging.DEBUG
        log.log(
            level,
            "publish of batch %s failed (%s); retrying in %.1f s",
            planned.batch,
            error,
            delay,
        )

    def step(self) -> float:
        """Publish one message synchronously (tests, tools); the seconds to wait otherwise."""
        planned = self.plan()
        if not isinstance(planned, Planned):
            return planned
        try:
            self.transport.publish(planned.topic, planned.payload)
        except TransportError as exc:
            self.failed(planned, exc)
            return 0.0
        self.sent(planned)
        return 0.0

    async def run(self, stop: asyncio.Event, wake: asyncio.Event | None = None) -> None:
        """Publish until ``stop``; a publish blocks on its PUBACK in a worker thread."""
        wake = wake or asyncio.Event()
        while not stop.is_set():
            planned = self.plan()
            if not isinstance(planned, Planned):
                wake.clear()
                waiters = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(wake.wait())]
                await asyncio.wait(waiters, timeout=planned, return_when=asyncio.FIRST_COMPLETED)
                for waiter in waiters:
                    waiter.cancel()
                continue
            try:
                await asyncio.to_thread(self.transport.publish, planned.topic, planned.payload)
            except TransportError as exc:
                self.failed(planned, exc)
                continue
            self.sent(planned)
