"""The chart grants the operator exactly what pixelmesh/operator/rbac.py declares, in both modes."""

from __future__ import annotations

from pixelmesh.observability import operator_rbac
from pixelmesh.operator import rbac
from tests.unit.chart_rendering import CHART_DIR, NAMESPACE, Obj, named, of_kind, render, values_file

NAMESPACED = CHART_DIR / "ci" / "namespaced-values.yaml"
DECLARED = operator_rbac.permissions(rule.to_manifest() for rule in rbac.RULES)


def bound_to_operator(binding: Obj, objects: list[Obj]) -> bool:
    account = named(objects, "ServiceAccount", "-operator")["metadata"]
    expected = [{"kind": "ServiceAccount", "name": account["name"], "namespace": NAMESPACE}]
    return bool(binding["subjects"] == expected)


def test_cluster_wide_mode_grants_the_declared_rules_in_one_cluster_role() -> None:
    objects = render()
    (role,) = of_kind(objects, "ClusterRole")
    assert operator_rbac.permissions(role["rules"]) == DECLARED
    assert role["rules"] == [rule.to_manifest() for rule in rbac.RULES]
    assert of_kind(objects, "Role") == []
    (binding,) = of_kind(objects, "ClusterRoleBinding")
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "ClusterRole",
        "name": role["metadata"]["name"],
    }
    assert bound_to_operator(binding, objects)


def test_namespaced_mode_grants_namespaced_rules_only_in_the_watched_namespaces() -> None:
    values = values_file(NAMESPACED)
    objects = render(values)
    (cluster_role,) = of_kind(objects, "ClusterRole")
    cluster_wide = operator_rbac.permissions(cluster_role["rules"])
    assert {resource for _, resource, _ in cluster_wide} <= {r for _, r in operator_rbac.CLUSTER_SCOPED}
    roles = of_kind(objects, "Role")
    assert sorted(role["metadata"]["namespace"] for role in roles) == sorted(
        values["operator"]["watchNamespaces"]
    )
    for role in roles:
        assert operator_rbac.permissions(role["rules"]) | cluster_wide == DECLARED
        assert not operator_rbac.permissions(role["rules"]) & cluster_wide
    bindings = of_kind(objects, "RoleBinding")
    assert sorted(b["metadata"]["namespace"] for b in bindings) == sorted(
        values["operator"]["watchNamespaces"]
    )
    for binding in [*bindings, *of_kind(objects, "ClusterRoleBinding")]:
        assert bound_to_operator(binding, objects)


def test_the_split_keeps_every_declared_permission_whatever_the_rules_mix() -> None:
    mixed = rbac.PolicyRule(
        ("pixelmesh.io", "apps"), ("regionpools", "deployments"), ("get", "watch"), "mixed scopes"
    )
    document = operator_rbac.rbac_document([mixed])
    both = operator_rbac.permissions(document["clusterScoped"]) | operator_rbac.permissions(
        document["namespaced"]
    )
    assert (
        both
        == operator_rbac.permissions(document["clusterWide"])
        == operator_rbac.permissions([mixed.to_manifest()])
    )
    assert ("pixelmesh.io", "regionpools", "get") in operator_rbac.permissions(document["clusterScoped"])
    assert ("apps", "deployments", "get") in operator_rbac.permissions(document["namespaced"])


def test_the_chart_grants_nothing_beyond_the_declaration_and_no_wildcards() -> None:
    for values in ({}, values_file(NAMESPACED)):
        for role in [*of_kind(render(values), "ClusterRole"), *of_kind(render(values), "Role")]:
            granted = operator_rbac.permissions(role["rules"])
            assert granted <= DECLARED
            assert not any("*" in part for permission in granted for part in permission)
