"""The MES services' Kubernetes manifests (services/k8s), rendered with kustomize as the deploy
renders them: valid for the cluster's Kubernetes version, hardened, named as the CDK stacks name
the Pod Identity associations, configured only with settings the services accept, and clean in
checkov's Kubernetes policies (or skipped in the manifest with the reason)."""

from __future__ import annotations

import copy
import json
import re
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from mes_domain.containers import NAMESPACE, SERVICES, ContainersSettings
from services.common.settings import ServiceSettings
from services.production_execution.settings import ProductionSettings
from tests.conftest import PROJECT_ROOT
from tests.k8s.render import (
    CERTIFICATE_ARN,
    EDGE_SITE,
    K8S_DIR,
    OVERLAYS,
    REGISTRY,
    TAG,
    by_kind,
    deploy_and_render,
    kustomize_build,
    pod_containers,
)

CHECKOV = PROJECT_ROOT / "build" / "policy-venv" / "bin" / "checkov"
DEPLOYED_VPC_CIDR = "10.61.0.0/16"
SETTINGS = {"production-execution": ProductionSettings, "inventory": ServiceSettings}
# Documented IngressClassParams fields of EKS Auto Mode (EKS user guide, "Create an IngressClass
# to configure an Application Load Balancer", IngressClassParams reference).
INGRESS_CLASS_PARAMS_FIELDS = {
    "scheme",
    "namespaceSelector",
    "group",
    "ipAddressType",
    "subnets",
    "certificateARNs",
    "tags",
    "loadBalancerAttributes",
}
CRD_KINDS = {"IngressClassParams"}  # no schema in kubernetes-validate: checked field by field
SKIP_ANNOTATION = re.compile(r"^checkov\.io/skip\d+$")


@pytest.fixture(scope="module")
def renders(tmp_path_factory) -> dict[str, list[dict]]:
    """Each overlay as it is, and as `kubectl apply -k` gets it from the deploy stage's wrapper,
    rendered at once (kustomize takes a second or two each)."""
    root = tmp_path_factory.mktemp("deploy")
    cloud_extra = (f"--certificate-arn={CERTIFICATE_ARN}", f"--vpc-cidr={DEPLOYED_VPC_CIDR}")
    with ThreadPoolExecutor(max_workers=4) as pool:
        jobs = {
            **{o: pool.submit(kustomize_build, K8S_DIR / "overlays" / o) for o in OVERLAYS},
            "deployed cloud": pool.submit(deploy_and_render, "cloud", root / "cloud", *cloud_extra),
            "deployed edge": pool.submit(deploy_and_render, "edge", root / "edge"),
        }
        return {name: job.result() for name, job in jobs.items()}


@pytest.fixture(scope="module")
def overlays(renders) -> dict[str, list[dict]]:
    return {overlay: renders[overlay] for overlay in OVERLAYS}


@pytest.fixture(scope="module")
def deployed(renders) -> dict[str, list[dict]]:
    return {overlay: renders[f"deployed {overlay}"] for overlay in OVERLAYS}


