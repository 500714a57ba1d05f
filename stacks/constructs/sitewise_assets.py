"""Renders the designed SiteWise models and assets (``sitewise_models``) as CloudFormation.

Each line is a nested stack with its line model and asset. Its stations' models and assets go
into the line's stack when they fit one template, else into nested station stacks inside it,
planned from the design (``plan_station_stacks``) so that no template passes CloudFormation's
per-template quotas. The site model and asset stay in the parent and reference the lines'
outputs.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from aws_cdk import NestedStack
from aws_cdk import aws_iotsitewise as sitewise
from constructs import Construct

from stacks.constructs.sitewise_models import (
    Asset,
    AssetModel,
    LineDesign,
    Property,
    PropertyType,
    SiteDesign,
)

# CloudFormation's quotas per template (https://docs.aws.amazon.com/AWSCloudFormation/latest/
# UserGuide/cloudformation-limits.html): a template body read from S3 of at most 1 MB (the
# service counts 1,000,000 bytes), 500 resources, 200 outputs and 200 parameters.
MAX_TEMPLATE_BYTES = 1_000_000
MAX_RESOURCES = 500
MAX_OUTPUTS = 200
MAX_PARAMETERS = 200
# Station stacks are planned to well under those: the byte figure is an estimate from the design
# (tests/stacks/test_sitewise_stack.py measures the synthesized templates of the largest line).
STATION_STACK_BYTES = 600_000
STATION_STACK_COUNT_SHARE = 0.8  # of each count quota; the rest is left for what is not counted
STATIONS_PER_DASHBOARD = 20  # SiteWise Monitor: keeps a dashboard readable and its definition small
# Per station in a station stack, beyond its own JSON: logical ids, types, outputs, and with
# SiteWise Monitor its share of a dashboard and a property-id lookup; every reference repeats
# the logical id, which grows with the station's key. Calibrated on synthesized templates.
STATION_OVERHEAD_BYTES = 2_500
LOGICAL_ID_REFERENCES = 16
MODEL_OVERHEAD_BYTES = 1_000


def construct_id(key: str) -> str:
    return key.replace("/", "_")


def _property_type(prop: Property) -> dict:
    variables = [
        {
            "name": variable.name,
            "value": {
                "propertyLogicalId": variable.property,
                **({"hierarchyLogicalId": variable.hierarchy} if variable.hierarchy else {}),
            },
        }
        for variable in prop.variables
    ]
    if prop.type is PropertyType.ATTRIBUTE:
        return {"typeName": "Attribute", "attribute": {"defaultValue": prop.default_value}}
    if prop.type is PropertyType.TRANSFORM:
        return {
            "typeName": "Transform",
            "transform": {"expression": prop.expression, "variables": variables},
        }
    if prop.type is PropertyType.METRIC:
        return {
            "typeName": "Metric",
            "metric": {
                "expression": prop.expression,
                "variables": variables,
                "window": {"tumbling": {"interval": prop.window}},
            },
        }
    return {"typeName": "Measurement"}


def _model_properties(model: AssetModel) -> list[dict]:
    return [
        {
            "logicalId": prop.name,
            "name": prop.name,
            "dataType": prop.data_type.value,
            **({"unit": prop.unit} if prop.unit else {}),
            "type": _property_type(prop),
        }
        for prop in model.properties
    ]


def _asset_properties(asset: Asset) -> list[dict]:
    return [{"logicalId": name, "alias": alias} for name, alias in asset.aliases]


def render_model(
    scope: Construct, model: AssetModel, children: Mapping[str, sitewise.CfnAssetModel]
) -> sitewise.CfnAssetModel:
    """``children`` holds the rendered child models by key."""
    return sitewise.CfnAssetModel(
        scope,
        construct_id(model.key),
        asset_model_name=model.name,
        asset_model_description=model.description,
        asset_model_properties=_model_properties(model),
        asset_model_hierarchies=[
            {
                "logicalId": hierarchy.logical_id,
                "name": hierarchy.name,
                "childAssetModelId": children[hierarchy.child_model].attr_asset_model_id,
            }
            for hierarchy in model.hierarchies
        ]
        or None,
    )


def render_asset(
    scope: Construct,
    asset: Asset,
    model: sitewise.CfnAssetModel,
    children: Mapping[str, sitewise.CfnAsset],
) -> sitewise.CfnAsset:
    """``children`` holds the rendered child assets by key."""
    return sitewise.CfnAsset(
        scope,
        construct_id(asset.key),
        asset_name=asset.name,
        asset_description=asset.description,
        asset_model_id=model.attr_asset_model_id,
        asset_properties=_asset_properties(asset) or None,
        asset_hierarchies=[
            {"logicalId": hierarchy, "childAssetId": children[child].attr_asset_id}
            for hierarchy, child in asset.children
        ]
        or None,
    )


def _json_bytes(value: object) -> int:
    return len(json.dumps(value, separators=(",", ":")).encode())


def estimated_model_bytes(model: AssetModel) -> int:
    own = _json_bytes([model.name, model.description, _model_properties(model)])
    return own + MODEL_OVERHEAD_BYTES + LOGICAL_ID_REFERENCES * len(construct_id(model.key))


def estimated_station_bytes(asset: Asset) -> int:
    own = _json_bytes([asset.name, asset.description, _asset_properties(asset)])
    return own + STATION_OVERHEAD_BYTES + LOGICAL_ID_REFERENCES * len(construct_id(asset.key))


@dataclass(frozen=True)
class StationStack:
    """Stations deployed as one template, the station models they bring, and the models of
    stations elsewhere in the line that they use (each such model costs one parameter)."""

    assets: tuple[Asset, ...]
    models: tuple[AssetModel, ...]
    foreign_models: frozenset[str]


@dataclass
class _Planning:
    assets: list[Asset] = field(default_factory=list)
    models: list[AssetModel] = field(default_factory=list)
    foreign: set[str] = field(default_factory=set)
    bytes: int = 0

    def counts(self) -> dict[str, int]:
        """Upper bounds of what the template will declare."""
        used_models = len(self.models) + len(self.foreign)
        dashboards = -(-len(self.assets) // STATIONS_PER_DASHBOARD)
        return {
            # assets and models; with SiteWise Monitor a property-id lookup per model used
            # and the line model's, and the dashboards (they go to a stack of their own,
            # but are counted here too)
            "resources": len(self.assets) + len(self.models) + used_models + 1 + dashboards,
            # each asset's and model's id, for the line asset and model and other stacks
            "outputs": len(self.assets) + len(self.models),
            # with SiteWise Monitor, the dashboards' stack beside this one takes each
            # station's asset id and model id, and the line asset's, model's and project's
            "parameters": len(self.assets) + used_models + 3,
        }

    def fits(self) -> bool:
        counts = self.counts()
        return self.bytes <= STATION_STACK_BYTES and all(
            counts[name] <= MAX_COUNTS[name] * STATION_STACK_COUNT_SHARE for name in MAX_COUNTS
        )

    def plus(self, asset: Asset, model: AssetModel, home: int | None, here: int) -> _Planning:
        """This plan with ``asset``; ``home`` is the stack already holding its model."""
        plan = _Planning(
            [*self.assets, asset],
            list(self.models),
            set(self.foreign),
            self.bytes + estimated_station_bytes(asset),
        )
        if home is None:
            plan.models.append(model)
            plan.bytes += estimated_model_bytes(model)
        elif home != here:
            plan.foreign.add(model.key)
        return plan


MAX_COUNTS = {"resources": MAX_RESOURCES, "outputs": MAX_OUTPUTS, "parameters": MAX_PARAMETERS}


def plan_station_stacks(line: LineDesign) -> tuple[StationStack, ...]:
    """The line's stations, in order, in as few templates as fit well within the quotas; a
    station model goes where its first station goes, dashboards beside their stations."""
    models = {model.key: model for model in line.models[:-1]}
    home: dict[str, int] = {}
    plans = [_Planning()]
    for asset in line.station_assets:
        model = models[asset.model]
        trial = plans[-1].plus(asset, model, home.get(model.key), len(plans) - 1)
        if not trial.fits() and plans[-1].assets:
            plans.append(_Planning())
            trial = plans[-1].plus(asset, model, home.get(model.key), len(plans) - 1)
        if not trial.fits():
            raise ValueError(
                f"station {asset.key} alone does not fit one template: {trial.counts()}, "
                f"about {trial.bytes} bytes"
            )
        plans[-1] = trial
        home.setdefault(model.key, len(plans) - 1)
    return tuple(
        StationStack(tuple(p.assets), tuple(p.models), frozenset(p.foreign)) for p in plans
    )


class StationStackScope(NestedStack):
    """Some of a line's stations, when they do not all fit the line's own template."""

    def __init__(self, scope: Construct, construct_id_: str, *, description: str) -> None:
        super().__init__(
            scope, construct_id_, description=description, suppress_template_indentation=True
        )


class LineAssets(NestedStack):
    """One line's line model and asset, and its stations in ``station_stacks``."""

    def __init__(
        self,
        scope: Construct,
        construct_id_: str,
        *,
        design: LineDesign,
    ) -> None:
        path = f"{design.site}/{design.line}"
        # Minified: CloudFormation's size quota counts the bytes uploaded, whitespace included.
        super().__init__(
            scope,
            construct_id_,
            description=f"SiteWise models and assets of line {path}",
            suppress_template_indentation=True,
        )
        self.design = design
        self.models: dict[str, sitewise.CfnAssetModel] = {}
        self.assets: dict[str, sitewise.CfnAsset] = {}
        plans = plan_station_stacks(design)
        # (scope, plan): the line's own stack when one template holds every station
        self.station_stacks: list[tuple[Construct, StationStack]] = []
        for number, plan in enumerate(plans, start=1):
            target: Construct = self
            if len(plans) > 1:
                first, last = plan.assets[0].key, plan.assets[-1].key
                target = StationStackScope(
                    self,
                    f"Stations-{number}",
                    description=f"SiteWise stations {first} to {last.rsplit('/', 1)[-1]} "
                    f"({number}/{len(plans)})",
                )
            self.station_stacks.append((target, plan))
            _render(target, plan.models, plan.assets, self.models, self.assets)
        _render(self, [design.model], [design.asset], self.models, self.assets)
        self.line_model = self.models[design.model.key]
        self.line_asset = self.assets[design.asset.key]


