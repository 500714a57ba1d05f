"""Loading plant config files: every error names the file and the field."""

import json

import pytest
import yaml

from stacks.plant_config import PlantConfigError, load_plant
from tests.conftest import DEMO_PLANT
from tests.unit.test_plant import BASE


def test_demo_plant_meets_the_documented_shape(demo_plant):
    assert len(demo_plant.sites) == 1
    assert len(demo_plant.sites[0].lines) == 2
    stations = [ref.station for ref in demo_plant.stations()]
    assert len(stations) >= 6
    assert {"press", "cnc", "assembly", "camera_inspection"} <= {s.kind.value for s in stations}
    assert all(s.ideal_cycle_time_s > 0 and s.tags for s in stations)
    assert len(demo_plant.sites[0].shift_calendar.shifts) >= 2


def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_json_configs_load_too(tmp_path):
    path = write(tmp_path, "plant.json", json.dumps(BASE))
    assert load_plant(path).deployment.stack_prefix == "MesTest"


def test_error_names_file_and_field_path(tmp_path):
    document = yaml.safe_load(DEMO_PLANT.read_text())
    document["sites"][0]["lines"][1]["stations"][2]["ideal_cycle_time_s"] = -5
    path = write(tmp_path, "bad.yaml", yaml.safe_dump(document))
    with pytest.raises(PlantConfigError) as info:
        load_plant(path)
    assert str(info.value) == (
        f"{path}: sites[0].lines[1].stations[2].ideal_cycle_time_s: Input should be greater than 0"
    )


def test_every_problem_is_listed(tmp_path):
    document = yaml.safe_load(DEMO_PLANT.read_text())
    document["sites"][0]["lines"][0]["stations"][0]["kind"] = "laser"
    document["retention"]["log_days"] = 10
    path = write(tmp_path, "two.yaml", yaml.safe_dump(document))
    with pytest.raises(PlantConfigError) as info:
        load_plant(path)
    lines = str(info.value).splitlines()
    assert len(lines) == 2
    assert lines[0].startswith(f"{path}: retention.log_days: 10 is not a CloudWatch Logs retention")
    assert lines[1].startswith(f"{path}: sites[0].lines[0].stations[0].kind: Input should be")


def test_duplicate_yaml_keys_are_errors_not_silently_overwritten(tmp_path):
    text = DEMO_PLANT.read_text().replace(
        "    timezone: Europe/Berlin\n", "    timezone: Europe/Berlin\n    timezone: UTC\n"
    )
    path = write(tmp_path, "dupkey.yaml", text)
    with pytest.raises(PlantConfigError, match=r"dupkey.yaml: line \d+: duplicate key 'timezone'"):
        load_plant(path)


@pytest.mark.parametrize(
    ("name", "text", "reason"),
    [
        ("broken.yaml", "sites: [unclosed", "not valid YAML"),
        ("broken.json", "{", "not valid JSON"),
        ("list.yaml", "- a\n- b\n", "top level must be a mapping"),
        ("plant.toml", "x = 1", "plant configs are .yaml, .yml or .json"),
    ],
)
def test_unreadable_files_are_reported(tmp_path, name, text, reason):
    path = write(tmp_path, name, text)
    with pytest.raises(PlantConfigError, match=reason) as info:
        load_plant(path)
    assert str(info.value).startswith(str(path))


def test_missing_file_is_reported(tmp_path):
    with pytest.raises(PlantConfigError, match="missing.yaml: file not found"):
        load_plant(tmp_path / "missing.yaml")
