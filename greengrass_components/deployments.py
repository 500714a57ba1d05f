"""Write each line's Greengrass deployments (``mes_domain.edge_deployment``) as JSON files.

    python -m greengrass_components.deployments --config config/demo-plant.yaml --out DIR

One ``DIR/<site>.<line>.json`` per line. Component versions default to the recipes' own;
``--component-version NAME=VERSION`` overrides one or pins a model component's version.
Exits 2 naming the problem (an invalid plant, a missing version, a limit broken).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from greengrass_components.common.recipe import Recipe
from mes_domain.edge_deployment import DATA_COLLECTOR, QUALITY_INSPECTION, line_deployments
from mes_domain.edge_spooler import DISK_SPOOLER, NUCLEUS, with_disk_spooler

COMPONENTS_DIR = Path(__file__).resolve().parent
RECIPES = {
    DATA_COLLECTOR: COMPONENTS_DIR / "data_collector" / "recipe.yaml",
    QUALITY_INSPECTION: COMPONENTS_DIR / "quality_inspection" / "recipe.yaml",
}


def recipe_versions() -> dict[str, str]:
    """The version of each of our components whose recipe exists."""
    return {
        name: Recipe.load(path)[0].componentversion
        for name, path in RECIPES.items()
        if path.is_file()
    }


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m greengrass_components.deployments", description=__doc__
    )
    parser.add_argument("--config", type=Path, required=True, help="the plant config file")
    parser.add_argument("--out", type=Path, required=True, help="folder for <site>.<line>.json")
    parser.add_argument(
        "--component-version",
        action="append",
        default=[],
        metavar="NAME=VERSION",
        help="a component's version (ours default to the recipe's)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    from stacks.plant_config import load_plant  # the loader app.py uses (yaml, pydantic)

    try:
        plant = load_plant(args.config)
    except (OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    versions = recipe_versions()
    models: dict[str, str] = {}
    for item in args.component_version:
        name, sep, version = item.partition("=")
        if not (sep and name and version):
            print(f"error: --component-version {item!r} is not NAME=VERSION", file=sys.stderr)
            return 2
        (versions if name in RECIPES else models)[name] = version
    args.out.mkdir(parents=True, exist_ok=True)
    for site in plant.sites:
        for line in site.lines:
            spooler = (models.get(NUCLEUS), models.get(DISK_SPOOLER))
            try:
                document = line_deployments(plant, site.id, line.id, versions, models)
                if all(spooler):  # the IoT Core spool on disk (mes_domain.edge_spooler)
                    document = with_disk_spooler(document, *spooler)
            except KeyError as exc:
                print(
                    f"error: line {site.id}/{line.id} needs a version of {exc.args[0]}: give "
                    f"--component-version {exc.args[0]}=VERSION",
                    file=sys.stderr,
                )
                return 2
            except ValueError as exc:
                print(f"error: {exc}", file=sys.stderr)
                return 2
            if not all(spooler) and line is site.lines[0] and site is plant.sites[0]:
                print(
                    f"warning: no --component-version {NUCLEUS}=... and {DISK_SPOOLER}=...: "
                    "the nucleus keeps its in-memory spool (2.5 MB, oldest dropped when full)",
                    file=sys.stderr,
                )
            path = args.out / f"{site.id}.{line.id}.json"
            path.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
            print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
