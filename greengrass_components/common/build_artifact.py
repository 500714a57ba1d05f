"""Assemble a component's artifact zip for an offline install (each component's ``build.py``).

The zip holds the component's ``src`` package, the shared packages it imports (copied at build
time, never into git), its requirements hash lock (and the files that lock includes), and
``wheels/``: every pinned dependency as a wheel for the gateway's platform, so the recipe's
``pip install --no-index --find-links wheels`` needs no internet. The zip is reproducible: the
same inputs give the same bytes. Standard library only: it runs before any venv exists.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent.parent
FIXED_TIME = (2020, 1, 1, 0, 0, 0)
# Wheels for x86_64 Linux, CPython 3.11; glibc 2.28 or newer where a package ships only
# manylinux_2_28 wheels. For an arm64 gateway pass the aarch64 tags.
PLATFORMS = ["manylinux_2_28_x86_64", "manylinux2014_x86_64"]


class BuildError(RuntimeError):
    pass


def _logical_lines(path: Path) -> list[str]:
    """The lines of a requirements file, comments dropped and ``\\`` continuations joined."""
    text = "\n".join(raw.split("#", 1)[0].rstrip() for raw in path.read_text().splitlines())
    return [line.strip() for line in text.replace("\\\n", " ").splitlines() if line.strip()]


def pinned_requirements(path: Path) -> dict[str, str]:
    """``name==version`` of every requirement of a requirements file (a hash lock: ``--hash``
    options after each pin), and of the files it includes with ``-r``."""
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


@dataclass(frozen=True)
class ComponentBuild:
    """One component's artifact: ``packages`` maps a path inside the zip to its source."""

    here: Path  # the component's folder (recipe.yaml, greengrass-build/)
    zip_name: str
    requirements: Path
    packages: dict[str, Path]
    platforms: tuple[str, ...] = tuple(PLATFORMS)

    def stage(self, root: Path, wheels: Path) -> None:
        ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
        for name, source in self.packages.items():
            shutil.copytree(source, root / name, ignore=ignore)
        # greengrass_components is a package; ship its __init__ but none of the components.
        if any(name.startswith("greengrass_components/") for name in self.packages):
            shutil.copy2(
                REPO / "greengrass_components" / "__init__.py", root / "greengrass_components"
            )
        for requirements in requirement_files(self.requirements):
            shutil.copy2(requirements, root / requirements.name)
        (root / "wheels").mkdir()
        for wheel in sorted(wheels.glob("*.whl")):
            shutil.copy2(wheel, root / "wheels" / wheel.name)

    def build(
        self,
        out_dir: Path,
        *,
        wheels: Path | None = None,
        platforms: list[str] | None = None,
        python_version: str = "3.11",
    ) -> Path:
        """Write ``out_dir/<zip_name>`` and return its path."""
        pins = pinned_requirements(self.requirements)
        with tempfile.TemporaryDirectory(prefix="gg-build-") as tmp:
            if wheels is None:
                wheels = Path(tmp) / "downloaded"
                chosen = platforms or list(self.platforms)
                download_wheels(wheels, self.requirements, chosen, python_version)
            check_wheels(wheels, pins)
            root = Path(tmp) / "artifact"
            root.mkdir()
            self.stage(root, wheels)
            out = out_dir / self.zip_name
            write_zip(root, out)
        return out

    def main(self, argv: list[str] | None, description: str) -> int:
        parser = argparse.ArgumentParser(description=description)
        parser.add_argument("--out", type=Path, default=self.here / "greengrass-build" / "zip")
        parser.add_argument("--wheels", type=Path, help="use these wheels, no pip download")
        parser.add_argument(
            "--platform",
            action="append",
            dest="platforms",
            help=f"wheel platform tag, repeatable (default: {' '.join(self.platforms)})",
        )
        parser.add_argument("--python-version", default="3.11")
        parser.add_argument("--gdk", action="store_true", help="lay out greengrass-build/")
        args = parser.parse_args(argv)
        out_dir = args.out
        if args.gdk:
            name, version = recipe_name_and_version(self.here / "recipe.yaml")
            out_dir = self.here / "greengrass-build" / "artifacts" / name / version
            recipes = self.here / "greengrass-build" / "recipes"
            recipes.mkdir(parents=True, exist_ok=True)
            shutil.copy2(self.here / "recipe.yaml", recipes / "recipe.yaml")
        try:
            out = self.build(
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
