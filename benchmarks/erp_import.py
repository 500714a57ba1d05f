#!/usr/bin/env python3
"""ERP import throughput: a 100,000-row production-order CSV through the erp_plm_router.

In process, from a file on disk read as a stream. Compared in the same run with two baselines:
plain ``csv.reader`` over the same stream (no validation: the parsing floor) and the naive
import (read the whole file, parse every row, validate every row, then write). Stores are stubs
counting items and calls. The last rows run the real DynamoDB adapter (Powertools idempotency,
conditional PutItem, BatchGetItem pre-check) against a stub client, for a first import and a
re-import of the same file, and count its DynamoDB calls per document.

Peak memory is tracemalloc's peak (a second pass, as tracing slows Python down) and the growth
of the process's max RSS (runs go from least to most memory, as max RSS never falls).

    .venv/bin/python benchmarks/erp_import.py [--rows N] [--adapter-rows N] [--quick]

``--quick``: 2,000 rows and 500 through the adapter (a smoke run in seconds).
"""

from __future__ import annotations

import argparse
import csv
import io
import resource
import sys
import tempfile
import time
import tracemalloc
import warnings
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.figures import figure  # noqa: E402
from lambdas.erp_plm_router import adapters  # noqa: E402
from lambdas.erp_plm_router.documents import DocType, RawDocument, Source  # noqa: E402
from lambdas.erp_plm_router.parsers import Format, read_documents  # noqa: E402
from lambdas.erp_plm_router.routing import Outcome, route_documents, validate  # noqa: E402

NOW_MS = 1_763_800_000_000
HEADER = (
    "document_id,revision,issued_at,order_id,material_id,quantity,uom,site,line,"
    "planned_start,planned_end,status"
)


def write_csv(path: Path, rows: int) -> None:
    with path.open("w", newline="") as out:
        out.write(HEADER + "\n")
        for i in range(rows):
            start = NOW_MS + i * 60_000
            out.write(
                f"{5_000_000 + i},1,{NOW_MS},{5_000_000 + i},MAT-{i % 997},{1 + i % 500},PC,"
                f"berlin,body-line-{i % 4},{start},{start + 28_800_000},RELEASED\n"
            )


class CountingStore:
    """Stands in for DynamoDB at the DocumentStore boundary."""

    def __init__(self) -> None:
        self.calls = 0
        self.items = 0

    def apply(self, batch):
        self.calls += 1
        self.items += len(batch)
        return [Outcome.STORED] * len(batch)


class StubDynamoDB:
    """Stands in for the boto3 client under the real adapter: keeps items, counts calls."""

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()
        self.items: dict[tuple, dict] = {}

    def batch_get_item(self, RequestItems):  # noqa: N803 (boto3's names)
        self.calls["BatchGetItem"] += 1
        [(table, request)] = RequestItems.items()
        found = [
            self.items[(k["pk"]["S"], k["sk"]["S"])]
            for k in request["Keys"]
            if (k["pk"]["S"], k["sk"]["S"]) in self.items
        ]
        return {"Responses": {table: found}, "UnprocessedKeys": {}}

    def put_item(self, TableName, Item, **kwargs):  # noqa: N803
        if "pk" in Item:
            self.calls["PutItem (store)"] += 1
            self.items[(Item["pk"]["S"], Item["sk"]["S"])] = Item
        else:
            self.calls["PutItem (idempotency)"] += 1
        return {}

    def update_item(self, **kwargs):
        self.calls["UpdateItem (idempotency)"] += 1
        return {}

    def delete_item(self, **kwargs):
        self.calls["DeleteItem (idempotency)"] += 1
        return {}


def run_router(path: Path, store) -> int:
    with path.open("rb") as stream:
        report = route_documents(
            "erp",
            "production-order",
            read_documents(Format.CSV, stream, DocType.PRODUCTION_ORDER),
            store,
            now_ms=NOW_MS,
        )
    assert report.rejected == 0, report.errors()[:3]
    return report.received


def run_csv_only(path: Path) -> int:
    with path.open("r", newline="") as text:
        return sum(1 for _ in csv.reader(text)) - 1


