"""Fixtures of the DataCollector tests: its ``src`` on the path, as the artifact's PYTHONPATH;
helpers the source tests share."""

from __future__ import annotations

import asyncio
import sys
import time

from tests.conftest import PROJECT_ROOT

COLLECTOR_DIR = PROJECT_ROOT / "greengrass_components" / "data_collector"
if str(COLLECTOR_DIR / "src") not in sys.path:
    sys.path.insert(0, str(COLLECTOR_DIR / "src"))


async def until(predicate, timeout_s: float = 10.0) -> bool:
    """Wait until ``predicate()`` is true or ``timeout_s`` has passed; its last value."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        await asyncio.sleep(0.02)
    return bool(predicate())
