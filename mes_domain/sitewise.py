"""Names shared by the SiteWise models and the rules that feed them."""

from __future__ import annotations

EQUIPMENT_STATE = "Equipment_State"
GOOD_COUNT = "Good_Count"
BAD_COUNT = "Bad_Count"


def property_alias(site: str, line: str, station: str, measurement: str) -> str:
    """``/mes/{site}/{line}/{station}/{measurement}``; levels may be IoT SQL substitutions."""
    return f"/mes/{site}/{line}/{station}/{measurement}"
