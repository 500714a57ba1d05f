"""The README's onboarding section works as written: its operator command registers a gateway of
the demo plant and writes the bundle its gateway command unpacks and runs."""

from __future__ import annotations

import re
import shlex
import zipfile

from mes_domain.fleet import Output, edge_fleet_stack_name
from mes_gateway.bundle import FOLDER, INSTALL_SCRIPT
from tests.unit.test_readme import fenced, section

ONBOARDING = section("Onboarding a gateway")
CLI = ".venv/bin/python -m mes_gateway"


def commands() -> tuple[str, str]:
    operator, gateway = (block.strip() for block in fenced(ONBOARDING, "sh"))
    return operator, gateway


def test_the_operator_command_onboards_a_demo_plant_gateway(cli, cloud, tmp_path, monkeypatch):
    operator, gateway = commands()
    assert operator.startswith(CLI + " ")
    monkeypatch.chdir(tmp_path)
    code, out, err = cli(*shlex.split(operator.removeprefix(CLI)))
    assert (code, err) == (0, "")
    (serial,) = re.findall(r"--serial (\S+)", operator)
    assert cloud.item(serial) is not None
    (archive,) = re.findall(r"--out (\S+)", operator)
    with zipfile.ZipFile(tmp_path / archive) as bundle:
        assert f"{FOLDER}/{INSTALL_SCRIPT}" in bundle.namelist()
    # The gateway command unpacks that file and runs that script, as the CLI says to.
    assert gateway == f"unzip {archive} && sudo ./{FOLDER}/{INSTALL_SCRIPT}"
    assert gateway in out


def test_the_section_names_the_stack_and_counts_its_steps(plant):
    assert f"`{edge_fleet_stack_name(plant.deployment.stack_prefix)}`" in ONBOARDING
    assert f"`{Output.OPERATOR_ROLE_ARN.value}`" in ONBOARDING
    assert len(commands()) == 2
    assert "That is 3 steps: one command on the operator's machine, one file copied, one " in (
        ONBOARDING
    )
