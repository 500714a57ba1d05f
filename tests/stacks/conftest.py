"""Fixtures of the stack tests: the plant with every option on, synthesized once a session."""

from __future__ import annotations

import pytest

from tests.conftest import synthesize
from tests.stacks.plants import full_plant as build_full_plant


@pytest.fixture(scope="session")
def full_plant(demo_plant):
    return build_full_plant(demo_plant)


@pytest.fixture(scope="session")
def full_synthesized(full_plant, tmp_path_factory):
    """(stacks, assembly) of ``full_plant``; synth runs the cdk-nag packs, so a finding fails."""
    return synthesize(full_plant, tmp_path_factory.mktemp("full.out"))
