"""The exact permissions the operator needs, written once as data.

The Helm chart renders these rules (`python -m pixelmesh.operator.rbac` prints the manifests) and
an integration test runs the operator with a ServiceAccount token holding exactly these rules, so
a missing verb fails a test instead of a production rollout. Each rule says why it exists.

- ImagePipelines and RegionPools: watched by kopf, patched for its finalizer and annotations,
  their status written by the operator.
- Children of pipelines (ConfigMaps, Secrets with NATS credentials, Deployments, Services,
  PodDisruptionBudgets, ServiceMonitors): read, created, patched back on drift, deleted when a
  region leaves a pipeline. No `update`: every change is a merge patch.
- Deployments' `spec.replicas` is written with the same patch verb (no `scale` subresource).
- KEDA ScaledObjects: emitted for pipelines under `autoscaling.engine: keda` while KEDA's CRD
  exists, deleted when a pipeline goes back to the built-in engine or leaves a region.
- CustomResourceDefinitions: kopf watches them to notice resources appearing; the operator reads
  the Prometheus Operator's ServiceMonitor CRD and KEDA's ScaledObject CRD to know whether to emit
  those objects.
- Namespaces: kopf lists and watches them to follow the namespaces it serves; in a member cluster
  the operator creates a pipeline's namespace when it is missing (read first, never deleted). The
  same rules are bound in every member cluster, to the identity its kubeconfig Secret names.
- Events: what the operator did and why something failed (kopf posts them with `create`).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any

import yaml

from pixelmesh.operator import names


@dataclass(frozen=True, slots=True)
class PolicyRule:
    """One rule of a ClusterRole."""

    api_groups: tuple[str, ...]
    resources: tuple[str, ...]
    verbs: tuple[str, ...]
    why: str

    def to_manifest(self) -> dict[str, list[str]]:
        return {
            "apiGroups": list(self.api_groups),
            "resources": list(self.resources),
            "verbs": list(self.verbs),
        }


RULES: tuple[PolicyRule, ...] = (
    PolicyRule(
        (names.GROUP,),
        (names.PIPELINE_PLURAL, names.POOL_PLURAL),
        ("get", "list", "watch", "patch"),
        "kopf watches both kinds and patches its finalizer and bookkeeping annotations onto them",
    ),
    PolicyRule(
        (names.GROUP,),
        (f"{names.PIPELINE_PLURAL}/status", f"{names.POOL_PLURAL}/status"),
        ("get", "patch"),
        "the operator writes both kinds' status",
    ),
    PolicyRule(
        ("",),
        ("configmaps", "services", "secrets"),
        ("get", "create", "patch", "delete"),
        "rendered pipeline files, metrics Services, copies of regions' NATS credentials",
    ),
    PolicyRule(
        ("apps",),
        ("deployments",),
        ("get", "list", "create", "patch", "delete"),
        "worker Deployments, listed by label to find regions a pipeline left",
    ),
    PolicyRule(
        ("policy",),
        ("poddisruptionbudgets",),
        ("get", "create", "patch", "delete"),
        "one PodDisruptionBudget per pipeline and region",
    ),
    PolicyRule(
        (names.SERVICE_MONITOR_GROUP,),
        ("servicemonitors",),
        ("get", "create", "patch", "delete"),
        "ServiceMonitors for the Prometheus Operator, when it is installed",
    ),
    PolicyRule(
        (names.SCALED_OBJECT_GROUP,),
        ("scaledobjects",),
        ("get", "create", "patch", "delete"),
        "KEDA ScaledObjects for pipelines scaled by KEDA, when KEDA is installed",
    ),
    PolicyRule(
        ("apiextensions.k8s.io",),
        ("customresourcedefinitions",),
        ("get", "list", "watch"),
        "kopf notices resources appearing; the operator checks for the ServiceMonitor and ScaledObject CRDs",
    ),
    PolicyRule(
        ("",),
        ("namespaces",),
        ("get", "list", "watch", "create"),
        "kopf follows the namespaces it serves; a pipeline's namespace is created in member clusters",
    ),
    PolicyRule(
        ("",),
        ("events",),
        ("create",),
        "Events about what the operator did and why something failed",
    ),
)

CLUSTER_ROLE = "pixelmesh-operator"


def cluster_role(name: str = CLUSTER_ROLE) -> dict[str, Any]:
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": {"name": name, "labels": {names.LABEL_PART_OF: names.PART_OF}},
        "rules": [rule.to_manifest() for rule in RULES],
    }


def cluster_role_binding(namespace: str, service_account: str, name: str = CLUSTER_ROLE) -> dict[str, Any]:
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRoleBinding",
        "metadata": {"name": name, "labels": {names.LABEL_PART_OF: names.PART_OF}},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": name},
        "subjects": [{"kind": "ServiceAccount", "name": service_account, "namespace": namespace}],
    }


def manifests(
    namespace: str = "pixelmesh-system", service_account: str = CLUSTER_ROLE
) -> list[dict[str, Any]]:
    """ServiceAccount, ClusterRole and ClusterRoleBinding for an operator in `namespace`."""
    return [
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": {"name": service_account, "namespace": namespace},
        },
        cluster_role(),
        cluster_role_binding(namespace, service_account),
    ]


def render(namespace: str = "pixelmesh-system", service_account: str = CLUSTER_ROLE) -> str:
    return yaml.safe_dump_all(manifests(namespace, service_account), sort_keys=False)


if __name__ == "__main__":
    sys.stdout.write(render(*sys.argv[1:3]))
