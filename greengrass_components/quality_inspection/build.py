#!/usr/bin/env python3
"""Assemble the component artifact ``quality_inspection.zip`` for an offline install.

The zip holds the component's ``src``, the shared ``mes_domain``, ``mes_vision`` and
``greengrass_components/common`` packages (copied at build time, never into git), the
requirements files, and ``wheels/``: every dependency as a wheel for the gateway's platform,
so the recipe's ``pip install --no-index --find-links wheels`` needs no internet.

    python3 build.py                       # pip download: x86_64 Linux, CPython 3.11
    python3 build.py --platform manylinux_2_28_aarch64 --platform manylinux2014_aarch64
    python3 build.py --wheels DIR          # wheels already downloaded (offline build)
    python3 build.py --gdk                 # also lay out greengrass-build/ for `gdk publish`

Run from anywhere; paths are relative to this file. Fails if a pinned requirement has no wheel.
The steps are shared with the other components: greengrass_components/common/build_artifact.py.
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from greengrass_components.common.build_artifact import (  # noqa: E402
    BuildError,
    ComponentBuild,
    pinned_requirements,
    requirement_files,
)

ZIP_NAME = "quality_inspection.zip"
REQUIREMENTS = "requirements-edge.txt"
# onnx and onnxruntime ship manylinux_2_28 wheels only: the gateway needs glibc 2.28 or newer
# (Debian 10, Ubuntu 20.04, RHEL 8 and later). For an arm64 gateway pass the aarch64 tags.
COMPONENT = ComponentBuild(
    here=HERE,
    zip_name=ZIP_NAME,
    requirements=REPO / REQUIREMENTS,
    packages={
        "quality_inspection": HERE / "src" / "quality_inspection",
        "mes_domain": REPO / "mes_domain",
        "mes_vision": REPO / "mes_vision",
        "greengrass_components/common": REPO / "greengrass_components" / "common",
    },
)
build = COMPONENT.build

__all__ = ["BuildError", "build", "main", "pinned_requirements", "requirement_files"]


def main(argv: list[str] | None = None) -> int:
    return COMPONENT.main(argv, __doc__.split("\n\n")[0])


if __name__ == "__main__":
    sys.exit(main())
