"""The opt-in SiteWise Monitor portal: off by default; when on, an IAM portal with a project and
dashboards per site and line whose widgets name properties by deploy-time-resolved ids."""

import json
from pathlib import Path

import pytest
from aws_cdk import NestedStack
from aws_cdk.assertions import Match, Template

from stacks.constructs.sitewise_assets import STATIONS_PER_DASHBOARD
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
from tests.stacks.assembly import Assembly
from tests.stacks.plants import ADMIN, VIEWER
from tests.stacks.test_cfn_lint import lint

PORTAL = "AWS::IoTSiteWise::Portal"
PROJECT = "AWS::IoTSiteWise::Project"
DASHBOARD = "AWS::IoTSiteWise::Dashboard"
ACCESS = "AWS::IoTSiteWise::AccessPolicy"
ASSET_TYPE = "AWS::IoTSiteWise::Asset"
PARTS = ["Good_Parts", "Bad_Parts"]


@pytest.fixture(scope="module")
def monitored(full_plant, full_synthesized):
    """The demo's lines and the largest line allowed, with the portal on."""
    stacks, assembly = full_synthesized
    site = stacks.sitewise.sites["berlin"]
    return {
        "plant": full_plant,
        "assembly": assembly,
        "parent": Template.from_stack(stacks.sitewise),
        "lines": {line_id: Template.from_stack(nested) for line_id, nested in site.lines.items()},
        "nested": [
            Template.from_stack(s)
            for s in stacks.sitewise.node.find_all()
            if isinstance(s, NestedStack)
        ],  # fmt: skip
    }


def resources(template, kind):
    return template.find_resources(kind)


def _placeholder(part):
    if isinstance(part, str):
        return part
    if "Ref" in part:  # a parameter: an id from another stack
        return "<{}>".format(part["Ref"])
    return "<{}.{}>".format(*part["Fn::GetAtt"])


def definition_of(dashboard):
    """The definition's Fn::Join with each token replaced by a readable placeholder."""
    parts = dashboard["Properties"]["DashboardDefinition"]["Fn::Join"][1]
    return json.loads("".join(map(_placeholder, parts)))


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


def test_dashboards_read_property_ids_from_one_lookup_per_model_in_their_own_template(
    monitored,
):
    for template in (monitored["parent"], *monitored["nested"]):
        lookups = resources(template, PROPERTY_IDS_RESOURCE_TYPE)
        models = [json.dumps(lookup["Properties"]["AssetModelId"]) for lookup in lookups.values()]
        assert len(models) == len(set(models))
        for lookup in lookups.values():
            assert lookup["Properties"]["PropertyNames"] == list(DASHBOARD_PROPERTIES)
        for dashboard in resources(template, DASHBOARD).values():
            for widget in definition_of(dashboard)["widgets"]:
                for metric in widget["metrics"]:
                    lookup, name = metric["propertyId"].strip("<>").split(".")
                    assert lookup in lookups and name == metric["label"]
    # The site dashboard reads the site model and each line model.
    assert len(resources(monitored["parent"], PROPERTY_IDS_RESOURCE_TYPE)) == 1 + len(
        monitored["lines"]
    )


def _resolved_widgets(assembly, template, dashboard):
    """The widgets with each asset id as the asset's name and each property id as
    "<model name>.<property>", followed through stack parameters and outputs."""

    def part(value):
        if isinstance(value, str):
            return value
        target = assembly.target(template, value)
        if target.type == ASSET_TYPE:
            return target.properties["AssetName"]
        model = assembly.target(target.template, target.properties["AssetModelId"])
        return f"{model.properties['AssetModelName']}.{target.attribute}"

    parts = dashboard["Properties"]["DashboardDefinition"]["Fn::Join"][1]
    return json.loads("".join(map(part, parts)))["widgets"]


def test_line_dashboards_show_the_line_then_every_station_twenty_at_most(monitored):
    assembly = Assembly(monitored["assembly"].directory)
    plant = monitored["plant"]
    found = [
        (template, dashboard)
        for template, _, dashboard in assembly.resources(DASHBOARD)
        if dashboard["Properties"]["DashboardName"].startswith("Berlin Body & Machining / ")
    ]
    models = {
        r["Properties"]["AssetName"]: assembly.target(t, r["Properties"]["AssetModelId"])
        for t, _, r in assembly.resources(ASSET_TYPE)
    }
    for line in plant.sites[0].lines:
        title = f"Berlin Body & Machining / {line.name or line.id}"
        named = {d["Properties"]["DashboardName"]: (t, d) for t, d in found if
                 d["Properties"]["DashboardName"].startswith(title)}  # fmt: skip
        pages = len(named)
        assert pages >= -(-len(line.stations) // STATIONS_PER_DASHBOARD)
        names = [title] if pages == 1 else [f"{title} ({n}/{pages})" for n in range(1, pages + 1)]
        shown = []
        for name in names:
            widgets = _resolved_widgets(assembly, *named[name])
            assets = [widget["metrics"][0]["assetId"] for widget in widgets]
            assert assets[:2] == [f"berlin/{line.id}"] * 2
            assert assets[2::2] == assets[3::2]
            assert 1 <= len(assets[2::2]) <= STATIONS_PER_DASHBOARD
            shown += assets[2::2]
            for widget in widgets:
                labels = [metric["label"] for metric in widget["metrics"]]
                assert labels in (["OEE", "Availability", "Performance", "Quality"], PARTS)
                for metric in widget["metrics"]:
                    # the property id is looked up on the very asset's model, by its name
                    model = models[metric["assetId"]].properties["AssetModelName"]
                    assert metric["propertyId"] == f"{model}.{metric['label']}"
        assert shown == [f"berlin/{line.id}/{station.id}" for station in line.stations]


def test_the_site_dashboard_shows_the_site_and_each_line(monitored):
    (dashboard,) = resources(monitored["parent"], DASHBOARD).values()
    widgets = definition_of(dashboard)["widgets"]
    lines = monitored["plant"].sites[0].lines
    assert len(widgets) == 2 * (1 + len(lines))
    assert [w["title"].split(":")[0] for w in widgets[2::2]] == [line.id for line in lines]


def test_the_monitor_templates_are_cfn_lint_clean(monitored):
    directory = Path(monitored["assembly"].directory)
    templates = sorted(directory.glob("*SiteWise*.template.json"))
    assert len(templates) == 1 + len(monitored["nested"])
    # The nested templates come from one construct per line; the largest and the smallest stand
    # for them all (linting every one took 50 s of the suite's 15-minute budget).
    parent = [t for t in templates if not t.name.endswith(".nested.template.json")]
    nested = sorted(set(templates) - set(parent), key=lambda t: t.stat().st_size)
    result = lint(parent + nested[:1] + nested[-1:])
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
