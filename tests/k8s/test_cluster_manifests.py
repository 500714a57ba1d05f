"""The cloud cluster's own settings (services/k8s/cluster), rendered with kustomize as the deploy
stage applies them before the overlay: valid for the cluster's Kubernetes version, and turning on
EKS Auto Mode's network policy controller, without which the overlays' NetworkPolicies are
accepted and not enforced (EKS user guide, "Use Network Policies with EKS Auto Mode")."""

from __future__ import annotations

import kubernetes_validate
import pytest

from mes_domain.containers import NAMESPACE, ContainersSettings
from tests.k8s.render import K8S_DIR, by_kind, kustomize_build

CLUSTER_DIR = K8S_DIR / "cluster"
# Documented in the user guide's step 1 ("Enable Network Policy Controller").
CONTROLLER_CONFIGMAP = ("kube-system", "amazon-vpc-cni")
CONTROLLER_SWITCH = {"enable-network-policy-controller": "true"}


@pytest.fixture(scope="module")
def cluster() -> list[dict]:
    return kustomize_build(CLUSTER_DIR)


@pytest.fixture(scope="module")
def cloud_overlay() -> list[dict]:
    return kustomize_build(K8S_DIR / "overlays" / "cloud")


def test_every_object_is_valid_for_the_clusters_kubernetes_version(cluster):
    # strict: an unknown field is an error. Only core kinds here: kubernetes-validate has no
    # schema of Auto Mode's CRDs (NodeClass, NodePool), which would need their documented
    # fields checked as tests/k8s/test_manifests.py checks IngressClassParams.
    assert cluster
    for document in cluster:
        kubernetes_validate.validate(document, ContainersSettings().kubernetes_version, strict=True)


def test_a_boolean_switch_fails_the_validation(cluster):
    """ConfigMap data are strings: YAML's bare true would be refused by the API server."""
    (configmap,) = by_kind(cluster, "ConfigMap").values()
    wrong = {**configmap, "data": {"enable-network-policy-controller": True}}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(wrong, ContainersSettings().kubernetes_version, strict=True)


def test_the_network_policy_controller_is_turned_on(cluster):
    configmaps = {
        (doc["metadata"]["namespace"], doc["metadata"]["name"]): doc
        for doc in cluster
        if doc["kind"] == "ConfigMap"
    }
    # By this exact name (no generator's hash suffix): the controller reads it so.
    assert configmaps[CONTROLLER_CONFIGMAP]["data"] == CONTROLLER_SWITCH


def test_the_overlay_has_the_policies_the_controller_enforces(cloud_overlay):
    policies = by_kind(cloud_overlay, "NetworkPolicy")
    assert "default-deny" in policies
    assert all(p["metadata"]["namespace"] == NAMESPACE for p in policies.values())


def test_the_cluster_part_and_the_overlay_share_no_object(cluster, cloud_overlay):
    """Two `kubectl apply -k` of the same object would undo each other's changes; the cluster
    part stays out of the services' namespace, which the overlay owns."""

    def keys(documents):
        return {
            (doc["kind"], doc["metadata"].get("namespace"), doc["metadata"]["name"])
            for doc in documents
        }

    assert not keys(cluster) & keys(cloud_overlay)
    assert all(doc["metadata"].get("namespace") != NAMESPACE for doc in cluster)