@pytest.fixture(scope="module")
def checkov_report(deployed, tmp_path_factory) -> dict:
    """checkov once over both deployed overlays, a folder each (it takes seconds to start)."""
    assert CHECKOV.exists(), "checkov is missing: make test installs build/policy-venv"
    root = tmp_path_factory.mktemp("checkov")
    for overlay, documents in deployed.items():
        (root / overlay).mkdir()
        (root / overlay / "manifests.yaml").write_text(yaml.safe_dump_all(documents))
    # --skip-download: offline, without Prisma Cloud's guideline links.
    command = [str(CHECKOV), "-d", str(root), "--framework", "kubernetes", "--quiet", "--compact"]
    result = subprocess.run(
        [*command, "-o", "json", "--skip-download"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.stdout, result.stderr
    return json.loads(result.stdout)


def _all_renders(overlays, deployed):
    return [*overlays.items(), *((f"deployed {o}", docs) for o, docs in deployed.items())]


# -- Kubernetes API validity -------------------------------------------------------------------


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_object_is_valid_for_the_clusters_kubernetes_version(overlay, overlays, deployed):
    version = ContainersSettings().kubernetes_version
    for documents in (overlays[overlay], deployed[overlay]):
        for document in documents:
            if document["kind"] in CRD_KINDS:
                continue
            # strict: an unknown field is an error, not silently dropped by the API server
            kubernetes_validate.validate(document, version, strict=True)


def test_a_misspelt_field_fails_the_validation(overlays):
    """The check above can fail: strict validation refuses a field the API does not have."""
    deployment = by_kind(overlays["cloud"], "Deployment")["inventory"]
    deployment["spec"]["template"]["spec"]["containers"][0]["readOnlyRootFileSystem"] = True
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, ContainersSettings().kubernetes_version, True)


def test_the_internal_alb_uses_eks_auto_modes_ingress_class(overlays, deployed):
    for documents in (overlays["cloud"], deployed["cloud"]):
        (params,) = by_kind(documents, "IngressClassParams").values()
        assert params["apiVersion"] == "eks.amazonaws.com/v1"
        assert "namespace" not in params["metadata"]  # cluster-scoped
        assert set(params["spec"]) <= INGRESS_CLASS_PARAMS_FIELDS
        assert params["spec"]["scheme"] == "internal"
        selector = params["spec"]["namespaceSelector"]["matchLabels"]
        assert selector == {"kubernetes.io/metadata.name": NAMESPACE}
        (ingress_class,) = by_kind(documents, "IngressClass").values()
        assert ingress_class["spec"]["controller"] == "eks.amazonaws.com/alb"
        assert ingress_class["spec"]["parameters"] == {
            "apiGroup": "eks.amazonaws.com",
            "kind": "IngressClassParams",
            "name": params["metadata"]["name"],
        }
        (ingress,) = by_kind(documents, "Ingress").values()
        assert ingress["spec"]["ingressClassName"] == ingress_class["metadata"]["name"]
        assert ingress["metadata"]["annotations"]["alb.ingress.kubernetes.io/target-type"] == "ip"
    deployed_params = next(iter(by_kind(deployed["cloud"], "IngressClassParams").values()))
    assert deployed_params["spec"]["certificateARNs"] == [CERTIFICATE_ARN]
    deployed_ingress = next(iter(by_kind(deployed["cloud"], "Ingress").values()))
    listen = deployed_ingress["metadata"]["annotations"]["alb.ingress.kubernetes.io/listen-ports"]
    assert json.loads(listen) == [{"HTTPS": 443}]
    assert not by_kind(overlays["edge"], "Ingress")


# -- hardening ---------------------------------------------------------------------------------


def _dockerfile_uid() -> int:
    dockerfile = (PROJECT_ROOT / "services" / "Dockerfile").read_text()
    return int(re.search(r"useradd .*--uid (\d+)", dockerfile).group(1))


def test_every_container_runs_hardened(overlays, deployed):
    uid = _dockerfile_uid()
    for render, documents in _all_renders(overlays, deployed):
        deployments = by_kind(documents, "Deployment")
        assert deployments, render
        for name, deployment in deployments.items():
            pod = deployment["spec"]["template"]["spec"]
            where = f"{render}: {name}"
            assert pod["securityContext"]["runAsNonRoot"] is True, where
            assert pod["securityContext"]["runAsUser"] == uid, where
            assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}, where
            assert pod["automountServiceAccountToken"] is False, where
            assert "hostNetwork" not in pod and "hostPID" not in pod, where
            volumes = {volume["name"]: volume for volume in pod["volumes"]}
            for container in pod_containers(deployment):
                where = f"{render}: {name}/{container['name']}"
                security = container["securityContext"]
                assert security["allowPrivilegeEscalation"] is False, where
                assert security["readOnlyRootFilesystem"] is True, where
                assert security["capabilities"] == {"drop": ["ALL"]}, where
                assert security.get("privileged", False) is False, where
                resources = container["resources"]
                for bound in ("requests", "limits"):
                    assert set(resources[bound]) == {"cpu", "memory"}, where
                mounts = {mount["mountPath"]: mount["name"] for mount in container["volumeMounts"]}
                assert "emptyDir" in volumes[mounts["/tmp"]], where
                # The image keeps the RDS CA bundle in /etc/mes: nothing may cover it.
                assert "/etc/mes" not in mounts, where


