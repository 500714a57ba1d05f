"""Step 3: the quality gate on the model card's metrics.

Event: the state with ``training.card``.
Returns ``GateResult``: passed, reasons (why not), unmeasured (metrics without defect images).
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger

from lambdas.model_pipeline import runtime
from lambdas.model_pipeline.gate import evaluate
from lambdas.model_pipeline.requests import EvaluateEvent

logger = Logger(service="model_pipeline")


@logger.inject_lambda_context
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    settings = runtime.settings()
    card = EvaluateEvent.model_validate(event).training.card
    result = evaluate(card, settings.min_auroc, settings.min_defect_recall)
    logger.info("quality gate evaluated", extra=result.model_dump())
    return result.model_dump(mode="json")
