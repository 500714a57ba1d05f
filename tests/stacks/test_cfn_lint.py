"""Every template of the synthesized assembly passes cfn-lint with no errors and no warnings."""

import subprocess
import sys
from pathlib import Path

CFN_LINT = Path(sys.executable).with_name("cfn-lint")


def lint(templates):
    return subprocess.run(
        [str(CFN_LINT), "--format", "parseable", *map(str, templates)],
        capture_output=True,
        text=True,
        check=False,
    )


def test_every_template_is_cfn_lint_clean(synthesized):
    _, assembly = synthesized
    templates = sorted(Path(assembly.directory).glob("*.template.json"))
    nested = [t for t in templates if t.name.endswith(".nested.template.json")]
    assert len(templates) - len(nested) == len(assembly.stacks) >= 1 and nested
    result = lint(templates)
    findings = [line for line in result.stdout.splitlines() if ":E" in line or ":W" in line]
    assert findings == [] and result.returncode in (0, 8), result.stdout + result.stderr


def test_the_lint_gate_catches_a_bad_template(tmp_path):
    bad = tmp_path / "bad.template.json"
    bad.write_text('{"Resources": {"B": {"Type": "AWS::S3::Bucket", "Properties": {"Nope": 1}}}}')
    result = lint([bad])
    assert result.returncode != 0 and ":E3002:" in result.stdout
