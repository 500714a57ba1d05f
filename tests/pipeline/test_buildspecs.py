"""The pipeline's buildspecs, run: their phases' commands go through bash as CodeBuild runs them
(one shell, a failing command ends the build), with aws, docker, kubectl, curl and the venv's
python replaced by a stub that records each call (``stub_tool.sh``)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from mes_domain.containers import NAMESPACE, SERVICES
from tests.conftest import PROJECT_ROOT

PIPELINE = PROJECT_ROOT / "pipeline"
STUB = Path(__file__).with_name("stub_tool.sh")
STUBBED_TOOLS = ("aws", "docker", "kubectl", "curl")
REGISTRY = "123456789012.dkr.ecr.eu-central-1.amazonaws.com"
COMMIT = "0123456789abcdef0123456789abcdef01234567"
IMAGES = {service.name: f"{REGISTRY}/mes/{service.name}" for service in SERVICES}
SERVICE_IMAGES = " ".join(f"{name}={uri}" for name, uri in IMAGES.items())
# What deploy.yml reads of the source besides pipeline/: the real deploy_overlay.py runs.
COPIED = ("services/k8s", "config")
CERTIFICATE = (
    "arn:aws:acm:eu-central-1:123456789012:certificate/0123abcd-4567-89ef-0123-456789abcdef"
)
ALB = "internal-k8s-mes-0123456789.eu-central-1.elb.amazonaws.com"
KAFKA_CLUSTER_ARN = (
    "arn:aws:kafka:eu-central-1:123456789012:cluster/MesDemo-sync/"
    "0a1b2c3d-4e5f-6a7b-8c9d-0e1f2a3b4c5d-s1"
)
# As MSK Serverless answers: one endpoint, the IAM port.
BROKERS = "boot-abc123de.c2.kafka-serverless.eu-central-1.amazonaws.com:9098"


def load(name: str) -> dict:
    return yaml.safe_load((PIPELINE / name).read_text())


@dataclass
class Run:
    returncode: int
    calls: list[list[str]]
    output: str

    def of(self, tool: str, *prefix: str) -> list[list[str]]:
        """The calls of ``tool`` whose first arguments are ``prefix``."""
        return [c[1:] for c in self.calls if c[0] == tool and c[1 : 1 + len(prefix)] == [*prefix]]

    def index(self, tool: str, *prefix: str) -> int:
        return next(
            i
            for i, c in enumerate(self.calls)
            if c[0] == tool and c[1 : 1 + len(prefix)] == [*prefix]
        )


def run_phases(spec: dict, phases: list[str], tmp_path: Path, **environment: str) -> Run:
    """The commands of ``phases`` in one bash, each checked as CodeBuild does: the first that
    fails ends the run with its status. Run in a copy of the tree's pipeline/ folder."""
    work = tmp_path / "src"
    shutil.copytree(PIPELINE, work / "pipeline")
    for folder in COPIED:
        shutil.copytree(PROJECT_ROOT / folder, work / folder)
    stubs = tmp_path / "stubs"
    (work / ".venv" / "bin").mkdir(parents=True)
    stubs.mkdir()
    for tool in STUBBED_TOOLS:
        (stubs / tool).symlink_to(STUB)
    (work / ".venv" / "bin" / "python").symlink_to(STUB)
    calls = tmp_path / "calls.tsv"
    calls.touch()
    lines = ["set -o pipefail"]  # as the buildspecs' first phase sets it
    for phase in phases:
        for number, command in enumerate(spec["phases"][phase]["commands"]):
            lines.append(f"{{\n{command}\n}}")
            lines.append(
                f'status=$?; [ $status -eq 0 ] || {{ echo "FAILED {phase}[{number}]" >&2; '
                "exit $status; }"
            )
    env = {
        "PATH": f"{stubs}:{os.environ['PATH']}",
        "HOME": str(tmp_path),
        "CALLS": str(calls),
        "AWS_REGION": "eu-central-1",
        "SERVICE_IMAGES": SERVICE_IMAGES,
        "REAL_PYTHON": sys.executable,
        **environment,
    }
    result = subprocess.run(
        ["bash", "-c", "\n".join(lines)],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    recorded = [line.split("\t") for line in calls.read_text().splitlines()]
    return Run(result.returncode, recorded, result.stdout + result.stderr)


# --- build.yml ---

BUILD = load("build.yml")


def build(tmp_path: Path, **environment: str) -> Run:
    environment.setdefault("CODEBUILD_RESOLVED_SOURCE_VERSION", COMMIT)
    return run_phases(BUILD, ["pre_build", "build"], tmp_path, **environment)


def test_the_build_tests_the_services_then_pushes_an_image_per_service(tmp_path):
    run = build(tmp_path)
    assert run.returncode == 0, run.output
    assert run.of("docker", "login") == [
        ["login", "--username", "AWS", "--password-stdin", REGISTRY]
    ]
    assert run.of("python", "-m", "pytest") == [
        ["-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/services"]
    ]
    builds = run.of("docker", "build")
    assert [b[b.index("--target") + 1] for b in builds] == [s.name for s in SERVICES]
    for service, call in zip(SERVICES, builds, strict=True):
        assert call[call.index("-f") + 1] == "services/Dockerfile"
        assert call[call.index("-t") + 1] == f"{IMAGES[service.name]}:{COMMIT}"
    assert run.of("docker", "push") == [["push", f"{uri}:{COMMIT}"] for uri in IMAGES.values()]
    assert run.index("python", "-m", "pytest") < run.index("docker", "build")


def test_an_image_already_pushed_for_the_revision_is_not_built_again(tmp_path):
    pushed, *others = SERVICES
    run = build(tmp_path, PUSHED_REPOSITORIES=f"mes/{pushed.name}")
    assert run.returncode == 0, run.output
    checked = [c[c.index("--repository-name") + 1] for c in run.of("aws", "ecr", "describe-images")]
    assert checked == [f"mes/{s.name}" for s in SERVICES]
    targets = [b[b.index("--target") + 1] for b in run.of("docker", "build")]
    assert targets == [s.name for s in others]
    assert run.of("docker", "push") == [["push", f"{IMAGES[s.name]}:{COMMIT}"] for s in others]


def test_failing_tests_stop_the_build_before_any_image(tmp_path):
    run = build(tmp_path, PYTEST_STATUS="1")
    assert run.returncode != 0
    assert run.of("docker", "build") == [] and run.of("docker", "push") == []


def test_a_failing_image_fails_the_build_and_pushes_nothing_after_it(tmp_path):
    run = build(tmp_path, FAILING_TARGETS=SERVICES[0].name)
    assert run.returncode != 0
    assert run.of("docker", "push") == []


def test_an_s3_version_id_becomes_a_valid_tag(tmp_path):
    run = build(tmp_path, CODEBUILD_RESOLVED_SOURCE_VERSION="3/L4kqtJlcpXroDTDmJ+rmSpXd3dIbrHY")
    assert run.returncode == 0, run.output
    tags = {b[b.index("-t") + 1].rpartition(":")[2] for b in run.of("docker", "build")}
    (tag,) = tags
    assert tag.startswith("rev-") and len(tag) == 44


def test_the_build_exports_the_tag_and_declares_no_variables():
    # Nothing secret or configurable lives in the file: the project passes SERVICE_IMAGES.
    assert BUILD["env"] == {"shell": "bash", "exported-variables": ["IMAGE_TAG"]}
    assert BUILD["phases"]["install"]["runtime-versions"] == {"python": "3.11"}


# --- deploy.yml ---

DEPLOY = load("deploy.yml")
CLOUD = {
    "CLUSTER_NAME": "mes-cluster",
    "OVERLAY": "cloud",
    "NAMESPACE": NAMESPACE,
    "IMAGE_TAG": COMMIT,
    "PGHOST": "mes.cluster-abc.eu-central-1.rds.amazonaws.com",
    "PGPORT": "5432",
    "PGUSER": "mes_admin",
    "PGPASSWORD": "from-secrets-manager",
    "HOSTED_ZONE_ID": "Z0123456789ABCDEFGHIJ",
    "RECORD_NAME": "api.mes.example.com",
    "INGRESS_HOSTNAMES": f"{ALB}\\n{ALB}\\n",
    "HOSTNAME_POLL_SECONDS": "0",
    "PLANT_CONFIG": "config/demo-plant.yaml",
    "CERTIFICATE_ARN": CERTIFICATE,
    "VPC_CIDR": "10.40.0.0/16",
    "CLUSTER_KUSTOMIZATION": "services/k8s/cluster",
    "MES_INSTANCE_ID": "cloud",
    "MES_AWS_REGION": "eu-central-1",
}
EDGE = {
    "CLUSTER_NAME": "mes-edge",
    "OVERLAY": "edge",
    "NAMESPACE": NAMESPACE,
    "IMAGE_TAG": COMMIT,
    "PLANT_CONFIG": "config/demo-plant.yaml",
    "DATABASE_HOST": "postgres.berlin.example.internal",
    "MES_INSTANCE_ID": "berlin",
}


def kustomization(tmp_path: Path, overlay: str) -> dict:
    """What deploy_overlay.py wrote for ``kubectl apply -k``."""
    return yaml.safe_load(
        (tmp_path / "src" / "build" / "deploy" / overlay / "kustomization.yaml").read_text()
    )


def deploy(tmp_path: Path, **environment: str) -> Run:
    return run_phases(DEPLOY, ["pre_build", "build"], tmp_path, **environment)


def test_the_cloud_deploy_runs_its_steps_in_order(tmp_path):
    run = deploy(tmp_path, **CLOUD)
    assert run.returncode == 0, run.output
    steps = [
        ("aws", "eks", "update-kubeconfig"),
        ("python", "-m", "services.bootstrap_database"),
        ("python", "services/k8s/deploy_overlay.py"),
        # the cluster's own settings (the network policy controller) before the overlay
        ("kubectl", "apply", "-k", "services/k8s/cluster"),
        ("kubectl", "apply", "-k", "build/deploy/cloud"),
        ("kubectl", "-n", NAMESPACE, "rollout"),
        ("kubectl", "-n", NAMESPACE, "get", "ingress"),
        ("aws", "route53", "change-resource-record-sets"),
    ]
    positions = [run.index(*step) for step in steps]
    assert positions == sorted(positions)
    assert run.of("aws", "eks") == [
        ["eks", "update-kubeconfig", "--name", "mes-cluster", "--region", "eu-central-1"]
    ]
    overlay_call = run.of("python", "services/k8s/deploy_overlay.py")[0]
    expected_images = [arg for s in SERVICES for arg in ("--image", f"{s.name}={IMAGES[s.name]}")]
    assert overlay_call[1:] == [
        "--overlay", "cloud", "--out", "build/deploy/cloud", "--tag", COMMIT,
        "--plant-config", "config/demo-plant.yaml", "--env-from-environ", *expected_images,
        "--certificate-arn", CERTIFICATE, "--vpc-cidr", "10.40.0.0/16",
    ]  # fmt: skip
    # deploy_overlay.py took it: the images of this commit, the platform values.
    written = kustomization(tmp_path, "cloud")
    assert {i["name"]: (i["newName"], i["newTag"]) for i in written["images"]} == {
        name: (uri, COMMIT) for name, uri in IMAGES.items()
    }
    assert CERTIFICATE in json.dumps(written) and CLOUD["PGHOST"] in json.dumps(written)
    assert run.of("kubectl", "apply") == [
        ["apply", "-k", "services/k8s/cluster"],
        ["apply", "-k", "build/deploy/cloud"],
    ]
    # The HTTPS service bus: no brokers to look up.
    assert run.of("aws", "kafka") == [] and "MES_KAFKA" not in json.dumps(written)
    rollouts = run.of("kubectl", "-n", NAMESPACE, "rollout")
    assert [r[4] for r in rollouts] == [f"deployment/{s.name}" for s in SERVICES]


def test_with_msk_the_pods_get_the_bootstrap_brokers_looked_up_before_the_overlay(tmp_path):
    run = deploy(tmp_path, **CLOUD, KAFKA_CLUSTER_ARN=KAFKA_CLUSTER_ARN, BOOTSTRAP_BROKERS=BROKERS)
    assert run.returncode == 0, run.output
    assert run.of("aws", "kafka") == [
        ["kafka", "get-bootstrap-brokers", "--cluster-arn", KAFKA_CLUSTER_ARN,
         "--query", "BootstrapBrokerStringSaslIam", "--output", "text"],
    ]  # fmt: skip
    lookup = run.index("aws", "kafka", "get-bootstrap-brokers")
    assert lookup < run.index("python", "services/k8s/deploy_overlay.py")
    # deploy_overlay.py took it from the environment into the pods' mes-platform values.
    assert f"MES_KAFKA_BOOTSTRAP_SERVERS={BROKERS}" in json.dumps(kustomization(tmp_path, "cloud"))


@pytest.mark.parametrize(
    "answer",
    [
        pytest.param({}, id="no-sasl-iam-string"),
        pytest.param({"BOOTSTRAP_BROKERS": BROKERS, "KAFKA_STATUS": "254"}, id="api-error"),
    ],
)
def test_without_bootstrap_brokers_the_deploy_stops_before_the_overlay(tmp_path, answer):
    run = deploy(tmp_path, **CLOUD, KAFKA_CLUSTER_ARN=KAFKA_CLUSTER_ARN, **answer)
    assert run.returncode != 0
    assert "no SASL/IAM bootstrap brokers for the MSK cluster" in run.output
    assert run.of("python", "services/k8s/deploy_overlay.py") == []
    assert run.of("kubectl", "apply") == []


def test_the_database_bootstrap_verifies_the_rds_certificate(tmp_path):
    run = deploy(tmp_path, **CLOUD)
    assert run.returncode == 0, run.output
    (download,) = run.of("curl")
    assert download[-1] == "https://truststore.pki.rds.amazonaws.com/global/global-bundle.pem"
    (environment,) = run.of("bootstrap-env")
    assert environment == [CLOUD["PGHOST"], "mes_admin", "verify-full", download[1], "password-set"]


def test_the_cname_points_the_record_at_the_ingress_alb(tmp_path):
    run = deploy(tmp_path, **CLOUD)
    assert run.returncode == 0, run.output
    (change,) = run.of("aws", "route53", "change-resource-record-sets")
    assert change[change.index("--hosted-zone-id") + 1] == CLOUD["HOSTED_ZONE_ID"]
    batch = json.loads(change[change.index("--change-batch") + 1])
    assert [c["Action"] for c in batch["Changes"]] == ["UPSERT"]
    record = batch["Changes"][0]["ResourceRecordSet"]
    assert record["Name"] == CLOUD["RECORD_NAME"] and record["Type"] == "CNAME"
    assert record["ResourceRecords"] == [{"Value": ALB}]


def test_the_edge_deploy_bootstraps_no_database_and_sets_no_record(tmp_path):
    run = deploy(tmp_path, **EDGE)
    assert run.returncode == 0, run.output
    assert run.of("python", "-m", "services.bootstrap_database") == []
    assert run.of("curl") == [] and run.of("aws", "route53") == []
    assert run.of("kubectl", "apply") == [["apply", "-k", "build/deploy/edge"]]
    (overlay_call,) = run.of("python", "services/k8s/deploy_overlay.py")
    assert overlay_call[-2:] == ["--database-host", EDGE["DATABASE_HOST"]]
    written = json.dumps(kustomization(tmp_path, "edge"))
    assert EDGE["DATABASE_HOST"] in written and "MES_INSTANCE_ID=berlin" in written
    assert run.of("aws", "eks")[0][3] == "mes-edge"


def test_a_failed_rollout_fails_the_deploy_before_the_record(tmp_path):
    run = deploy(tmp_path, **CLOUD, FAILING_ROLLOUT=SERVICES[0].name)
    assert run.returncode != 0
    assert run.of("aws", "route53") == []


@pytest.mark.parametrize(
    "hostnames",
    [
        pytest.param("", id="no-alb-yet"),
        pytest.param(f"{ALB}\\nother.elb.amazonaws.com\\n", id="two"),
    ],
)
def test_the_record_needs_exactly_one_alb_hostname(tmp_path, hostnames):
    run = deploy(tmp_path, **{**CLOUD, "INGRESS_HOSTNAMES": hostnames})
    assert run.returncode != 0
    assert run.of("aws", "route53") == []
    assert "expected one ALB hostname" in run.output


def test_the_deploy_declares_no_variables_or_secrets():
    # The project's environment carries the values, the master secret as a secrets-manager
    # variable (stacks/constructs/delivery_pipeline.py): nothing in the file itself.
    assert DEPLOY["env"] == {"shell": "bash"}
