"""boto3 clients for the handlers: one per service and container, created on first use."""

from __future__ import annotations

from functools import cache
from typing import Any

import boto3
from botocore.config import Config

# botocore's standard retry mode backs off exponentially, with jitter, on throttling.
RETRY_CONFIG = Config(retries={"mode": "standard", "max_attempts": 8})


@cache
def client(service: str) -> Any:
    """Created on first use, never at import time, so moto intercepts it in tests."""
    return boto3.client(service, config=RETRY_CONFIG)
