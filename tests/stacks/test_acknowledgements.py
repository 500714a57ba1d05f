"""Every cdk-nag acknowledgement of the whole app hides a finding that is really there.

An acknowledgement that matches nothing hides nothing today, but it will hide the next wrong
grant of that name: acknowledgements repeating wrong Greengrass ARNs once hid that they were
wrong. Read from the cloud assembly (each stack's metadata records its acknowledgements, by
construct path) of the demo plant, the plant with every option on and the one with every name
at its limit and alarm e-mails on (``tests/stacks/plants.py``), every stack and nested stack.

- ``AwsSolutions-IAM5[Action::X]`` / ``[Resource::X]`` must name a wildcard that the policy it
  sits on grants, ``AwsSolutions-IAM4[Policy::X]`` a managed policy its role has. cdk-nag hides
  these itself, so the findings are computed here as cdk-nag names them; the computed set must
  equal the acknowledged one (synth passing proves the naming).
- Every other acknowledgement must hide a finding its rule reported on the very resource it
  sits on (CDK's validation report lists what each one hid): so it is on a resource of the type
  the rule checks, and on no other resource.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import pytest

from stacks.compliance import nag_resource
from tests.stacks.assembly import Assembly, as_list, statements

ACKNOWLEDGED = "aws:cdk:acknowledged-rules"  # aws_cdk.Validations.ACKNOWLEDGED_RULES_METADATA_KEY
IAM_FINDING_RULES = ("AwsSolutions-IAM4", "AwsSolutions-IAM5")
IAM_IDENTITIES = ("AWS::IAM::Role", "AWS::IAM::User", "AWS::IAM::Group")
IAM_POLICIES = ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy")
DEFAULT_CHILDREN = ("", "/Resource", "/Default")  # where an L2 keeps its resource (CDK's ids)
# Acknowledgements aws-cdk-lib makes itself, by their reason: ec2.Vpc's of W3010 on its stack
# (subnets in literal AZs), ec2.FlowLog's of F3002/F3003 on the L2 (DestinationOptions' case).
# Not the app's to place; the containers platform's network has both.
CDK_OWN_REASONS = frozenset(
    {
        "Literal AZs in template are the result of accessing stack.availabilityZones, this is "
        "expected and safe",
        "AWS::EC2::FlowLog DestinationOptions accepts properties in camelCase, even they are "
        "listed as PascalCase in the spec",
    }
)


@dataclass(frozen=True)
class Acknowledgement:
    path: str  # of the construct it sits on
    rule: str  # as the pack names the finding, e.g. AwsSolutions-IAM5[Action::s3:Get*]
    stored_id: str  # as CDK files it: "<plugin>::<rule>"
    resource: str | None  # construct path of the resource: the construct or its default child


@dataclass
class App:
    directory: Path
    resources: dict[str, dict]  # construct path -> declaration, every template's
    acknowledgements: list[Acknowledgement]


def _load(directory: Path) -> App:
    assembly = Assembly(directory)
    resources = {
        declaration["Metadata"]["aws:cdk:path"]: declaration
        for template in assembly.templates()
        for declaration in template.resources.values()
        if "aws:cdk:path" in declaration.get("Metadata", {})
    }
    manifest = json.loads((directory / "manifest.json").read_text())
    acknowledgements = []
    for artifact in manifest["artifacts"].values():
        if artifact["type"] != "aws:cloudformation:stack":
            continue
        metadata = artifact.get("metadata", {})
        if "additionalMetadataFile" in artifact:
            metadata = json.loads((directory / artifact["additionalMetadataFile"]).read_text())
        for construct, entries in metadata.items():
            path = construct.removeprefix("/")
            for entry in entries:
                if entry["type"] != ACKNOWLEDGED:
                    continue
                found = [path + c for c in DEFAULT_CHILDREN if path + c in resources]
                for stored_id, reason in entry["data"].items():
                    if reason in CDK_OWN_REASONS:
                        continue
                    # "AwsSolutions::AwsSolutions-S1"; ids holding "::" CDK files as
                    # "Annotation::"; other plugins' ids are kept whole (e.g.
                    # CloudFormation-Validate::W3697).
                    plugin, _, rule = stored_id.partition("::")
                    if plugin not in ("AwsSolutions", "Serverless", "Annotation"):
                        rule = stored_id
                    resource = found[0] if len(found) == 1 else None
                    acknowledgements.append(Acknowledgement(path, rule, stored_id, resource))
    return App(directory, resources, acknowledgements)


@pytest.fixture(scope="module", params=["synthesized", "full_synthesized", "longest_synthesized"])
def app(request) -> App:
    _, cloud_assembly = request.getfixturevalue(request.param)
    return _load(Path(cloud_assembly.directory))


def iam_findings(declaration: dict) -> set[str]:
    """The IAM4 and IAM5 findings cdk-nag reports on one resource."""
    kind, properties = declaration["Type"], declaration.get("Properties", {})
    if kind in IAM_POLICIES:
        documents = [properties["PolicyDocument"]]
    elif kind in IAM_IDENTITIES:
        documents = [policy["PolicyDocument"] for policy in properties.get("Policies", [])]
    else:
        return set()
    found = set()
    for statement in (s for document in documents for s in statements(document)):
        if statement.get("Effect") != "Allow":
            continue
        for action in as_list(statement.get("Action", [])):
            if "*" in action:
                found.add(f"AwsSolutions-IAM5[Action::{action}]")
        for resource in map(nag_resource, as_list(statement.get("Resource", []))):
            if "*" in resource:
                found.add(f"AwsSolutions-IAM5[Resource::{resource}]")
    for policy in map(nag_resource, properties.get("ManagedPolicyArns", [])):
        if kind in IAM_IDENTITIES and ":iam::aws:" in policy:
            found.add(f"AwsSolutions-IAM4[Policy::{policy}]")
    return found


def _failures(found: list[str]) -> None:
    assert not found, "\n".join(found)


def misplaced(app: App) -> list[str]:
    return [
        f"{a.path}: {a.rule} is on no one resource" for a in app.acknowledgements if not a.resource
    ]


def iam_mismatches(app: App) -> list[str]:
    """IAM acknowledgements that name no grant of their resource, both ways round."""
    acknowledged: dict[str, set[str]] = defaultdict(set)
    for ack in app.acknowledgements:
        if ack.rule.startswith(IAM_FINDING_RULES) and ack.resource:
            acknowledged[ack.resource].add(ack.rule)
    found = []
    for path, rules in acknowledged.items():
        declaration = app.resources[path]
        granted = iam_findings(declaration)
        for rule in sorted(rules - granted):
            found.append(f"{path} ({declaration['Type']}): {rule} matches no grant")
        # The other way round: synth passed, so every real finding was acknowledged; one that
        # seems not to be is named differently here than by cdk-nag, and would hide a mismatch.
        for rule in sorted(granted - rules):
            found.append(f"{path}: {rule} is granted but not acknowledged here")
    return found


def iam_acknowledged_elsewhere(app: App) -> list[str]:
    acknowledged = {
        (ack.resource, ack.rule)
        for ack in app.acknowledgements
        if ack.resource and ack.rule.startswith(IAM_FINDING_RULES)
    }
    return [
        f"{path}: {rule} is acknowledged elsewhere"
        for path, declaration in app.resources.items()
        for rule in sorted(iam_findings(declaration))
        if (path, rule) not in acknowledged
    ]


def _hidden(directory: Path) -> dict[tuple[str, str], set[str]]:
    """(where, stored id) of each acknowledgement that hid findings -> the constructs hidden."""
    report = json.loads((directory / "validation-report.json").read_text())
    hidden: dict[tuple[str, str], set[str]] = defaultdict(set)
    for plugin in report["pluginReports"]:
        for violation in plugin.get("suppressedViolations") or []:
            key = (violation["acknowledgedAt"], violation["acknowledgedId"])
            hidden[key].update(c["constructPath"] for c in violation["violatingConstructs"])
    return hidden


def idle_others(app: App) -> list[str]:
    """Other rules' acknowledgements that hide nothing, or hide another resource's finding."""
    hidden = _hidden(app.directory)
    found = []
    for ack in app.acknowledgements:
        if ack.rule.startswith(IAM_FINDING_RULES) or not ack.resource:
            continue
        constructs = hidden.get((ack.path, ack.stored_id))
        if not constructs:
            found.append(f"{ack.path}: {ack.rule} hides no finding (stale, or the wrong type)")
        elif constructs != {ack.resource}:
            found.append(f"{ack.path}: {ack.rule} hides findings of {sorted(constructs)}")
    return found


def test_every_acknowledgement_sits_on_one_resource(app):
    assert len(app.acknowledgements) > 100
    _failures(misplaced(app))


def test_every_iam_acknowledgement_names_a_grant_its_resource_has(app):
    rules = {a.rule.split("[")[0] for a in app.acknowledgements}
    assert set(IAM_FINDING_RULES) <= rules
    _failures(iam_mismatches(app))


def test_every_iam_finding_is_acknowledged_on_its_own_resource(app):
    """cdk-nag also honours an acknowledgement on an ancestor (a role for its policy, a whole
    construct); each policy carries its own, next to the grant it excuses."""
    _failures(iam_acknowledged_elsewhere(app))


def test_every_other_acknowledgement_hides_a_finding_on_its_own_resource(app):
    rules = {a.rule for a in app.acknowledgements}
    assert {"AwsSolutions-S1", "AwsSolutions-L1", "CloudFormation-Validate::W3697"} <= rules
    _failures(idle_others(app))


def test_the_checks_catch_stale_and_misplaced_acknowledgements(tmp_path):
    import aws_cdk as cdk
    from aws_cdk import aws_iam as iam
    from aws_cdk import aws_kms as kms
    from aws_cdk import aws_sqs as sqs

    from stacks.compliance import acknowledge, add_compliance_gates
    from tests.conftest import cli_context

    reason = "Throwaway test resource, never deployed; only proves the check."
    app = cdk.App(outdir=str(tmp_path), context=cli_context())
    add_compliance_gates(app)
    stack = cdk.Stack(app, "Throwaway")
    key = kms.Key(stack, "Key", enable_key_rotation=True)
    last = sqs.Queue(stack, "Last", encryption_master_key=key, enforce_ssl=True)
    sqs.Queue(  # names Last as its dead-letter queue, so SQS3 reports nothing on Last
        stack,
        "Source",
        encryption_master_key=key,
        enforce_ssl=True,
        dead_letter_queue=sqs.DeadLetterQueue(max_receive_count=3, queue=last),
    )
    acknowledge(last, "Serverless-SQSRedrivePolicy", reason)
    acknowledge(last, "AwsSolutions-SQS3", reason)  # stale
    acknowledge(key.node.default_child, "AwsSolutions-S1", reason)  # a key is no bucket
    role = iam.Role(stack, "Role", assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"))
    role.add_to_policy(iam.PolicyStatement(actions=["s3:Get*"], resources=["*"]))
    policy = role.node.find_child("DefaultPolicy")
    for finding in ("Action::s3:Get*", "Resource::*", "Action::s3:Put*"):  # Put*: stale
        acknowledge(policy, f"AwsSolutions-IAM5[{finding}]", reason)
    app.synth()

    found = _load(tmp_path)
    others = "\n".join(idle_others(found))
    assert "Throwaway/Last: AwsSolutions-SQS3 hides no finding" in others
    assert "Throwaway/Key/Resource: AwsSolutions-S1 hides no finding" in others
    assert "SQSRedrivePolicy" not in others
    assert iam_mismatches(found) == [
        "Throwaway/Role/DefaultPolicy/Resource (AWS::IAM::Policy): "
        "AwsSolutions-IAM5[Action::s3:Put*] matches no grant"
    ]  # and the real findings are named as cdk-nag names them
    assert iam_acknowledged_elsewhere(found) == misplaced(found) == []
