"""The test control plane behaves as a real cluster where operators get hurt.

Each test drives the real kube-apiserver (and kube-controller-manager) from
`e2e.cluster`, mostly through the wheel's kubectl as a platform team would, and
checks a behaviour a mock of the API would get wrong: schema and CEL validation of
custom resources, RBAC refusals, server-side apply ownership, optimistic
concurrency, strict field validation, garbage collection.
"""

from __future__ import annotations

import json
import textwrap
import time
from collections.abc import Iterator
from http import HTTPStatus
from typing import Any

import pytest
import yaml

from e2e.cluster import ApiError, Binaries, ControlPlane, Kubectl, KubectlError

CRD_NAME = "widgets.test.pixelmesh.io"

WIDGET_CRD = textwrap.dedent(
    """\
    apiVersion: apiextensions.k8s.io/v1
    kind: CustomResourceDefinition
    metadata:
      name: widgets.test.pixelmesh.io
    spec:
      group: test.pixelmesh.io
      scope: Namespaced
      names:
        plural: widgets
        singular: widget
        kind: Widget
        shortNames: [wdg]
      versions:
        - name: v1
          served: true
          storage: true
          subresources:
            status: {}
          schema:
            openAPIV3Schema:
              type: object
              properties:
                spec:
                  type: object
                  description: The desired state of a widget.
                  required: [size]
                  x-kubernetes-validations:
                    - rule: self.minReplicas <= self.maxReplicas
                      message: minReplicas must not exceed maxReplicas
                  properties:
                    size:
                      type: string
                      description: How big the widget is.
                      enum: [small, large]
                    minReplicas:
                      type: integer
                      minimum: 0
                      default: 0
                    maxReplicas:
                      type: integer
                      minimum: 0
                      default: 1
                status:
                  type: object
                  x-kubernetes-preserve-unknown-fields: true
    """
)


def widget(name: str, spec: str) -> str:
    header = f"apiVersion: test.pixelmesh.io/v1\nkind: Widget\nmetadata:\n  name: {name}\nspec:\n"
    return header + textwrap.indent(textwrap.dedent(spec), "  ")


