"""The cdk-nag gate: unacknowledged findings fail synth, and acknowledgements stay granular."""

import json
from pathlib import Path

import aws_cdk as cdk
import pytest
from aws_cdk import Validations
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kinesis as kinesis
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_s3 as s3

from stacks.compliance import (
    MIN_REASON_LENGTH,
    RULES_WITH_FINDINGS,
    AcknowledgementError,
    acknowledge,
    add_compliance_gates,
)

KNOWN_PLUGINS = {"AwsSolutions", "Serverless", "CloudFormation-Validate", "Annotation"}
REASON = "Throwaway test resource, never deployed; only proves the gate."


def gated_app(tmp_path):
    app = cdk.App(outdir=str(tmp_path / "cdk.out"))
    add_compliance_gates(app)
    return app, cdk.Stack(app, "Throwaway")


def violations(app_outdir: Path) -> dict[str, set[str]]:
    """rule name -> construct paths, from CDK's validation report."""
    report = json.loads((app_outdir / "validation-report.json").read_text())
    found: dict[str, set[str]] = {}
    for plugin in report["pluginReports"]:
        for violation in plugin["violations"]:
            paths = {c["constructPath"] for c in violation["violatingConstructs"]}
            found.setdefault(violation["ruleName"], set()).update(paths)
    return found


def test_non_compliant_bucket_fails_synth(tmp_path):
    app, stack = gated_app(tmp_path)
    s3.Bucket(stack, "OpenBucket")  # no access logs, no TLS-only policy

    with pytest.raises(RuntimeError, match="ValidationFailed"):
        app.synth()
    found = violations(tmp_path / "cdk.out")
    assert "Throwaway/OpenBucket/Resource" in found["AwsSolutions-S1"]
    assert "Throwaway/OpenBucket/Resource" in found["AwsSolutions-S10"]


def test_warning_level_findings_fail_synth_too(tmp_path):
    app, stack = gated_app(tmp_path)
    key = kms.Key(stack, "Key", enable_key_rotation=True)
    kinesis.Stream(stack, "Stream", encryption=kinesis.StreamEncryption.KMS, encryption_key=key)

    with pytest.raises(RuntimeError, match="ValidationFailed"):
        app.synth()
    report = json.loads((tmp_path / "cdk.out" / "validation-report.json").read_text())
    severities = {
        v["ruleName"]: v["severity"] for p in report["pluginReports"] for v in p["violations"]
    }
    assert severities == {"AwsSolutions-KDS3": "warning"}


def test_serverless_pack_is_part_of_the_gate(tmp_path):
    app, stack = gated_app(tmp_path)
    lambda_.Function(
        stack,
        "Fn",
        runtime=lambda_.Runtime.PYTHON_3_12,
        handler="index.handler",
        code=lambda_.Code.from_inline("def handler(e, c):\n    return e\n"),
    )
    with pytest.raises(RuntimeError, match="ValidationFailed"):
        app.synth()
    assert any(rule.startswith("Serverless-") for rule in violations(tmp_path / "cdk.out"))


def test_acknowledged_finding_passes_and_only_that_finding(tmp_path):
    app, stack = gated_app(tmp_path)
    bucket = s3.Bucket(stack, "Bucket", enforce_ssl=True)
    acknowledge(bucket.node.default_child, "AwsSolutions-S1", REASON)
    app.synth()  # no exception: the one finding is acknowledged

    app2, stack2 = gated_app(tmp_path / "second")
    bucket2 = s3.Bucket(stack2, "Bucket")  # S10 also violated, only S1 acknowledged
    acknowledge(bucket2.node.default_child, "AwsSolutions-S1", REASON)
    with pytest.raises(RuntimeError, match="ValidationFailed"):
        app2.synth()
    assert set(violations(tmp_path / "second" / "cdk.out")) == {"AwsSolutions-S10"}


def test_wildcard_findings_are_acknowledged_one_by_one(tmp_path):
    app, stack = gated_app(tmp_path)
    role = iam.Role(stack, "Role", assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"))
    role.add_to_policy(iam.PolicyStatement(actions=["s3:Get*"], resources=["*"]))
    policy = role.node.find_child("DefaultPolicy")
    acknowledge(policy, "AwsSolutions-IAM5[Action::s3:Get*]", REASON)

    with pytest.raises(RuntimeError, match="ValidationFailed"):
        app.synth()
    assert set(violations(tmp_path / "cdk.out")) == {"AwsSolutions-IAM5[Resource::*]"}


@pytest.mark.parametrize(
    ("rule", "reason", "message"),
    [
        ("AwsSolutions-IAM5", REASON, "needs its finding"),
        ("AwsSolutions-S1", "because", "give a real reason"),
        ("S1", REASON, "is not a rule id"),
        ("::W3697", REASON, "is not of the form <plugin>::<rule>"),
        ("CloudFormation-Validate::W3697", "ok", "give a real reason"),
    ],
)
def test_acknowledge_refuses_coarse_or_unjustified_acknowledgements(
    tmp_path, rule, reason, message
):
    _, stack = gated_app(tmp_path)
    bucket = s3.Bucket(stack, "Bucket")
    with pytest.raises(AcknowledgementError, match=message):
        acknowledge(bucket, rule, reason)


def test_acknowledge_refuses_whole_stacks(tmp_path):
    _, stack = gated_app(tmp_path)
    with pytest.raises(AcknowledgementError, match="on the resource that needs it"):
        acknowledge(stack, "AwsSolutions-S1", REASON)


def test_every_acknowledgement_in_the_app_is_granular_and_justified(synthesized):
    stacks, _ = synthesized
    key = Validations.ACKNOWLEDGED_RULES_METADATA_KEY
    acknowledgements = [
        (construct, rule, reason)
        for construct in stacks.platform.node.root.node.find_all()
        for entry in construct.node.metadata
        if entry.type == key
        for rule, reason in entry.data.items()
    ]
    assert acknowledgements, "the platform acknowledges at least the access-log bucket's S1"
    for construct, rule, reason in acknowledgements:
        assert not isinstance(construct, cdk.Stack), f"{rule} acknowledged on a whole stack"
        # CDK stores "<plugin>::<rule>"; ids whose finding holds "::" it files as "Annotation::".
        plugin, _, pack_rule = rule.partition("::")
        assert plugin in KNOWN_PLUGINS and pack_rule, rule
        if pack_rule.split("[")[0] in RULES_WITH_FINDINGS:
            assert "[" in pack_rule, f"{rule} on {construct.node.path} is not granular"
        assert len(reason) >= MIN_REASON_LENGTH, f"{rule} on {construct.node.path}: {reason!r}"


def test_the_real_app_passes_the_gate_with_an_empty_report(synthesized):
    _, assembly = synthesized
    report = json.loads((Path(assembly.directory) / "validation-report.json").read_text())
    assert [p for p in report["pluginReports"] if p["conclusion"] != "success"] == []
