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
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
ZIP_NAME = "quality_inspection.zip"
REQUIREMENTS = "requirements-edge.txt"
PACKAGES = {
    "quality_inspection": HERE / "src" / "quality_inspection",
    "mes_domain": REPO / "mes_domain",
    "mes_vision": REPO / "mes_vision",
    "greengrass_components/common": REPO / "greengrass_components" / "common",
}
# onnx and onnxruntime ship manylinux_2_28 wheels only: the gateway needs glibc 2.28 or newer
# (Debian 10, Ubuntu 20.04, RHEL 8 and later). For an arm64 gateway pass the aarch64 tags.
PLATFORMS = ["manylinux_2_28_x86_64", "manylinux2014_x86_64"]
FIXED_TIME = (2020, 1, 1, 0, 0, 0)  # a reproducible zip: same inputs, same bytes


class BuildError(RuntimeError):
    pass


def _logical_lines(path: Path) -> list[str]:
    """The lines of a requirements file, comments dropped and ``\\`` continuations joined."""
    text = "\n".join(raw.split("#", 1)[0].rstrip() for raw in path.read_text().splitlines())
    return [line.strip() for line in text.replace("\\\n", " ").splitlines() if line.strip()]


def pinned_requirements(path: Path) -> dict[str, str]:
    """``name==version`` of every requirement of a requirements file (a hash lock such as
    requirements-edge.txt: ``--hash`` options after each pin), and of the files it includes
    with ``-r``."""
    pins: dict[str, str] = {}
    for line in _logical_lines(path):
        if line.startswith("-r"):
            pins.update(pinned_requirements(path.parent / line[2:].strip()))
            continue
        requirement = line.split(" --", 1)[0].split(";", 1)[0].strip()
        name, sep, version = requirement.partition("==")
        if not sep:
            raise BuildError(f"{path.name}: {line!r} is not pinned with '=='")
        pins[_normalise(name)] = version.strip()
    return pins


def requirement_files(path: Path) -> list[Path]:
    files = [path]
    for line in _logical_lines(path):
        if line.startswith("-r"):
            files += requirement_files(path.parent / line[2:].strip())
    return files


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "_", name.strip()).lower()


def check_wheels(wheels: Path, pins: dict[str, str]) -> None:
    """Every pin must have a wheel of exactly that version."""
    have = set()
    for wheel in wheels.glob("*.whl"):
        name, version = wheel.name.split("-")[:2]
        have.add((_normalise(name), version))
    missing = [f"{n}=={v}" for n, v in sorted(pins.items()) if (n, v) not in have]
    if missing:
        raise BuildError(f"no wheel in {wheels} for {', '.join(missing)}")


def download_wheels(
    dest: Path, requirements: Path, platforms: list[str], python_version: str
) -> None:
    command = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--quiet",
        "--only-binary=:all:",
        *(arg for platform in platforms for arg in ("--platform", platform)),
        "--implementation",
        "cp",
        "--python-version",
        python_version,
        "--dest",
        str(dest),
        "-r",
        str(requirements),
    ]
    subprocess.run(command, check=True)


def _copy_package(source: Path, dest: Path) -> None:
    shutil.copytree(source, dest, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))


def stage(root: Path, wheels: Path) -> None:
    for name, source in PACKAGES.items():
        _copy_package(source, root / name)
    # greengrass_components is a package; ship its __init__ but none of the other components.
    shutil.copy2(REPO / "greengrass_components" / "__init__.py", root / "greengrass_components")
    for requirements in requirement_files(REPO / REQUIREMENTS):
        shutil.copy2(requirements, root / requirements.name)
    (root / "wheels").mkdir()
    for wheel in sorted(wheels.glob("*.whl")):
        shutil.copy2(wheel, root / "wheels" / wheel.name)


def write_zip(root: Path, out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(p for p in root.rglob("*") if p.is_file()):
            info = zipfile.ZipInfo(path.relative_to(root).as_posix(), FIXED_TIME)
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, path.read_bytes())


def recipe_name_and_version(recipe: Path) -> tuple[str, str]:
    text = recipe.read_text()
    name = re.search(r"^ComponentName:\s*(\S+)", text, re.M)
    version = re.search(r"^ComponentVersion:\s*\"?([^\"\s]+)", text, re.M)
    if not name or not version:
        raise BuildError(f"{recipe} lacks ComponentName or ComponentVersion")
    return name.group(1), version.group(1)


def build(
    out_dir: Path,
    *,
    wheels: Path | None = None,
    platforms: list[str] | None = None,
    python_version: str = "3.11",
) -> Path:
    """Write ``out_dir/quality_inspection.zip`` and return its path."""
    requirements = REPO / REQUIREMENTS
    pins = pinned_requirements(requirements)
    with tempfile.TemporaryDirectory(prefix="qi-build-") as tmp:
        if wheels is None:
            wheels = Path(tmp) / "downloaded"
            download_wheels(wheels, requirements, platforms or PLATFORMS, python_version)
        check_wheels(wheels, pins)
        root = Path(tmp) / "artifact"
        root.mkdir()
        stage(root, wheels)
        out = out_dir / ZIP_NAME
        write_zip(root, out)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=HERE / "greengrass-build" / "zip")
    parser.add_argument("--wheels", type=Path, help="use these wheels instead of pip download")
    parser.add_argument(
        "--platform",
        action="append",
        dest="platforms",
        help=f"wheel platform tag, repeatable (default: {' '.join(PLATFORMS)})",
    )
    parser.add_argument("--python-version", default="3.11")
    parser.add_argument("--gdk", action="store_true", help="lay out greengrass-build/ for gdk")
    args = parser.parse_args(argv)
    out_dir = args.out
    if args.gdk:
        name, version = recipe_name_and_version(HERE / "recipe.yaml")
        out_dir = HERE / "greengrass-build" / "artifacts" / name / version
        recipes = HERE / "greengrass-build" / "recipes"
        recipes.mkdir(parents=True, exist_ok=True)
        shutil.copy2(HERE / "recipe.yaml", recipes / "recipe.yaml")
    try:
        out = build(
            out_dir,
            wheels=args.wheels,
            platforms=args.platforms,
            python_version=args.python_version,
        )
    except (BuildError, subprocess.CalledProcessError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
