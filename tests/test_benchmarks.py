"""Every benchmark runs in --quick mode and reports its figures against its baseline.

The benchmarks run as `make benchmark` runs them (a fresh interpreter each), two at a time on
the two cores; each figure line is parsed: a positive number, its unit, and the baseline
measured in the same run, with the ratio of the two.
"""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import pytest

from benchmarks.figures import FIGURE
from tests.conftest import PROJECT_ROOT

# Benchmark -> the unit of each of its figures, in the order printed. Slowest first, so the
# two workers finish together.
EXPECTED_UNITS = {
    "synth_time": ["s", "s", "KiB"],
    "collector": ["readings/s", "messages", "readings/s"],
    "mes_services": ["operations/s", "ms", "ms"],
    "vision": ["AUROC", "images/s"],
    "quality_edge": ["images/s"],
    "erp_import": ["rows/s", "MiB"],
    "ingest": ["readings/s", "calls"],
    "datalake": ["bytes", "MiB"],
    "kpi": ["events/s"],
}


def _run(name: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, f"benchmarks/{name}.py", "--quick"],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


@pytest.fixture(scope="module")
def runs() -> dict[str, subprocess.CompletedProcess]:
    with ThreadPoolExecutor(2) as pool:
        return dict(zip(EXPECTED_UNITS, pool.map(_run, EXPECTED_UNITS), strict=True))


def figures(result: subprocess.CompletedProcess) -> list[dict]:
    lines = [line for line in result.stdout.splitlines() if line.startswith("figure:")]
    parsed = []
    for line in lines:
        match = FIGURE.match(line)
        assert match, f"not a figure line: {line!r}"
        parsed.append(match.groupdict())
    return parsed


def test_the_figure_line_format_is_strict():
    line = "figure: x/s, fast path: 10.000 x/s against slow path: 4.000 x/s (2.500x)"
    assert FIGURE.match(line)["baseline"] == "slow path"
    assert not FIGURE.match(line.replace("against slow path: 4.000 x/s", "alone"))
    assert not FIGURE.match(line.replace("4.000 x/s", "4.000 y/s"))  # one unit on both sides


@pytest.mark.parametrize("name", EXPECTED_UNITS)
def test_quick_benchmark_reports_each_figure_against_its_baseline(runs, name):
    result = runs[name]
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    found = figures(result)
    assert [f["unit"] for f in found] == EXPECTED_UNITS[name], result.stdout
    for f in found:
        value, baseline, ratio = (float(f[k]) for k in ("value", "baseline_value", "ratio"))
        assert value > 0 and baseline > 0 and f["baseline"].strip()
        # The ratio is of the two numbers printed beside it, so both come from this run.
        assert math.isclose(ratio, value / baseline, rel_tol=0.01, abs_tol=0.002), f


def test_quick_figures_keep_the_properties_the_design_promises(runs):
    """Margins far wider than any machine noise: order-of-magnitude properties only."""
    by_unit = {(name, f["unit"]): float(f["ratio"]) for name in runs for f in figures(runs[name])}
    assert by_unit[("kpi", "events/s")] > 3  # vectorised KPIs beat the per-event loop
    assert by_unit[("ingest", "calls")] < 0.5  # multi-measure records: fewer WriteRecords
    assert by_unit[("erp_import", "MiB")] < 0.5  # streaming holds a fraction of the file
    assert by_unit[("collector", "messages")] < 0.1  # batches bill a fraction of the messages
    assert by_unit[("datalake", "bytes")] < 0.5  # pruning reads a site's few days, not all
    assert by_unit[("datalake", "MiB")] < 0.3  # Parquet: a fraction of the raw JSON
    auroc = [f for f in figures(runs["vision"]) if f["unit"] == "AUROC"]
    assert 0.5 < float(auroc[0]["value"]) <= 1.0


def test_quick_collector_benchmark_ends_with_its_summary_and_loses_nothing(runs):
    last = runs["collector"].stdout.strip().splitlines()[-1]
    match = re.fullmatch(
        r"collector: (\d+) readings/s, (\d+(?:\.\d+)?) messages per 1000 readings, "
        r"lost (\d+) of (\d+)",
        last,
    )
    assert match, last
    rate, per_1000, lost, total = match.groups()
    assert int(rate) > 0 and 0 < float(per_1000) < 1000
    assert int(lost) == 0 and int(total) > 0


def test_quick_mes_services_benchmark_agrees_and_confirms_each_operation_once(runs):
    """Both dispatch variants returned the whole list, the same one; every operation started
    and completed has exactly one confirmation, and one message for the bus."""
    last = runs["mes_services"].stdout.strip().splitlines()[-1]
    assert last.startswith("mes_services: "), last
    result = json.loads(last.removeprefix("mes_services: "))
    assert result["same_dispatch_list"] is True
    assert result["dispatch_items"] == result["open_orders"] > 0
    completed = result["api_operations"] + result["direct_operations"]
    assert result["api_operations"] > 0 and result["direct_operations"] > 0
    assert result["confirmations"] == result["confirmation_messages"] == completed
    assert 0 < result["dispatch_p50_ms"] <= result["dispatch_p99_ms"]
    assert result["naive_calls"] > 0 and result["dispatch_calls"] >= result["naive_calls"]
    assert 0 < result["page_items"] <= result["dispatch_items"]
    # One indexed query, not 1 + 2 per order: the median call takes a fraction of the time.
    p50 = [f for f in figures(runs["mes_services"]) if f["what"].startswith("dispatch list p50")]
    assert len(p50) == 1 and float(p50[0]["ratio"]) < 0.5, p50
