"""Names shared by the SiteWise asset models, the rules that feed them and the dashboards.

A station asset has ``Equipment_State``, ``Good_Count`` and ``Bad_Count`` and a measurement per
tag on the property aliases below; the rules write only the first three (telemetry goes to the
time-series store). SiteWise derives one transform per state and the OEE metrics per
tumbling window; lines and sites roll the time and count metrics up from their children.
"""

from __future__ import annotations

from mes_domain.contracts import EquipmentState

# Measurements written by the state and count rules.
EQUIPMENT_STATE = "Equipment_State"
GOOD_COUNT = "Good_Count"
BAD_COUNT = "Bad_Count"

# Station attributes.
IDEAL_CYCLE_TIME = "Ideal_Cycle_Time"
STATION_KIND = "Station_Kind"

# Metrics per window: summed up the hierarchy ...
RUN_TIME = "Run_Time"
DOWN_TIME = "Down_Time"
PLANNED_STOP_TIME = "Planned_Stop_Time"
GOOD_PARTS = "Good_Parts"
BAD_PARTS = "Bad_Parts"
IDEAL_TIME = "Ideal_Time"  # ideal cycle time x parts produced: the numerator of performance
SUMMED_METRICS = (RUN_TIME, DOWN_TIME, PLANNED_STOP_TIME, GOOD_PARTS, BAD_PARTS, IDEAL_TIME)
# ... and ratios recomputed from those sums at every level (never averaged).
AVAILABILITY = "Availability"
PERFORMANCE = "Performance"
QUALITY = "Quality"
OEE = "OEE"
RATIO_METRICS = (AVAILABILITY, PERFORMANCE, QUALITY, OEE)


def state_transform(state: EquipmentState) -> str:
    """``Is_Running``, ``Is_Unplanned_Stop``, ...: 1 while the station is in ``state``, else 0."""
    return "Is_" + "_".join(word.capitalize() for word in state.value.split("_"))


STATION_PROPERTY_NAMES = frozenset(
    {
        EQUIPMENT_STATE, GOOD_COUNT, BAD_COUNT, IDEAL_CYCLE_TIME, STATION_KIND,
        *SUMMED_METRICS, *RATIO_METRICS, *(state_transform(state) for state in EquipmentState),
    }
)  # fmt: skip


def property_alias(site: str, line: str, station: str, measurement: str) -> str:
    """``/mes/{site}/{line}/{station}/{measurement}``; levels may be IoT SQL substitutions."""
    return f"/mes/{site}/{line}/{station}/{measurement}"