def test_the_services_are_probed_on_their_health_routes(overlays):
    for documents in overlays.values():
        for name, deployment in by_kind(documents, "Deployment").items():
            (container,) = deployment["spec"]["template"]["spec"]["containers"]
            (port,) = container["ports"]
            assert container["startupProbe"]["httpGet"] == {
                "path": "/health/live",
                "port": port["name"],
            }
            assert container["livenessProbe"]["httpGet"]["path"] == "/health/live"
            assert container["readinessProbe"]["httpGet"]["path"] == "/health/ready"
            startup = container["startupProbe"]
            assert startup["periodSeconds"] * startup["failureThreshold"] >= 30, name


# -- names shared with the stacks --------------------------------------------------------------


def test_names_are_those_of_mes_domain_containers(overlays, deployed):
    expected = {service.name for service in SERVICES}
    for render, documents in _all_renders(overlays, deployed):
        assert set(by_kind(documents, "Deployment")) == expected, render
        accounts = by_kind(documents, "ServiceAccount")
        services = by_kind(documents, "Service")
        assert by_kind(documents, "Namespace").keys() == {NAMESPACE}
        for document in documents:
            if document["kind"] not in {"Namespace", "IngressClass", "IngressClassParams"}:
                assert document["metadata"]["namespace"] == NAMESPACE, document["metadata"]
        for service in SERVICES:
            deployment = by_kind(documents, "Deployment")[service.name]
            pod = deployment["spec"]["template"]["spec"]
            # The Pod Identity association names the namespace and this service account.
            assert pod["serviceAccountName"] == service.service_account
            assert accounts[service.service_account]["automountServiceAccountToken"] is False
            (port,) = services[service.name]["spec"]["ports"]
            assert port["port"] == service.port
            (container,) = pod["containers"]
            assert container["ports"][0]["containerPort"] == service.port
            selector = services[service.name]["spec"]["selector"]
            labels = deployment["spec"]["template"]["metadata"]["labels"]
            assert selector.items() <= labels.items()
            hpa = by_kind(documents, "HorizontalPodAutoscaler")[service.name]
            assert hpa["spec"]["scaleTargetRef"]["name"] == service.name
            assert "replicas" not in deployment["spec"]  # the autoscaler owns the count
            pdb = by_kind(documents, "PodDisruptionBudget")[service.name]
            assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()
            (migrate,) = pod["initContainers"]
            assert migrate["command"] == ["python", "-m", f"services.{service.module}", "migrate"]
            assert migrate["image"] == container["image"]


@pytest.mark.parametrize("service", SERVICES, ids=lambda service: service.name)
def test_migrate_is_a_command_of_the_service(service, monkeypatch, capsys):
    """The init container's command parses: with no settings it stops at them (exit 2, naming
    MES_DATABASE_URL), where an unknown command would stop in argparse (SystemExit)."""
    import importlib

    for name in list(__import__("os").environ):
        if name.startswith("MES_"):
            monkeypatch.delenv(name)
    main = importlib.import_module(f"services.{service.module}.__main__").main
    assert main(["migrate"]) == 2
    assert "MES_DATABASE_URL" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["migrat"])


def test_images_are_the_deploys_repository_and_commit(overlays, deployed):
    for documents in overlays.values():
        for name, deployment in by_kind(documents, "Deployment").items():
            assert {c["image"] for c in pod_containers(deployment)} == {name}
    for documents in deployed.values():
        for name, deployment in by_kind(documents, "Deployment").items():
            images = {c["image"] for c in pod_containers(deployment)}
            assert images == {f"{REGISTRY}/mes/{name}:{TAG}"}


# -- the environment the pods get --------------------------------------------------------------


