"""The one line each benchmark figure is reported on, for people and for tests/test_benchmarks.py.

    figure: <what>: <value> <unit> against <baseline>: <value> <unit> (<ratio>x)

Both values are measured in the same run, in the same unit; the ratio is value / baseline.
"""

from __future__ import annotations

import math
import re

FIGURE = re.compile(
    r"^figure: (?P<what>[^:]+): (?P<value>\d+(?:\.\d+)?) (?P<unit>\S+) against "
    r"(?P<baseline>[^:]+): (?P<baseline_value>\d+(?:\.\d+)?) (?P=unit) "
    r"\((?P<ratio>\d+(?:\.\d+)?)x\)$"
)


def figure(what: str, value: float, unit: str, baseline: str, baseline_value: float) -> str:
    """Print and return the figure line of ``value`` against ``baseline_value``."""
    if not (math.isfinite(value) and math.isfinite(baseline_value) and baseline_value > 0):
        raise ValueError(f"{what}: {value} against {baseline_value} is no figure")
    line = (
        f"figure: {what}: {value:.3f} {unit} against {baseline}: {baseline_value:.3f} {unit} "
        f"({value / baseline_value:.3f}x)"
    )
    print(line, flush=True)
    return line
