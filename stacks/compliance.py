"""Compliance gates: cdk-nag packs run as CDK validation plugins on the whole app.

A synth with an unacknowledged finding fails. Acknowledgements go through ``acknowledge`` so
each is granular: on one construct (never a whole stack or app), for one rule or one finding
(``RuleId[Finding]`` for rules that report several), and with a real reason.
"""

from __future__ import annotations

import json
import re

from aws_cdk import Acknowledgment, Stack, Stage, Validations
from cdk_nag import AwsSolutionsChecks, ServerlessChecks
from constructs import IConstruct

# Rules that report one finding per wildcard or managed policy; they must name the finding.
RULES_WITH_FINDINGS = frozenset({"AwsSolutions-IAM4", "AwsSolutions-IAM5"})
RULE_ID = re.compile(r"^(?P<rule>(?P<pack>[A-Za-z]+)-[A-Za-z0-9]+)(?:\[(?P<finding>[^\]]+)\])?$")
MIN_REASON_LENGTH = 30


class AcknowledgementError(ValueError):
    """An acknowledgement that is not granular or not justified."""


def add_compliance_gates(app: Stage) -> None:
    """Run the AwsSolutions and Serverless packs over every stack of ``app`` at synth."""
    Validations.of(app).add_plugins(AwsSolutionsChecks(app), ServerlessChecks(app))


def _check_reason(scope: IConstruct, rule_id: str, reason: str) -> None:
    if isinstance(scope, (Stack, Stage)):
        raise AcknowledgementError(
            f"acknowledge {rule_id} on the resource that needs it, not on {scope.node.path}"
        )
    if len(reason.strip()) < MIN_REASON_LENGTH:
        raise AcknowledgementError(f"{rule_id} on {scope.node.path}: give a real reason")


def acknowledge(scope: IConstruct, rule_id: str, reason: str) -> None:
    """Acknowledge one cdk-nag finding on one construct, with the reason it is acceptable."""
    plugin, separator, plugin_rule = rule_id.partition("::")
    if separator:  # a rule of another validation plugin, e.g. CloudFormation-Validate::W3697
        _check_reason(scope, rule_id, reason)
        if not plugin or not plugin_rule:
            raise AcknowledgementError(f"{rule_id!r} is not of the form <plugin>::<rule>")
        Validations.of(scope).acknowledge(Acknowledgment(id=rule_id, reason=reason))
        return
    match = RULE_ID.match(rule_id)
    if match is None:
        raise AcknowledgementError(f"{rule_id!r} is not a rule id like AwsSolutions-S1")
    if match["rule"] in RULES_WITH_FINDINGS and match["finding"] is None:
        raise AcknowledgementError(f"{rule_id} needs its finding, e.g. {rule_id}[Resource::*]")
    _check_reason(scope, rule_id, reason)
    # Validations ids are namespaced by the plugin that reports them: "<pack>::<rule>".
    plugin_rule_id = f"{match['pack']}::{rule_id}"
    Validations.of(scope).acknowledge(Acknowledgment(id=plugin_rule_id, reason=reason))


def nag_resource(reference: object) -> str:
    """A resolved policy value as cdk-nag names it in IAM5 findings (its flattenCfnReference,
    utils/flatten-cfn-reference.ts): intrinsics as <LogicalId> and <LogicalId.Attribute>."""
    if isinstance(reference, str):
        return reference.replace("${", "<").replace("}", ">")
    if isinstance(reference, dict):
        if "Fn::Join" in reference:
            separator, items = reference["Fn::Join"]
            return separator.join(nag_resource(item) for item in items)
        if "Fn::Sub" in reference:
            return nag_resource(reference["Fn::Sub"])
        if "Fn::GetAtt" in reference:
            logical_id, attribute = reference["Fn::GetAtt"]
            return f"<{nag_resource(logical_id)}.{nag_resource(attribute)}>"
        if "Fn::ImportValue" in reference:
            return nag_resource(reference["Fn::ImportValue"])
        if "Ref" in reference:
            return f"<{nag_resource(reference['Ref'])}>"
    return json.dumps(reference, separators=(",", ":"))  # its fallback, JSON.stringify


__all__ = ["AcknowledgementError", "acknowledge", "add_compliance_gates", "nag_resource"]
