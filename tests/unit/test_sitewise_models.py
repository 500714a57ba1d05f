"""The plant's SiteWise design: models, assets, aliases and OEE formulas, before any CDK."""

import copy
import math

import pytest

from mes_domain.contracts import EquipmentState
from mes_domain.plant import Plant
from mes_domain.sitewise import (
    AVAILABILITY,
    BAD_COUNT,
    EQUIPMENT_STATE,
    GOOD_COUNT,
    OEE,
    PERFORMANCE,
    QUALITY,
    RUN_TIME,
    SUMMED_METRICS,
    property_alias,
    state_transform,
)
from stacks.constructs.ingest_rules import LINE, SITE, STATION
from stacks.constructs.sitewise_expressions import ExpressionError, analyse
from stacks.constructs.sitewise_models import (
    AssetModel,
    DataType,
    PlantDesign,
    Property,
    PropertyType,
    SiteDesign,
    Variable,
    design_plant,
    verify,
)

# --- a reference evaluator for one window, enough for the formulas this design generates ---


def evaluate(model: AssetModel, inputs: dict, children: dict | None = None) -> dict:
    """Compute every formula of ``model`` for one window.

    ``inputs`` gives measurements (a list of data points) and, for each state transform, the
    seconds spent in that state; ``children`` maps a hierarchy to the child assets' results.
    """
    values = {
        p.name: float(p.default_value) if p.data_type is DataType.DOUBLE else p.default_value
        for p in model.properties
        if p.type is PropertyType.ATTRIBUTE
    }
    values.update(inputs)
    pending = [p for p in model.properties if p.type is PropertyType.METRIC]
    while pending:
        for prop in list(pending):
            names = {}
            for variable in prop.variables:
                if variable.hierarchy:
                    names[variable.name] = [
                        c[variable.property] for c in children[variable.hierarchy]
                    ]
                elif variable.property in values:
                    names[variable.name] = values[variable.property]
            if len(names) < len(prop.variables):
                continue
            try:
                values[prop.name] = eval(
                    prop.expression, {"__builtins__": {}}, {**FUNCTIONS, **names}
                )
            except (TypeError, ZeroDivisionError):  # undefined: SiteWise emits no data point
                values[prop.name] = None
            pending.remove(prop)
    return values


FUNCTIONS = {
    "sum": lambda points: sum(v for v in points if v is not None),
    "statetime": lambda seconds: seconds,
}


def station_inputs(seconds: dict[EquipmentState, float], good: list[int], bad: list[int]):
    inputs = {state_transform(s): seconds.get(s, 0.0) for s in EquipmentState}
    return {**inputs, GOOD_COUNT: good, BAD_COUNT: bad}


@pytest.fixture(scope="module")
def design(demo_plant) -> PlantDesign:
    return design_plant(demo_plant)


def plant_with(demo_plant, mutate) -> Plant:
    document = copy.deepcopy(demo_plant.model_dump(mode="json"))
    mutate(document)
    return Plant.model_validate(document)


# --- the design of the demo plant ---


def test_every_configured_site_line_and_station_has_an_asset(design, demo_plant):
    expected = {site.id for site in demo_plant.sites}
    expected |= {f"{s.id}/{line.id}" for s in demo_plant.sites for line in s.lines}
    expected |= {"/".join(ref.path) for ref in demo_plant.stations()}
    assert {asset.key for asset in design.assets()} == expected


def test_hierarchy_associations_follow_the_plant(design, demo_plant):
    site = design.sites[0]
    assert [child for _, child in site.asset.children] == [
        f"berlin/{line.id}" for line in demo_plant.sites[0].lines
    ]
    body = site.lines[0]
    assert [child for _, child in body.asset.children] == [
        f"berlin/body-line-1/{s.id}" for s in demo_plant.sites[0].lines[0].stations
    ]
    models = {m.key: m for m in design.models()}
    for asset in design.assets():
        hierarchies = {h.logical_id: h for h in models[asset.model].hierarchies}
        for hierarchy, child in asset.children:
            child_model = next(a.model for a in design.assets() if a.key == child)
            assert hierarchies[hierarchy].child_model == child_model


