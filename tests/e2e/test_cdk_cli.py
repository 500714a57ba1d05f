"""The CLI path a platform engineer and CI take: `cdk synth`, and `app.py` with bad configs."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import DEMO_PLANT, PROJECT_ROOT

CDK = PROJECT_ROOT / "node_modules" / ".bin" / "cdk"


def offline_env(**extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(
        JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION="20",
        CDK_DISABLE_CLI_TELEMETRY="1",
        CDK_DISABLE_VERSION_CHECK="1",
        **extra,
    )
    return env


def run_app(tmp_path, plant_path):
    """Run app.py the way the CDK CLI does: context in CDK_CONTEXT_JSON, output in CDK_OUTDIR."""
    outdir = tmp_path / "out"
    result = subprocess.run(
        [sys.executable, "app.py"],
        cwd=PROJECT_ROOT,
        env=offline_env(
            CDK_OUTDIR=str(outdir), CDK_CONTEXT_JSON=json.dumps({"plant": str(plant_path)})
        ),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    return result, outdir


@pytest.mark.parametrize(
    ("mutate", "field", "reason"),
    [
        (
            lambda d: d["sites"][0]["lines"][0]["stations"].append(
                d["sites"][0]["lines"][0]["stations"][0]
            ),
            "sites[0].lines[0].stations",
            "duplicate station id: 'press-01'",
        ),
        (
            lambda d: d["sites"][0]["lines"][1]["stations"][0].update(kind="laser"),
            "sites[0].lines[1].stations[0].kind",
            "Input should be 'press'",
        ),
        (
            lambda d: d["sites"][0]["lines"][0]["stations"][0].update(ideal_cycle_time_s=-6),
            "sites[0].lines[0].stations[0].ideal_cycle_time_s",
            "greater than 0",
        ),
        (
            lambda d: d["sites"][0]["shift_calendar"]["shifts"][1].update(start="13:30"),
            "sites[0].shift_calendar.shifts",
            "shift 'early' overlaps shift 'late' at Mon 13:30",
        ),
    ],
)
def test_invalid_config_stops_before_any_stack_with_file_and_field(tmp_path, mutate, field, reason):
    document = yaml.safe_load(DEMO_PLANT.read_text())
    mutate(document)
    bad = tmp_path / "bad-plant.yaml"
    bad.write_text(yaml.safe_dump(document))

    result, outdir = run_app(tmp_path, bad)

    assert result.returncode == 2
    assert f"{bad}: {field}: " in result.stderr and reason in result.stderr
    assert "Traceback" not in result.stderr
    assert not list(outdir.glob("*.template.json"))


def test_cli_synth_of_an_invalid_config_fails_with_the_reasons(tmp_path):
    """The CLI reports the app's exit code 2 as its own exit code 1 (as the README says)."""
    document = yaml.safe_load(DEMO_PLANT.read_text())
    del document["deployment"]
    bad = tmp_path / "bad-plant.yaml"
    bad.write_text(yaml.safe_dump(document))
    outdir = tmp_path / "cdk.out"

    result = cdk_synth(outdir, bad)

    assert result.returncode == 1
    assert f"{bad}: deployment: Field required" in result.stderr
    assert "exited with error 2" in result.stderr
    assert not list(outdir.glob("*.template.json"))


def cdk_synth(outdir, plant_path, tmpdir=None):
    """`cdk synth` through the pinned CLI, offline, with the plant chosen by -c plant=;
    ``tmpdir``: the temporary directory of the CLI and the app."""
    if not CDK.exists():
        pytest.fail("node_modules/.bin/cdk is missing: run `make test`, which runs `npm ci`")
    return subprocess.run(
        [str(CDK), "synth", "--quiet", "--output", str(outdir), "-c", f"plant={plant_path}"],
        cwd=PROJECT_ROOT,
        env=offline_env(**({"TMPDIR": str(tmpdir)} if tmpdir else {})),
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


@pytest.fixture(scope="module")
def cli_synth(tmp_path_factory):
    """The CLI synth of another plant (stack prefix MesOther)."""
    tmp_path = tmp_path_factory.mktemp("cli")
    document = yaml.safe_load(DEMO_PLANT.read_text())
    document["deployment"]["stack_prefix"] = "MesOther"
    other = tmp_path / "other-plant.yaml"
    other.write_text(yaml.safe_dump(document))
    outdir = tmp_path / "cdk.out"
    temp = tmp_path / "tmp"
    temp.mkdir()
    return cdk_synth(outdir, other, tmpdir=temp), outdir, temp


def test_cli_synth_uses_the_chosen_plant_and_writes_every_template(cli_synth, synthesized):
    result, outdir, _ = cli_synth
    _, assembly = synthesized
    assert result.returncode == 0, result.stdout + result.stderr
    manifest = json.loads((outdir / "manifest.json").read_text())
    stacks = {
        name
        for name, artifact in manifest["artifacts"].items()
        if artifact["type"] == "aws:cloudformation:stack"
    }
    assert stacks == {s.stack_name.replace("MesDemo", "MesOther") for s in assembly.stacks}
    assert "MesOther-Platform" in stacks
    assert all((outdir / f"{name}.template.json").is_file() for name in stacks)


def test_cli_synth_prints_no_node_end_of_life_banner(cli_synth):
    result, _, _ = cli_synth
    assert "end-of-life" not in result.stdout + result.stderr


def test_a_successful_cli_synth_leaves_no_error_file_and_nothing_in_the_temp_dir(cli_synth):
    """The CLI hands the app CDK_ERROR_FILE; aws-cdk-lib writes an error code there whenever
    it raises one, even one it catches itself, so a stale error.txt would mislead. The plant
    layer is staged under build/, not in the temporary directory."""
    result, outdir, temp = cli_synth
    assert result.returncode == 0, result.stdout + result.stderr
    assert not (outdir / "error.txt").exists(), (outdir / "error.txt").read_text()
    assert sorted(p.name for p in temp.iterdir()) == []


def test_synth_is_reproducible(synthesized, tmp_path):
    """The CLI's templates for the demo plant equal the in-process ones, byte for byte."""
    _, assembly = synthesized
    result = cdk_synth(tmp_path / "cdk.out", DEMO_PLANT)
    assert result.returncode == 0, result.stdout + result.stderr
    for stack in assembly.stacks:
        cli_template = (tmp_path / "cdk.out" / stack.template_file).read_text()
        in_process = (Path(assembly.directory) / stack.template_file).read_text()
        assert cli_template == in_process, stack.stack_name
