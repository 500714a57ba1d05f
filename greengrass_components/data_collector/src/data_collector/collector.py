"""The DataCollector: a line's sources feed one sink; readings are derived, spooled, published.

    collector = Collector(config, transport, spool_path)
    task = asyncio.create_task(collector.run())
    ...
    collector.stop(); await task

Each source runs as its own task (``sources.run_source``): one that fails is logged with its
connection, station and point, and started again, and the others carry on. The sink only
appends to a buffer (sources call it from their loop or threads); every ``flush_interval_s``
the buffer goes through the derivers and into the spool in one transaction, with the derivers'
memory. The publisher reads only the spool, so nothing is published that is not spooled, and a
restart resumes from it: unacknowledged batches, the backlog, the counters' last values.
"""

from __future__ import annotations

import asyncio
import copy
import json
import logging
import math
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from data_collector.derive import Derived, StationDeriver
from data_collector.publisher import Publisher
from data_collector.readings import (
    COUNTER_BAD,
    COUNTER_GOOD,
    COUNTER_REJECT,
    COUNTER_TOTAL,
    STATE,
    STATE_FAULT,
    STATE_RUNNING,
    STATE_SETUP,
    Binding,
    Reading,
    SourceError,
    set_within,
)
from data_collector.spool import COUNT, EVENT, TELEMETRY, Row, Spool
from data_collector.spool import STATE as STATE_KIND
from greengrass_components.common.transport import Transport
from mes_domain.collection import BooleanStateSource, CodeStateSource, CollectorConfig
from mes_domain.contracts import MachineEvent, PartCount, StateChange

log = logging.getLogger(__name__)

SPOOL_FILE = "spool.db"
METRICS_FILE = "metrics.json"
MAX_BUFFERED = 500_000  # readings held between flushes at most; beyond, the newest are dropped
MAX_TEXT = 1024  # a string reading's longest value (contracts.Reading)


def bindings_of(config: CollectorConfig) -> dict[str, list[Binding]]:
    """Every point of every station, by connection name."""
    out: dict[str, list[Binding]] = {}

    def add(station: str, point: str, address) -> None:
        out.setdefault(address.connection, []).append(Binding(station, point, address))

    for station in config.stations:
        sid = station.station
        for tag in station.tags:
            add(sid, tag.name, tag.source)
        if isinstance(station.state, CodeStateSource):
            add(sid, STATE, station.state.source)
        elif isinstance(station.state, BooleanStateSource):
            for point, address in (
                (STATE_RUNNING, station.state.running),
                (STATE_FAULT, station.state.fault),
                (STATE_SETUP, station.state.setup),
            ):
                if address is not None:
                    add(sid, point, address)
        if station.counters is not None:
            for point, address in (
                (COUNTER_GOOD, station.counters.good),
                (COUNTER_BAD, station.counters.bad),
                (COUNTER_TOTAL, station.counters.total),
                (COUNTER_REJECT, station.counters.reject),
            ):
                if address is not None:
                    add(sid, point, address)
    return out


def telemetry_body(reading: Reading, unit: str | None) -> bytes | None:
    """``reading`` as a ``contracts.Reading`` in compact JSON; None if the contract cannot
    carry its value (none, not finite, too long)."""
    value = reading.value
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return None
    if isinstance(value, str) and len(value) > MAX_TEXT:
        return None
    body: dict[str, Any] = {"ts": reading.ts_ms, "tag": reading.point, "value": value}
    if unit is not None:
        body["unit"] = unit
    body["quality"] = reading.quality.value
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()


def _kind(derived: Derived) -> str:
    if isinstance(derived, StateChange):
        return STATE_KIND
    if isinstance(derived, PartCount):
        return COUNT
    assert isinstance(derived, MachineEvent)
    return EVENT


