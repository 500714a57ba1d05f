"""The DataCollector's artifact, built on stand-in wheels (no network): it holds the component,
the shared packages and a wheel for every pin of requirements-collector.txt, and its entry
point imports from the unpacked zip alone."""

from __future__ import annotations

import subprocess
import sys
import zipfile

import pytest

from tests.conftest import PROJECT_ROOT
from tests.greengrass.build_stubs import load_build, write_stub_wheels
from tests.greengrass.data_collector.conftest import COLLECTOR_DIR

IMPORT_CHECK = """
import data_collector.collector, data_collector.spool, data_collector.publisher
import data_collector.main as main
print(main.__file__)
"""


@pytest.fixture(scope="module")
def build_module():
    return load_build(COLLECTOR_DIR / "build.py", "dc_build")


@pytest.fixture
def stub_wheels(tmp_path, build_module):
    folder = tmp_path / "wheels"
    return folder, write_stub_wheels(
        folder, build_module, PROJECT_ROOT / "requirements-collector.txt"
    )


def test_requirements_pin_what_the_collector_imports(build_module):
    pins = build_module.pinned_requirements(PROJECT_ROOT / "requirements-collector.txt")
    for name in ("asyncua", "pymodbus", "awsiotsdk", "awscrt", "pydantic"):
        assert name in pins, name


def test_artifact_layout_is_reproducible_and_holds_only_this_component(
    tmp_path, build_module, stub_wheels
):
    wheels, pins = stub_wheels
    out = build_module.build(tmp_path / "out", wheels=wheels)
    assert out.name == "data_collector.zip"
    with zipfile.ZipFile(out) as archive:
        names = set(archive.namelist())
    for required in (
        "data_collector/__main__.py",
        "data_collector/spool.py",
        "mes_domain/collection.py",
        "greengrass_components/__init__.py",
        "greengrass_components/common/transport.py",
        "requirements-collector.txt",
    ):
        assert required in names, required
    assert len([n for n in names if n.startswith("wheels/")]) == len(pins)
    assert not any("__pycache__" in n or n.endswith(".pyc") for n in names)
    assert not any(n.startswith(("quality_inspection", "mes_vision")) for n in names)
    assert build_module.build(tmp_path / "again", wheels=wheels).read_bytes() == out.read_bytes()


def test_unpacked_artifact_imports_the_entry_point(tmp_path, build_module, stub_wheels):
    out = build_module.build(tmp_path / "out", wheels=stub_wheels[0])
    unpacked = tmp_path / "unpacked"
    zipfile.ZipFile(out).extractall(unpacked)
    # The gateway's venv has the wheels' packages; here the dev venv's site-packages stand in
    site = [p for p in sys.path if p.endswith("site-packages")]
    proc = subprocess.run(
        [sys.executable, "-S", "-c", IMPORT_CHECK],
        cwd=tmp_path,
        env={"PYTHONPATH": ":".join([str(unpacked), *site]), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == str(unpacked / "data_collector" / "main.py")


def test_a_missing_wheel_fails_the_build(tmp_path, build_module, stub_wheels):
    wheels, _ = stub_wheels
    next(wheels.glob("asyncua-*.whl")).unlink()
    with pytest.raises(build_module.BuildError, match="asyncua=="):
        build_module.build(tmp_path / "out", wheels=wheels)