def _accepted(settings: type[ServiceSettings]) -> set[str]:
    return {f"MES_{field.upper()}" for field in settings.model_fields}


def test_every_mes_variable_is_a_setting_of_its_service(overlays, deployed):
    for render, documents in _all_renders(overlays, deployed):
        for name, deployment in by_kind(documents, "Deployment").items():
            for container in pod_containers(deployment):
                given = {v["name"] for v in container["env"] if v["name"].startswith("MES_")}
                unknown = given - _accepted(SETTINGS[name])
                assert not unknown, f"{render}: {name}/{container['name']} gets {unknown}"


def _pod_environment(deployment: dict, container: dict, documents: list[dict]) -> dict[str, str]:
    """The variables the kubelet would set: ConfigMap references resolved (an optional key
    that is missing sets nothing), then $(VAR) references to earlier ones expanded."""
    configmaps = by_kind(documents, "ConfigMap")
    environment: dict[str, str] = {}
    for variable in container["env"]:
        if "value" in variable:
            value = re.sub(
                r"\$\((\w+)\)", lambda m: environment.get(m.group(1), m.group(0)), variable["value"]
            )
        elif "configMapKeyRef" in variable["valueFrom"]:
            reference = variable["valueFrom"]["configMapKeyRef"]
            data = configmaps[reference["name"]]["data"]
            if reference["key"] not in data:
                assert reference.get("optional"), f"{reference} is missing and not optional"
                continue
            value = data[reference["key"]]
        else:
            continue  # a Secret the site creates
        environment[variable["name"]] = value
    return environment


def _plant_config_of(deployment: dict, documents: list[dict], folder: Path) -> Path:
    volume = next(
        v for v in deployment["spec"]["template"]["spec"]["volumes"] if v["name"] == "plant"
    )
    configmap = by_kind(documents, "ConfigMap")[volume["configMap"]["name"]]
    path = folder / "plant.yaml"
    path.write_text(configmap["data"]["plant.yaml"])
    return path


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_services_accept_the_environment_the_deploy_gives_them(overlay, deployed, tmp_path):
    """Each container's whole environment, as the kubelet builds it, passes the service's own
    settings check (the one that exits 2 at start)."""
    documents = deployed[overlay]
    for name, deployment in by_kind(documents, "Deployment").items():
        for container in pod_containers(deployment):
            environment = _pod_environment(deployment, container, documents)
            if "MES_PLANT_CONFIG" in environment:
                environment["MES_PLANT_CONFIG"] = str(
                    _plant_config_of(deployment, documents, tmp_path)
                )
            settings = SETTINGS[name].from_environ(environment)
            service = next(s for s in SERVICES if s.name == name)
            url = settings.database_url
            assert url.startswith(f"postgresql+psycopg://{service.database}@")
            assert f"/{service.database}?" in url
            expected_instance = "cloud" if overlay == "cloud" else EDGE_SITE
            assert settings.instance_id == expected_instance
            assert settings.port == service.port
            if overlay == "cloud":
                assert "sslmode=verify-full&sslrootcert=/etc/mes/rds-ca.pem" in url
                assert environment["MES_DATABASE_IAM_AUTH"] == "true"
                assert environment["AWS_REGION"] == "eu-central-1"
            else:
                assert url.endswith("?sslmode=require")
                assert environment["MES_DATABASE_IAM_AUTH"] == "false"
                password = next(v for v in container["env"] if v["name"] == "PGPASSWORD")
                secret = password["valueFrom"]["secretKeyRef"]
                assert secret == {"name": f"mes-database-{name}", "key": "password"}
            if name == "production-execution":
                inventory = next(s for s in SERVICES if s.name == "inventory")
                assert settings.inventory_url == (
                    f"http://{inventory.name}.{NAMESPACE}.svc.cluster.local:{inventory.port}"
                )
                assert EDGE_SITE in settings.layout().sites
                if overlay == "cloud":
                    assert settings.edge_sites == (EDGE_SITE,)
                    assert settings.orders_table == "mes-orders"


