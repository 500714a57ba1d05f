"""The opt-in SiteWise Monitor portal: off by default; when on, an IAM portal with a project and
dashboards per site and line whose widgets name properties by deploy-time-resolved ids."""

import json
import re
from pathlib import Path

import pytest
from aws_cdk.assertions import Match, Template

from mes_domain.plant import Plant
from stacks.constructs.sitewise_monitor import (
    DASHBOARD_PROPERTIES,
    PROPERTY_IDS_RESOURCE_TYPE,
    WIDGET_HEIGHT,
    WIDGET_WIDTH,
    Metric,
    Widget,
    chunks,
    dashboard_definition,
)
from tests.conftest import synthesize
from tests.stacks.test_cfn_lint import lint

ADMIN = "arn:aws:iam::123456789012:role/PlantEngineer"
VIEWER = "arn:aws:iam::123456789012:user/shift-lead"
PORTAL = "AWS::IoTSiteWise::Portal"
PROJECT = "AWS::IoTSiteWise::Project"
DASHBOARD = "AWS::IoTSiteWise::Dashboard"
ACCESS = "AWS::IoTSiteWise::AccessPolicy"
PARTS = ["Good_Parts", "Bad_Parts"]


@pytest.fixture(scope="module")
def monitored(demo_plant, tmp_path_factory):
    document = demo_plant.model_dump(mode="json")
    document["kpi"]["sitewise_monitor"] = {
        "enabled": True,
        "contact_email": "plant-it@example.com",
        "administrators": [ADMIN],
        "viewers": [VIEWER],
    }
    plant = Plant.model_validate(document)
    # Synth runs the cdk-nag packs: a finding would fail here.
    stacks, assembly = synthesize(plant, tmp_path_factory.mktemp("monitor.out"))
    site = stacks.sitewise.sites["berlin"]
    return {
        "plant": plant,
        "assembly": assembly,
        "parent": Template.from_stack(stacks.sitewise),
        "lines": {line_id: Template.from_stack(nested) for line_id, nested in site.lines.items()},
    }


def resources(template, kind):
    return template.find_resources(kind)


def definition_of(dashboard):
    """The definition's Fn::Join with each token replaced by a readable placeholder."""
    parts = dashboard["Properties"]["DashboardDefinition"]["Fn::Join"][1]
    text = "".join(
        part if isinstance(part, str) else "<{}.{}>".format(*part["Fn::GetAtt"]) for part in parts
    )
    return json.loads(text)


def test_monitor_is_off_unless_the_plant_turns_it_on(sitewise_template):
    for kind in (PORTAL, PROJECT, DASHBOARD, ACCESS, PROPERTY_IDS_RESOURCE_TYPE):
        sitewise_template.resource_count_is(kind, 0)


def test_the_portal_uses_iam_and_a_role_only_sitewise_monitor_assumes(monitored):
    parent = monitored["parent"]
    parent.resource_count_is(PORTAL, 1)
    parent.has_resource_properties(
        PORTAL,
        {
            "PortalAuthMode": "IAM",
            "PortalContactEmail": "plant-it@example.com",
            "RoleArn": {"Fn::GetAtt": [Match.string_like_regexp("MonitorPortalRole"), "Arn"]},
        },
    )
    parent.has_resource_properties(
        "AWS::IAM::Role",
        {
            "AssumeRolePolicyDocument": {
                "Statement": [
                    Match.object_like(
                        {"Principal": {"Service": "monitor.iotsitewise.amazonaws.com"}}
                    )
                ]
            }
        },
    )
    parent.has_resource_properties(
        ACCESS,
        {
            "AccessPolicyIdentity": {"IamRole": {"arn": ADMIN}},
            "AccessPolicyPermission": "ADMINISTRATOR",
            "AccessPolicyResource": {"Portal": {"id": Match.any_value()}},
        },
    )


def test_the_portal_role_reads_and_manages_only_this_accounts_sitewise(monitored):
    policies = resources(monitored["parent"], "AWS::IAM::Policy")
    (portal_policy,) = [p for key, p in policies.items() if key.startswith("MonitorPortalRole")]
    for statement in portal_policy["Properties"]["PolicyDocument"]["Statement"]:
        assert all(action.startswith("iotsitewise:") for action in statement["Action"])
        assert not any(a.startswith(("iotsitewise:Delete", "iotsitewise:Create")) and
                       "Dashboard" not in a for a in statement["Action"])  # fmt: skip
        for resource in statement["Resource"]:
            text = json.dumps(resource)
            assert "AWS::AccountId" in text and "AWS::Region" in text, text


