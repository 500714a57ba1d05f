#!/usr/bin/env python3
"""Telemetry ingest throughput: 100,000 readings through the telemetry_writer logic.

A recording stub stands in for Timestream. The baseline, in the same run, is the naive
writer: it validates the same payloads but sends one single-measure record per reading.
Prints readings/s in-process and WriteRecords calls per 1,000 readings for both.

    .venv/bin/python benchmarks/ingest.py [--readings N] [--tags K] [--quick]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.figures import figure  # noqa: E402
from lambdas.common.timestream import MAX_RECORDS_PER_WRITE  # noqa: E402
from lambdas.telemetry_writer.ingest import ingest  # noqa: E402
from mes_domain.contracts import TelemetryBatch  # noqa: E402


class RecordingTimestream:
    def __init__(self) -> None:
        self.calls = 0
        self.records = 0

    def write(self, records: list[dict]) -> list:
        self.calls += 1
        self.records += len(records)
        return []


class NoDeadLetters:
    def send(self, letters) -> None:
        raise AssertionError(f"benchmark payloads are valid, got {letters[0].reason}")


QUICK_READINGS = 5_000  # --quick: seconds, not minutes, with the same figure lines


def payloads(readings: int, tags: int, per_batch: int = 100) -> list[tuple[str, bytes, str]]:
    start = int(time.time() * 1000) - 3_600_000
    items = []
    for b in range(readings // per_batch):
        station = f"st-{b % 50:02d}"
        batch = {
            "v": 1,
            "site": "berlin",
            "line": "body-line-1",
            "station": station,
            "batch_id": f"b-{b}",
            "readings": [
                {
                    "ts": start + b * 1000 + i // tags,
                    "tag": f"tag_{i % tags}",
                    "value": i * 0.5,
                    "unit": "bar",
                    "quality": "GOOD",
                }
                for i in range(per_batch)
            ],
        }
        # The partition key the telemetry rule writes: the topic's site/line/station.
        items.append((f"seq-{b}", json.dumps(batch).encode(), f"berlin/body-line-1/{station}"))
    return items


def naive_ingest(items, writer) -> None:
    """Baseline: the same validation, then one single-measure record per reading."""
    records = []
    for _, data, _ in items:
        batch = TelemetryBatch.model_validate_json(data)
        for r in batch.readings:
            records.append({"MeasureName": r.tag, "MeasureValue": str(r.value), "Time": str(r.ts)})
    for start in range(0, len(records), MAX_RECORDS_PER_WRITE):
        writer.write(records[start : start + MAX_RECORDS_PER_WRITE])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--readings", type=int, default=100_000)
    parser.add_argument("--tags", type=int, default=5, help="tags sampled together per timestamp")
    parser.add_argument(
        "--quick", action="store_true", help=f"{QUICK_READINGS:,} readings: a smoke run"
    )
    args = parser.parse_args()
    if args.quick:
        args.readings = min(args.readings, QUICK_READINGS)
    items = payloads(args.readings, args.tags)
    total = sum(len(json.loads(d)["readings"]) for _, d, _ in items)

    results = {}
    for name in ("baseline", "multi-measure", "baseline", "multi-measure"):  # alternate for noise
        writer = RecordingTimestream()
        started = time.perf_counter()
        if name == "baseline":
            naive_ingest(items, writer)
        else:
            outcome = ingest(items, writer, NoDeadLetters())
            assert outcome.readings_written == total
        elapsed = time.perf_counter() - started
        best = results.get(name)
        if best is None or elapsed < best[0]:
            results[name] = (elapsed, writer.calls, writer.records)

    print(f"{total} readings in {len(items)} batches, {args.tags} tags per timestamp (best of 2)")
    print(f"{'writer':<15}{'readings/s':>12}{'records':>10}{'calls/1000 readings':>22}")
    for name, (elapsed, calls, records) in results.items():
        print(f"{name:<15}{total / elapsed:>12,.0f}{records:>10}{calls * 1000 / total:>22.2f}")
    base, multi = results["baseline"], results["multi-measure"]
    print(
        f"multi-measure vs baseline: {base[1] / multi[1]:.1f}x fewer WriteRecords calls, "
        f"throughput {base[0] / multi[0]:.2f}x"
    )
    figure(
        "telemetry readings/s, multi-measure writer",
        total / multi[0],
        "readings/s",
        "one record per reading",
        total / base[0],
    )
    figure(
        "WriteRecords calls per 1,000 readings, multi-measure writer",
        multi[1] * 1000 / total,
        "calls",
        "one record per reading",
        base[1] * 1000 / total,
    )


if __name__ == "__main__":
    main()
