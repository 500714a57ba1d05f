"""The plant's SiteWise asset models and assets, designed in plain Python and checked before synth.

Stations with the same kind, ideal cycle time and tags share a model; the ideal cycle time is
that model's attribute default, because CloudFormation cannot set an attribute per asset. Each
line gets a model with one hierarchy per station model it holds, each site one per line. The
time and count metrics are summed up the hierarchy (in partial sums when more than 10
hierarchies would exceed SiteWise's variable limit) and the ratios are recomputed from the sums
at every level, so a line's OEE is time-weighted, never an average of averages.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from enum import StrEnum

from mes_domain.contracts import AVAILABILITY_LOSS_STATES, EquipmentState
from mes_domain.naming import (
    line_asset_name,
    line_model_name,
    line_path,
    site_asset_name,
    site_model_name,
    station_asset_name,
    station_model_label,
    station_model_name,
)
from mes_domain.plant import Line, Plant, Site, Station, TagDataType
from mes_domain.sitewise import (
    AVAILABILITY,
    BAD_COUNT,
    BAD_PARTS,
    DOWN_TIME,
    EQUIPMENT_STATE,
    GOOD_COUNT,
    GOOD_PARTS,
    IDEAL_CYCLE_TIME,
    IDEAL_TIME,
    OEE,
    PERFORMANCE,
    PLANNED_STOP_TIME,
    QUALITY,
    RUN_TIME,
    STATION_KIND,
    SUMMED_METRICS,
    property_alias,
    state_transform,
)
from stacks.constructs.sitewise_expressions import (
    MAX_CASCADE_DEPTH,
    MAX_VARIABLES,
    ExpressionError,
    cascade_depths,
    check_expression,
)


class PropertyType(StrEnum):
    ATTRIBUTE = "Attribute"
    MEASUREMENT = "Measurement"
    TRANSFORM = "Transform"
    METRIC = "Metric"


class DataType(StrEnum):
    DOUBLE = "DOUBLE"
    INTEGER = "INTEGER"
    BOOLEAN = "BOOLEAN"
    STRING = "STRING"


TAG_DATA_TYPES = {
    TagDataType.DOUBLE: DataType.DOUBLE,
    TagDataType.INTEGER: DataType.INTEGER,
    TagDataType.BOOLEAN: DataType.BOOLEAN,
    TagDataType.STRING: DataType.STRING,
}


@dataclass(frozen=True)
class Variable:
    """An expression variable: a property of this model, or of the children in ``hierarchy``."""

    name: str
    property: str
    hierarchy: str | None = None


@dataclass(frozen=True)
class Property:
    name: str  # also the property's logical id
    type: PropertyType
    data_type: DataType
    unit: str | None = None
    expression: str | None = None
    variables: tuple[Variable, ...] = ()
    window: str | None = None  # metrics: the tumbling window
    default_value: str | None = None  # attributes

    @property
    def is_formula(self) -> bool:
        return self.type in (PropertyType.TRANSFORM, PropertyType.METRIC)


@dataclass(frozen=True)
class Hierarchy:
    logical_id: str
    name: str
    child_model: str  # key of the child model


@dataclass(frozen=True)
class AssetModel:
    key: str  # unique in the plant; also the construct id
    name: str
    description: str
    properties: tuple[Property, ...]
    hierarchies: tuple[Hierarchy, ...] = ()

    def property(self, name: str) -> Property:
        for prop in self.properties:
            if prop.name == name:
                return prop
        raise KeyError(f"model {self.name!r} has no property {name!r}")


@dataclass(frozen=True)
class Asset:
    key: str  # the hierarchy path, e.g. "berlin/body-line-1/press-01"
    name: str
    description: str
    model: str
    aliases: tuple[tuple[str, str], ...] = ()  # (property, alias)
    children: tuple[tuple[str, str], ...] = ()  # (hierarchy logical id, child asset key)


@dataclass(frozen=True)
class LineDesign:
    """Everything of one line: deployed together, as one nested stack."""

    site: str
    line: str
    models: tuple[AssetModel, ...]  # children first, the line model last
    assets: tuple[Asset, ...]  # children first, the line asset last

    @property
    def model(self) -> AssetModel:
        return self.models[-1]

    @property
    def asset(self) -> Asset:
        return self.assets[-1]

    @property
    def station_assets(self) -> tuple[Asset, ...]:
        return self.assets[:-1]


@dataclass(frozen=True)
class SiteDesign:
    site: str
    lines: tuple[LineDesign, ...]
    model: AssetModel
    asset: Asset


@dataclass(frozen=True)
class PlantDesign:
    window: str
    sites: tuple[SiteDesign, ...]

    def models(self) -> Iterator[AssetModel]:
        for site in self.sites:
            for line in site.lines:
                yield from line.models
            yield site.model

    def assets(self) -> Iterator[Asset]:
        for site in self.sites:
            for line in site.lines:
                yield from line.assets
            yield site.asset


def _metric(name: str, expression: str, variables: Sequence[Variable], window: str, unit=None):
    return Property(
        name=name,
        type=PropertyType.METRIC,
        data_type=DataType.DOUBLE,
        unit=unit,
        expression=expression,
        variables=tuple(variables),
        window=window,
    )


def _ratio_metrics(window: str) -> list[Property]:
    """A/P/Q/OEE from the summed metrics. SiteWise outputs no data point for an undefined
    value, so a window with a zero denominator has no ratio rather than a division error."""
    run, down = Variable("run", RUN_TIME), Variable("down", DOWN_TIME)
    good, bad = Variable("good", GOOD_PARTS), Variable("bad", BAD_PARTS)
    ideal = Variable("ideal", IDEAL_TIME)
    a, p, q = Variable("a", AVAILABILITY), Variable("p", PERFORMANCE), Variable("q", QUALITY)
    return [
        _metric(AVAILABILITY, "run / (run + down)", [run, down], window),
        # Above 1 means the ideal cycle time is wrong; SiteWise shows it as it is.
        _metric(PERFORMANCE, "ideal / run", [ideal, run], window),
        _metric(QUALITY, "good / (good + bad)", [good, bad], window),
        _metric(OEE, "a * p * q", [a, p, q], window),
    ]


def _variable_name(state: EquipmentState) -> str:
    return "is_" + state.value.lower()


def station_properties(station: Station, window: str) -> tuple[Property, ...]:
    state = Variable("state", EQUIPMENT_STATE)
    properties = [
        Property(
            IDEAL_CYCLE_TIME,
            PropertyType.ATTRIBUTE,
            DataType.DOUBLE,
            unit="s",
            default_value=format(station.ideal_cycle_time_s, "g"),
        ),
        Property(
            STATION_KIND, PropertyType.ATTRIBUTE, DataType.STRING, default_value=station.kind.value
        ),
        Property(EQUIPMENT_STATE, PropertyType.MEASUREMENT, DataType.STRING),
        Property(GOOD_COUNT, PropertyType.MEASUREMENT, DataType.INTEGER),
        Property(BAD_COUNT, PropertyType.MEASUREMENT, DataType.INTEGER),
        *(
            Property(tag.name, PropertyType.MEASUREMENT, TAG_DATA_TYPES[tag.data_type], tag.unit)
            for tag in station.tags
        ),
        *(
            Property(
                state_transform(equipment_state),
                PropertyType.TRANSFORM,
                DataType.DOUBLE,
                expression=f"eq(state, '{equipment_state.value}')",
                variables=(state,),
            )
            for equipment_state in EquipmentState
        ),
    ]

    def state_time(states) -> tuple[str, list[Variable]]:
        variables = [Variable(_variable_name(s), state_transform(s)) for s in states]
        return " + ".join(f"statetime({v.name})" for v in variables), variables

    good, bad = Variable("good", GOOD_PARTS), Variable("bad", BAD_PARTS)
    losses = sorted(AVAILABILITY_LOSS_STATES, key=list(EquipmentState).index)
    properties += [
        _metric(RUN_TIME, *state_time([EquipmentState.RUNNING]), window, unit="s"),
        _metric(DOWN_TIME, *state_time(losses), window, unit="s"),
        _metric(PLANNED_STOP_TIME, *state_time([EquipmentState.PLANNED_STOP]), window, unit="s"),
        _metric(GOOD_PARTS, "sum(count)", [Variable("count", GOOD_COUNT)], window),
        _metric(BAD_PARTS, "sum(count)", [Variable("count", BAD_COUNT)], window),
        _metric(
            IDEAL_TIME,
            "cycle * (good + bad)",
            [Variable("cycle", IDEAL_CYCLE_TIME), good, bad],
            window,
            unit="s",
        ),
        *_ratio_metrics(window),
    ]
    return tuple(properties)


def _summed_over(name: str, hierarchies: Sequence[str], window: str) -> list[Property]:
    """``name`` as the sum of the children's ``name`` over every hierarchy, in partial sums of
    at most ``MAX_VARIABLES`` terms; the partials are metrics of their own."""
    terms = [Variable(f"c{i}", name, hierarchy) for i, hierarchy in enumerate(hierarchies, 1)]
    properties, level = [], 0
    while len(terms) > MAX_VARIABLES:
        level += 1
        partials = []
        chunks = [terms[i : i + MAX_VARIABLES] for i in range(0, len(terms), MAX_VARIABLES)]
        for part, chunk in enumerate(chunks, 1):
            partial = f"{name}_Sum_{level}_{part}"
            properties.append(_sum_metric(partial, chunk, window))
            partials.append(Variable(f"p{part}", partial))
        terms = partials
    properties.append(_sum_metric(name, terms, window))
    return properties


def _sum_metric(name: str, terms: Sequence[Variable], window: str) -> Property:
    renamed = [Variable(f"v{i}", term.property, term.hierarchy) for i, term in enumerate(terms, 1)]
    expression = " + ".join(f"sum({v.name})" if v.hierarchy else v.name for v in renamed)
    unit = None if terms[0].property in (GOOD_PARTS, BAD_PARTS) else "s"
    return _metric(name, expression, renamed, window, unit=unit)


def rollup_properties(hierarchies: Sequence[str], window: str) -> tuple[Property, ...]:
    summed = [prop for name in SUMMED_METRICS for prop in _summed_over(name, hierarchies, window)]
    return (*summed, *_ratio_metrics(window))


def _station_profile(station: Station) -> tuple:
    """What a station model depends on; where the gateway reads a tag (its source) does not."""
    tags = tuple((tag.name, tag.unit, tag.data_type) for tag in station.tags)
    return (station.kind, station.ideal_cycle_time_s, tags)


def _design_line(prefix: str, site: Site, line: Line, window: str) -> LineDesign:
    path = line_path(site.id, line.id)
    profiles: dict[tuple, list[Station]] = {}
    for station in line.stations:
        profiles.setdefault(_station_profile(station), []).append(station)

    # Profiles alike in kind and cycle time differ in their tags; number them apart.
    labels, seen = [], Counter()
    for kind, cycle, _ in profiles:
        alike = station_model_label(kind.value, cycle)
        seen[alike] += 1
        labels.append(station_model_label(kind.value, cycle, seen[alike]))

    station_models, hierarchies, model_of_station = [], [], {}
    for index, (label, stations) in enumerate(zip(labels, profiles.values(), strict=True), 1):
        model = AssetModel(
            key=f"{path}/station-model-{index}",
            name=station_model_name(prefix, site.id, line.id, label),
            description="Stations " + ", ".join(s.id for s in stations) + f" of line {path}",
            properties=station_properties(stations[0], window),
        )
        station_models.append(model)
        hierarchies.append(Hierarchy(f"Station_Model_{index}", label, model.key))
        for station in stations:
            model_of_station[station.id] = (model, hierarchies[-1])

    line_model = AssetModel(
        key=f"{path}/line-model",
        name=line_model_name(prefix, site.id, line.id),
        description=f"Line {path}: OEE summed over its stations",
        properties=rollup_properties([h.logical_id for h in hierarchies], window),
        hierarchies=tuple(hierarchies),
    )
    station_assets = []
    for station in line.stations:
        model, _ = model_of_station[station.id]
        measurements = [
            prop.name for prop in model.properties if prop.type is PropertyType.MEASUREMENT
        ]
        station_assets.append(
            Asset(
                key=f"{path}/{station.id}",
                name=station_asset_name(site.id, line.id, station.id),
                description=station.name or f"{station.kind.value} station {station.id}",
                model=model.key,
                aliases=tuple(
                    (name, property_alias(site.id, line.id, station.id, name))
                    for name in measurements
                ),
            )
        )
    line_asset = Asset(
        key=path,
        name=line_asset_name(site.id, line.id),
        description=line.name or f"Line {path}",
        model=line_model.key,
        children=tuple(
            (model_of_station[station.id][1].logical_id, asset.key)
            for station, asset in zip(line.stations, station_assets, strict=True)
        ),
    )
    return LineDesign(
        site=site.id,
        line=line.id,
        models=(*station_models, line_model),
        assets=(*station_assets, line_asset),
    )


def design_plant(plant: Plant) -> PlantDesign:
    """The whole plant's models and assets, verified against SiteWise's expression limits."""
    prefix = plant.deployment.stack_prefix
    window = plant.kpi.sitewise_interval
    sites = []
    for site in plant.sites:
        lines = tuple(_design_line(prefix, site, line, window) for line in site.lines)
        hierarchies = tuple(
            Hierarchy(f"Line_{index}", line.line, line.model.key)
            for index, line in enumerate(lines, 1)
        )
        model = AssetModel(
            key=f"{site.id}/site-model",
            name=site_model_name(prefix, site.id),
            description=f"Site {site.id}: OEE summed over its lines",
            properties=rollup_properties([h.logical_id for h in hierarchies], window),
            hierarchies=hierarchies,
        )
        asset = Asset(
            key=site.id,
            name=site_asset_name(site.id),
            description=site.name or f"Site {site.id}",
            model=model.key,
            children=tuple(
                (hierarchy.logical_id, line.asset.key)
                for hierarchy, line in zip(hierarchies, lines, strict=True)
            ),
        )
        sites.append(SiteDesign(site=site.id, lines=lines, model=model, asset=asset))
    design = PlantDesign(window=window, sites=tuple(sites))
    verify(design)
    return design


def verify(design: PlantDesign) -> None:
    """Raise ``ExpressionError`` naming the first model property SiteWise would reject."""
    models = {model.key: model for model in design.models()}
    inputs: dict[tuple[str, str], list[tuple[str, str]]] = {}
    for model in models.values():
        names = [prop.name.casefold() for prop in model.properties]
        if len(set(names)) != len(names):
            raise ExpressionError(f"model {model.name!r} has two properties of one name")
        hierarchies = {h.logical_id: h for h in model.hierarchies}
        for prop in model.properties:
            if not prop.is_formula:
                continue
            where = f"model {model.name!r}, property {prop.name!r}"
            check_expression(where, prop.expression, [v.name for v in prop.variables])
            reads = []
            for variable in prop.variables:
                source = model
                if variable.hierarchy is not None:
                    if variable.hierarchy not in hierarchies:
                        raise ExpressionError(f"{where}: no hierarchy {variable.hierarchy!r}")
                    source = models[hierarchies[variable.hierarchy].child_model]
                try:
                    read = source.property(variable.property)
                except KeyError as error:
                    raise ExpressionError(f"{where}: {error.args[0]}") from None
                if read.is_formula:
                    reads.append((source.key, read.name))
            inputs[(model.key, prop.name)] = reads
    for node, depth in cascade_depths(inputs).items():
        if depth > MAX_CASCADE_DEPTH:
            raise ExpressionError(
                f"model {models[node[0]].name!r}, property {node[1]!r}: {depth} cascading "
                f"formulas; SiteWise allows {MAX_CASCADE_DEPTH}"
            )
