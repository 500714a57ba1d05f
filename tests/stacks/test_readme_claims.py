"""What the README says the stacks do with SiteWise and the time-series store is what they do."""

from __future__ import annotations

import re

from tests.unit.test_readme import section


def rule_measurements(iiot_template) -> set[str]:
    """The SiteWise measurements the IoT rules write: the last level of each property alias."""
    written = set()
    for rule in iiot_template.find_resources("AWS::IoT::TopicRule").values():
        for action in rule["Properties"]["TopicRulePayload"]["Actions"]:
            for entry in action.get("IotSiteWise", {}).get("PutAssetPropertyValueEntries", []):
                written.add(entry["PropertyAlias"].rsplit("/", 1)[1])
    return written


def test_readme_names_exactly_the_sitewise_measurements_the_rules_write(iiot_template, demo_plant):
    written = rule_measurements(iiot_template)
    models = section("SiteWise models and OEE (`MesDemo-SiteWise`)")
    (named,) = re.findall(r"The `state` and `count`\s+rules write (.+?) \(", models, re.S)
    assert set(re.findall(r"`(\w+)`", named)) == written
    # Telemetry tags have measurements in the model, but no rule feeds them, and it says so.
    tags = {
        t.name for s in demo_plant.sites for ln in s.lines for st in ln.stations for t in st.tags
    }
    assert tags and not tags & written
    assert "No rule writes the tag measurements" in models


def test_teardown_names_the_database_the_stack_retains(iiot_template):
    (database,) = iiot_template.find_resources("AWS::Timestream::Database").values()
    name = database["Properties"]["DatabaseName"]
    teardown = section("Teardown, and what stays behind")
    assert f"`{name}`" in teardown
    assert f"delete-database --database-name {name}" in teardown
    assert f"delete-table --database-name {name}" in teardown
