"""Fixtures of the DataCollector tests: its ``src`` on the path, as the artifact's PYTHONPATH."""

from __future__ import annotations

import sys

from tests.conftest import PROJECT_ROOT

COLLECTOR_DIR = PROJECT_ROOT / "greengrass_components" / "data_collector"
if str(COLLECTOR_DIR / "src") not in sys.path:
    sys.path.insert(0, str(COLLECTOR_DIR / "src"))
