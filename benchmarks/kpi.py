#!/usr/bin/env python3
"""KPI throughput: the vectorised many-stations path against a per-event Python loop, one run.

Generates stations x one 8-hour shift with a state change and a part count every 10 s (500
stations: about 1.44 M state events). Times the vectorised path on all of them, and both paths
on a subset (the loop is too slow for the whole plant), after checking they agree there. Prints
events/s for both and their ratio; best of a few repeats, because the machine is shared.

    .venv/bin/python benchmarks/kpi.py [--stations 500] [--subset 25] [--repeat 3] [--quick]

``--quick``: 20 stations, a subset of 3, one repeat (a smoke run in seconds).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.figures import figure  # noqa: E402
from mes_domain.contracts import EquipmentState, PartCount, StateChange  # noqa: E402
from mes_domain.kpi import (  # noqa: E402
    STATE_CODES,
    StationColumns,
    kpis_for_stations,
    kpis_from_events,
)

DAY_MS = 24 * 3600 * 1000
# Two days ago, 05:00 UTC: in the past whatever the clock, as the contracts require.
SHIFT_START_MS = (int(time.time() * 1000) // DAY_MS - 2) * DAY_MS + 5 * 3600 * 1000
SHIFT_MS = 8 * 3600 * 1000
STEP_MS = 10_000
CYCLE_S = 9.0


def generate(stations: int, seed: int = 7) -> StationColumns:
    rng = np.random.default_rng(seed)
    per_station = SHIFT_MS // STEP_MS
    ts = np.tile(SHIFT_START_MS + np.arange(per_station, dtype=np.int64) * STEP_MS, stations)
    station = np.repeat(np.arange(stations, dtype=np.int64), per_station)
    weights = np.array([0.1, 0.02, 0.05, 0.7, 0.05, 0.08])  # mostly RUNNING
    code = rng.choice(len(STATE_CODES), size=ts.size, p=weights / weights.sum())
    good = rng.integers(0, 2, size=ts.size)
    bad = (rng.random(ts.size) < 0.02).astype(np.int64)
    return StationColumns(station, ts, code, station.copy(), ts + 1, good, bad)


def loop_baseline(columns: StationColumns, stations: int, cycles) -> list:
    """The straightforward path: contract objects per event, one station at a time."""
    states = [[] for _ in range(stations)]
    counts = [[] for _ in range(stations)]
    for i, ts, code in zip(
        columns.state_station, columns.state_ts, columns.state_code, strict=True
    ):
        states[i].append(StateChange(v=1, ts=int(ts), state=EquipmentState(STATE_CODES[code])))
    for i, ts, good, bad in zip(
        columns.count_station, columns.count_ts, columns.count_good, columns.count_bad, strict=True
    ):
        counts[i].append(PartCount(v=1, ts=int(ts), good=int(good), bad=int(bad)))
    return [
        kpis_from_events(states[i], counts[i], SHIFT_START_MS, SHIFT_START_MS + SHIFT_MS, cycles[i])
        for i in range(stations)
    ]


def best_of(repeat: int, run) -> tuple[float, object]:
    best, result = float("inf"), None
    for _ in range(repeat):
        started = time.perf_counter()
        result = run()
        best = min(best, time.perf_counter() - started)
    return best, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stations", type=int, default=500)
    parser.add_argument("--subset", type=int, default=25)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="20 stations, subset 3, 1 repeat")
    args = parser.parse_args()
    if args.quick:
        args.stations, args.subset, args.repeat = 20, 3, 1

    plant = generate(args.stations)
    cycles = [CYCLE_S] * args.stations
    window = (SHIFT_START_MS, SHIFT_START_MS + SHIFT_MS)
    subset = generate(args.subset)
    sub_events = subset.state_ts.size + subset.count_ts.size

    vector_sub = kpis_for_stations(subset, cycles[: args.subset], *window)
    if vector_sub != loop_baseline(subset, args.subset, cycles):
        sys.exit("the vectorised and the per-event path disagree; not timing")

    loop_s, _ = best_of(1, lambda: loop_baseline(subset, args.subset, cycles))
    sub_s, _ = best_of(
        args.repeat, lambda: kpis_for_stations(subset, cycles[: args.subset], *window)
    )
    full_s, _ = best_of(args.repeat, lambda: kpis_for_stations(plant, cycles, *window))
    full_events = plant.state_ts.size + plant.count_ts.size

    print(f"{args.stations} stations x 8 h, a state change and a count every 10 s")
    print(f"{'path':<28}{'stations':>9}{'events':>12}{'seconds':>10}{'events/s':>14}")
    rows = [
        ("per-event loop (baseline)", args.subset, sub_events, loop_s),
        ("vectorised, same subset", args.subset, sub_events, sub_s),
        ("vectorised, whole plant", args.stations, full_events, full_s),
    ]
    for name, stations, events, seconds in rows:
        print(f"{name:<28}{stations:>9}{events:>12,}{seconds:>10.3f}{events / seconds:>14,.0f}")
    print(f"vectorised vs loop on the subset: {loop_s / sub_s:.1f}x events/s")
    figure(
        "KPI events/s, vectorised",
        sub_events / sub_s,
        "events/s",
        "per-event loop, same subset",
        sub_events / loop_s,
    )
    print(
        f"whole plant: {plant.state_ts.size:,} state events + {plant.count_ts.size:,} counts "
        f"in {full_s:.2f} s (target < 2 s)"
    )


if __name__ == "__main__":
    main()
