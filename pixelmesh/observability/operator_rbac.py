"""The operator's RBAC rules (pixelmesh.operator.rbac) split by scope, as the Helm chart grants them.

`operator/rbac.py` declares what the operator needs, once. The chart grants it two ways:
cluster-wide, every rule in one ClusterRole; namespaced, the rules on namespaced resources go
into a Role in each watched namespace and only the rules on cluster-scoped resources (RegionPools,
CRDs) stay in a ClusterRole. A rule naming resources of both scopes is split resource by resource,
so the union of what the chart grants is exactly the declared set in both modes.

Caveat: kopf posts the Events of cluster-scoped objects (RegionPools) to the `default` namespace;
in namespaced mode those Events are only posted when `default` is watched.
"""

from __future__ import annotations

from collections.abc import Iterable

from pixelmesh.operator import names, rbac

Rule = dict[str, list[str]]

CLUSTER_SCOPED: frozenset[tuple[str, str]] = frozenset(
    {
        (names.GROUP, names.POOL_PLURAL),
        (names.GROUP, f"{names.POOL_PLURAL}/status"),
        ("apiextensions.k8s.io", "customresourcedefinitions"),
        ("", "namespaces"),
        ("", "nodes"),
    }
)
"""Resources without a namespace: a Role cannot grant them."""


def _rules(rules: Iterable[rbac.PolicyRule], *, cluster_scoped: bool) -> list[Rule]:
    selected: list[Rule] = []
    for rule in rules:
        for group in rule.api_groups:
            resources = [r for r in rule.resources if ((group, r) in CLUSTER_SCOPED) == cluster_scoped]
            if resources:
                selected.append({"apiGroups": [group], "resources": resources, "verbs": list(rule.verbs)})
    return selected


def rbac_document(rules: Iterable[rbac.PolicyRule] = rbac.RULES) -> dict[str, list[Rule]]:
    """The chart's `files/operator-rbac.yaml`: the rules of each mode and scope."""
    declared = list(rules)
    return {
        "clusterWide": [rule.to_manifest() for rule in declared],
        "clusterScoped": _rules(declared, cluster_scoped=True),
        "namespaced": _rules(declared, cluster_scoped=False),
    }


def permissions(rules: Iterable[Rule]) -> frozenset[tuple[str, str, str]]:
    """Every (api group, resource, verb) the rules grant: what equality of two rule lists means."""
    return frozenset(
        (group, resource, verb)
        for rule in rules
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    )