def test_a_placeholder_site_id_stops_an_edge_pod_at_start(overlays):
    """The edge overlay without the deploy's MES_INSTANCE_ID must not run as the cloud."""
    documents = copy.deepcopy(overlays["edge"])
    (platform,) = by_kind(documents, "ConfigMap").values()
    platform["data"]["DATABASE_HOST"] = "postgres.plant.example"  # what the deploy adds
    deployment = by_kind(documents, "Deployment")["inventory"]
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    environment = _pod_environment(deployment, container, documents)
    assert environment["MES_INSTANCE_ID"] == "<edge-site-id>"
    with pytest.raises(ValueError, match="MES_INSTANCE_ID"):
        ServiceSettings.from_environ(environment)


# -- network -----------------------------------------------------------------------------------


def _egress_ports(policy: dict) -> set[tuple[str, int, str | None]]:
    ports = set()
    for rule in policy["spec"].get("egress", []):
        cidrs = [peer["ipBlock"]["cidr"] for peer in rule.get("to", []) if "ipBlock" in peer]
        for port in rule.get("ports", []):
            ports.add((port["protocol"], port["port"], cidrs[0] if cidrs else None))
    return ports


def test_network_policies_deny_by_default_and_open_only_the_platforms_ports(overlays, deployed):
    for render, documents in _all_renders(overlays, deployed):
        policies = by_kind(documents, "NetworkPolicy")
        deny = policies["default-deny"]["spec"]
        assert deny == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}, render
        egress = set().union(*(_egress_ports(p) for p in policies.values()))
        assert egress == {
            ("UDP", 53, None),
            ("TCP", 53, None),
            ("TCP", 443, None),
            ("TCP", 5432, None),
            ("TCP", 9098, None),
            ("TCP", 8080, None),  # to the other service (a pod selector)
            ("TCP", 80, "169.254.170.23/32"),  # the Pod Identity agent
        }, render
        for name, deployment in by_kind(documents, "Deployment").items():
            labels = deployment["spec"]["template"]["metadata"]["labels"]
            ingress = [
                rule
                for policy in policies.values()
                if policy["spec"]["podSelector"].get("matchLabels", {}).items() <= labels.items()
                for rule in policy["spec"].get("ingress", [])
            ]
            assert ingress, f"{render}: nothing may reach {name}"
            assert {port["port"] for rule in ingress for port in rule["ports"]} == {8080}


def test_the_alb_reaches_the_pods_from_the_vpc(overlays, deployed):
    def alb_cidr(documents):
        policy = by_kind(documents, "NetworkPolicy")["from-load-balancer"]
        (rule,) = policy["spec"]["ingress"]
        return rule["from"][0]["ipBlock"]["cidr"]

    assert alb_cidr(overlays["cloud"]) == ContainersSettings().vpc_cidr
    assert alb_cidr(deployed["cloud"]) == DEPLOYED_VPC_CIDR


def _route_paths() -> dict[str, set[str]]:
    """Each service's API paths, from its FastAPI app (not served: no database is touched)."""
    from services.inventory.app import build_app as inventory_app
    from services.production_execution.app import build_app as production_app

    url = "postgresql+psycopg://nobody@127.0.0.1:9/nothing"
    production = ProductionSettings.from_environ(
        {
            "MES_DATABASE_URL": url,
            "MES_PLANT_CONFIG": str(PROJECT_ROOT / "config" / "demo-plant.yaml"),
            "MES_EDGE_SITES": EDGE_SITE,  # serves /sync
            "MES_AWS_REGION": "eu-central-1",
            "MES_ORDERS_TABLE": "o",
            "MES_PRODUCTS_TABLE": "p",
            "MES_PROCESS_PLANS_TABLE": "pp",
        }
    )
    apps = {
        "production-execution": production_app(production),
        "inventory": inventory_app(ServiceSettings.from_environ({"MES_DATABASE_URL": url})),
    }
    internal = ("/health/", "/metrics", "/docs", "/openapi", "/redoc")
    return {
        name: {path for path in app.openapi()["paths"] if not path.startswith(internal)}
        for name, app in apps.items()
    }