def test_a_project_per_site_and_per_line_each_with_its_viewers(monitored):
    parent, lines = monitored["parent"], monitored["lines"]
    parent.has_resource_properties(
        PROJECT,
        {"AssetIds": [{"Fn::GetAtt": [Match.string_like_regexp("^Siteberlin"), "AssetId"]}]},
    )
    for line_id, template in lines.items():
        template.resource_count_is(PROJECT, 1)
        template.has_resource_properties(
            PROJECT,
            {"AssetIds": [{"Fn::GetAtt": ["berlin" + line_id.replace("-", ""), "AssetId"]}]},
        )
    for template in (parent, *lines.values()):
        template.has_resource_properties(
            ACCESS,
            {
                "AccessPolicyIdentity": {"IamUser": {"arn": VIEWER}},
                "AccessPolicyPermission": "VIEWER",
                "AccessPolicyResource": {"Project": {"id": Match.any_value()}},
            },
        )


def test_each_model_gets_one_property_id_lookup(monitored):
    for template in (monitored["parent"], *monitored["lines"].values()):
        models = resources(template, "AWS::IoTSiteWise::AssetModel")
        lookups = resources(template, PROPERTY_IDS_RESOURCE_TYPE)
        looked_up = sorted(
            lookup["Properties"]["AssetModelId"]["Fn::GetAtt"][0] for lookup in lookups.values()
        )
        assert looked_up == sorted(models)
        for lookup in lookups.values():
            assert lookup["Properties"]["PropertyNames"] == list(DASHBOARD_PROPERTIES)


def test_line_dashboards_show_the_line_then_every_station(monitored):
    plant = monitored["plant"]
    for line in plant.sites[0].lines:
        template = monitored["lines"][line.id]
        (dashboard,) = resources(template, DASHBOARD).values()
        widgets = definition_of(dashboard)["widgets"]
        assert len(widgets) == 2 * (1 + len(line.stations))
        asset_of = {
            re.sub(r"\W", "", f"berlin{line.id}{station.id}"): station.id
            for station in line.stations
        }
        shown = [
            asset_of.get(widget["metrics"][0]["assetId"][1:].split(".")[0], "line")
            for widget in widgets
        ]
        assert shown == ["line", "line"] + [s.id for s in line.stations for _ in (0, 1)]
        for widget in widgets:
            names = [metric["label"] for metric in widget["metrics"]]
            assert names in (["OEE", "Availability", "Performance", "Quality"], PARTS)
            for metric in widget["metrics"]:
                # The property id is the lookup's attribute for this very property.
                assert metric["propertyId"].startswith("<PropertyIds")
                assert metric["propertyId"].endswith("." + metric["label"] + ">")


def test_the_site_dashboard_shows_the_site_and_each_line(monitored):
    (dashboard,) = resources(monitored["parent"], DASHBOARD).values()
    widgets = definition_of(dashboard)["widgets"]
    lines = monitored["plant"].sites[0].lines
    assert len(widgets) == 2 * (1 + len(lines))
    assert [w["title"].split(":")[0] for w in widgets[2::2]] == [line.id for line in lines]


def test_the_monitor_templates_are_cfn_lint_clean(monitored):
    directory = Path(monitored["assembly"].directory)
    templates = sorted(directory.glob("*SiteWise*.template.json"))
    assert len(templates) == 1 + len(monitored["lines"])
    result = lint(templates)
    assert ":E" not in result.stdout and ":W" not in result.stdout, result.stdout


def test_widgets_fill_rows_of_two_without_overlap():
    widgets = [Widget("sc-line-chart", f"w{i}", (Metric("OEE", "a", "p"),)) for i in range(5)]
    placed = dashboard_definition(widgets)["widgets"]
    cells = {(w["x"], w["y"]) for w in placed}
    assert len(cells) == 5
    assert {w["x"] for w in placed} == {0, WIDGET_WIDTH}
    assert max(w["y"] for w in placed) == 2 * WIDGET_HEIGHT


def test_long_lines_are_split_into_dashboards_of_at_most_twenty_stations():
    pages = list(chunks(list(range(45)), 20))
    assert [len(page) for page in pages] == [20, 20, 5]
    assert [item for page in pages for item in page] == list(range(45))
