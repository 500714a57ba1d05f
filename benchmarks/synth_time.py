#!/usr/bin/env python3
"""Synth time of the whole MES app against a trivial one-bucket app, measured in one run, and
the demo plant with the containers platform on (config/demo-plant-containers.yaml) against the
demo plant as shipped (off): synth time and template sizes.

Each synth runs in a fresh process, as `cdk synth` runs the app, so all pay the same Python
and jsii start-up. Runs alternate (full, trivial, containers, full, ...) so machine noise hits
them alike; the medians and their ratios are printed. ``--quick``: one run of each (a smoke run,
noisier).

    .venv/bin/python benchmarks/synth_time.py [--repeat N] [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT_ROOT))

from benchmarks.figures import figure  # noqa: E402

CONTAINERS_PLANT_CONFIG = "config/demo-plant-containers.yaml"


def _child(kind: str, outdir: str) -> None:
    """Synthesize one app in this process and print how long each phase took, as JSON."""
    os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")
    started = time.perf_counter()
    import aws_cdk as cdk
    from aws_cdk import aws_s3 as s3

    imported = time.perf_counter()
    if kind == "trivial":
        app = cdk.App(outdir=outdir)
        s3.Bucket(cdk.Stack(app, "Trivial"), "Bucket")
    else:
        from stacks.compliance import add_compliance_gates
        from stacks.mes_app import compose_stacks
        from stacks.plant_config import DEFAULT_PLANT_CONFIG, load_plant

        context = json.loads((PROJECT_ROOT / "cdk.json").read_text())["context"]
        app = cdk.App(outdir=outdir, context=context)
        config = CONTAINERS_PLANT_CONFIG if kind == "containers" else DEFAULT_PLANT_CONFIG
        compose_stacks(app, load_plant(PROJECT_ROOT / config))
        add_compliance_gates(app)
    assembly = app.synth()
    done = time.perf_counter()
    sizes = {
        path.name.removesuffix(".template.json"): path.stat().st_size
        for path in Path(outdir).glob("*.template.json")
    }
    print(
        json.dumps(
            {
                "import_s": imported - started,
                "synth_s": done - imported,
                "templates": len(assembly.stacks),
                "template_bytes": sum(sizes.values()),
                "sizes": sizes,
            }
        )
    )


def _measure(kind: str) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as outdir:
        started = time.perf_counter()
        result = subprocess.run(
            [sys.executable, __file__, "--child", kind, outdir],
            cwd=PROJECT_ROOT,
            capture_output=True,
            text=True,
            check=True,
        )
        wall = time.perf_counter() - started
    phases = json.loads(result.stdout.strip().splitlines()[-1])
    return {"wall_s": wall, **phases}


def _print_sizes(off: dict, on: dict) -> None:
    """Template bytes per stack with the containers platform off and on."""
    print("template sizes (KiB), containers platform off -> on")
    for stack in sorted(on, key=lambda name: -on[name]):
        before = f"{off[stack] / 1024:.1f}" if stack in off else "-"
        print(f"  {stack:<60}{before:>10}{on[stack] / 1024:>10.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="runs of each app (default 3)")
    parser.add_argument("--quick", action="store_true", help="one run of each app")
    parser.add_argument("--child", nargs=2, metavar=("KIND", "OUTDIR"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(*args.child)
        return
    if args.quick:
        args.repeat = 1

    runs: dict[str, list[dict]] = {"full": [], "trivial": [], "containers": []}
    for _ in range(args.repeat):
        for kind in runs:
            runs[kind].append(_measure(kind))

    medians = {
        kind: {
            key: statistics.median(run[key] for run in measured)
            for key in measured[0]
            if key != "sizes"
        }
        for kind, measured in runs.items()
    }
    print(f"synth time, median of {args.repeat} alternating runs, each in a fresh process")
    # "build+synth" includes jsii loading the aws-cdk-lib assembly on first use.
    print(f"{'app':<10}{'templates':>10}{'wall s':>10}{'import s':>10}{'build+synth s':>15}")
    for kind, m in medians.items():
        print(
            f"{kind:<10}{int(m['templates']):>10}{m['wall_s']:>10.2f}"
            f"{m['import_s']:>10.2f}{m['synth_s']:>15.2f}"
        )
    full, trivial, containers = medians["full"], medians["trivial"], medians["containers"]
    print(
        f"ratio full/trivial: wall {full['wall_s'] / trivial['wall_s']:.2f}x, "
        f"synth {full['synth_s'] / trivial['synth_s']:.2f}x"
    )
    _print_sizes(runs["full"][0]["sizes"], runs["containers"][0]["sizes"])
    figure(
        "cdk synth wall time, whole app", full["wall_s"], "s", "one-bucket app", trivial["wall_s"]
    )
    figure(
        "cdk synth wall time, containers platform on",
        containers["wall_s"],
        "s",
        "off (the demo plant)",
        full["wall_s"],
    )
    figure(
        "template bytes of every stack, containers platform on",
        containers["template_bytes"] / 1024,
        "KiB",
        "off (the demo plant)",
        full["template_bytes"] / 1024,
    )


if __name__ == "__main__":
    main()
