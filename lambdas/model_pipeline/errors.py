"""Errors the state machine catches by class name (a Lambda error's type is its class name)."""

from __future__ import annotations


class DatasetInvalid(Exception):
    """The request or its dataset cannot be trained on; retrying will not help."""


class ComponentFailed(Exception):
    """Greengrass refused the model's component version (e.g. an artifact it cannot read)."""


class ComponentNotReady(Exception):
    """The component version did not become deployable in time; worth a retry."""
