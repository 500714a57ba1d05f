#!/usr/bin/env python3
"""Assemble the component artifact ``data_collector.zip`` for an offline install.

The zip holds the component's ``src`` (the ``data_collector`` package), the shared
``mes_domain`` and ``greengrass_components/common`` packages (copied at build time, never into
git), requirements-collector.txt (the hash lock) and ``wheels/``: every pinned dependency as a
wheel for the gateway's platform, so the recipe's ``pip install --no-index`` needs no internet.

    python3 build.py                       # pip download: x86_64 Linux, CPython 3.11
    python3 build.py --platform manylinux_2_28_aarch64 --platform manylinux2014_aarch64
    python3 build.py --wheels DIR          # wheels already downloaded (offline build)
    python3 build.py --gdk                 # also lay out greengrass-build/ for `gdk publish`

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
)

ZIP_NAME = "data_collector.zip"
REQUIREMENTS = "requirements-collector.txt"
COMPONENT = ComponentBuild(
    here=HERE,
    zip_name=ZIP_NAME,
    requirements=REPO / REQUIREMENTS,
    packages={
        "data_collector": HERE / "src" / "data_collector",
        "mes_domain": REPO / "mes_domain",
        "greengrass_components/common": REPO / "greengrass_components" / "common",
    },
)
build = COMPONENT.build

__all__ = ["BuildError", "build", "main", "pinned_requirements"]


def main(argv: list[str] | None = None) -> int:
    return COMPONENT.main(argv, __doc__.split("\n\n")[0])


if __name__ == "__main__":
    sys.exit(main())
