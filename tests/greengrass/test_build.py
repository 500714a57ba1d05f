"""The artifact build, on a stubbed wheel folder (no network)."""

from __future__ import annotations

import subprocess
import sys
import zipfile

import pytest

from tests.conftest import PROJECT_ROOT
from tests.greengrass.build_stubs import load_build, write_stub_wheels
from tests.greengrass.conftest import COMPONENT_DIR

# Every module of the component and its transports imports from the unpacked artifact alone.
IMPORT_CHECK = """
import greengrass_components.common.ipc_transport
import greengrass_components.common.mqtt5_transport
import quality_inspection.component
import quality_inspection.main as main
print(main.__file__)
"""


@pytest.fixture(scope="module")
def build_module():
    return load_build(COMPONENT_DIR / "build.py", "qi_build")


@pytest.fixture
def stub_wheels(tmp_path, build_module):
    """A wheel file (empty stand-in) for every pin of requirements-edge.txt."""
    folder = tmp_path / "wheels"
    return folder, write_stub_wheels(folder, build_module, PROJECT_ROOT / "requirements-edge.txt")


def test_requirements_edge_pins_exact_versions_of_what_the_edge_needs(build_module):
    pins = build_module.pinned_requirements(PROJECT_ROOT / "requirements-edge.txt")
    for name in ("awsiotsdk", "awscrt", "boto3", "pydantic", "onnxruntime", "numpy", "pillow"):
        assert name in pins, name
    dev = (PROJECT_ROOT / "requirements-dev.txt").read_text()
    assert f"boto3=={pins['boto3']}" in dev


def test_artifact_holds_the_code_shared_packages_and_wheels(tmp_path, build_module, stub_wheels):
    wheels, pins = stub_wheels
    out = build_module.build(tmp_path / "out", wheels=wheels)
    with zipfile.ZipFile(out) as archive:
        names = set(archive.namelist())
    for required in (
        "quality_inspection/main.py",
        "quality_inspection/__main__.py",
        "mes_domain/contracts.py",
        "mes_vision/inspector.py",
        "greengrass_components/__init__.py",
        "greengrass_components/common/transport.py",
        "requirements-edge.txt",  # the whole hash lock: no other requirements file
    ):
        assert required in names, required
    assert len([n for n in names if n.startswith("wheels/")]) == len(pins)
    assert not any("__pycache__" in n or n.endswith(".pyc") for n in names)
    assert not any(n.startswith("greengrass_components/quality_inspection") for n in names)
    # Reproducible: the same inputs give the same bytes
    again = build_module.build(tmp_path / "again", wheels=wheels)
    assert again.read_bytes() == out.read_bytes()


def test_unpacked_artifact_runs_the_component_entry_point(tmp_path, build_module, stub_wheels):
    out = build_module.build(tmp_path / "out", wheels=stub_wheels[0])
    unpacked = tmp_path / "unpacked"
    zipfile.ZipFile(out).extractall(unpacked)
    proc = subprocess.run(
        [sys.executable, "-c", IMPORT_CHECK],
        cwd=tmp_path,
        env={"PYTHONPATH": str(unpacked), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == str(unpacked / "quality_inspection" / "main.py")


def test_a_missing_wheel_fails_the_build(tmp_path, build_module, stub_wheels):
    wheels, _ = stub_wheels
    next(wheels.glob("onnxruntime-*.whl")).unlink()
    with pytest.raises(build_module.BuildError, match="onnxruntime=="):
        build_module.build(tmp_path / "out", wheels=wheels)
