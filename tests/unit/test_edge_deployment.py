"""Each line's Greengrass deployments, generated from the plant config: the line gateway's
DataCollector and one camera gateway per camera station, with exactly the topics they use."""

from __future__ import annotations

import json

import pytest

from greengrass_components import deployments as cli
from mes_domain import edge_deployment as edge
from mes_domain.collection import CollectorConfig, collector_configuration
from mes_domain.naming import THING_GROUP_NAME, rule_name, thing_group_name
from mes_domain.plant import Plant
from mes_domain.topics import MessageKind, parse_topic
from tests.conftest import DEMO_PLANT
from tests.stacks.plants import full_plant, largest_line
from tests.unit.test_readme import mqtt_matches, rule_filter

VERSIONS = {edge.DATA_COLLECTOR: "1.2.3", edge.QUALITY_INSPECTION: "1.0.0"}


def _document(plant, line, **kwargs):
    return edge.line_deployments(plant, "berlin", line, VERSIONS, **kwargs)


def _by_target(document):
    return {d["targetThingGroupName"]: d for d in document["deployments"]}


def _merge(deployment, component):
    return json.loads(deployment["components"][component]["configurationUpdate"]["merge"])


def _resources(config, service):
    (policy,) = config["accessControl"][service].values()
    return policy["resources"]


def test_the_line_gateway_runs_the_collector_with_the_lines_configuration(demo_plant):
    deployments = _by_target(_document(demo_plant, "body-line-1"))
    line_group = thing_group_name("MesDemo", "berlin", "body-line-1")
    assert set(deployments) == {line_group, f"{line_group}:vision-01"}
    line = deployments[line_group]
    assert list(line["components"]) == [edge.DATA_COLLECTOR]
    assert line["components"][edge.DATA_COLLECTOR]["componentVersion"] == "1.2.3"
    config = _merge(line, edge.DATA_COLLECTOR)
    # what the component parses back is the line's whole collector configuration
    assert CollectorConfig.model_validate(config["collector"]) == CollectorConfig.model_validate(
        collector_configuration(demo_plant, "berlin", "body-line-1")
    )


def test_the_collector_may_publish_exactly_its_stations_topics(demo_plant):
    config = _merge(
        _by_target(_document(demo_plant, "machining-line-1"))[
            thing_group_name("MesDemo", "berlin", "machining-line-1")
        ],
        edge.DATA_COLLECTOR,
    )
    published = {}
    for topic in _resources(config, edge.MQTT_PROXY):
        parsed = parse_topic(topic)
        assert parsed.topic.line == "machining-line-1"
        published.setdefault(parsed.topic.station, {})[parsed.topic.kind.value] = parsed.rule_name
    # cnc-01 reads tags, a state and counters; test-01 tags only; cnc-02 and pack-01 nothing.
    # Routed kinds go straight to their rule; events (resets, drops) to the line's own topic.
    assert published == {
        "cnc-01": {
            "telemetry": rule_name("MesDemo", "telemetry"),
            "state": rule_name("MesDemo", "state"),
            "count": rule_name("MesDemo", "count"),
            "event": None,
        },
        "test-01": {"telemetry": rule_name("MesDemo", "telemetry"), "event": None},
    }
    assert set(config["accessControl"]) == {edge.MQTT_PROXY}


def test_every_collector_topic_reaches_the_rule_the_iiot_stack_deploys(demo_plant, iiot_template):
    rules = {
        r["Properties"]["RuleName"]: rule_filter(r["Properties"]["TopicRulePayload"]["Sql"])
        for r in iiot_template.find_resources("AWS::IoT::TopicRule").values()
    }
    topics = []
    for line in ("body-line-1", "machining-line-1"):
        for deployment in _document(demo_plant, line)["deployments"]:
            for name in deployment["components"]:
                config = _merge(deployment, name)
                topics += _resources(config, edge.MQTT_PROXY)
    assert len(topics) == 12 + 6 + 1  # body line, machining line, vision-01's results
    routed = [parse_topic(topic) for topic in topics if parse_topic(topic).rule_name]
    assert len(routed) == 9 + 4 + 1  # the events go to the broker
    for parsed in routed:
        assert parsed.rule_name in rules, f"{parsed}: no rule {parsed.rule_name}"
        assert mqtt_matches(rules[parsed.rule_name], str(parsed.topic))