def test_station_aliases_are_the_ones_the_rules_write_to(design, demo_plant):
    assets = {asset.key: asset for asset in design.assets()}
    rule_alias = property_alias(SITE, LINE, STATION, "{m}")
    for ref in demo_plant.stations():
        aliases = dict(assets["/".join(ref.path)].aliases)
        expected = [EQUIPMENT_STATE, GOOD_COUNT, BAD_COUNT, *(t.name for t in ref.station.tags)]
        assert list(aliases) == expected
        for measurement, alias in aliases.items():
            substituted = (
                rule_alias.replace(SITE, ref.site.id)
                .replace(LINE, ref.line.id)
                .replace(STATION, ref.station.id)
            )
            assert alias == substituted.replace("{m}", measurement)


def test_station_model_properties_and_the_ideal_cycle_time_attribute(design, demo_plant):
    models = {m.key: m for m in design.models()}
    assets = {a.key: a for a in design.assets()}
    for ref in demo_plant.stations():
        model = models[assets["/".join(ref.path)].model]
        assert float(model.property("Ideal_Cycle_Time").default_value) == (
            ref.station.ideal_cycle_time_s
        )
        assert model.property(EQUIPMENT_STATE).data_type is DataType.STRING
        assert model.property(GOOD_COUNT).data_type is DataType.INTEGER
        for tag in ref.station.tags:
            assert model.property(tag.name).type is PropertyType.MEASUREMENT
            assert model.property(tag.name).unit == tag.unit
        for state in EquipmentState:
            transform = model.property(state_transform(state))
            assert transform.expression == f"eq(state, '{state.value}')"
        for name in (*SUMMED_METRICS, AVAILABILITY, PERFORMANCE, QUALITY, OEE):
            assert model.property(name).window == "15m"


def test_every_formula_is_within_sitewise_limits(design):
    formulas = [p for m in design.models() for p in m.properties if p.is_formula]
    assert len(formulas) > 100
    for prop in formulas:
        stats = analyse(prop.expression)
        assert len(stats.variables) <= 10 and stats.function_calls <= 10, prop
        assert stats.variables == {v.name for v in prop.variables}


def test_the_window_comes_from_the_config(demo_plant):
    plant = plant_with(demo_plant, lambda d: d["kpi"].update(window_minutes=60))
    windows = {p.window for m in design_plant(plant).models() for p in m.properties if p.window}
    assert windows == {"60m"}


def test_identical_stations_share_a_model_and_different_ones_do_not(demo_plant):
    def clone_press(d):
        stations = d["sites"][0]["lines"][0]["stations"]
        stations.append({**stations[0], "id": "press-02"})
        stations.append({**stations[0], "id": "press-03", "ideal_cycle_time_s": 7.5})

    line = design_plant(plant_with(demo_plant, clone_press)).sites[0].lines[0]
    model_of = {a.key.rsplit("/", 1)[-1]: a.model for a in line.assets}
    assert model_of["press-02"] == model_of["press-01"] != model_of["press-03"]
    assert len(line.models) == 6  # 5 station profiles + the line
    names = [m.name for m in line.models]
    assert "MesDemo berlin/body-line-1 press station, 7.5 s cycle" in names
    assert len(set(names)) == len(names)


def test_stations_alike_but_for_their_tags_get_numbered_models(demo_plant):
    def variant(d):
        stations = d["sites"][0]["lines"][0]["stations"]
        stations.append({**stations[0], "id": "press-02", "tags": []})

    names = [m.name for m in design_plant(plant_with(demo_plant, variant)).models()]
    assert "MesDemo berlin/body-line-1 press station, 6 s cycle (2)" in names


# --- the formulas compute ISO 22400 OEE ---


def test_station_oee_for_one_window(design):
    press = design.sites[0].lines[0].models[0]
    seconds = {
        EquipmentState.RUNNING: 600,
        EquipmentState.IDLE: 200,
        EquipmentState.SETUP: 100,
        EquipmentState.PLANNED_STOP: 300,  # out of planned busy time
    }
    result = evaluate(press, station_inputs(seconds, good=[40, 50], bad=[10, 0]))
    assert result[AVAILABILITY] == pytest.approx(600 / 900)
    assert result[PERFORMANCE] == pytest.approx(6 * 100 / 600)
    assert result[QUALITY] == pytest.approx(0.9)
    assert result[OEE] == pytest.approx(600 / 900 * 1.0 * 0.9)


def test_zero_time_or_zero_parts_give_no_data_point_not_an_error(design):
    press = design.sites[0].lines[0].models[0]
    idle = evaluate(press, station_inputs({EquipmentState.PLANNED_STOP: 900}, [0], [0]))
    assert idle[AVAILABILITY] is None and idle[PERFORMANCE] is None and idle[QUALITY] is None
    assert idle[OEE] is None


