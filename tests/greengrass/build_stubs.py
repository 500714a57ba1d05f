"""Shared by the components' artifact build tests: load a ``build.py`` by path and fill a
folder with stand-in wheels, so the builds run without network."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType


def load_build(path: Path, name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def write_stub_wheels(folder: Path, build: ModuleType, requirements: Path) -> dict[str, str]:
    """An empty stand-in wheel in ``folder`` for every pin of ``requirements``; the pins."""
    folder.mkdir()
    pins = build.pinned_requirements(requirements)
    for name, version in pins.items():
        (folder / f"{name}-{version}-py3-none-any.whl").write_bytes(b"stub")
    return pins
