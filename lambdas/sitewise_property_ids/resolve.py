"""Property ids of a SiteWise asset model, by name.

SiteWise Monitor dashboards name asset properties by id. CloudFormation can neither set nor
return the ids of an asset model's properties, so they are looked up when the stack deploys.
An asset's property has the id of its model's property, so one lookup serves every asset of
the model.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any


class UnknownPropertiesError(LookupError):
    def __init__(self, model_id: str, missing: Iterable[str]) -> None:
        self.missing = sorted(missing)
        super().__init__(f"asset model {model_id} has no properties {', '.join(self.missing)}")


def property_ids(client: Any, model_id: str, names: Iterable[str]) -> dict[str, str]:
    """The id of each of ``names`` in asset model ``model_id``; every name must exist."""
    wanted = set(names)
    found: dict[str, str] = {}
    pages = client.get_paginator("list_asset_model_properties").paginate(
        assetModelId=model_id, filter="ALL"
    )
    for page in pages:
        for summary in page["assetModelPropertySummaries"]:
            if summary["name"] in wanted:
                found[summary["name"]] = summary["id"]
    if missing := wanted - found.keys():
        raise UnknownPropertiesError(model_id, missing)
    return found
