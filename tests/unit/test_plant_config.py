"""Loading plant config files: every error names the file and the field."""

import json

import pytest
import yaml

from mes_domain.naming import field_text
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


# --- resource names built from the config (mes_domain.naming) ---


def longest(demo_plant):
    from tests.stacks.plants import longest_names

    return longest_names(demo_plant).model_dump(mode="json")


def one_more(value: str) -> str:
    return value + value[-1]


# the demo plant's camera station (its model group is the longest name its id makes)
CAMERA_STATION = next(
    k
    for k, station in enumerate(
        yaml.safe_load(DEMO_PLANT.read_text())["sites"][0]["lines"][0]["stations"]
    )
    if station.get("camera")
)


@pytest.mark.parametrize(
    ("field", "what", "length", "limit"),
    [
        # the line without camera fills its role alias, 8 characters longer than its thing group
        (("sites", 0, "lines", 1, "id"), "IoT role alias", 129, 128),
        # the camera station fills its model group, "<line group>:<station>:models"
        (
            ("sites", 0, "lines", 0, "stations", CAMERA_STATION, "id"),
            "IoT thing group name",
            129,
            128,
        ),
        (("deployment", "stack_prefix"), "Step Functions state machine name", 81, 80),
        (("name",), "SNS topic display name", 101, 100),
    ],
)
def test_a_name_one_character_over_its_limit_is_a_config_error(
    tmp_path, demo_plant, field, what, length, limit
):
    """The longest config loads (tests/stacks/test_resource_names.py deploys its names); one
    character more and the loader names the field, its value, the name and AWS's limit."""
    document = longest(demo_plant)
    write(tmp_path, "ok.yaml", yaml.safe_dump(document))
    load_plant(tmp_path / "ok.yaml")
    *parents, last = field
    holder = document
    for part in parents:
        holder = holder[part]
    value = holder[last] = one_more(holder[last])
    path = write(tmp_path, "long.yaml", yaml.safe_dump(document))
    with pytest.raises(PlantConfigError) as info:
        load_plant(path)
    message = str(info.value)
    assert message.startswith(f"{path}: {field_text(field)}: {value!r} makes the {what} '")
    assert f"{length} characters long; AWS allows 1 to {limit} (" in message


def test_a_site_and_a_line_of_60_characters_each_are_refused(tmp_path):
    """The review's case: the thing group name <prefix>-<site>-<line> passes 128 characters."""
    document = yaml.safe_load(DEMO_PLANT.read_text())
    document["sites"][0]["id"] = "s" * 60
    document["sites"][0]["lines"][1]["id"] = "l" * 60
    path = write(tmp_path, "long-ids.yaml", yaml.safe_dump(document))
    with pytest.raises(PlantConfigError) as info:
        load_plant(path)
    # the line's role alias and gateway policy, 8 characters longer than its group, are over
    # too: all three are listed
    assert str(info.value).splitlines() == [
        f"{path}: sites[0].lines[1].id: {'l' * 60!r} makes the IoT thing group name "
        f"'MesDemo-{'s' * 60}-{'l' * 60}' 129 characters long; AWS allows 1 to 128 "
        "(docs.aws.amazon.com/iot/latest/apireference/API_CreateThingGroup.html); shorten it "
        "or deployment.stack_prefix or the site id",
        f"{path}: sites[0].lines[1].id: {'l' * 60!r} makes the IoT role alias "
        f"'MesDemo-gateway@{'s' * 60}@{'l' * 60}' 137 characters long; AWS allows 1 to 128 "
        "(docs.aws.amazon.com/iot/latest/apireference/API_CreateRoleAlias.html); shorten it "
        "or deployment.stack_prefix or the site id",
        f"{path}: sites[0].lines[1].id: {'l' * 60!r} makes the IoT policy name "
        f"'MesDemo-gateway@{'s' * 60}@{'l' * 60}' 137 characters long; AWS allows 1 to 128 "
        "(docs.aws.amazon.com/iot/latest/apireference/API_CreatePolicy.html); shorten it "
        "or deployment.stack_prefix or the site id",
    ]