def test_each_camera_station_has_its_own_gateway_with_its_station_and_model(demo_plant):
    camera = _by_target(_document(demo_plant, "body-line-1"))[
        "MesDemo-berlin-body-line-1:vision-01"
    ]
    assert list(camera["components"]) == [edge.QUALITY_INSPECTION]  # model: the dependency's
    config = _merge(camera, edge.QUALITY_INSPECTION)
    assert config["station"] == {"site": "berlin", "line": "body-line-1", "station": "vision-01"}
    assert config["model"] == {"componentName": "com.acme.mes.models.SurfaceDefects"}
    assert config["capture"] == {"goodSampleRate": 0.02}
    trigger = "mes/local/berlin/body-line-1/vision-01/image"
    assert config["camera"]["triggerTopic"] == trigger
    assert _resources(config, edge.PUBSUB) == [trigger]
    assert _resources(config, edge.MQTT_PROXY) == [config["publishTopic"]]
    parsed = parse_topic(config["publishTopic"])
    assert parsed.rule_name == rule_name("MesDemo", MessageKind.QUALITY)
    assert str(parsed.topic) == "mes/v1/berlin/body-line-1/vision-01/quality"
    pinned = _document(
        demo_plant, "body-line-1", model_versions={"com.acme.mes.models.SurfaceDefects": "1.0.7"}
    )
    components = _by_target(pinned)["MesDemo-berlin-body-line-1:vision-01"]["components"]
    assert components["com.acme.mes.models.SurfaceDefects"] == {"componentVersion": "1.0.7"}


def test_two_cameras_on_a_line_are_two_gateways(demo_plant):
    document = demo_plant.model_dump(mode="json")
    stations = document["sites"][0]["lines"][0]["stations"]
    stations.append({**stations[3], "id": "vision-02"})
    targets = _by_target(_document(Plant.model_validate(document), "body-line-1"))
    assert {t for t in targets if ":" in t} == {
        "MesDemo-berlin-body-line-1:vision-01",
        "MesDemo-berlin-body-line-1:vision-02",
    }


def test_a_line_without_machine_sources_or_cameras_has_no_deployment(demo_plant):
    document = demo_plant.model_dump(mode="json")
    line = document["sites"][0]["lines"][1]
    for station in line["stations"]:
        station.update(state=None, counters=None)
        for tag in station["tags"]:
            tag["source"] = None
    assert _document(Plant.model_validate(document), "machining-line-1")["deployments"] == []


def test_the_demo_plants_documents_respect_greengrass_limits(demo_plant):
    for line in ("body-line-1", "machining-line-1"):
        document = _document(demo_plant, line)
        assert len(json.dumps(document).encode()) <= edge.MAX_DEPLOYMENT_DOCUMENT_BYTES
        for deployment in document["deployments"]:
            assert THING_GROUP_NAME.problem(deployment["targetThingGroupName"]) is None
            for spec in deployment["components"].values():
                assert 1 <= len(spec["componentVersion"]) <= edge.MAX_COMPONENT_VERSION_CHARS
                assert 1 <= len(spec["configurationUpdate"]["merge"]) <= edge.MAX_MERGE_CHARS


def test_the_largest_line_allowed_fits_one_deployment(demo_plant):
    """240 stations, the first 12 with 150 tags of 64-character names, each read over OPC UA."""
    plant = full_plant(demo_plant)
    document = edge.line_deployments(plant, "berlin", "largest-line", VERSIONS)
    size = len(json.dumps(document).encode())
    assert size <= edge.MAX_DEPLOYMENT_DOCUMENT_BYTES, size
    assert len(largest_line({"id": "x"})["stations"]) == len(plant.sites[0].lines[-1].stations)


