"""Handler settings from the environment: defaults apply, a missing key is named."""

import pytest
from pydantic import ValidationError

from lambdas.kpi_calculator.settings import PLANT_LAYER_FILE, EnvVar, Settings

COMPLETE = {
    EnvVar.TIMESTREAM_DATABASE: "mes_demo",
    EnvVar.EVENTS_TABLE: "events",
    EnvVar.KPI_TABLE: "kpis",
    EnvVar.IDEMPOTENCY_TABLE: "idem",
    EnvVar.METRICS_NAMESPACE: "MES/KPI",
}


def test_unset_optional_keys_take_their_default():
    settings = Settings.from_environ({key.value: value for key, value in COMPLETE.items()})
    assert settings.plant_file == PLANT_LAYER_FILE and settings.kpi_table == "kpis"


def test_a_missing_required_key_is_named():
    environ = {key.value: value for key, value in COMPLETE.items() if key != EnvVar.KPI_TABLE}
    with pytest.raises(ValidationError, match="kpi_table"):
        Settings.from_environ(environ)