def test_performance_above_one_is_shown_not_clamped(design):
    press = design.sites[0].lines[0].models[0]
    result = evaluate(press, station_inputs({EquipmentState.RUNNING: 60}, [20], [0]))
    assert result[PERFORMANCE] == pytest.approx(2.0)


def test_line_oee_is_time_weighted_over_its_stations(design):
    body = design.sites[0].lines[0]
    stations = [
        evaluate(
            model,
            station_inputs({EquipmentState.RUNNING: run, EquipmentState.IDLE: idle}, [good], [bad]),
        )
        for model, (run, idle, good, bad) in zip(
            body.models[:4],
            [(800, 100, 100, 0), (400, 500, 8, 1), (900, 0, 10, 5), (0, 900, 0, 0)],
            strict=True,
        )
    ]
    children = {h.logical_id: [s] for h, s in zip(body.model.hierarchies, stations, strict=True)}
    line = evaluate(body.model, {}, children)
    run, down = 800 + 400 + 900, 100 + 500 + 900
    ideal = 6 * 100 + 45 * 9 + 60 * 15
    assert line[RUN_TIME] == run
    assert line[AVAILABILITY] == pytest.approx(run / (run + down))
    assert line[PERFORMANCE] == pytest.approx(ideal / run)
    assert line[QUALITY] == pytest.approx(118 / 124)
    mean_of_station_oee = sum(s[OEE] or 0 for s in stations) / 4
    assert not math.isclose(line[OEE], mean_of_station_oee)


# --- large plants stay within the limits ---


def test_a_line_of_25_distinct_stations_sums_in_partials(demo_plant):
    def long_line(d):
        template = d["sites"][0]["lines"][0]["stations"][0]
        d["sites"][0]["lines"][0]["stations"] = [
            {**template, "id": f"st-{i:02d}", "ideal_cycle_time_s": 5 + i} for i in range(25)
        ]

    line = design_plant(plant_with(demo_plant, long_line)).sites[0].lines[0].model
    assert len(line.hierarchies) == 25
    run = line.property(RUN_TIME)
    assert run.expression == "v1 + v2 + v3"
    assert [v.property for v in run.variables] == [
        "Run_Time_Sum_1_1", "Run_Time_Sum_1_2", "Run_Time_Sum_1_3"
    ]  # fmt: skip
    assert len(line.property("Run_Time_Sum_1_3").variables) == 5


def test_a_site_of_120_lines_needs_two_levels_of_partials(demo_plant):
    def many_lines(d):
        template = d["sites"][0]["lines"][1]
        d["sites"][0]["lines"] = [{**template, "id": f"line-{i:03d}"} for i in range(120)]

    site = design_plant(plant_with(demo_plant, many_lines)).sites[0].model
    assert site.property(RUN_TIME).expression == "v1 + v2"
    assert site.property("Run_Time_Sum_2_2").expression == "v1 + v2"


# --- verify() refuses what SiteWise would refuse ---


def _one_model_design(*properties: Property) -> PlantDesign:
    model = AssetModel(key="m", name="M", description="", properties=properties)
    site = SiteDesign(site="s", lines=(), model=model, asset=None)
    return PlantDesign(window="15m", sites=(site,))


def _measure(name):
    return Property(name, PropertyType.MEASUREMENT, DataType.DOUBLE)


def _formula(name, expression, *variables):
    return Property(name, PropertyType.METRIC, DataType.DOUBLE, None, expression, variables, "1m")


def test_verify_refuses_a_variable_on_a_missing_property():
    design = _one_model_design(_formula("x", "sum(a)", Variable("a", "Nope")))
    with pytest.raises(ExpressionError, match="model 'M', property 'x': .*no property 'Nope'"):
        verify(design)


def test_verify_refuses_a_missing_hierarchy_and_clashing_names():
    with pytest.raises(ExpressionError, match="no hierarchy 'H'"):
        verify(_one_model_design(_measure("a"), _formula("x", "sum(a)", Variable("a", "a", "H"))))
    with pytest.raises(ExpressionError, match="two properties of one name"):
        verify(_one_model_design(_measure("Tag"), _measure("TAG")))


def test_verify_refuses_more_than_ten_cascading_formulas():
    chain = [_measure("m0")] + [
        _formula(f"m{i}", "v + 1", Variable("v", f"m{i - 1}")) for i in range(1, 12)
    ]
    verify(_one_model_design(*chain[:11]))
    with pytest.raises(ExpressionError, match="property 'm11': 11 cascading formulas"):
        verify(_one_model_design(*chain))
