"""The custom resource's properties, shared with the construct that creates it (the CDK app
imports only this module)."""

from __future__ import annotations

MODEL_ID = "AssetModelId"
PROPERTY_NAMES = "PropertyNames"