async def cancel_until_done(tasks: list[asyncio.Task], every_s: float = 0.5) -> None:
    """Cancel ``tasks`` and wait for them, cancelling again while any still runs: Python 3.11's
    ``asyncio.wait_for``, which client libraries use inside requests, can swallow a cancel that
    races with its result, and a source that missed its one cancel would keep the process up
    until the nucleus kills it."""
    pending = set(tasks)
    while pending:
        for task in pending:
            task.cancel()
        _, pending = await asyncio.wait(pending, timeout=every_s)
    for task in tasks:  # retrieve results so none is reported as never retrieved
        if not task.cancelled():
            task.exception()


class Collector:
    def __init__(
        self,
        config: CollectorConfig,
        transport: Transport,
        spool_path: Path,
        *,
        clock: Callable[[], float] = time.monotonic,
        source_factory: Callable | None = None,
        flush_interval_s: float = 0.05,
        publishes_per_s: float | None = None,
        bytes_per_s: float | None = None,
        synchronous: str = "NORMAL",
        metrics_path: Path | None = None,
    ) -> None:
        """``spool_path``: the spool's file, or a folder to keep ``spool.db`` in.
        ``publishes_per_s`` and ``bytes_per_s`` override the configuration's budget (a broker
        other than AWS IoT Core, a benchmark)."""
        self.config = config
        self.transport = transport
        spool_path = Path(spool_path)
        if spool_path.suffix != ".db":
            spool_path = spool_path / SPOOL_FILE
        self.spool = Spool(
            spool_path, max_bytes=config.settings.spool_max_bytes, synchronous=synchronous
        )
        self.metrics_path = metrics_path or spool_path.parent / METRICS_FILE
        self.flush_interval_s = flush_interval_s
        if source_factory is None:
            from data_collector.sources import make_source

            source_factory = make_source
        self._source_factory = source_factory
        memories = self.spool.memories()
        self.derivers: dict[str, StationDeriver] = {}
        self._derived: set[tuple[str, str]] = set()
        self._units: dict[tuple[str, str], str | None] = {}
        for station in config.stations:
            for tag in station.tags:
                self._units[(station.station, tag.name)] = tag.unit
            if station.state is None and station.counters is None:
                continue
            deriver = StationDeriver(
                station.station,
                state=station.state,
                counters=station.counters,
                memory=memories.get(station.station, {}),
            )
            self.derivers[station.station] = deriver
            self._derived |= {(station.station, point) for point in deriver.points()}
        settings = config.settings
        self.publisher = Publisher(
            self.spool,
            transport,
            site=config.site,
            line=config.line,
            stations=[s.station for s in config.stations],
            rule_prefix=config.rule_prefix,
            max_batch_bytes=settings.max_batch_bytes,
            max_batch_delay_ms=settings.max_batch_delay_ms,
            publishes_per_s=publishes_per_s or settings.max_publishes_per_s,
            bytes_per_s=bytes_per_s or settings.max_publish_bytes_per_s,
            clock=clock,
        )
        self._lock = threading.Lock()
        self._buffer: list[Reading] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop = asyncio.Event()
        self._wake = asyncio.Event()
        self.counters = {
            "readings_in": 0,
            "readings_spooled": 0,
            "derived_events": 0,
            "readings_unusable": 0,  # no value the contract can carry, or an unknown point
            "readings_dropped_buffer_full": 0,
            "source_errors": 0,
            "spool_write_errors": 0,
        }
        self.sources: list = []

    # -- the sink (any thread) -------------------------------------------------------------

    def sink(self, reading: Reading) -> None:
        with self._lock:
            if len(self._buffer) >= MAX_BUFFERED:
                self.counters["readings_dropped_buffer_full"] += 1
                return
            self._buffer.append(reading)
            self.counters["readings_in"] += 1

    # -- flushing into the spool (the loop) ------------------------------------------------

    def flush(self) -> int:
        """Derive and spool what the sources handed in; returns the rows written."""
        with self._lock:
            readings, self._buffer = self._buffer, []
        if not readings:
            return 0
        before = {s: copy.deepcopy(d.memory) for s, d in self.derivers.items()}
        rows: list[Row] = []
        touched: set[str] = set()
        spooled = derived_count = unusable = 0
        for reading in readings:
            key = (reading.station, reading.point)
            if key in self._derived:
                deriver = self.derivers[reading.station]
                for derived in deriver.feed(reading):
                    body = derived.model_dump_json(exclude_none=True).encode()
                    rows.append(Row(reading.station, _kind(derived), derived.ts, body))
                    derived_count += 1
                touched.add(reading.station)
                continue
            if key not in self._units:
                unusable += 1
                continue
            body = telemetry_body(reading, self._units[key])
            if body is None:
                unusable += 1
                continue
            rows.append(Row(reading.station, TELEMETRY, reading.ts_ms, body))
            spooled += 1
        try:
            self.spool.put(rows, {s: self.derivers[s].memory for s in touched})
        except Exception:
            # Nothing was written: the derivers forget what they saw, the readings wait.
            log.exception("spool write failed; %d readings kept for the next try", len(readings))
            self.counters["spool_write_errors"] += 1
            for station, memory in before.items():
                self.derivers[station].memory = memory
            with self._lock:
                self._buffer[:0] = readings[: MAX_BUFFERED - len(self._buffer)]
            return 0
        self.counters["readings_spooled"] += spooled
        self.counters["derived_events"] += derived_count
        self.counters["readings_unusable"] += unusable
        if rows:
            self._wake.set()
        return len(rows)

    # -- metrics -------------------------------------------------------------------------

    def metrics(self) -> dict[str, Any]:
        stats = self.publisher.stats
        return {
            **self.counters,
            **self.spool.stats(),
            "published_messages": stats.messages,
            "published_readings": stats.readings,
            "published_bytes": stats.bytes,
            "publish_failures": stats.failures,
            "backlog_messages": stats.backlog_messages,
        }

    def write_metrics(self) -> None:
        tmp = self.metrics_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.metrics(), sort_keys=True))
        tmp.replace(self.metrics_path)

    # -- running -------------------------------------------------------------------------

    def _start_sources(self) -> list[asyncio.Task]:
        from data_collector.sources import run_source

        tasks = []
        for name, bindings in bindings_of(self.config).items():
            try:
                connection = self.config.settings.connection(name)
                source = self._source_factory(connection, bindings)
            except (SourceError, KeyError, ValueError) as exc:
                points = ", ".join(f"{b.station}/{b.point}" for b in bindings)
                log.error("connection %s (%s) not started: %s", name, points, exc)
                self.counters["source_errors"] += 1
                continue
            self.sources.append(source)
            tasks.append(asyncio.create_task(run_source(source, self.sink), name=f"source-{name}"))
        return tasks

    async def _flush_loop(self) -> None:
        last_metrics = 0.0
        while not self._stop.is_set():
            self.flush()
            now = time.monotonic()
            if now - last_metrics >= 10:
                last_metrics = now
                self.write_metrics()
                log.info("metrics %s", json.dumps(self.metrics(), sort_keys=True))
            await set_within(self._stop, self.flush_interval_s)

    async def run(self) -> None:
        """Collect and publish until ``stop``; then flush what was read and close the spool
        (an in-flight publish finishes first)."""
        self._loop = asyncio.get_running_loop()
        log.info(
            "collecting %s/%s: %d stations, publishing through %s",
            self.config.site, self.config.line, len(self.config.stations),
            type(self.transport).__name__,
        )  # fmt: skip
        sources = self._start_sources()
        flusher = asyncio.create_task(self._flush_loop(), name="flush")
        publisher = asyncio.create_task(self.publisher.run(self._stop, self._wake), name="publish")
        try:
            await self._stop.wait()
        finally:
            self._stop.set()
            await cancel_until_done(sources)
            await asyncio.gather(flusher, publisher, return_exceptions=True)
            self.flush()
            self.write_metrics()
            log.info("stopped; metrics %s", json.dumps(self.metrics(), sort_keys=True))
            self.spool.close()

    def stop(self) -> None:
        """Thread-safe and idempotent; before ``run`` it makes ``run`` return at once."""
        if self._loop is None:
            self._stop.set()
        else:
            self._loop.call_soon_threadsafe(self._stop.set)
