"""Write the kustomization the deploy applies: an overlay of services/k8s with the images built
for this commit, the platform values and the plant config.

    python3 services/k8s/deploy_overlay.py --overlay cloud --out build/deploy/cloud \\
        --tag "$COMMIT" --image production-execution=$PE_REPO --image inventory=$INV_REPO \\
        --plant-config config/plant.yaml --env-from-environ
    kubectl apply -k build/deploy/cloud

``--out`` gets ``kustomization.yaml`` (the overlay as its resource, ``images:`` with each
service's repository and the tag, a ``mes-platform`` ConfigMap merged over the overlay's) and
``plant.yaml`` (the plant config with its ``extends`` resolved, as the ``mes-plant`` ConfigMap
production execution mounts). The platform values are the ``MES_*`` keys the manifests read
(``--env KEY=VALUE``, or from the environment with ``--env-from-environ``), and the database's
host and port (``--database-host``/``--database-port``, else ``PGHOST``/``PGPORT``, the libpq
variables the deploy stage already has for ``services.bootstrap_database``). Nothing secret
belongs in a ConfigMap: names that look like one are refused.

Standard library and PyYAML only: the deploy stage runs it before anything else is installed.
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import re
import sys
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import yaml

K8S_DIR = Path(__file__).resolve().parent
BASE_DIR = K8S_DIR / "base"
OVERLAYS = ("cloud", "edge")
NAMESPACE = "mes"
PLATFORM_CONFIGMAP = "mes-platform"
PLANT_CONFIGMAP = "mes-plant"
PLANT_FILE = "plant.yaml"
CLOUD = "cloud"
DATABASE_KEYS = ("DATABASE_HOST", "DATABASE_PORT", "DATABASE_OPTIONS")
# Kubernetes: "The data stored in a ConfigMap cannot exceed 1 MiB" (Concepts, ConfigMaps).
MAX_CONFIGMAP_BYTES = 1024 * 1024
SECRET_LOOKING = re.compile(r"PASSWORD|PASSWD|SECRET|TOKEN|CREDENTIAL|PRIVATE|ACCESS_KEY|API_KEY")
ENV_NAME = re.compile(r"^[A-Z][A-Z0-9_]*$")
# Docker's tag grammar (distribution reference): [\w][\w.-]{0,127}.
IMAGE_TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
# A repository without tag or digest: [host[:port]/]path, lowercase path components.
IMAGE_REPOSITORY = re.compile(
    r"^(?:[A-Za-z0-9.-]+(?::\d+)?/)?[a-z0-9]+(?:[._-][a-z0-9]+)*(?:/[a-z0-9]+(?:[._-][a-z0-9]+)*)*$"
)
IDENTIFIER = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")  # mes_domain.ids
ACM_CERTIFICATE_ARN = re.compile(
    r"^arn:aws[a-z-]*:acm:[a-z]{2}(-[a-z]+)+-\d:\d{12}:certificate/[0-9a-f-]{36}$"
)
# The plant config's `extends` (stacks/plant_config.py): mappings merged, other values replaced.
EXTENDS_KEY = "extends"
MAX_EXTENDS_DEPTH = 8


class DeployOverlayError(ValueError):
    """Arguments or environment that would deploy something wrong; the message says which."""


def _base_documents() -> list[dict]:
    kustomization = yaml.safe_load((BASE_DIR / "kustomization.yaml").read_text(encoding="utf-8"))
    documents = []
    for resource in kustomization["resources"]:
        text = (BASE_DIR / resource).read_text(encoding="utf-8")
        documents.extend(doc for doc in yaml.safe_load_all(text) if doc)
    return documents


def _containers(deployment: dict) -> Iterable[dict]:
    spec = deployment["spec"]["template"]["spec"]
    yield from spec.get("initContainers", [])
    yield from spec["containers"]


def service_images() -> list[str]:
    """The image names of the base's Deployments (each the service's name)."""
    names = []
    for document in _base_documents():
        if document["kind"] == "Deployment":
            for container in _containers(document):
                if container["image"] not in names:
                    names.append(container["image"])
    return names


def platform_keys() -> set[str]:
    """The keys of mes-platform that the base's containers read."""
    keys = set()
    for document in _base_documents():
        if document["kind"] != "Deployment":
            continue
        for container in _containers(document):
            for variable in container.get("env", []):
                reference = variable.get("valueFrom", {}).get("configMapKeyRef")
                if reference and reference["name"] == PLATFORM_CONFIGMAP:
                    keys.add(reference["key"])
    return keys