class SiteAssets(Construct):
    """A site's lines (one nested stack each) and the site model and asset above them."""

    def __init__(
        self,
        scope: Construct,
        construct_id_: str,
        *,
        design: SiteDesign,
    ) -> None:
        super().__init__(scope, construct_id_)
        self.lines = {
            line.line: LineAssets(self, f"Line-{line.line}", design=line) for line in design.lines
        }
        models = {line.model.key: nested.line_model for line, nested in self._pairs(design)}
        assets = {line.asset.key: nested.line_asset for line, nested in self._pairs(design)}
        _render(self, [design.model], [design.asset], models, assets)
        self.model = models[design.model.key]
        self.asset = assets[design.asset.key]

    def _pairs(self, design: SiteDesign):
        return ((line, self.lines[line.line]) for line in design.lines)


def _render(
    scope: Construct,
    models: Sequence[AssetModel],
    assets: Sequence[Asset],
    rendered_models: dict[str, sitewise.CfnAssetModel],
    rendered_assets: dict[str, sitewise.CfnAsset],
) -> None:
    """Render children before parents, adding to the maps of what is already rendered."""
    for model in models:
        rendered_models[model.key] = render_model(scope, model, rendered_models)
    for asset in assets:
        model = rendered_models[asset.model]
        rendered_assets[asset.key] = render_asset(scope, asset, model, rendered_assets)
