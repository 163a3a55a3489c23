"""The chart rendered by the real Helm engine: every values file lints strictly and yields sound objects."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import helm_python
import pytest

from pixelmesh.operator import names
from tests.unit.chart_rendering import (
    CHART_DIR,
    CI_VALUES,
    KUBE_VERSION,
    NAMESPACE,
    RELEASE,
    Obj,
    named,
    of_kind,
    pod_templates,
    render,
    render_templates,
    values_file,
)

CASES = [None, *CI_VALUES]
CASE_IDS = ["defaults", *(path.name.removesuffix("-values.yaml") for path in CI_VALUES)]
STANDARD_LABELS = (
    "app.kubernetes.io/name",
    "app.kubernetes.io/instance",
    "app.kubernetes.io/version",
    "app.kubernetes.io/managed-by",
    "app.kubernetes.io/part-of",
    "helm.sh/chart",
)


def case_values(path: Path | None) -> dict[str, Any]:
    return {} if path is None else values_file(path)


@pytest.mark.parametrize("path", CASES, ids=CASE_IDS)
def test_the_chart_lints_strictly(path: Path | None) -> None:
    report = helm_python.lint(
        CHART_DIR, case_values(path), strict=True, namespace=NAMESPACE, kube_version=KUBE_VERSION
    )
    problems = [m for m in report["messages"] if m["severity"] >= 2]
    assert report["errors"] == []
    assert problems == []


@pytest.mark.parametrize("path", CASES, ids=CASE_IDS)
def test_every_object_carries_the_standard_labels_and_a_namespace(path: Path | None) -> None:
    for obj in render(case_values(path)):
        labels = obj["metadata"].get("labels", {})
        missing = [label for label in STANDARD_LABELS if label not in labels]
        assert missing == [], f"{obj['kind']} {obj['metadata']['name']} lacks {missing}"
        if obj["kind"] not in {"CustomResourceDefinition", "ClusterRole", "ClusterRoleBinding"}:
            assert obj["metadata"].get("namespace"), (
                f"{obj['kind']} {obj['metadata']['name']} has no namespace"
            )


@pytest.mark.parametrize("path", CASES, ids=CASE_IDS)
def test_every_pod_is_hardened(path: Path | None) -> None:
    """Restricted Pod Security: non-root, read-only root FS, no privilege gain, no capability, seccomp."""
    templates = list(pod_templates(render(case_values(path))))
    assert templates
    for name, template in templates:
        pod = template["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True, name
        assert pod["securityContext"]["runAsUser"] == names.RUN_AS_USER, name
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}, name
        for container in pod["containers"]:
            context = container["securityContext"]
            assert context["readOnlyRootFilesystem"] is True, name
            assert context["allowPrivilegeEscalation"] is False, name
            assert context["runAsNonRoot"] is True, name
            assert context["capabilities"] == {"drop": ["ALL"]}, name
            assert context["seccompProfile"] == {"type": "RuntimeDefault"}, name
            assert {"cpu", "memory"} <= set(container["resources"]["requests"]), name
            assert "memory" in container["resources"]["limits"], name
            mounts = {m["mountPath"] for m in container.get("volumeMounts", [])}
            assert "/tmp" in mounts, f"{name}: a read-only root needs a writable /tmp"


@pytest.mark.parametrize("path", CASES, ids=CASE_IDS)
def test_services_select_the_pods_of_their_workload(path: Path | None) -> None:
    objects = render(case_values(path))
    pods = [template["metadata"]["labels"] for _, template in pod_templates(objects)]
    for service in of_kind(objects, "Service"):
        selector = service["spec"]["selector"]
        matching = [labels for labels in pods if selector.items() <= labels.items()]
        assert len(matching) == 1, f"Service {service['metadata']['name']} selects {len(matching)} workloads"
    for deployment in of_kind(objects, "Deployment"):
        selector = deployment["spec"]["selector"]["matchLabels"]
        assert selector.items() <= deployment["spec"]["template"]["metadata"]["labels"].items()


def test_the_operator_runs_once_and_is_replaced_not_rolled() -> None:
    """kopf has no leader election: two operators at once would both reconcile."""
    operator = named(render(), "Deployment", "-operator")
    assert operator["spec"]["replicas"] == 1
    assert operator["spec"]["strategy"] == {"type": "Recreate"}
    pod = operator["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == named(render(), "ServiceAccount", "-operator")["metadata"]["name"]


def test_the_gateway_never_gets_a_kubernetes_token() -> None:
    gateway = named(render(), "Deployment", "-gateway")
    assert gateway["spec"]["template"]["spec"]["automountServiceAccountToken"] is False


def test_the_image_defaults_to_the_chart_app_version_and_a_digest_wins() -> None:
    app_version = helm_python.Chart.load(CHART_DIR).metadata["appVersion"]
    for _, template in pod_templates(render()):
        assert template["spec"]["containers"][0]["image"].endswith(f":{app_version}")
    digest = "sha256:" + "ab" * 32
    for _, template in pod_templates(render({"image": {"digest": digest}})):
        assert template["spec"]["containers"][0]["image"].endswith(f"@{digest}")


def env_of(deployment: Obj) -> dict[str, Any]:
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    return {entry["name"]: entry.get("value", entry.get("valueFrom")) for entry in container["env"]}


def test_the_gateway_is_configured_for_the_region_its_catalog_and_secrets() -> None:
    objects = render(values_file(CHART_DIR / "ci" / "ingress-hpa-values.yaml"))
    env = env_of(named(objects, "Deployment", "-gateway"))
    assert env["PIXELMESH_GATEWAY_HOST"] == "0.0.0.0"
    assert env["PIXELMESH_GATEWAY_HOME_REGION"] == "eu-west"
    assert env["PIXELMESH_GATEWAY_REGIONS"] == (
        "eu-west=nats://nats-0.nats:4222,nats://nats-1.nats:4222;us-east=nats://nats.us-east.example.com:4222"
    )
    assert env["PIXELMESH_GATEWAY_API_KEYS"] == {
        "secretKeyRef": {"name": "pixelmesh-gateway", "key": "api-keys"}
    }
    catalog = named(objects, "ConfigMap", "-gateway-pipelines")
    assert list(catalog["data"]) == ["media.thumbnails.yaml"]
    mounts = named(objects, "Deployment", "-gateway")["spec"]["template"]["spec"]["volumes"]
    assert {"name": "pipelines", "configMap": {"name": catalog["metadata"]["name"]}} in mounts


def test_the_gateway_settings_are_ones_the_gateway_reads() -> None:
    from dataclasses import fields  # noqa: PLC0415

    from pixelmesh.gateway.config import ENV_PREFIX, GatewayConfig  # noqa: PLC0415

    known = {ENV_PREFIX + field.name.upper() for field in fields(GatewayConfig)}
    env = env_of(
        named(render(values_file(CHART_DIR / "ci" / "ingress-hpa-values.yaml")), "Deployment", "-gateway")
    )
    assert set(env) - known == set()
    GatewayConfig.from_env({k: v for k, v in env.items() if isinstance(v, str)})


def test_ingress_and_hpa_route_to_and_scale_the_gateway() -> None:
    objects = render(values_file(CHART_DIR / "ci" / "ingress-hpa-values.yaml"))
    gateway = named(objects, "Deployment", "-gateway")
    service = named(objects, "Service", "-gateway")
    (ingress,) = of_kind(objects, "Ingress")
    backend = ingress["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]
    assert backend == {"name": service["metadata"]["name"], "port": {"name": "http"}}
    assert ingress["spec"]["tls"][0]["secretName"] == "images-tls"
    (hpa,) = of_kind(objects, "HorizontalPodAutoscaler")
    assert hpa["spec"]["scaleTargetRef"]["name"] == gateway["metadata"]["name"]
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (3, 30)
    assert "replicas" not in gateway["spec"], "with an HPA the Deployment must not fight it over replicas"


def test_disabling_the_gateway_leaves_only_the_operator() -> None:
    objects = render(values_file(CHART_DIR / "ci" / "gateway-disabled-values.yaml"))
    components = {o["metadata"]["labels"].get("app.kubernetes.io/component") for o in objects}
    assert "gateway" not in components
    assert named(objects, "Deployment", "-operator")


def test_namespaced_mode_watches_only_the_listed_namespaces() -> None:
    objects = render(values_file(CHART_DIR / "ci" / "namespaced-values.yaml"))
    args = named(objects, "Deployment", "-operator")["spec"]["template"]["spec"]["containers"][0]["args"]
    assert "--all-namespaces" not in args
    assert {"--namespace=media", "--namespace=avatars"} <= set(args)
    worker_policies = [
        p for p in of_kind(objects, "NetworkPolicy") if p["metadata"]["name"].endswith("-workers")
    ]
    assert sorted(p["metadata"]["namespace"] for p in worker_policies) == ["avatars", "media"]


def test_network_policies_admit_only_the_served_ports() -> None:
    objects = render(values_file(CHART_DIR / "ci" / "namespaced-values.yaml"))
    for policy in of_kind(objects, "NetworkPolicy"):
        assert policy["spec"]["policyTypes"] == ["Ingress"]
        ports = {p["port"] for rule in policy["spec"]["ingress"] for p in rule["ports"]}
        assert ports <= {"metrics", "http"}
    worker_policy = next(
        p for p in of_kind(objects, "NetworkPolicy") if p["metadata"]["name"].endswith("-workers")
    )
    selector = worker_policy["spec"]["podSelector"]["matchLabels"]
    assert selector.items() <= names.worker_labels("thumbs", "eu-west").items()


def test_notes_tell_how_to_reach_the_gateway_and_warn_about_open_submissions() -> None:
    notes = render_templates()["pixelmesh/templates/NOTES.txt"]
    assert f"port-forward service/{RELEASE}-pixelmesh-gateway" in notes
    assert "WARNING" in notes
    secured = render_templates(values_file(CHART_DIR / "ci" / "ingress-hpa-values.yaml"))[
        "pixelmesh/templates/NOTES.txt"
    ]
    assert "https://images.example.com/v1/pipelines/" in secured
    assert "WARNING" not in secured


@pytest.mark.parametrize(
    "path", [None, CHART_DIR / "ci" / "namespaced-values.yaml"], ids=["cluster-wide", "namespaced"]
)
def test_the_operator_accepts_the_command_line_and_settings_the_chart_gives_it(path: Path | None) -> None:
    from dataclasses import fields  # noqa: PLC0415

    from pixelmesh.operator.settings import ENV_PREFIX, OperatorSettings, parse_settings  # noqa: PLC0415

    values = case_values(path)
    deployment = named(render(values), "Deployment", "-operator")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    env = env_of(deployment)
    known = {ENV_PREFIX + field.name.upper() for field in fields(OperatorSettings)}
    assert set(env) <= known
    assert container["args"][0] == "operator"
    settings = parse_settings(container["args"][1:], env)
    assert settings.namespaces == tuple(values.get("operator", {}).get("watchNamespaces", ()))
    assert settings.worker_image == container["image"]
    ports = {port["name"]: port["containerPort"] for port in container["ports"]}
    assert (settings.metrics_port, settings.health_port) == (ports["metrics"], ports["health"])
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "health"}


async def test_the_gateway_catalog_reads_the_pipelines_the_chart_mounts(tmp_path: Path) -> None:
    from pixelmesh.api.messages import PipelineRef  # noqa: PLC0415
    from pixelmesh.gateway.catalog import DirectoryCatalog  # noqa: PLC0415

    objects = render(values_file(CHART_DIR / "ci" / "ingress-hpa-values.yaml"))
    catalog_map = named(objects, "ConfigMap", "-pipelines")
    for key, text in catalog_map["data"].items():
        (tmp_path / key).write_text(text)
    entry = await DirectoryCatalog([tmp_path]).get(PipelineRef(namespace="media", name="thumbnails"))
    assert entry is not None
    assert [variant.name for variant in entry.spec.variants] == ["small"]
