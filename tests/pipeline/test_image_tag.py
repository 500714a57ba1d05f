"""pipeline/image_tag.py: the images' tag for a source revision."""

from __future__ import annotations

import importlib.util
import subprocess
import sys

import pytest

from tests.conftest import PROJECT_ROOT

SCRIPT = PROJECT_ROOT / "pipeline" / "image_tag.py"
_spec = importlib.util.spec_from_file_location("image_tag", SCRIPT)
image_tag_module = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(image_tag_module)
image_tag = image_tag_module.image_tag

COMMIT = "0123456789abcdef0123456789abcdef01234567"


def test_a_commit_id_is_its_own_tag():
    assert image_tag(COMMIT) == COMMIT
    assert image_tag(f" {COMMIT}\n") == COMMIT


@pytest.mark.parametrize(
    "revision",
    [
        "3/L4kqtJlcpXroDTDmJ+rmSpXd3dIbrHY+MTRCxf3vjVBH40Nr8X8gdRQBpUMLUo",  # an S3 version id
        ".hidden",  # a tag cannot start with "."
        "x" * 129,  # nor be longer than 128
    ],
)
def test_a_revision_that_is_no_valid_tag_becomes_a_stable_digest(revision):
    tag = image_tag(revision)
    assert tag == image_tag(revision) and tag != image_tag(revision + "0")
    assert tag.startswith("rev-") and len(tag) == 44
    assert image_tag_module.VALID_TAG.match(tag)


def test_no_revision_is_an_error():
    with pytest.raises(ValueError, match="CODEBUILD_RESOLVED_SOURCE_VERSION"):
        image_tag("  ")


def test_the_command_prints_the_tag_or_fails():
    ok = subprocess.run(
        [sys.executable, str(SCRIPT), COMMIT], capture_output=True, text=True, check=False
    )
    assert (ok.returncode, ok.stdout) == (0, f"{COMMIT}\n")
    empty = subprocess.run([sys.executable, str(SCRIPT), ""], capture_output=True, text=True)
    assert empty.returncode == 1 and "empty" in empty.stderr