def test_two_ids_that_make_one_thing_group_name_are_refused(tmp_path):
    document = yaml.safe_load(DEMO_PLANT.read_text())
    site = document["sites"][0]
    document["sites"].append({**site, "id": "berlin-body", "lines": [site["lines"][1]]})
    site["lines"][1]["id"] = "body"
    document["sites"][1]["lines"] = [{**site["lines"][0], "id": "plant"}]
    site["lines"][0]["id"] = "body-plant"
    path = write(tmp_path, "clash.yaml", yaml.safe_dump(document))
    with pytest.raises(PlantConfigError) as info:
        load_plant(path)
    assert (
        "sites[1].lines[0].id: 'plant' makes the IoT thing group name "
        "'MesDemo-berlin-body-plant', which sites[0].lines[0].id makes too"
    ) in str(info.value)


def test_app_exits_2_on_a_name_over_its_limit(tmp_path, demo_plant):
    import os
    import subprocess
    import sys

    from tests.conftest import PROJECT_ROOT

    document = longest(demo_plant)
    document["name"] += "!"
    path = write(tmp_path, "long-name.yaml", yaml.safe_dump(document))
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(CDK_OUTDIR=str(tmp_path / "out"), CDK_CONTEXT_JSON=json.dumps({"plant": str(path)}))
    result = subprocess.run(
        [sys.executable, "app.py"],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 2, result.stderr
    assert f"{path}: name: " in result.stderr and "AWS allows 1 to 100" in result.stderr
    assert "Traceback" not in result.stderr
    assert not list((tmp_path / "out").glob("*.template.json"))


# --- extends: one base file, small variants ---


def test_a_variant_extends_its_base_merging_mappings_and_replacing_other_values(tmp_path):
    base = tmp_path / "base.yaml"
    base.write_text(yaml.safe_dump(BASE))
    variant = tmp_path / "variants" / "containers.yaml"
    variant.parent.mkdir()
    variant.write_text(
        "extends: ../base.yaml\n"
        "deployment: {region: eu-central-1}\n"  # merged: stack_prefix stays
        "capabilities: {eks: true}\n"
        "containers: {service_bus: msk}\n"
    )
    plant = load_plant(variant)
    assert plant.deployment.stack_prefix == BASE["deployment"]["stack_prefix"]
    assert plant.deployment.region == "eu-central-1"
    assert plant.capabilities.eks and plant.containers.service_bus == "msk"
    assert [s.id for s in plant.sites] == [s["id"] for s in BASE["sites"]]


def test_the_shipped_containers_variant_is_the_demo_plant_with_the_platform_on(demo_plant):
    variant = load_plant(DEMO_PLANT.with_name("demo-plant-containers.yaml"))
    assert variant.capabilities.eks and not demo_plant.capabilities.eks
    assert variant.sites == demo_plant.sites and variant.kpi == demo_plant.kpi


@pytest.mark.parametrize(
    ("files", "reason"),
    [
        ({"a.yaml": "extends: a.yaml\n"}, "extends itself through"),
        ({"a.yaml": "extends: b.yaml\n", "b.yaml": "extends: a.yaml\n"}, "extends itself"),
        ({"a.yaml": "extends: missing.yaml\n"}, "missing.yaml: file not found"),
        ({"a.yaml": "extends: [b.yaml]\n"}, "give the path of the base plant config"),
        ({"a.yaml": "extends: base.txt\n"}, "are .yaml, .yml or .json files"),
    ],
)
def test_a_broken_extends_chain_is_a_config_error(tmp_path, files, reason):
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    with pytest.raises(PlantConfigError, match=reason):
        load_plant(tmp_path / "a.yaml")