def check_platform_values(values: Mapping[str, str], overlay: str) -> dict[str, str]:
    known = platform_keys()
    for key, value in values.items():
        if not ENV_NAME.match(key):
            raise DeployOverlayError(f"{key!r} is not an environment variable name")
        if SECRET_LOOKING.search(key):
            raise DeployOverlayError(
                f"{key} looks like a secret: a ConfigMap is no place for it (use a Secret)"
            )
        if key not in known:
            raise DeployOverlayError(
                f"{key} is not a platform value the manifests read ({', '.join(sorted(known))})"
            )
        if "\n" in value:
            raise DeployOverlayError(f"{key}: a value is one line")
    instance = values.get("MES_INSTANCE_ID")
    if overlay == CLOUD and instance not in (None, CLOUD):
        raise DeployOverlayError(f"the cloud overlay is MES_INSTANCE_ID=cloud, not {instance!r}")
    if overlay == "edge":
        if instance is None or instance == CLOUD or not IDENTIFIER.match(instance):
            raise DeployOverlayError(
                "the edge overlay needs MES_INSTANCE_ID: the site's id in the plant config"
            )
    if not values.get("DATABASE_HOST"):
        raise DeployOverlayError(
            "the database host is missing: --database-host, or PGHOST with --env-from-environ"
        )
    port = values.get("DATABASE_PORT", "5432")
    if not port.isdigit() or not 1 <= int(port) <= 65535:
        raise DeployOverlayError(f"database port {port!r} is not a TCP port")
    return dict(values)


def parse_images(pairs: Sequence[str], tag: str) -> dict[str, str]:
    if not IMAGE_TAG.match(tag):
        raise DeployOverlayError(f"{tag!r} is not an image tag")
    wanted = service_images()
    images: dict[str, str] = {}
    for pair in pairs:
        name, sep, repository = pair.partition("=")
        if not sep or name not in wanted:
            raise DeployOverlayError(
                f"--image {pair!r}: give <service>=<repository>, a service of {wanted}"
            )
        if not IMAGE_REPOSITORY.match(repository):
            raise DeployOverlayError(
                f"--image {name}: {repository!r} is not a repository without tag or digest"
            )
        images[name] = repository
    missing = [name for name in wanted if name not in images]
    if missing:
        raise DeployOverlayError(f"no --image for {', '.join(missing)}")
    return images


def _merged(base: dict, override: dict) -> dict:
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merged(merged[key], value)
        else:
            merged[key] = value
    return merged


def resolved_plant_config(path: Path, chain: tuple[Path, ...] = ()) -> dict:
    """The plant config with the files it ``extends`` merged beneath it: the services read one
    plain file (services/production_execution/settings.py)."""
    if path.resolve() in chain or len(chain) > MAX_EXTENDS_DEPTH:
        raise DeployOverlayError(f"{path}: extends loops or nests too deep")
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise DeployOverlayError(f"plant config {path}: {exc}") from None
    if not isinstance(document, dict):
        raise DeployOverlayError(f"plant config {path}: the top level must be a mapping")
    base = document.pop(EXTENDS_KEY, None)
    if base is None:
        return document
    return _merged(
        resolved_plant_config(path.parent / str(base), (*chain, path.resolve())), document
    )


def _json_patch(group: str, kind: str, name: str, operations: list[dict]) -> dict:
    target = {"group": group, "version": "v1", "kind": kind, "name": name}
    if kind != "IngressClassParams":
        target["namespace"] = NAMESPACE
    return {"target": target, "patch": yaml.safe_dump(operations, sort_keys=False)}


def kustomization(
    *,
    overlay: str,
    out: Path,
    tag: str,
    images: Mapping[str, str],
    platform: Mapping[str, str],
    certificate_arn: str | None = None,
    vpc_cidr: str | None = None,
) -> dict:
    document: dict = {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "resources": [os.path.relpath(K8S_DIR / "overlays" / overlay, out)],
        "images": [
            {"name": name, "newName": repository, "newTag": tag}
            for name, repository in images.items()
        ],
        "configMapGenerator": [
            {
                "name": PLATFORM_CONFIGMAP,
                "namespace": NAMESPACE,
                "behavior": "merge",
                "literals": [f"{key}={value}" for key, value in sorted(platform.items())],
            },
            {"name": PLANT_CONFIGMAP, "namespace": NAMESPACE, "files": [PLANT_FILE]},
        ],
    }
    patches = []
    if certificate_arn is not None:
        if overlay != CLOUD:
            raise DeployOverlayError("--certificate-arn is for the cloud overlay's ALB")
        if not ACM_CERTIFICATE_ARN.match(certificate_arn):
            raise DeployOverlayError(f"{certificate_arn!r} is not an ACM certificate ARN")
        patches.append(
            _json_patch(
                "eks.amazonaws.com",
                "IngressClassParams",
                "mes-internal",
                [{"op": "add", "path": "/spec/certificateARNs", "value": [certificate_arn]}],
            )
        )
        listen = "alb.ingress.kubernetes.io~1listen-ports"
        patches.append(
            _json_patch(
                "networking.k8s.io",
                "Ingress",
                "mes",
                [
                    {
                        "op": "add",
                        "path": f"/metadata/annotations/{listen}",
                        "value": '[{"HTTPS": 443}]',
                    }
                ],
            )
        )
    if vpc_cidr is not None:
        if overlay != CLOUD:
            raise DeployOverlayError("--vpc-cidr is for the cloud overlay's load balancer policy")
        try:
            ipaddress.ip_network(vpc_cidr, strict=True)
        except ValueError as exc:
            raise DeployOverlayError(f"--vpc-cidr: {exc}") from None
        patches.append(
            _json_patch(
                "networking.k8s.io",
                "NetworkPolicy",
                "from-load-balancer",
                [
                    {
                        "op": "replace",
                        "path": "/spec/ingress/0/from/0/ipBlock/cidr",
                        "value": vpc_cidr,
                    }
                ],
            )
        )
    if patches:
        document["patches"] = patches
    return document


