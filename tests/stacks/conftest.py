"""Fixtures of the stack tests: the plant with every option on, synthesized once a session."""

from __future__ import annotations

import pytest

from tests.conftest import synthesize
from tests.stacks.plants import full_plant as build_full_plant
from tests.stacks.plants import longest_names as build_longest_names


@pytest.fixture(scope="session")
def full_plant(demo_plant):
    return build_full_plant(demo_plant)


@pytest.fixture(scope="session")
def full_synthesized(full_plant, tmp_path_factory):
    """(stacks, assembly) of ``full_plant``; synth runs the cdk-nag packs, so a finding fails."""
    return synthesize(full_plant, tmp_path_factory.mktemp("full.out"))


@pytest.fixture(scope="session")
def longest_plant(demo_plant):
    return build_longest_names(demo_plant)


@pytest.fixture(scope="session")
def longest_synthesized(longest_plant, tmp_path_factory):
    """(stacks, assembly) of ``longest_plant``: every name at its limit, alarm e-mails on."""
    return synthesize(longest_plant, tmp_path_factory.mktemp("longest.out"))
