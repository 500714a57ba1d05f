"""The requirements locks: every dependency, transitive ones included, pinned with its hashes,
each lock current with the direct pins of the .in file beside it, and installed hash-checked."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests.conftest import PROJECT_ROOT

LOCKS = [
    "requirements.txt",
    "requirements-dev.txt",
    "requirements-vision.txt",
    "requirements-edge.txt",
    "requirements-collector.txt",
    "requirements-services.txt",
    "lambdas/requirements.txt",
    "lambdas/requirements-vision.txt",
    "requirements-photos.txt",
    "requirements-policy.txt",
]
# checkov (the manifests' policy scan) pins boto3 and botocore exactly, older than the dev lock's,
# so its lock is resolved on its own and installed into its own venv, never into .venv.
OWN_VENV_LOCKS = {"requirements-policy.txt"}


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _logical_lines(path: Path) -> list[str]:
    text = "\n".join(raw.split("#", 1)[0].rstrip() for raw in path.read_text().splitlines())
    return [line.strip() for line in text.replace("\\\n", " ").splitlines() if line.strip()]


def lock_entries(path: Path) -> list[tuple[str, str, list[str]]]:
    """(name, version, hashes) of each requirement of a lock."""
    entries = []
    for line in _logical_lines(path):
        requirement, *options = line.split(" --")
        name, sep, version = requirement.split(";", 1)[0].strip().partition("==")
        assert sep, f"{path.name}: {line!r} is not pinned with '=='"
        hashes = [o for o in options if o.startswith("hash=sha256:")]
        entries.append((_normalise(name), version.strip(), hashes))
    return entries


def direct_pins(path: Path) -> dict[str, str]:
    """``name==version`` of an .in file and of the .in files it includes with ``-r``."""
    pins: dict[str, str] = {}
    for line in _logical_lines(path):
        if line.startswith("-r"):
            pins.update(direct_pins(path.parent / line[2:].strip()))
            continue
        name, sep, version = line.partition("==")
        assert sep, f"{path.name}: {line!r}: pin direct dependencies exactly"
        pins[_normalise(name)] = version.strip()
    return pins


@pytest.mark.parametrize("lock", LOCKS)
def test_every_requirement_of_the_lock_is_pinned_with_hashes(lock):
    entries = lock_entries(PROJECT_ROOT / lock)
    assert entries
    unhashed = [f"{name}=={version}" for name, version, hashes in entries if not hashes]
    assert not unhashed, f"{lock}: no --hash for {unhashed}: run `make lock`"
    assert "make lock" in (PROJECT_ROOT / lock).read_text().splitlines()[1]


@pytest.mark.parametrize("lock", LOCKS)
def test_the_lock_holds_every_direct_pin_of_its_in_file(lock):
    source = (PROJECT_ROOT / lock).with_suffix(".in")
    locked = {(name, version) for name, version, _ in lock_entries(PROJECT_ROOT / lock)}
    stale = {n: v for n, v in direct_pins(source).items() if (n, v) not in locked}
    assert not stale, f"{source.name} pins {stale} that {lock} lacks: run `make lock`"


def test_the_locks_agree_with_the_dev_lock_on_every_version():
    """.venv runs the tests with the versions the layers and the edge artifact ship."""
    dev: dict[str, set[str]] = {}
    for name, version, _ in lock_entries(PROJECT_ROOT / "requirements-dev.txt"):
        dev.setdefault(name, set()).add(version)
    for lock in LOCKS:
        if lock in OWN_VENV_LOCKS:
            continue
        for name, version, _ in lock_entries(PROJECT_ROOT / lock):
            assert version in dev.get(name, {version}), (lock, name, version, dev.get(name))


def test_every_install_of_the_makefile_checks_hashes():
    makefile = (PROJECT_ROOT / "Makefile").read_text()
    assert re.search(r"^PIP_INSTALL := .* -m pip install .*--require-hashes$", makefile, re.M)
    assert re.search(
        r"^POLICY_PIP_INSTALL := .* -m pip install .*--require-hashes$", makefile, re.M
    )
    recipes = [line.strip() for line in makefile.splitlines() if line.startswith("\t")]
    installs = [line for line in recipes if "pip install" in line or "PIP_INSTALL" in line]
    # .venv runtime and dev tools, the two layers, the benchmark's photographs, checkov's venv
    assert len(installs) == 6
    assert all(line.startswith(("$(PIP_INSTALL)", "$(POLICY_PIP_INSTALL)")) for line in installs)
    installed = set(re.findall(r"-r (\S+)", makefile))
    assert installed == {
        "requirements.txt",
        "requirements-dev.txt",
        "lambdas/requirements.txt",
        "lambdas/requirements-vision.txt",
        "requirements-photos.txt",
        "requirements-policy.txt",
    }


def test_the_npm_lock_records_every_dependency_npm_ci_resolves():
    """`npm ci` refuses a lock that lacks any package a locked package depends on, optional
    ones (other platforms' binaries) included, even where it would not install them."""
    lock = json.loads((PROJECT_ROOT / "package-lock.json").read_text())
    packages = lock["packages"]
    manifest = json.loads((PROJECT_ROOT / "package.json").read_text())
    missing = []
    for path, package in packages.items():
        wanted = {
            **(manifest if path == "" else package).get("dependencies", {}),
            **(manifest if path == "" else package).get("devDependencies", {}),
            **(manifest if path == "" else package).get("optionalDependencies", {}),
        }
        missing += [
            f"{path or 'package.json'} -> {name}"
            for name in wanted
            if f"node_modules/{name}" not in packages
        ]
    assert not missing, f"package-lock.json lacks {missing}: regenerate it with npm install"
