"""API Gateway entry point of the quality API; the routes are in ``routes``."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger

from lambdas.quality_api.routes import app

logger = Logger(service="quality_api")


@logger.inject_lambda_context
def lambda_handler(event: dict[str, Any], context: Any) -> dict:
    return app.resolve(event, context)