def _routed_to(ingress: dict, path: str) -> str | None:
    """The backend of the longest Prefix rule matching ``path`` element by element, as
    Kubernetes defines pathType Prefix."""
    best = None
    for rule in ingress["spec"]["rules"]:
        for entry in rule["http"]["paths"]:
            prefix = entry["path"].rstrip("/")
            if path == prefix or path.startswith(prefix + "/"):
                if best is None or len(prefix) > len(best[0]):
                    best = (prefix, entry["backend"]["service"]["name"])
    return best[1] if best else None


def test_the_ingress_routes_every_api_path_to_its_own_service(overlays):
    (ingress,) = by_kind(overlays["cloud"], "Ingress").values()
    routes = _route_paths()
    for service, paths in routes.items():
        assert paths, service
        for path in paths:
            assert _routed_to(ingress, path) == service, path
    # and no rule is dead: each prefix leads to a route of its backend
    for entry in ingress["spec"]["rules"][0]["http"]["paths"]:
        assert entry["pathType"] == "Prefix"
        backend = entry["backend"]["service"]["name"]
        assert any(p == entry["path"] or p.startswith(entry["path"] + "/") for p in routes[backend])
    assert _routed_to(ingress, "/health/ready") is None  # health and metrics stay inside


# -- the overlays' differences -----------------------------------------------------------------


def test_the_edge_overlay_serves_the_site_network_with_less(overlays):
    cloud, edge = overlays["cloud"], overlays["edge"]
    for name, service in by_kind(edge, "Service").items():
        assert service["spec"]["type"] == "LoadBalancer", name
        assert by_kind(cloud, "Service")[name]["spec"]["type"] == "ClusterIP"
    for name in by_kind(edge, "HorizontalPodAutoscaler"):
        edge_hpa = by_kind(edge, "HorizontalPodAutoscaler")[name]["spec"]
        cloud_hpa = by_kind(cloud, "HorizontalPodAutoscaler")[name]["spec"]
        assert edge_hpa["minReplicas"] == 1 and cloud_hpa["minReplicas"] >= 2
        assert edge_hpa["maxReplicas"] <= cloud_hpa["maxReplicas"]
        metric = edge_hpa["metrics"][0]["resource"]
        assert metric["name"] == "cpu" and metric["target"]["type"] == "Utilization"

    def millicores(value: str) -> float:
        return float(value[:-1]) if value.endswith("m") else float(value) * 1000

    for name in by_kind(edge, "Deployment"):
        (edge_container,) = by_kind(edge, "Deployment")[name]["spec"]["template"]["spec"][
            "containers"
        ]
        (cloud_container,) = by_kind(cloud, "Deployment")[name]["spec"]["template"]["spec"][
            "containers"
        ]
        edge_cpu = millicores(edge_container["resources"]["requests"]["cpu"])
        assert edge_cpu < millicores(cloud_container["resources"]["requests"]["cpu"]), name


# -- policy scan -------------------------------------------------------------------------------


def test_checkov_finds_nothing_that_is_not_skipped_with_a_reason(checkov_report, deployed):
    summary = checkov_report["summary"]
    assert summary["parsing_errors"] == 0
    assert summary["resource_count"] >= sum(len(docs) for docs in deployed.values())
    assert summary["passed"] >= 300  # the scan ran its checks on both overlays
    failed = [
        (check["check_id"], check["file_path"], check["resource"], check["check_name"])
        for check in checkov_report["results"]["failed_checks"]
    ]
    assert not failed
    # Every skip is the manifest's own, each with its reason.
    skipped = 0
    for documents in deployed.values():
        for document in documents:
            for key, value in document["metadata"].get("annotations", {}).items():
                if SKIP_ANNOTATION.match(key):
                    check, _, reason = value.partition("=")
                    assert re.fullmatch(r"CKV_K8S_\d+", check), value
                    assert len(reason.split()) >= 8, f"{value!r}: say why"
                    skipped += 1
    assert summary["skipped"] == skipped
