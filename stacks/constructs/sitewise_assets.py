"""Renders the designed SiteWise models and assets (``sitewise_models``) as CloudFormation.

Each line is a nested stack of its station models, its line model and their assets, so a plant
grows by lines without reaching CloudFormation's 500-resources-per-stack limit; the site model
and asset stay in the parent and reference the lines' outputs.
"""

from __future__ import annotations

from collections.abc import Mapping

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


def render_model(
    scope: Construct, model: AssetModel, children: Mapping[str, sitewise.CfnAssetModel]
) -> sitewise.CfnAssetModel:
    """``children`` holds the rendered child models by key."""
    return sitewise.CfnAssetModel(
        scope,
        construct_id(model.key),
        asset_model_name=model.name,
        asset_model_description=model.description,
        asset_model_properties=[
            {
                "logicalId": prop.name,
                "name": prop.name,
                "dataType": prop.data_type.value,
                **({"unit": prop.unit} if prop.unit else {}),
                "type": _property_type(prop),
            }
            for prop in model.properties
        ],
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
        asset_properties=[{"logicalId": name, "alias": alias} for name, alias in asset.aliases]
        or None,
        asset_hierarchies=[
            {"logicalId": hierarchy, "childAssetId": children[child].attr_asset_id}
            for hierarchy, child in asset.children
        ]
        or None,
    )


class LineAssets(NestedStack):
    """One line's station models, line model and assets."""

    def __init__(self, scope: Construct, construct_id_: str, *, design: LineDesign) -> None:
        super().__init__(
            scope,
            construct_id_,
            description=f"SiteWise models and assets of line {design.site}/{design.line}",
        )
        self.design = design
        self.models: dict[str, sitewise.CfnAssetModel] = {}
        self.assets: dict[str, sitewise.CfnAsset] = {}
        _render(self, design.models, design.assets, self.models, self.assets)
        self.line_model = self.models[design.model.key]
        self.line_asset = self.assets[design.asset.key]


class SiteAssets(Construct):
    """A site's lines (one nested stack each) and the site model and asset above them."""

    def __init__(self, scope: Construct, construct_id_: str, *, design: SiteDesign) -> None:
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
    models: list[AssetModel] | tuple[AssetModel, ...],
    assets: list[Asset] | tuple[Asset, ...],
    rendered_models: dict[str, sitewise.CfnAssetModel],
    rendered_assets: dict[str, sitewise.CfnAsset],
) -> None:
    """Render children before parents, adding to the maps of what is already rendered."""
    for model in models:
        rendered_models[model.key] = render_model(scope, model, rendered_models)
    for asset in assets:
        model = rendered_models[asset.model]
        rendered_assets[asset.key] = render_asset(scope, asset, model, rendered_assets)
