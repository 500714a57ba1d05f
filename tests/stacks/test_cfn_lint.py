"""Every template of the synthesized assembly passes cfn-lint with no errors and no warnings."""

import subprocess
import sys
from pathlib import Path

from mes_domain.naming import stack_name
from tests.stacks.assembly import Assembly

CFN_LINT = Path(sys.executable).with_name("cfn-lint")
# The containers platform's stacks (capabilities.eks), in the full plant only.
CONTAINERS_STACKS = ("ContainersData", "Containers", "EdgeSite")


def lint(templates):
    return subprocess.run(
        [str(CFN_LINT), "--format", "parseable", *map(str, templates)],
        capture_output=True,
        text=True,
        check=False,
    )


def _assert_clean(result) -> None:
    findings = [line for line in result.stdout.splitlines() if ":E" in line or ":W" in line]
    assert findings == [] and result.returncode in (0, 8), result.stdout + result.stderr


def test_every_template_is_cfn_lint_clean(synthesized):
    _, assembly = synthesized
    templates = sorted(Path(assembly.directory).glob("*.template.json"))
    nested = [t for t in templates if t.name.endswith(".nested.template.json")]
    assert len(templates) - len(nested) == len(assembly.stacks) >= 1 and nested
    _assert_clean(lint(templates))


def test_the_containers_platform_templates_are_cfn_lint_clean(full_plant, full_synthesized):
    """One run over the ContainersData, Containers and EdgeSite templates (nested ones too) of
    the plant with every containers option on."""
    _, cloud_assembly = full_synthesized
    assembly = Assembly(cloud_assembly.directory)
    prefix = full_plant.deployment.stack_prefix
    names = [stack_name(prefix, capability) for capability in CONTAINERS_STACKS]
    assert set(names) <= set(assembly.stacks), sorted(assembly.stacks)
    templates = [
        assembly.directory / template.file
        for template in assembly.templates()
        if template.stack_name in names
    ]
    _assert_clean(lint(templates))


def test_the_lint_gate_catches_a_bad_template(tmp_path):
    bad = tmp_path / "bad.template.json"
    bad.write_text('{"Resources": {"B": {"Type": "AWS::S3::Bucket", "Properties": {"Nope": 1}}}}')
    result = lint([bad])
    assert result.returncode != 0 and ":E3002:" in result.stdout
