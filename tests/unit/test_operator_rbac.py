"""The operator's RBAC: every kind it writes is covered, with no verb it never uses."""

from __future__ import annotations

import yaml

from pixelmesh.operator import names, rbac
from pixelmesh.operator.clients import kube


def allowed(group: str, resource: str, verb: str) -> bool:
    return any(group in r.api_groups and resource in r.resources and verb in r.verbs for r in rbac.RULES)


def group_of(kind: kube.Kind) -> str:
    return kind.api_version.rsplit("/", 1)[0] if "/" in kind.api_version else ""


def test_every_child_kind_can_be_read_created_patched_and_deleted() -> None:
    for kind in kube.KINDS.values():
        for verb in ("get", "create", "patch", "delete"):
            assert allowed(group_of(kind), kind.plural, verb), f"{verb} {kind.plural}"


def test_the_custom_resources_can_be_watched_and_their_status_written() -> None:
    for plural in (names.PIPELINE_PLURAL, names.POOL_PLURAL):
        for verb in ("list", "watch", "patch"):
            assert allowed(names.GROUP, plural, verb)
        assert allowed(names.GROUP, f"{plural}/status", "patch")
    assert allowed("", "events", "create")


def test_no_rule_grants_more_than_the_operator_uses() -> None:
    verbs = {verb for rule in rbac.RULES for verb in rule.verbs}
    assert verbs <= {"get", "list", "watch", "create", "patch", "delete"}
    assert not any("*" in rule.resources or "*" in rule.api_groups for rule in rbac.RULES)
    assert all(rule.why for rule in rbac.RULES)


def test_rendered_manifests_bind_the_cluster_role_to_the_service_account() -> None:
    documents = list(yaml.safe_load_all(rbac.render("pm-system", "pm-operator")))
    kinds = [d["kind"] for d in documents]
    assert kinds == ["ServiceAccount", "ClusterRole", "ClusterRoleBinding"]
    binding = documents[2]
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "pm-operator", "namespace": "pm-system"}
    ]
    assert binding["roleRef"]["name"] == documents[1]["metadata"]["name"]
    assert len(documents[1]["rules"]) == len(rbac.RULES)
