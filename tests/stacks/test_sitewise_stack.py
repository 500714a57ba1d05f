"""SiteWise models and assets as synthesized: nested stack per line, aliases, hierarchies."""

import pytest
from aws_cdk.assertions import Match, Template

from stacks.constructs.sitewise_expressions import check_expression

MODEL = "AWS::IoTSiteWise::AssetModel"
ASSET = "AWS::IoTSiteWise::Asset"


@pytest.fixture(scope="module")
def line_templates(synthesized):
    stacks, _ = synthesized
    site = stacks.sitewise.sites["berlin"]
    return {line_id: Template.from_stack(nested) for line_id, nested in site.lines.items()}


def test_one_nested_stack_per_line_and_the_site_in_the_parent(sitewise_template, demo_plant):
    lines = [line.id for line in demo_plant.sites[0].lines]
    sitewise_template.resource_count_is("AWS::CloudFormation::Stack", len(lines))
    sitewise_template.resource_count_is(MODEL, 1)
    sitewise_template.resource_count_is(ASSET, 1)
    sitewise_template.has_resource_properties(
        ASSET,
        {
            "AssetName": "berlin",
            "AssetHierarchies": [
                {
                    "LogicalId": f"Line_{i}",
                    "ChildAssetId": {
                        "Fn::GetAtt": [
                            Match.any_value(),
                            Match.string_like_regexp(r"^Outputs\..*AssetId$"),
                        ]
                    },
                }
                for i in range(1, len(lines) + 1)
            ],
        },
    )


def test_each_line_holds_its_station_models_and_assets(line_templates, demo_plant):
    for line in demo_plant.sites[0].lines:
        template = line_templates[line.id]
        template.resource_count_is(MODEL, len(line.stations) + 1)
        template.resource_count_is(ASSET, len(line.stations) + 1)
        for station in line.stations:
            alias = f"/mes/berlin/{line.id}/{station.id}/"
            template.has_resource_properties(
                ASSET,
                {
                    "AssetName": f"berlin/{line.id}/{station.id}",
                    "AssetProperties": [
                        {"LogicalId": name, "Alias": alias + name}
                        for name in (
                            "Equipment_State",
                            "Good_Count",
                            "Bad_Count",
                            *(tag.name for tag in station.tags),
                        )
                    ],
                },
            )


def test_the_line_asset_associates_every_station(line_templates):
    template = line_templates["body-line-1"]
    line_asset = template.find_resources(ASSET, {"Properties": {"AssetName": "berlin/body-line-1"}})
    (properties,) = [r["Properties"] for r in line_asset.values()]
    children = [h["ChildAssetId"]["Fn::GetAtt"][0] for h in properties["AssetHierarchies"]]
    station_assets = template.find_resources(
        ASSET, {"Properties": {"AssetName": Match.string_like_regexp(r"^berlin/body-line-1/")}}
    )
    assert sorted(children) == sorted(station_assets) and len(children) == 4


def test_station_model_has_state_transforms_metrics_and_cycle_time(line_templates):
    template = line_templates["body-line-1"]
    template.has_resource_properties(
        MODEL,
        {
            "AssetModelName": "MesDemo berlin/body-line-1 press station, 6 s cycle",
            "AssetModelProperties": Match.array_with(
                [
                    {
                        "LogicalId": "Ideal_Cycle_Time",
                        "Name": "Ideal_Cycle_Time",
                        "DataType": "DOUBLE",
                        "Unit": "s",
                        "Type": {"TypeName": "Attribute", "Attribute": {"DefaultValue": "6"}},
                    },
                    {
                        "LogicalId": "Is_Unplanned_Stop",
                        "Name": "Is_Unplanned_Stop",
                        "DataType": "DOUBLE",
                        "Type": {
                            "TypeName": "Transform",
                            "Transform": {
                                "Expression": "eq(state, 'UNPLANNED_STOP')",
                                "Variables": [
                                    {
                                        "Name": "state",
                                        "Value": {"PropertyLogicalId": "Equipment_State"},
                                    }
                                ],
                            },
                        },
                    },
                    {
                        "LogicalId": "OEE",
                        "Name": "OEE",
                        "DataType": "DOUBLE",
                        "Type": {
                            "TypeName": "Metric",
                            "Metric": {
                                "Expression": "a * p * q",
                                "Variables": Match.any_value(),
                                "Window": {"Tumbling": {"Interval": "15m"}},
                            },
                        },
                    },
                ]
            ),
        },
    )


def _formulas(template: Template):
    for model in template.find_resources(MODEL).values():
        for prop in model["Properties"]["AssetModelProperties"]:
            kind = prop["Type"]["TypeName"]
            if kind in ("Transform", "Metric"):
                yield model["Properties"]["AssetModelName"], prop, prop["Type"][kind]


def test_every_synthesized_formula_passes_the_checker(sitewise_template, line_templates):
    checked = 0
    for template in (sitewise_template, *line_templates.values()):
        for model_name, prop, formula in _formulas(template):
            names = [v["Name"] for v in formula["Variables"]]
            check_expression(f"{model_name}/{prop['Name']}", formula["Expression"], names)
            checked += 1
    # 8 station models with 6 state transforms and 10 metrics; 2 lines and 1 site with 10 metrics
    assert checked == 8 * (6 + 10) + 3 * 10


def test_line_rollups_read_their_children_through_hierarchies(line_templates):
    template = line_templates["machining-line-1"]
    template.has_resource_properties(
        MODEL,
        {
            "AssetModelName": "MesDemo berlin/machining-line-1 line",
            "AssetModelHierarchies": [
                {
                    "LogicalId": f"Station_Model_{i}",
                    "Name": Match.any_value(),
                    "ChildAssetModelId": {"Fn::GetAtt": [Match.any_value(), "AssetModelId"]},
                }
                for i in range(1, 5)
            ],
            "AssetModelProperties": Match.array_with(
                [
                    {
                        "LogicalId": "Good_Parts",
                        "Name": "Good_Parts",
                        "DataType": "DOUBLE",
                        "Type": {
                            "TypeName": "Metric",
                            "Metric": {
                                "Expression": "sum(v1) + sum(v2) + sum(v3) + sum(v4)",
                                "Variables": [
                                    {
                                        "Name": f"v{i}",
                                        "Value": {
                                            "PropertyLogicalId": "Good_Parts",
                                            "HierarchyLogicalId": f"Station_Model_{i}",
                                        },
                                    }
                                    for i in range(1, 5)
                                ],
                                "Window": {"Tumbling": {"Interval": "15m"}},
                            },
                        },
                    }
                ]
            ),
        },
    )
