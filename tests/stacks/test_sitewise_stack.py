"""SiteWise models and assets as synthesized: nested stack per line, aliases, hierarchies."""

import pytest
from aws_cdk.assertions import Match, Template

from mes_domain.plant import Plant
from stacks.constructs.sitewise_assets import (
    MAX_OUTPUTS,
    STATION_STACK_BYTES,
    STATION_STACK_COUNT_SHARE,
    estimated_model_bytes,
    estimated_station_bytes,
    plan_station_stacks,
)
from stacks.constructs.sitewise_expressions import check_expression
from stacks.constructs.sitewise_models import design_plant
from tests.stacks.plants import HEAVY_STATIONS, LARGEST_LINE

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


# --- the largest line the config allows: its stations over several station stacks ---


@pytest.fixture(scope="module")
def largest(full_plant, full_synthesized):
    stacks, _ = full_synthesized
    nested = stacks.sitewise.sites["berlin"].lines[LARGEST_LINE]
    (line,) = [line for line in full_plant.sites[0].lines if line.id == LARGEST_LINE]
    return {
        "line": line,
        "nested": nested,
        "template": Template.from_stack(nested),
        "stations": [Template.from_stack(target) for target, _ in nested.station_stacks],
    }


def _names(template, kind, key):
    return [r["Properties"][key] for r in template.find_resources(kind).values()]


def test_the_largest_line_keeps_its_line_model_and_asset_and_nests_its_stations(largest):
    line, template, stations = largest["line"], largest["template"], largest["stations"]
    assert len(stations) >= 2
    # each station stack, and beside it the stack of its SiteWise Monitor dashboards
    template.resource_count_is("AWS::CloudFormation::Stack", 2 * len(stations))
    assert _names(template, MODEL, "AssetModelName") == [f"MesDemo berlin/{line.id} line"]
    assert _names(template, ASSET, "AssetName") == [f"berlin/{line.id}"]
    shown = [name for t in stations for name in _names(t, ASSET, "AssetName")]
    assert sorted(shown) == sorted(f"berlin/{line.id}/{s.id}" for s in line.stations)
    # every station has a model of its own here (its own cycle time)
    assert sum(len(t.find_resources(MODEL)) for t in stations) == len(line.stations)


def test_the_largest_line_asset_and_model_reach_every_station_through_stack_outputs(largest):
    line, template = largest["line"], largest["template"]
    (asset,) = template.find_resources(ASSET).values()
    children = asset["Properties"]["AssetHierarchies"]
    assert len(children) == len(line.stations)
    (model,) = template.find_resources(MODEL).values()
    hierarchies = model["Properties"]["AssetModelHierarchies"]
    assert len(hierarchies) == len(line.stations)
    line_stack = largest["nested"]
    nested = {
        line_stack.resolve(target.nested_stack_resource.logical_id)
        for target, _ in line_stack.station_stacks
    }
    for reference in [c["ChildAssetId"] for c in children] + [
        h["ChildAssetModelId"] for h in hierarchies
    ]:
        stack, output = reference["Fn::GetAtt"]
        assert stack in nested and output.startswith("Outputs.")


def test_heavy_stations_share_a_station_stack_with_fewer_others(largest):
    plans = [plan for _, plan in largest["nested"].station_stacks]
    heavy = [plan for plan in plans if plan.assets[0].key.endswith("x")]
    assert heavy and all(len(plan.assets) < len(plans[-2].assets) for plan in heavy)
    assert sum(len(plan.assets) for plan in heavy) >= HEAVY_STATIONS


# --- planning station stacks from the design, before CDK ---


def _design_of(plant, line_id):
    (line,) = [
        line for site in design_plant(plant).sites for line in site.lines if line.line == line_id
    ]
    return line


def test_station_stacks_keep_line_order_within_every_quota_share(full_plant):
    line = _design_of(full_plant, LARGEST_LINE)
    plans = plan_station_stacks(line)
    assert [a.key for plan in plans for a in plan.assets] == [a.key for a in line.station_assets]
    for plan in plans:
        estimated = sum(map(estimated_station_bytes, plan.assets))
        estimated += sum(map(estimated_model_bytes, plan.models))
        assert estimated <= STATION_STACK_BYTES
        assert len(plan.assets) + len(plan.models) <= MAX_OUTPUTS * STATION_STACK_COUNT_SHARE


def test_a_model_lives_with_its_first_station_and_later_stacks_use_it_as_a_parameter(
    demo_plant,
):
    document = demo_plant.model_dump(mode="json")
    station = document["sites"][0]["lines"][0]["stations"][0]
    # two profiles, alternating: both models sit in the first stack, the others borrow them
    document["sites"][0]["lines"][0]["stations"] = [
        {**station, "id": f"s{i:03d}", "ideal_cycle_time_s": 1 + i % 2} for i in range(240)
    ]
    line = _design_of(Plant.model_validate(document), "body-line-1")
    plans = plan_station_stacks(line)
    assert len(plans) >= 2
    first, *later = plans
    assert [m.key for m in first.models] == [m.key for m in line.models[:-1]]
    for plan in later:
        assert plan.models == () and plan.foreign_models == {m.key for m in line.models[:-1]}


def test_a_line_that_fits_one_template_keeps_its_stations_in_the_line_stack(synthesized):
    stacks, _ = synthesized
    for nested in stacks.sitewise.sites["berlin"].lines.values():
        ((target, plan),) = nested.station_stacks
        assert target is nested and len(plan.assets) == len(nested.design.station_assets)