def run_whole_file(path: Path) -> int:
    """The naive import: everything in memory before the first write."""
    text = path.read_bytes().decode()
    rows = list(csv.DictReader(io.StringIO(text)))
    prepared = [
        validate(
            RawDocument(i, {k: v for k, v in row.items() if v}, row, header_from_path=True),
            Source.ERP,
            DocType.PRODUCTION_ORDER,
            NOW_MS,
        )
        for i, row in enumerate(rows, 1)
    ]
    store = CountingStore()
    for start in range(0, len(prepared), 25):
        store.apply(prepared[start : start + 25])
    return len(prepared)


def measure(run) -> tuple[int, float, float, float]:
    """Rows, rows/s, tracemalloc peak MiB, max-RSS growth MiB."""
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.perf_counter()
    rows = run()
    elapsed = time.perf_counter() - started
    rss_growth = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before) / 1024
    tracemalloc.start()
    run()
    peak = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    return rows, rows / elapsed, peak, rss_growth


def adapter_run(path: Path, client: StubDynamoDB) -> tuple[int, float, Counter]:
    adapters.client = lambda service: client  # the adapter's only way to boto3
    store = adapters.DynamoStore(
        dict.fromkeys(DocType, "orders"), idempotency_table="router-idempotency"
    )
    before = Counter(client.calls)
    started = time.perf_counter()
    rows = run_router(path, store)
    elapsed = time.perf_counter() - started
    return rows, rows / elapsed, client.calls - before


def main() -> None:
    # Outside Lambda there is no invocation deadline for Powertools to read; it says so per call.
    warnings.filterwarnings("ignore", message="Couldn't determine the remaining time left")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--adapter-rows", type=int, default=20_000)
    parser.add_argument("--quick", action="store_true", help="2,000 rows, 500 via the adapter")
    args = parser.parse_args()
    if args.quick:
        args.rows, args.adapter_rows = 2_000, 500
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "orders.csv"
        write_csv(path, args.rows)
        size_mib = path.stat().st_size / 2**20
        print(f"{args.rows:,} production-order rows, {size_mib:.1f} MiB of CSV, stubbed writes")
        print(f"{'run':<44}{'rows/s':>10}{'peak MiB':>10}{'max RSS +MiB':>14}{'calls':>8}")
        counting = CountingStore()
        measured: dict[str, tuple[float, float]] = {}
        router, whole = (
            "router: stream, validate, batches of 25",
            "baseline: whole file, validate all, write",
        )
        runs = [
            ("baseline: csv.reader only, no validation", lambda: run_csv_only(path)),
            (router, lambda: run_router(path, counting)),
            (whole, lambda: run_whole_file(path)),
        ]
        for name, run in runs:
            counting.calls = 0
            rows, rate, peak, rss = measure(run)
            measured[name] = (rate, peak)
            calls = f"{counting.calls // 2:,}" if counting.calls else "-"  # measure runs twice
            print(f"{name:<44}{rate:>10,.0f}{peak:>10.1f}{rss:>14.1f}{calls:>8}")

        (router_rate, router_peak), (whole_rate, whole_peak) = measured[router], measured[whole]
        figure(
            "ERP import rows/s, streaming router",
            router_rate,
            "rows/s",
            "whole-file import",
            whole_rate,
        )
        figure(
            "ERP import peak memory, streaming router",
            router_peak,
            "MiB",
            "whole-file import",
            whole_peak,
        )

        small = Path(folder) / "orders-small.csv"
        write_csv(small, args.adapter_rows)
        client = StubDynamoDB()
        print(f"\nreal adapter on a stub DynamoDB client, {args.adapter_rows:,} rows")
        print(f"{'run':<44}{'rows/s':>10}  DynamoDB calls per 1,000 documents")
        for name in ("first import (all new)", "re-import (all duplicates)"):
            rows, rate, calls = adapter_run(small, client)
            per_k = ", ".join(f"{op} {n * 1000 / rows:,.0f}" for op, n in sorted(calls.items()))
            print(f"{name:<44}{rate:>10,.0f}  {per_k}")


if __name__ == "__main__":
    main()