def eventually(check: Any, *, timeout: float = 60.0, interval: float = 0.25) -> Any:
    """Call `check` until it returns something truthy; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            pytest.fail(f"{check.__name__} did not hold within {timeout} s")
        time.sleep(interval)


@pytest.fixture(scope="module")
def widget_crd(control_plane: ControlPlane) -> Iterator[str]:
    kubectl = control_plane.kubectl()
    kubectl.apply(WIDGET_CRD)
    kubectl.run("wait", "--for=condition=Established", f"crd/{CRD_NAME}", "--timeout=60s")
    yield CRD_NAME
    kubectl.run("delete", f"crd/{CRD_NAME}", "--wait=false")


# --- the server and the client are the pinned release -----------------------------------


def test_server_reports_the_pinned_kubernetes_version(control_plane: ControlPlane, kubectl: Kubectl) -> None:
    versions = json.loads(kubectl.run("version", "--output=json").stdout)
    assert versions["serverVersion"]["gitVersion"] == control_plane.kubernetes_version
    assert versions["clientVersion"]["major"] == "1"


# --- CRDs and custom-resource validation ----------------------------------------------


def test_crd_with_structural_schema_is_established(widget_crd: str, kubectl: Kubectl) -> None:
    crd = json.loads(kubectl.run("get", f"crd/{widget_crd}", "--output=json").stdout)
    conditions = {c["type"]: c["status"] for c in crd["status"]["conditions"]}
    assert conditions["Established"] == "True"
    assert conditions["NamesAccepted"] == "True"


def test_crd_with_non_structural_schema_is_refused(control_plane: ControlPlane) -> None:
    crd = yaml.safe_load(WIDGET_CRD)
    crd["metadata"]["name"] = "gadgets.test.pixelmesh.io"
    crd["spec"]["names"] = {"plural": "gadgets", "singular": "gadget", "kind": "Gadget"}
    # An object property without a type is what makes a schema non-structural.
    del crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["type"]
    with pytest.raises(KubectlError) as refused:
        control_plane.kubectl().apply(yaml.safe_dump(crd))
    assert "must not be empty for specified object fields" in refused.value.stderr
    missing = control_plane.kubectl().run("get", "crd/gadgets.test.pixelmesh.io", check=False)
    assert missing.returncode != 0


def test_custom_resource_outside_the_schema_is_refused_at_apply(
    widget_crd: str, namespace: str, kubectl: Kubectl
) -> None:
    with pytest.raises(KubectlError) as refused:
        kubectl.apply(widget("negative", "size: small\nminReplicas: -1\n"), "-n", namespace)
    assert "spec.minReplicas in body should be greater than or equal to 0" in refused.value.stderr

    with pytest.raises(KubectlError) as refused:
        kubectl.apply(widget("medium", "size: medium\n"), "-n", namespace)
    assert 'Unsupported value: "medium"' in refused.value.stderr


def test_custom_resource_breaking_a_cel_rule_is_refused_with_its_message(
    widget_crd: str, namespace: str, kubectl: Kubectl
) -> None:
    with pytest.raises(KubectlError) as refused:
        kubectl.apply(widget("inverted", "size: large\nminReplicas: 3\nmaxReplicas: 2\n"), "-n", namespace)
    assert "minReplicas must not exceed maxReplicas" in refused.value.stderr


def test_valid_custom_resource_is_stored_with_schema_defaults(
    widget_crd: str, namespace: str, kubectl: Kubectl
) -> None:
    kubectl.apply(widget("fine", "size: small\n"), "-n", namespace)
    stored = json.loads(kubectl.run("get", "wdg/fine", "-n", namespace, "-o", "json").stdout)
    assert stored["spec"] == {"size": "small", "minReplicas": 0, "maxReplicas": 1}


def test_crd_schema_is_published_to_openapi_for_kubectl_explain(widget_crd: str, kubectl: Kubectl) -> None:
    def explained() -> bool:
        result = kubectl.run("explain", "widgets.spec.size", check=False)
        return result.returncode == 0 and "How big the widget is." in result.stdout

    eventually(explained, timeout=30)


# --- strict field validation ---------------------------------------------------------


def test_kubectl_apply_strict_validation_refuses_unknown_fields(
    widget_crd: str, namespace: str, kubectl: Kubectl
) -> None:
    typo = widget("typo", "size: small\nmaxReplica: 2\n")
    with pytest.raises(KubectlError) as refused:
        kubectl.apply(typo, "-n", namespace, "--validate=strict")
    assert 'unknown field "spec.maxReplica"' in refused.value.stderr

    config_map = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: typo\ndatta:\n  a: b\n"
    with pytest.raises(KubectlError) as refused:
        kubectl.apply(config_map, "-n", namespace, "--validate=strict")
    assert 'unknown field "datta"' in refused.value.stderr


def test_without_validation_the_server_prunes_unknown_fields(
    widget_crd: str, namespace: str, kubectl: Kubectl
) -> None:
    kubectl.apply(widget("pruned", "size: small\nmaxReplica: 2\n"), "-n", namespace, "--validate=false")
    stored = json.loads(kubectl.run("get", "wdg/pruned", "-n", namespace, "-o", "json").stdout)
    assert "maxReplica" not in stored["spec"]


# --- RBAC and ServiceAccount tokens ---------------------------------------------------

NARROW_ROLE = textwrap.dedent(
    """\
    apiVersion: rbac.authorization.k8s.io/v1
    kind: Role
    metadata:
      name: configmap-reader
    rules:
      - apiGroups: [""]
        resources: [configmaps]
        verbs: [get, list, watch]
    ---
    apiVersion: rbac.authorization.k8s.io/v1
    kind: RoleBinding
    metadata:
      name: reader-reads-configmaps
    roleRef:
      apiGroup: rbac.authorization.k8s.io
      kind: Role
      name: configmap-reader
    subjects:
      - kind: ServiceAccount
        name: reader
    """
)


def test_service_account_gets_exactly_what_its_role_grants(
    control_plane: ControlPlane, namespace: str, kubectl: Kubectl
) -> None:
    kubectl.apply(NARROW_ROLE, "-n", namespace)
    reader_config = control_plane.service_account_kubeconfig(namespace, "reader")
    reader = kubectl.as_user(reader_config)

    assert reader.run("get", "configmaps").returncode == 0
    assert reader.run("auth", "can-i", "list", "configmaps").stdout.strip() == "yes"
    with pytest.raises(KubectlError) as refused:
        reader.run("create", "configmap", "not-allowed", "--from-literal=a=b")
    assert (
        f'User "system:serviceaccount:{namespace}:reader" cannot create resource "configmaps"'
        in refused.value.stderr
    )

    token = control_plane.service_account_token(namespace, "reader")
    api = control_plane.api(token)
    assert api.get(f"/api/v1/namespaces/{namespace}/configmaps")["kind"] == "ConfigMapList"
    with pytest.raises(ApiError) as forbidden:
        api.get(f"/api/v1/namespaces/{namespace}/secrets")
    assert forbidden.value.status == HTTPStatus.FORBIDDEN


def test_unknown_bearer_token_is_unauthorized(control_plane: ControlPlane) -> None:
    with pytest.raises(ApiError) as refused:
        control_plane.api("not-a-token").get("/api/v1/namespaces")
    assert refused.value.status == HTTPStatus.UNAUTHORIZED


# --- server-side apply and optimistic concurrency -------------------------------------


def config_map(name: str, value: str) -> str:
    return f"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\ndata:\n  field: {value}\n"


def test_server_side_apply_detects_and_forces_field_conflicts(namespace: str, kubectl: Kubectl) -> None:
    ns = ("-n", namespace, "--server-side")
    kubectl.apply(config_map("shared", "alice"), *ns, "--field-manager=alice")
    with pytest.raises(KubectlError) as conflict:
        kubectl.apply(config_map("shared", "bob"), *ns, "--field-manager=bob")
    assert 'conflict with "alice"' in conflict.value.stderr

    kubectl.apply(config_map("shared", "bob"), *ns, "--field-manager=bob", "--force-conflicts")
    stored = json.loads(
        kubectl.run("get", "cm/shared", "-n", namespace, "-o", "json", "--show-managed-fields").stdout
    )
    assert stored["data"] == {"field": "bob"}
    managers = {entry["manager"] for entry in stored["metadata"]["managedFields"]}
    assert "bob" in managers
    assert "alice" not in managers


def test_server_side_apply_conflict_is_http_409(control_plane: ControlPlane, namespace: str) -> None:
    api = control_plane.api()
    path = f"/api/v1/namespaces/{namespace}/configmaps/applied"
    body: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "applied"},
        "data": {"k": "first"},
    }
    api.apply(path, body, field_manager="first")
    body["data"] = {"k": "second"}
    with pytest.raises(ApiError) as conflict:
        api.apply(path, body, field_manager="second")
    assert conflict.value.status == HTTPStatus.CONFLICT
    assert api.apply(path, body, field_manager="second", force=True)["data"] == {"k": "second"}


def test_update_with_a_stale_resource_version_is_refused_with_409(
    control_plane: ControlPlane, namespace: str
) -> None:
    api = control_plane.api()
    collection = f"/api/v1/namespaces/{namespace}/configmaps"
    created = api.post(
        collection,
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cas"}, "data": {"n": "0"}},
    )
    stale = json.loads(json.dumps(created))

    created["data"] = {"n": "1"}
    updated = api.put(f"{collection}/cas", created)
    assert updated["metadata"]["resourceVersion"] != stale["metadata"]["resourceVersion"]

    stale["data"] = {"n": "2"}
    with pytest.raises(ApiError) as conflict:
        api.put(f"{collection}/cas", stale)
    assert conflict.value.status == HTTPStatus.CONFLICT
    assert "the object has been modified" in conflict.value.message
    assert api.get(f"{collection}/cas")["data"] == {"n": "1"}


# --- controllers -----------------------------------------------------------------------


def test_garbage_collector_deletes_objects_whose_owner_is_gone(
    control_plane: ControlPlane, namespace: str
) -> None:
    api = control_plane.api()
    collection = f"/api/v1/namespaces/{namespace}/configmaps"
    owner = api.post(collection, {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "owner"}})
    reference = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "name": "owner",
        "uid": owner["metadata"]["uid"],
    }
    api.post(
        collection,
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "dependent", "ownerReferences": [reference]},
        },
    )
    api.delete(f"{collection}/owner", {"propagationPolicy": "Background"})

    def dependent_gone() -> bool:
        try:
            api.get(f"{collection}/dependent")
        except ApiError as error:
            return error.status == HTTPStatus.NOT_FOUND
        return False

    eventually(dependent_gone)


DEPLOYMENT_REPLICAS = 2
DEPLOYMENT = textwrap.dedent(
    """\
    apiVersion: apps/v1
    kind: Deployment
    metadata:
      name: web
    spec:
      replicas: {replicas}
      selector:
        matchLabels: {app: web}
      template:
        metadata:
          labels: {app: web}
        spec:
          containers:
            - name: web
              image: registry.k8s.io/pause:3.10
    """
).replace("{replicas}", str(DEPLOYMENT_REPLICAS))


def test_deployment_controller_creates_a_replicaset_and_pods(namespace: str, kubectl: Kubectl) -> None:
    kubectl.apply(DEPLOYMENT, "-n", namespace)

    def pods() -> list[dict[str, Any]]:
        listed = json.loads(kubectl.run("get", "pods", "-n", namespace, "-l", "app=web", "-o", "json").stdout)
        items: list[dict[str, Any]] = listed["items"]
        return items if len(items) == DEPLOYMENT_REPLICAS else []

    owners = {ref["kind"] for pod in eventually(pods) for ref in pod["metadata"]["ownerReferences"]}
    assert owners == {"ReplicaSet"}
    # No kubelet, no scheduler: Pods exist as objects and stay Pending.
    assert {pod["status"].get("phase") for pod in pods()} == {"Pending"}


# --- several control planes -----------------------------------------------------------


def test_two_control_planes_run_side_by_side_and_trust_only_their_own_tokens(
    control_plane: ControlPlane, control_plane_binaries: Binaries, namespace: str
) -> None:
    control_plane.create_service_account(namespace, "visitor")
    token = control_plane.service_account_token(namespace, "visitor")
    with ControlPlane(controller_manager=False, binaries=control_plane_binaries) as other:
        assert other.server != control_plane.server
        assert other.directory != control_plane.directory
        missing = other.kubectl().run("get", "namespace", namespace, check=False)
        assert f'namespaces "{namespace}" not found' in missing.stderr
        with pytest.raises(ApiError) as refused:
            other.api(token).get("/api/v1/namespaces")
        assert refused.value.status == HTTPStatus.UNAUTHORIZED
    # The other plane's processes are gone; this one still serves.
    assert control_plane.api().get(f"/api/v1/namespaces/{namespace}")["metadata"]["name"] == namespace
