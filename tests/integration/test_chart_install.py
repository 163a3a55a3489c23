"""`helm install` into a real API server, then the operator runs with the chart's ServiceAccount only.

The chart is installed by the Helm engine (helm-python-sdk) into a fresh control plane of its own
(CRDs included: a shared one may already hold CRDs applied by other tests, which Helm rightly
refuses to adopt). The API server validates every object against its OpenAPI. Then the operator
starts as a subprocess with the command line and settings of the rendered Deployment, but logged
in with a TokenRequest token of the chart's ServiceAccount: whatever the chart's ClusterRole or
Roles do not grant is refused. An example pipeline is applied and the operator's children must
appear: the RBAC is proven sufficient, not only rendered.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import helm_python
import pytest
import yaml

from e2e.cluster import ApiError, ControlPlane
from pixelmesh.natsserver import NatsServer
from pixelmesh.operator import names

ROOT = Path(__file__).resolve().parents[2]
CHART_DIR = ROOT / "charts" / "pixelmesh"
EXAMPLE = ROOT / "examples" / "imagepipeline-thumbnails.yaml"
RELEASE = "pm"
RELEASE_NAMESPACE = "pixelmesh-system"
CHILD_TIMEOUT = 90.0

pytestmark = pytest.mark.slow


@dataclass
class Installed:
    plane: ControlPlane
    manifest: list[dict[str, Any]]
    pipeline_namespace: str

    def workload(self, suffix: str) -> dict[str, Any]:
        (found,) = [
            o for o in self.manifest if o["kind"] == "Deployment" and o["metadata"]["name"].endswith(suffix)
        ]
        return found


def install(plane: ControlPlane, values: dict[str, Any]) -> list[dict[str, Any]]:
    helm_python.disable_logging()
    with helm_python.Config(
        kube_apiserver=plane.server,
        kube_token=plane.admin_token,
        kube_ca_file=plane.ca_cert,
        namespace=RELEASE_NAMESPACE,
        storage_driver="memory",
    ) as config:
        release = config.install(
            helm_python.Chart.load(CHART_DIR),
            RELEASE,
            values,
            namespace=RELEASE_NAMESPACE,
            create_namespace=True,
            timeout=120,
        )
    return [doc for doc in yaml.safe_load_all(release["manifest"]) if doc]


@pytest.fixture(scope="module", params=["cluster-wide", "namespaced"])
def installed(request: pytest.FixtureRequest, start_control_plane: Callable[..., ControlPlane]) -> Installed:
    plane = start_control_plane(controller_manager=False)
    pipeline_namespace = plane.create_namespace("photos")
    values: dict[str, Any] = {"region": "local", "image": {"tag": "test"}}
    if request.param == "namespaced":
        values["operator"] = {"clusterWide": False, "watchNamespaces": [pipeline_namespace]}
    return Installed(plane, install(plane, values), pipeline_namespace)


@pytest.fixture
def operator_process(
    installed: Installed, nats_server: NatsServer, tmp_path: Path
) -> Iterator[subprocess.Popen[str]]:
    """The operator with the rendered Deployment's arguments and settings, as the chart's ServiceAccount."""
    deployment = installed.workload("-operator")
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    kubeconfig = installed.plane.service_account_kubeconfig(
        RELEASE_NAMESPACE, pod["serviceAccountName"], create=False, path=tmp_path / "operator.kubeconfig"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KUBECONFIG", "PIXELMESH_"))}
    env.update({entry["name"]: entry["value"] for entry in container["env"] if "value" in entry})
    # In-cluster the chart's NATS URL resolves; here the test's nats-server stands in for it.
    env["PIXELMESH_OPERATOR_NATS_URLS"] = nats_server.url
    log = (tmp_path / "operator.log").open("w")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "pixelmesh.operator",
            *container["args"][1:],
            "--kubeconfig",
            str(kubeconfig),
            "--metrics-port=0",
            "--health-port=0",
            "--log-format=text",
        ],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        text=True,
    )
    yield process
    process.terminate()
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    log.close()


def wait_for(what: str, probe: Callable[[], Any], process: subprocess.Popen[str], log: Path) -> Any:
    deadline = time.monotonic() + CHILD_TIMEOUT
    while time.monotonic() < deadline:
        assert process.poll() is None, (
            f"the operator exited while waiting for {what}:\n{log.read_text()[-4000:]}"
        )
        found = probe()
        if found:
            return found
        time.sleep(0.5)
    raise AssertionError(f"no {what} after {CHILD_TIMEOUT}s; operator log:\n{log.read_text()[-6000:]}")


def test_the_chart_installs_and_its_operator_reconciles_a_pipeline_with_only_the_chart_rbac(
    installed: Installed, operator_process: subprocess.Popen[str], tmp_path: Path
) -> None:
    api = installed.plane.api()
    namespace = installed.pipeline_namespace
    crds = api.get("/apis/apiextensions.k8s.io/v1/customresourcedefinitions")["items"]
    ours = {crd["metadata"]["name"]: crd for crd in crds if crd["spec"]["group"] == names.GROUP}
    assert set(ours) == {f"{names.PIPELINE_PLURAL}.{names.GROUP}", f"{names.POOL_PLURAL}.{names.GROUP}"}
    assert all(crd["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep" for crd in ours.values())

    pipeline = yaml.safe_load(EXAMPLE.read_text())
    pipeline["metadata"]["namespace"] = namespace
    api.post(f"/apis/{names.GROUP}/{names.VERSION}/namespaces/{namespace}/{names.PIPELINE_PLURAL}", pipeline)
    name = pipeline["metadata"]["name"]
    log = tmp_path / "operator.log"
    selector = names.pipeline_selector(name)

    def children(kind_path: str) -> list[dict[str, Any]]:
        return list(
            api.get(
                f"{kind_path}/namespaces/{namespace}/{kind_path_plural[kind_path]}", labelSelector=selector
            )["items"]
        )

    kind_path_plural = {
        "/apis/apps/v1": "deployments",
        "/api/v1": "configmaps",
        "/apis/policy/v1": "poddisruptionbudgets",
    }
    deployments = wait_for("worker Deployment", lambda: children("/apis/apps/v1"), operator_process, log)
    assert wait_for("pipeline ConfigMap", lambda: children("/api/v1"), operator_process, log)
    assert wait_for("PodDisruptionBudget", lambda: children("/apis/policy/v1"), operator_process, log)
    services = api.get(f"/api/v1/namespaces/{namespace}/services", labelSelector=selector)["items"]
    assert services, "the workers' metrics Service is missing"

    (worker,) = deployments
    image = worker["spec"]["template"]["spec"]["containers"][0]["image"]
    assert image == installed.workload("-operator")["spec"]["template"]["spec"]["containers"][0]["image"]

    def observed() -> bool:
        body = api.get(
            f"/apis/{names.GROUP}/{names.VERSION}/namespaces/{namespace}/{names.PIPELINE_PLURAL}/{name}"
        )
        status = body.get("status") or {}
        return bool(status.get("observedGeneration") == body["metadata"]["generation"])

    wait_for("the pipeline's status", observed, operator_process, log)
    text = log.read_text()
    assert "forbidden" not in text.lower(), f"the operator was refused something:\n{text[-6000:]}"
    assert " 403" not in text, f"the operator was refused something:\n{text[-6000:]}"


def test_the_api_server_refuses_the_chart_service_account_what_the_chart_did_not_grant(
    installed: Installed,
) -> None:
    """The token the operator runs with is really limited: a sanity check of the test itself."""
    account = installed.workload("-operator")["spec"]["template"]["spec"]["serviceAccountName"]
    token = installed.plane.service_account_token(RELEASE_NAMESPACE, account)
    limited = installed.plane.api(token)
    with pytest.raises(ApiError) as refused:
        limited.get(f"/api/v1/namespaces/{installed.pipeline_namespace}/pods")
    assert refused.value.status == 403
    with pytest.raises(ApiError):
        limited.get("/api/v1/nodes")
