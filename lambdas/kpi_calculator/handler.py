"""Scheduled KPI run: each recently closed window once, then the current shift so far.

Closed windows are idempotent (Powertools idempotency on DynamoDB, keyed by the window): a
second run of the same window writes and emits nothing, so no count is doubled. The last
``CATCH_UP_WINDOWS`` windows are tried each time, so a missed schedule is made up. The current
shift is rewritten on every run (a newer version replaces the older record) and is not emitted
as metrics, because it is a running total.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from functools import cache
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.idempotency import (
    DynamoDBPersistenceLayer,
    IdempotencyConfig,
    idempotent_function,
)

from lambdas.common.plant import load_plant
from lambdas.common.timestream import MAX_RECORDS_PER_WRITE, TimestreamRecordWriter, WriteFailed
from lambdas.kpi_calculator.adapters import (
    TimestreamEventSource,
    emit_metrics,
    publish_lake_rows,
)
from lambdas.kpi_calculator.calculate import (
    Period,
    closed_windows,
    compute,
    current_shift,
    kpi_record,
    lake_row,
)
from lambdas.kpi_calculator.settings import Settings
from mes_domain.plant import Plant

CATCH_UP_WINDOWS = 3

logger = Logger(service="kpi_calculator")


@cache
def settings() -> Settings:
    return Settings.from_environ()


@cache
def plant() -> Plant:
    return load_plant(settings().plant_file)


@cache
def ports() -> tuple[TimestreamEventSource, TimestreamRecordWriter]:
    config = settings()
    return (
        TimestreamEventSource(config.timestream_database, config.events_table),
        TimestreamRecordWriter(config.timestream_database, config.kpi_table),
    )


def write(kpis, computed_at_ms: int) -> int:
    """Write every record; a rejected one is an error worth a retry, not a silent gap."""
    _, writer = ports()
    records = [kpi_record(kpi, computed_at_ms) for kpi in kpis]
    for start in range(0, len(records), MAX_RECORDS_PER_WRITE):
        rejections = writer.write(records[start : start + MAX_RECORDS_PER_WRITE])
        if rejections:
            raise WriteFailed(f"{len(rejections)} KPI record(s) rejected: {rejections[0].reason}")
    return len(records)


def publish_window(window: dict[str, int]) -> dict[str, Any]:
    """KPIs of one closed window: read, compute, write back, emit. Wrapped idempotently."""
    source, _ = ports()
    start, end = window["start_ms"], window["end_ms"]
    label = datetime.fromtimestamp(start / 1000, UTC).isoformat()
    kpis = compute(plant(), source.read(start, end), Period.WINDOW, label, start, end)
    computed_at_ms = int(time.time() * 1000)
    written = write(kpis, computed_at_ms)
    # The data lake gets closed windows only: the running shift is rewritten every run.
    if settings().event_bus_name:
        rows = [lake_row(kpi, computed_at_ms) for kpi in kpis]
        publish_lake_rows(settings().event_bus_name, rows)
    emit_metrics(kpis, settings().metrics_namespace)
    return {"start_ms": start, "end_ms": end, "records": written}


@cache
def idempotent_publish() -> tuple[Any, IdempotencyConfig]:
    persistence = DynamoDBPersistenceLayer(table_name=settings().idempotency_table)
    # A day is longer than any catch-up, so a window is never published twice.
    config = IdempotencyConfig(expires_after_seconds=24 * 3600)
    publish = idempotent_function(
        publish_window, data_keyword_argument="window", persistence_store=persistence, config=config
    )
    return publish, config


def scheduled_time_ms(event: dict[str, Any]) -> int:
    """The schedule's own time, so a delayed or repeated invocation computes the same windows."""
    stamp = event.get("time")
    if stamp:
        return int(datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp() * 1000)
    return int(time.time() * 1000)


@logger.inject_lambda_context
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    now_ms = scheduled_time_ms(event)
    the_plant = plant()
    publish, idempotency = idempotent_publish()
    idempotency.register_lambda_context(context)
    source, _ = ports()
    source.skipped.clear()
    windows = []
    for start, end in closed_windows(now_ms, the_plant.kpi.window_minutes, CATCH_UP_WINDOWS):
        windows.append(publish(window={"start_ms": start, "end_ms": end}))

    shifts = 0
    for site in the_plant.sites:
        running = current_shift(site, now_ms)
        if running is None:
            continue
        name, start, end = running
        site_only = the_plant.model_copy(update={"sites": [site]})
        kpis = compute(site_only, source.read(start, end), Period.SHIFT, name, start, end)
        shifts += write(kpis, int(time.time() * 1000))
    if source.skipped:
        logger.warning("events skipped", extra={"skipped": source.skipped[:20]})
    summary = {"windows": windows, "shift_records": shifts, "skipped": len(source.skipped)}
    logger.info("kpis published", extra=summary)
    return summary
