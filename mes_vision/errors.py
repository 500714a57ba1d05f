"""Typed errors of mes_vision: callers catch ``VisionError`` or one of its kinds."""

from __future__ import annotations


class VisionError(Exception):
    """Base of every error mes_vision raises on purpose."""


class DatasetError(VisionError):
    """The training dataset is missing, empty or has too few usable images."""


class ImageError(VisionError):
    """An image cannot be read or decoded."""


class ModelNotFoundError(VisionError):
    """A model directory or one of its files is missing."""


class ModelFormatError(VisionError):
    """A model directory was written by another, incompatible format version."""