def _key_values(pairs: Sequence[str]) -> dict[str, str]:
    values = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise DeployOverlayError(f"--env {pair!r}: give KEY=VALUE")
        values[key] = value
    return values


def platform_values(args: argparse.Namespace, environ: Mapping[str, str]) -> dict[str, str]:
    values: dict[str, str] = {}
    if args.env_from_environ:
        values.update({k: v for k, v in environ.items() if k.startswith("MES_")})
        if "PGHOST" in environ:
            values["DATABASE_HOST"] = environ["PGHOST"]
        if "PGPORT" in environ:
            values["DATABASE_PORT"] = environ["PGPORT"]
    values.update(_key_values(args.env))
    if args.database_host is not None:
        values["DATABASE_HOST"] = args.database_host
    if args.database_port is not None:
        values["DATABASE_PORT"] = args.database_port
    return check_platform_values(values, args.overlay)


def write(args: argparse.Namespace, environ: Mapping[str, str]) -> Path:
    out = Path(args.out)
    images = parse_images(args.image, args.tag)
    platform = platform_values(args, environ)
    plant = yaml.safe_dump(resolved_plant_config(Path(args.plant_config)), sort_keys=False)
    if len(plant.encode()) > MAX_CONFIGMAP_BYTES:
        raise DeployOverlayError(
            f"the plant config is over a ConfigMap's 1 MiB: {len(plant)} bytes"
        )
    document = kustomization(
        overlay=args.overlay,
        out=out.resolve(),
        tag=args.tag,
        images=images,
        platform=platform,
        certificate_arn=args.certificate_arn,
        vpc_cidr=args.vpc_cidr,
    )
    out.mkdir(parents=True, exist_ok=True)
    (out / PLANT_FILE).write_text(plant, encoding="utf-8")
    (out / "kustomization.yaml").write_text(
        "# Written by services/k8s/deploy_overlay.py; `kubectl apply -k` this folder.\n"
        + yaml.safe_dump(document, sort_keys=False),
        encoding="utf-8",
    )
    return out


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python3 services/k8s/deploy_overlay.py",
        description=__doc__.split("\n\n")[0],
    )
    parser.add_argument("--overlay", required=True, choices=OVERLAYS)
    parser.add_argument("--out", required=True, help="the folder to write the kustomization to")
    parser.add_argument("--tag", required=True, help="the images' tag: the commit id")
    parser.add_argument(
        "--image",
        action="append",
        default=[],
        metavar="SERVICE=REPOSITORY",
        help="each service's image repository, without tag",
    )
    parser.add_argument("--plant-config", required=True, help="the plant config the stacks use")
    parser.add_argument(
        "--env", action="append", default=[], metavar="KEY=VALUE", help="a platform value"
    )
    parser.add_argument(
        "--env-from-environ",
        action="store_true",
        help="take the MES_* platform values, PGHOST and PGPORT from the environment",
    )
    parser.add_argument("--database-host")
    parser.add_argument("--database-port")
    parser.add_argument("--certificate-arn", help="cloud: the ACM certificate of the ALB")
    parser.add_argument("--vpc-cidr", help="cloud: the VPC's CIDR, where the ALB's addresses are")
    args = parser.parse_args(argv)
    try:
        out = write(args, os.environ if environ is None else environ)
    except DeployOverlayError as exc:
        print(f"deploy_overlay: {exc}", file=sys.stderr)
        return 2
    print(out / "kustomization.yaml")
    return 0


if __name__ == "__main__":
    sys.exit(main())