def test_a_document_over_a_limit_is_an_error_naming_the_line(demo_plant, monkeypatch):
    monkeypatch.setattr(edge, "MAX_MERGE_CHARS", 100)
    with pytest.raises(ValueError, match="a merge update takes at most 100"):
        _document(demo_plant, "body-line-1")
    monkeypatch.setattr(edge, "MAX_MERGE_CHARS", 10_485_760)
    monkeypatch.setattr(edge, "MAX_DEPLOYMENT_DOCUMENT_BYTES", 1000)
    with pytest.raises(ValueError, match="line berlin/body-line-1: the deployments are"):
        _document(demo_plant, "body-line-1")
    with pytest.raises(ValueError, match="not 1 to 64 characters"):
        edge.line_deployments(
            demo_plant, "berlin", "body-line-1", {**VERSIONS, edge.DATA_COLLECTOR: "1" * 65}
        )


def test_a_camera_group_name_over_the_limit_names_the_station_when_the_plant_loads(demo_plant):
    document = demo_plant.model_dump(mode="json")
    document["deployment"]["stack_prefix"] = "P" * 40
    line = document["sites"][0]["lines"][0]
    line["id"] = "l" * 60
    line["stations"][3]["id"] = "v" * 40
    # refused when the plant loads, before any deployment is generated
    with pytest.raises(ValueError, match=r"(?s)stations\.3\.id.*'v+' makes the IoT thing group"):
        Plant.model_validate(document)


def test_merge_updates_apply_as_greengrass_applies_them():
    defaults = {"camera": {"inboxDir": "inbox", "settleMs": 500}, "tags": ["a", "b"], "x": 1}
    update = {"merge": json.dumps({"camera": {"settleMs": 50}, "tags": ["c"], "y": {"z": 2}})}
    assert edge.apply_configuration_update(defaults, update) == {
        "camera": {"inboxDir": "inbox", "settleMs": 50},  # objects merge key by key
        "tags": ["c"],  # lists replace
        "x": 1,
        "y": {"z": 2},
    }
    assert defaults["camera"]["settleMs"] == 500  # the defaults are not changed


def test_the_cli_writes_one_document_per_line(demo_plant, tmp_path, capsys):
    out = tmp_path / "deployments"
    argv = ["--config", str(DEMO_PLANT), "--out", str(out)]
    versions = [f"--component-version={name}={v}" for name, v in VERSIONS.items()]
    assert cli.main([*argv, *versions]) == 0
    written = sorted(p.name for p in out.iterdir())
    assert written == ["berlin.body-line-1.json", "berlin.machining-line-1.json"]
    for name in written:
        line = name.split(".")[1]
        assert json.loads((out / name).read_text()) == _document(demo_plant, line)
    assert capsys.readouterr().out.split() == [str(out / name) for name in written]


def test_the_cli_takes_our_versions_from_the_recipes_and_fails_clearly_without_one(
    tmp_path, monkeypatch, capsys
):
    versions = cli.recipe_versions()
    assert versions[edge.QUALITY_INSPECTION] == "1.0.0"  # the recipe's ComponentVersion
    monkeypatch.setitem(cli.RECIPES, edge.DATA_COLLECTOR, tmp_path / "no-recipe.yaml")
    argv = ["--config", str(DEMO_PLANT), "--out", str(tmp_path / "out")]
    assert cli.main(argv) == 2
    assert "--component-version com.acme.mes.DataCollector=VERSION" in capsys.readouterr().err
    assert cli.main([*argv, "--component-version", "nonsense"]) == 2
    assert "is not NAME=VERSION" in capsys.readouterr().err


def test_the_sitewise_gateway_thing_name_is_checked_only_when_sitewise_edge_is_on(demo_plant):
    document = demo_plant.model_dump(mode="json")
    document["deployment"]["stack_prefix"] = "P" * 50
    document["sites"][0]["id"] = "s" * 64  # 50 + 1 + 64 + 14 > 128
    # its lines' names fit, and its camera model groups ("<line group>:v0:models", 127)
    for line, line_id in zip(document["sites"][0]["lines"], "ab", strict=True):
        line["id"] = line_id
        cameras = [station for station in line["stations"] if station.get("camera")]
        for number, station in enumerate(cameras):
            station["id"] = f"v{number}"
    Plant.model_validate(document)  # off: no such thing
    document["iiot"]["opcua_to_sitewise"] = True
    with pytest.raises(ValueError, match="Greengrass core device thing name") as failure:
        Plant.model_validate(document)
    assert "sites.0.id" in str(failure.value)
