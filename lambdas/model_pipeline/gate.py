"""The quality gate: a model passes when every metric that could be measured is good enough.

A metric that could not be measured (AUROC and defect recall need defect images) does not fail
the gate; it is listed so the quality expert sees it before approving.
"""

from __future__ import annotations

import math
from typing import Any

from lambdas.model_pipeline.requests import GateResult

GATED_METRICS = ("auroc", "defect_recall")


def measured(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def evaluate(card: dict[str, Any], min_auroc: float, min_defect_recall: float) -> GateResult:
    """Compare the card's validation metrics with the minimums."""
    minimums = {"auroc": min_auroc, "defect_recall": min_defect_recall}
    validation = card.get("validation") or {}
    reasons, unmeasured = [], []
    for name in GATED_METRICS:
        value = measured(validation.get(name))
        if value is None:
            unmeasured.append(name)
        elif value < minimums[name]:
            reasons.append(f"{name} {value:.3f} is below the minimum {minimums[name]:.3f}")
    return GateResult(passed=not reasons, reasons=reasons, unmeasured=unmeasured)
