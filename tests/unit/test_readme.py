"""The README's deployment guide stays true of the app: its sample payload, topic, names,
diagram, retained resources, regions and cost assumptions are checked against the code."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest

from mes_domain.contracts import TelemetryBatch, parse_station_message
from mes_domain.topics import parse_topic
from tests.conftest import PROJECT_ROOT

README = (PROJECT_ROOT / "README.md").read_text()
# CloudFormation's limit for a template passed in the request (CreateStack/UpdateStack); larger
# ones must come from S3, i.e. the bootstrap bucket:
# https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/template-macros-troubleshoot-processed-template.html
MAX_INLINE_TEMPLATE_BYTES = 51_200
SECONDS_PER_DAY = 86_400
STATE_CHANGES_PER_STATION = 50  # the README's stated assumption
# Services whose regions bound where the app deploys, by botocore endpoint key.
REGION_BOUNDING_SERVICES = ("ingest.timestream", "iotsitewise", "greengrass")


def section(title: str) -> str:
    """The text under a ``##``/``###`` heading, up to the next heading of the same or a higher
    level."""
    match = re.search(rf"^(#+) {re.escape(title)}\n", README, re.M)
    assert match, f"README has no section {title!r}"
    level = len(match.group(1))
    rest = README[match.end() :]
    end = re.search(rf"^#{{1,{level}}} ", rest, re.M)
    return rest[: end.start()] if end else rest


def fenced(text: str, language: str) -> list[str]:
    return re.findall(rf"^```{language}\n(.*?)^```", text, re.M | re.S)


SMOKE = section("Smoke test after deploy")


def sample_payload() -> str:
    (payload,) = fenced(SMOKE, "json")
    return payload


def published_topic() -> str:
    (topic,) = re.findall(r"--topic '([^']+)'", SMOKE)
    return topic


def mqtt_matches(topic_filter: str, topic: str) -> bool:
    levels, wanted = topic.split("/"), topic_filter.split("/")
    if "#" in wanted:
        wanted = wanted[: wanted.index("#")]
        levels = levels[: len(wanted)]
    if len(levels) != len(wanted):
        return False
    return all(w in ("+", lv) for w, lv in zip(wanted, levels, strict=True))


def rule_filter(sql: str) -> str:
    (topic_filter,) = re.findall(r"FROM '([^']+)'", sql)
    return topic_filter


# --- smoke test -------------------------------------------------------------------------------


def test_sample_payload_is_a_valid_batch_of_the_topic_it_is_published_on():
    payload = sample_payload()
    batch = TelemetryBatch.model_validate_json(payload)
    parsed = parse_topic(published_topic())
    # The same check the platform applies: a batch must name the station of its topic.
    assert parse_station_message(parsed.topic, payload) == batch


def test_the_stamping_command_replaces_every_timestamp_with_now():
    placeholders = set(re.findall(r'"ts": (\d+)', sample_payload()))
    assert len(placeholders) == 1
    (placeholder,) = placeholders
    assert f'sed "s/{placeholder}/$(date +%s)000/g"' in SMOKE
    now_ms = int(time.time() * 1000)
    stamped = sample_payload().replace(placeholder, str(now_ms))
    assert all(r.ts == now_ms for r in TelemetryBatch.model_validate_json(stamped).readings)


def test_published_topic_is_basic_ingest_to_the_deployed_telemetry_rule(iiot_template):
    parsed = parse_topic(published_topic())
    rules = {
        r["Properties"]["RuleName"]: r["Properties"]["TopicRulePayload"]["Sql"]
        for r in iiot_template.find_resources("AWS::IoT::TopicRule").values()
    }
    assert parsed.rule_name in rules, f"{parsed.rule_name} is not one of {sorted(rules)}"
    topic_filter = rule_filter(rules[parsed.rule_name])
    assert mqtt_matches(topic_filter, str(parsed.topic))
    assert f"`{parsed.rule_name}`" in SMOKE and f"`{topic_filter}`" in SMOKE
    # The plain topic the README offers as an alternative reaches the same rule.
    assert f"`{parsed.topic}`" in SMOKE


def test_smoke_test_looks_where_the_stack_puts_things(iiot_template):
    template = iiot_template.to_json()
    resources = template["Resources"]
    assert "OutputKey=='TelemetryStreamName'" in SMOKE
    assert "TelemetryStreamName" in template["Outputs"]
    for prefix, kind in (
        ("TelemetryWriterLogs", "AWS::Logs::LogGroup"),
        ("IngestErrorsBucket", "AWS::S3::Bucket"),
    ):
        assert prefix in SMOKE
        assert any(k.startswith(prefix) and r["Type"] == kind for k, r in resources.items())
    tables = iiot_template.find_resources("AWS::Timestream::Table")
    names = {
        (t["Properties"]["DatabaseName"], t["Properties"]["TableName"]) for t in tables.values()
    }
    (database, table), *_ = re.findall(r'FROM \\"([^"\\]+)\\"\.\\"([^"\\]+)\\"', SMOKE)
    assert (database, table) in names
    # The multi-measure record carries the sample's tags as columns of that query.
    tags = {r.tag for r in TelemetryBatch.model_validate_json(sample_payload()).readings}
    assert all(tag in SMOKE.split("--query-string", 1)[1] for tag in tags)


def test_the_writer_logs_the_fields_the_smoke_test_reads():
    from dataclasses import fields

    from lambdas.telemetry_writer.ingest import IngestOutcome

    handler = (PROJECT_ROOT / "lambdas" / "telemetry_writer" / "handler.py").read_text()
    assert 'logger.info("ingested"' in handler and "One `ingested` line" in SMOKE
    named = set(re.findall(r"`(readings_\w+)`", SMOKE))
    assert named and named <= {f.name for f in fields(IngestOutcome)}


# --- architecture and deployment ---------------------------------------------------------------


def stacks_of(synthesized):
    _, assembly = synthesized
    return {stack.stack_name: stack for stack in assembly.stacks}


def test_diagram_names_exactly_the_stacks_the_app_synthesizes(synthesized, demo_plant):
    (diagram,) = fenced(section("Architecture"), "mermaid")
    prefix = demo_plant.deployment.stack_prefix
    named = set(re.findall(rf"\b{prefix}-[A-Za-z]+", diagram))
    assert named == set(stacks_of(synthesized))


def test_bootstrap_is_needed_for_the_reasons_the_readme_gives(synthesized):
    deploying = section("Bootstrap and deploy")
    stacks = stacks_of(synthesized).values()
    # Default synthesizer: every template is a file asset in the bootstrap bucket.
    assert all(s.stack_template_asset_object_url for s in stacks)
    (stated,) = re.findall(r"bootstrap stack version (\d+) or later", deploying)
    assert max(s.requires_bootstrap_stack_version for s in stacks) == int(stated)
    assert f"{MAX_INLINE_TEMPLATE_BYTES:,} bytes" in deploying
    _, assembly = synthesized
    sizes = [p.stat().st_size for p in Path(assembly.directory).glob("*.template.json")]
    assert max(sizes) > MAX_INLINE_TEMPLATE_BYTES


def test_listed_regions_offer_every_region_bounding_service():
    from botocore.loaders import Loader

    endpoints = Loader().load_data("endpoints")
    (aws,) = [p for p in endpoints["partitions"] if p["partition"] == "aws"]
    offered = [
        {r for r in aws["services"][service]["endpoints"] if re.fullmatch(r"[a-z]+-[a-z]+-\d", r)}
        for service in REGION_BOUNDING_SERVICES
    ]
    (listed,) = re.findall(r"offered in \*\*(.+?)\*\*", section("Regions and accounts"), re.S)
    assert set(re.findall(r"[a-z]+-[a-z]+-\d", listed)) == set.intersection(*offered)


# --- teardown ---------------------------------------------------------------------------------


def retained_types(assembly_dir: Path, template_file: str) -> set[str]:
    """Resource types with DeletionPolicy Retain in a template and its nested templates."""
    template = json.loads((assembly_dir / template_file).read_text())
    kept = set()
    for resource in template.get("Resources", {}).values():
        if resource.get("DeletionPolicy") == "Retain":
            kept.add(resource["Type"])
        nested = resource.get("Metadata", {}).get("aws:asset:path")
        if resource["Type"] == "AWS::CloudFormation::Stack" and nested:
            kept |= retained_types(assembly_dir, nested)
    return kept


def test_teardown_table_lists_exactly_what_each_stack_keeps(synthesized):
    _, assembly = synthesized
    directory = Path(assembly.directory)
    kept = {
        name: types
        for name, stack in stacks_of(synthesized).items()
        if (types := retained_types(directory, stack.template_file))
    }
    teardown = section("Teardown, and what stays behind")
    listed = {
        name: set(re.findall(r"AWS::\w+::\w+", row))
        for name, row in re.findall(r"^\| `([\w-]+)` \|(.*)\|$", teardown, re.M)
    }
    assert listed == kept
    for name in set(stacks_of(synthesized)) - set(kept):
        assert f"`{name}` keeps nothing" in teardown


# --- cost -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def plant_volumes(demo_plant):
    """Daily message counts of the demo plant under the README's stated assumptions."""
    stations = [s for site in demo_plant.sites for line in site.lines for s in line.stations]
    per_day = {s.id: SECONDS_PER_DAY / s.ideal_cycle_time_s for s in stations}
    cameras = {s.id for s in stations if s.camera is not None}
    volumes = {
        "stations": len(stations),
        "tags": sum(len(s.tags) for s in stations),
        "counts": round(sum(n for sid, n in per_day.items() if sid not in cameras)),
        "quality": round(sum(per_day[sid] for sid in cameras)),
        "states": STATE_CHANGES_PER_STATION * len(stations),
        "scopes": len(stations)
        + sum(len(site.lines) for site in demo_plant.sites)
        + len(demo_plant.sites),
        "kpi_runs": 24 * 60 // demo_plant.kpi.window_minutes,
    }
    volumes["telemetry"] = [len(stations) * SECONDS_PER_DAY // every for every in (10, 1)]
    return volumes


def test_cost_assumptions_are_the_demo_plants(plant_volumes):
    cost = section("What the demo plant costs per day")
    v = plant_volumes
    assert f"{v['stations']} stations with {v['tags']} tags" in cost
    low, high = v["telemetry"]
    assert f"{low:,} to {high:,} batches a day" in cost
    assert f"{v['counts']:,} `count` messages" in cost
    assert f"{v['quality']:,} `quality` results" in cost
    assert f"{STATE_CHANGES_PER_STATION} state changes per station" in cost
    assert f"{v['kpi_runs']} runs" in cost
    assert f"× {v['scopes']} stations, lines and sites" in cost


def test_cost_table_volumes_follow_from_the_assumptions(plant_volumes):
    cost = section("What the demo plant costs per day")
    v = plant_volumes
    events = v["counts"] + v["states"]
    stream_records = [t + events for t in v["telemetry"]]
    messages = [t + events + v["quality"] for t in v["telemetry"]]
    # telemetry and quality have one action each; state and count go to SiteWise and Kinesis
    actions = [t + 2 * events + v["quality"] for t in v["telemetry"]]
    kpi_records = v["kpi_runs"] * 2 * v["scopes"]  # a closed window and the current shift
    writes = [t + events + v["quality"] + kpi_records for t in v["telemetry"]]
    for low, high in (stream_records, messages, actions, writes):
        assert f"{low:,} to {high:,}" in cost
