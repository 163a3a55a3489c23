"""What the chart takes from elsewhere stays equal to its source: CRDs, alert rules, dashboards."""

from __future__ import annotations

import json

import yaml

from pixelmesh.observability import alerts, chart_files, dashboards
from pixelmesh.operator import names
from tests.unit.chart_rendering import CHART_DIR, ROOT, named, of_kind, render, values_file

MONITORING = CHART_DIR / "ci" / "monitoring-values.yaml"


def repository_crds() -> dict[str, dict[str, object]]:
    crds = {}
    for path in sorted((ROOT / "crds").glob("*.yaml")):
        for document in yaml.safe_load_all(path.read_text()):
            if document and document.get("kind") == "CustomResourceDefinition":
                crds[document["metadata"]["name"]] = document
    return crds


def differences(got: object, expected: object, path: str = "") -> list[str]:
    """Paths where two JSON-like trees differ (1 and 1.0 are equal, as in a JSON schema)."""
    if isinstance(got, dict) and isinstance(expected, dict):
        found = [
            f"{path}.{key}: only in {'crds/' if key in expected else 'the chart'}"
            for key in got.keys() ^ expected.keys()
        ]
        for key in got.keys() & expected.keys():
            found += differences(got[key], expected[key], f"{path}.{key}")
        return found
    if isinstance(got, list) and isinstance(expected, list) and len(got) == len(expected):
        return [
            d
            for i, (a, b) in enumerate(zip(got, expected, strict=True))
            for d in differences(a, b, f"{path}[{i}]")
        ]
    if got == expected and isinstance(got, bool) == isinstance(expected, bool):
        return []
    return [f"{path}: {got!r} != {expected!r}"]


def test_the_chart_installs_exactly_the_crds_of_the_repository() -> None:
    """Helm (like kubectl) reads YAML 1.1: an unquoted `y` or `n` would arrive as a boolean."""
    expected = repository_crds()
    assert set(expected) == {f"{names.PIPELINE_PLURAL}.{names.GROUP}", f"{names.POOL_PLURAL}.{names.GROUP}"}
    rendered = {crd["metadata"]["name"]: crd for crd in of_kind(render(), "CustomResourceDefinition")}
    assert set(rendered) == set(expected)
    for name, crd in rendered.items():
        assert differences(crd["spec"], expected[name]["spec"]) == [], (
            f"{name}: the chart's CRD differs from crds/"
        )


def test_crds_survive_an_uninstall_and_carry_the_chart_labels() -> None:
    for crd in of_kind(render(), "CustomResourceDefinition"):
        assert crd["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
        assert crd["metadata"]["labels"]["app.kubernetes.io/part-of"] == "pixelmesh"
        assert crd["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "Helm"


def test_crds_install_false_renders_no_crd() -> None:
    objects = render(values_file(CHART_DIR / "ci" / "no-crds-values.yaml"))
    assert of_kind(objects, "CustomResourceDefinition") == []


def test_monitoring_off_by_default_renders_no_prometheus_operator_object() -> None:
    kinds = {obj["kind"] for obj in render()}
    assert not kinds & {"ServiceMonitor", "PodMonitor", "PrometheusRule"}
    assert not [cm for cm in of_kind(render(), "ConfigMap") if "-dashboard-" in cm["metadata"]["name"]]


def test_the_prometheus_rule_is_the_generated_rule_file_with_the_teams_links_and_labels() -> None:
    rule = named(render(values_file(MONITORING)), "PrometheusRule", "")
    assert rule["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    (group,) = rule["spec"]["groups"]
    generated = {
        r.name: r.to_rule("https://runbooks.internal.example.com/pixelmesh") for r in alerts.alert_rules()
    }
    for rendered in group["rules"]:
        expected = generated.pop(rendered["alert"])
        assert rendered["expr"] == expected["expr"]
        assert rendered["for"] == expected["for"]
        assert rendered["annotations"] == expected["annotations"]
        assert rendered["labels"] == {**expected["labels"], "team": "images"}  # type: ignore[dict-item]
    assert generated == {}


def test_dashboards_ship_as_sidecar_configmaps_holding_the_generated_json() -> None:
    configmaps = [
        cm
        for cm in of_kind(render(values_file(MONITORING)), "ConfigMap")
        if "-dashboard-" in cm["metadata"]["name"]
    ]
    assert len(configmaps) == len(dashboards.dashboards())
    shipped = {}
    for configmap in configmaps:
        assert configmap["metadata"]["labels"]["grafana_dashboard"] == "1"
        assert configmap["metadata"]["namespace"] == "monitoring"
        assert configmap["metadata"]["annotations"] == {"grafana_folder": "PixelMesh"}
        ((key, text),) = configmap["data"].items()
        shipped[key] = json.loads(text)
    for board in dashboards.dashboards():
        assert shipped[chart_files.dashboard_path(board.uid).split("/")[-1]] == board.to_json()


def test_service_monitors_scrape_the_operator_and_gateway_metrics_ports() -> None:
    objects = render(values_file(MONITORING))
    monitors = of_kind(objects, "ServiceMonitor")
    assert len(monitors) == 2
    services = of_kind(objects, "Service")
    for monitor in monitors:
        selector = monitor["spec"]["selector"]["matchLabels"]
        (service,) = [s for s in services if selector.items() <= s["metadata"]["labels"].items()]
        ports = {port["name"] for port in service["spec"]["ports"]}
        assert {endpoint["port"] for endpoint in monitor["spec"]["endpoints"]} <= ports
    operator_monitor = named(objects, "ServiceMonitor", "-operator")
    # The operator labels its series with the pipeline's namespace; honouring it keeps Prometheus
    # from renaming it to exported_namespace.
    assert operator_monitor["spec"]["endpoints"][0]["honorLabels"] is True


def test_the_pod_monitor_selects_the_worker_pods_the_operator_creates() -> None:
    (monitor,) = of_kind(render(values_file(MONITORING)), "PodMonitor")
    selector = monitor["spec"]["selector"]["matchLabels"]
    assert selector.items() <= names.worker_labels("media.thumbs", "eu-west").items()
    assert monitor["spec"]["podMetricsEndpoints"][0]["port"] == names.METRICS_PORT_NAME
    assert monitor["spec"]["namespaceSelector"] == {"any": True}
