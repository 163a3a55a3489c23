"""The operator against a real kube-apiserver (with the controller manager) and a real nats-server.

kopf runs in-process as it does in production, authenticated as a ServiceAccount that holds exactly
the rules of `pixelmesh.operator.rbac`. A process kubelet plays the missing node: it runs the worker
Pods the Deployment controller creates as real `pixelmesh worker` processes, so `Ready` comes from
real worker readiness through the real Deployment status.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nats
import pytest
import yaml
from nats.js.errors import NotFoundError

from e2e.cluster import ControlPlane
from e2e.cluster.kubectl import KubectlError
from e2e.kubelet import ProcessKubelet
from pixelmesh.api import streams
from pixelmesh.api.messages import PipelineRef
from pixelmesh.natsserver import NatsServer
from pixelmesh.operator import metrics, names
from tests.fixtures.kube import StartOperator, get_or_none, wait_until

pytestmark = pytest.mark.slow

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
GROUP_PATH = f"/apis/{names.API_VERSION}"
QUICK_WORKERS = {"PIXELMESH_FETCH_TIMEOUT_SECONDS": "0.5", "PIXELMESH_LOG_FORMAT": "text"}
CHILD_PATHS = {
    "Deployment": "/apis/apps/v1/namespaces/{ns}/deployments",
    "ConfigMap": "/api/v1/namespaces/{ns}/configmaps",
    "Service": "/api/v1/namespaces/{ns}/services",
    "PodDisruptionBudget": "/apis/policy/v1/namespaces/{ns}/poddisruptionbudgets",
}


# --- fixtures ----------------------------------------------------------------------------------------


@pytest.fixture
def kubelet(control_plane: ControlPlane, tmp_path: Path) -> Iterator[ProcessKubelet]:
    selector = f"{names.LABEL_NAME}={names.WORKER_APP}"
    with ProcessKubelet(
        control_plane.api(), tmp_path / "kubelet", label_selector=selector, extra_env=QUICK_WORKERS
    ) as running:
        yield running


@pytest.fixture
def operator(
    start_operator: StartOperator, operator_kubeconfig: Path, nats_server: NatsServer, namespace: str
) -> Any:
    return start_operator(
        kubeconfig=operator_kubeconfig, nats_urls=(nats_server.url,), namespaces=(namespace,)
    )


# --- helpers -----------------------------------------------------------------------------------------


def manifest(path: Path, **spec_changes: Any) -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load(path.read_text())
    document["spec"].update(spec_changes)
    return document


def thumbnails(**spec_changes: Any) -> dict[str, Any]:
    """The thumbnails example, small enough for a test machine."""
    changes: dict[str, Any] = {"worker": {"concurrency": 1, "drainTimeout": "2s"}}
    changes.update(spec_changes)
    return manifest(EXAMPLES / "imagepipeline-thumbnails.yaml", **changes)


def pipeline_path(namespace: str, name: str = "") -> str:
    base = f"{GROUP_PATH}/namespaces/{namespace}/{names.PIPELINE_PLURAL}"
    return f"{base}/{name}" if name else base


def condition(body: dict[str, Any] | None, type_: str) -> dict[str, Any]:
    for found in (body or {}).get("status", {}).get("conditions", []):
        if found["type"] == type_:
            return dict(found)
    return {}


def wait_ready(cp: ControlPlane, namespace: str, name: str, timeout: float = 60.0) -> dict[str, Any]:
    def ready() -> dict[str, Any] | None:
        body = get_or_none(cp, pipeline_path(namespace, name))
        fresh = body and body.get("status", {}).get("observedGeneration") == body["metadata"]["generation"]
        return body if fresh and condition(body, "Ready").get("status") == "True" else None

    return wait_until(ready, timeout=timeout, what=f"ImagePipeline {namespace}/{name} to be Ready")


def children(cp: ControlPlane, namespace: str, name: str) -> dict[str, list[dict[str, Any]]]:
    selector = names.pipeline_selector(name)
    return {
        kind: cp.api().get(path.format(ns=namespace), labelSelector=selector)["items"]
        for kind, path in CHILD_PATHS.items()
    }


def events_for(cp: ControlPlane, namespace: str, name: str) -> list[dict[str, Any]]:
    items = cp.api().get(f"/api/v1/namespaces/{namespace}/events")["items"]
    return [e for e in items if e["involvedObject"].get("name") == name]


def jetstream_has(url: str, ref: PipelineRef) -> dict[str, bool]:
    async def check() -> dict[str, bool]:
        nc = await nats.connect(url)
        js = nc.jetstream()
        found: dict[str, bool] = {}
        try:
            for label, call in (
                ("stream", js.stream_info(streams.job_stream(ref, "local"))),
                (
                    "consumer",
                    js.consumer_info(streams.job_stream(ref, "local"), streams.worker_consumer(ref)),
                ),
                ("completions", js.stream_info("KV_" + streams.completions_bucket("local"))),
                ("routing", js.stream_info("KV_" + streams.routing_bucket("local"))),
                ("outputs", js.stream_info("OBJ_" + streams.outputs_bucket(ref, "local"))),
            ):
                try:
                    await call
                    found[label] = True
                except NotFoundError:
                    found[label] = False
        finally:
            await nc.close()
        return found

    return asyncio.run(check())


def delete_stream(url: str, ref: PipelineRef) -> None:
    async def delete() -> None:
        nc = await nats.connect(url)
        try:
            await nc.jetstream().delete_stream(streams.job_stream(ref, "local"))
        finally:
            await nc.close()

    asyncio.run(delete())


def pod_template_hash(cp: ControlPlane, namespace: str, deployment: str) -> str:
    body = cp.api().get(f"/apis/apps/v1/namespaces/{namespace}/deployments/{deployment}")
    return str(body["spec"]["template"]["metadata"]["annotations"][names.PIPELINE_HASH])


def resource_versions(cp: ControlPlane, namespace: str, name: str) -> dict[str, str]:
    found = {"pipeline": cp.api().get(pipeline_path(namespace, name))["metadata"]["resourceVersion"]}
    for kind, items in children(cp, namespace, name).items():
        for item in items:
            found[f"{kind}/{item['metadata']['name']}"] = item["metadata"]["resourceVersion"]
    return found


def reconciles() -> float:
    return sum(
        sample.value
        for metric in metrics.RECONCILES.collect()
        for sample in metric.samples
        if sample.name.endswith("_total") and sample.labels.get("kind") == "ImagePipeline"
    )


# --- the tests ---------------------------------------------------------------------------------------


def test_the_examples_are_accepted_by_the_api_server_and_explained(
    control_plane: ControlPlane, pixelmesh_crds: list[str], namespace: str
) -> None:
    del pixelmesh_crds
    kubectl = control_plane.kubectl()
    result = kubectl.run("apply", "--dry-run=server", "-n", namespace, "-f", str(EXAMPLES))
    assert result.stdout.count("(server dry run)") == 3
    explained = kubectl.run("explain", "imagepipeline.spec.variants").stdout
    assert "One output made from each source" in explained
    assert "name\t<string> -required-" in explained


def test_an_example_pipeline_gets_its_children_streams_and_becomes_ready(
    control_plane: ControlPlane,
    namespace: str,
    operator: Any,
    kubelet: ProcessKubelet,
    nats_server: NatsServer,
) -> None:
    del operator
    control_plane.kubectl().apply(json.dumps(thumbnails()), "-n", namespace)
    body = wait_ready(control_plane, namespace, "thumbnails")

    found = children(control_plane, namespace, "thumbnails")
    assert {kind: len(items) for kind, items in found.items()} == dict.fromkeys(CHILD_PATHS, 1)
    deployment = found["Deployment"][0]
    (owner,) = deployment["metadata"]["ownerReferences"]
    assert owner["uid"] == body["metadata"]["uid"]
    assert owner["controller"] is True
    assert deployment["spec"]["replicas"] == 1, "created with autoscaling.minReplicas"
    assert jetstream_has(
        nats_server.url, PipelineRef(namespace=namespace, name="thumbnails")
    ) == dict.fromkeys(("stream", "consumer", "completions", "routing", "outputs"), True)
    status = body["status"]
    assert status["phase"] == "Ready"
    assert (status["desiredReplicas"], status["readyReplicas"], status["backlog"]) == (1, 1, 0)
    assert [c["type"] for c in status["conditions"]] == [
        "Ready",
        "StreamReady",
        "WorkersAvailable",
        "Degraded",
    ]
    assert "kopf" not in status, "kopf's bookkeeping lives in annotations"
    reasons = {e["reason"] for e in events_for(control_plane, namespace, "thumbnails")}
    assert {"Created", "Reconciled"} <= reasons
    assert len(kubelet.pids()) == 1
    printed = control_plane.kubectl().run("get", "ipl", "-n", namespace).stdout
    assert "Ready" in printed
    assert "local=100" in printed


def test_a_variant_change_rolls_the_workers_and_a_resync_without_change_writes_nothing(
    control_plane: ControlPlane, namespace: str, operator: Any, kubelet: ProcessKubelet
) -> None:
    del operator
    control_plane.kubectl().apply(json.dumps(thumbnails()), "-n", namespace)
    wait_ready(control_plane, namespace, "thumbnails")
    deployment = names.child_names("thumbnails", "local").workers
    before_hash = pod_template_hash(control_plane, namespace, deployment)
    time.sleep(1.5)  # let the Deployment controller settle its status

    versions, writes, passes = (
        resource_versions(control_plane, namespace, "thumbnails"),
        metrics.kube_writes(),
        reconciles(),
    )
    time.sleep(3.5)
    assert reconciles() >= passes + 2, "the resync timer ran"
    assert metrics.kube_writes() == writes, "a resync with nothing changed writes nothing"
    assert resource_versions(control_plane, namespace, "thumbnails") == versions
    old_pids = set(kubelet.pids())

    variants = thumbnails()["spec"]["variants"]
    variants[0]["format"]["quality"] = 50
    control_plane.kubectl().apply(json.dumps(thumbnails(variants=variants)), "-n", namespace)
    wait_until(
        lambda: pod_template_hash(control_plane, namespace, deployment) != before_hash,
        what="the pod template hash to change",
    )
    body = wait_ready(control_plane, namespace, "thumbnails")
    assert body["status"]["pipelineGeneration"] == 2
    wait_until(lambda: set(kubelet.pids()) and not set(kubelet.pids()) & old_pids, what="the workers to roll")


def test_deleted_and_edited_children_and_a_deleted_stream_come_back(
    control_plane: ControlPlane, namespace: str, operator: Any, nats_server: NatsServer
) -> None:
    del operator
    api = control_plane.api()
    control_plane.kubectl().apply(json.dumps(thumbnails()), "-n", namespace)
    ref = PipelineRef(namespace=namespace, name="thumbnails")
    workers = names.child_names("thumbnails", "local").workers
    deployment_path = f"/apis/apps/v1/namespaces/{namespace}/deployments/{workers}"
    service_path = f"/api/v1/namespaces/{namespace}/services/{workers}"
    first = wait_until(lambda: get_or_none(control_plane, deployment_path), what="the Deployment")
    wait_until(lambda: jetstream_has(nats_server.url, ref)["stream"], what="the stream")

    api.delete(deployment_path)
    api.delete(service_path)
    delete_stream(nats_server.url, ref)
    again = wait_until(
        lambda: (
            (d := get_or_none(control_plane, deployment_path))
            and d["metadata"]["uid"] != first["metadata"]["uid"]
            and d
        ),
        what="a new Deployment",
    )
    assert again["spec"]["replicas"] == 1
    wait_until(lambda: get_or_none(control_plane, service_path), what="the Service")
    wait_until(lambda: jetstream_has(nats_server.url, ref)["stream"], what="the stream to come back")

    image = again["spec"]["template"]["spec"]["containers"][0]["image"]
    patch = {
        "spec": {"template": {"spec": {"containers": [{"name": "worker", "image": "someone/else:latest"}]}}}
    }
    api.request("PATCH", deployment_path, patch, content_type="application/strategic-merge-patch+json")
    wait_until(
        lambda: (
            get_or_none(control_plane, deployment_path)["spec"]["template"]["spec"]["containers"][0]["image"]  # type: ignore[index]
            == image
        ),
        what="the hand-edited image to be put back",
    )


@pytest.mark.usefixtures("kubelet")
def test_a_restarted_operator_creates_no_duplicates(
    control_plane: ControlPlane,
    namespace: str,
    start_operator: StartOperator,
    operator_kubeconfig: Path,
    nats_server: NatsServer,
) -> None:
    settings = {
        "kubeconfig": operator_kubeconfig,
        "nats_urls": (nats_server.url,),
        "namespaces": (namespace,),
    }
    first = start_operator(**settings)
    control_plane.kubectl().apply(json.dumps(thumbnails()), "-n", namespace)
    wait_ready(control_plane, namespace, "thumbnails")
    uids = {
        k: [i["metadata"]["uid"] for i in v]
        for k, v in children(control_plane, namespace, "thumbnails").items()
    }
    first.stop()

    start_operator(**settings)
    time.sleep(3.0)
    wait_ready(control_plane, namespace, "thumbnails")
    after = {
        k: [i["metadata"]["uid"] for i in v]
        for k, v in children(control_plane, namespace, "thumbnails").items()
    }
    assert after == uids


def test_invalid_specs_are_refused_at_apply_or_reported_and_heal_when_fixed(
    control_plane: ControlPlane,
    namespace: str,
    operator: Any,
    kubelet: ProcessKubelet,
    nats_server: NatsServer,
) -> None:
    del operator, kubelet
    kubectl = control_plane.kubectl()
    refused = {
        "minReplicas must not exceed maxReplicas": thumbnails(
            autoscaling={"minReplicas": 5, "maxReplicas": 2}
        ),
        "variant names must be unique": thumbnails(variants=[{"name": "a"}, {"name": "a"}]),
        "a step sets exactly one operation": thumbnails(steps=[{"flip": {}, "flop": {}}]),
        "at least one region needs a weight above 0": thumbnails(regions=[{"pool": "p", "weight": 0}]),
    }
    for message, document in refused.items():
        with pytest.raises(KubectlError) as error:
            kubectl.apply(json.dumps(document), "-n", namespace)
        assert message in str(error.value.__dict__) or message in str(error.value), message

    # The API server cannot know that quality does not apply to PNG: the operator reports it.
    invalid = thumbnails(variants=[{"name": "thumb", "format": {"type": "png", "quality": 70}}])
    kubectl.apply(json.dumps(invalid), "-n", namespace)
    reported = wait_until(
        lambda: (
            condition(get_or_none(control_plane, pipeline_path(namespace, "thumbnails")), "Ready").get(
                "reason"
            )
            == "InvalidSpec"
        ),
        what="Ready=False with reason InvalidSpec",
    )
    assert reported
    body = control_plane.api().get(pipeline_path(namespace, "thumbnails"))
    assert "quality" in condition(body, "Ready")["message"]
    assert body["status"]["phase"] == "Failed"
    warnings = [e for e in events_for(control_plane, namespace, "thumbnails") if e["type"] == "Warning"]
    assert any(e["reason"] == "InvalidSpec" for e in warnings)

    # A pool that does not exist yet: reported, then healed by creating it.
    pool_name = f"pool-{namespace}"[:63]
    kubectl.apply(json.dumps(thumbnails(regions=[{"pool": pool_name, "weight": 100}])), "-n", namespace)
    wait_until(
        lambda: (
            condition(get_or_none(control_plane, pipeline_path(namespace, "thumbnails")), "Ready").get(
                "reason"
            )
            == "PoolNotFound"
        ),
        what="Ready=False with reason PoolNotFound",
    )
    pool = {
        "apiVersion": names.API_VERSION,
        "kind": "RegionPool",
        "metadata": {"name": pool_name},
        "spec": {"region": "eu-west", "nats": {"urls": [nats_server.url]}},
    }
    kubectl.apply(json.dumps(pool))
    try:
        body = wait_ready(control_plane, namespace, "thumbnails")
        assert body["status"]["regionSummary"] == "eu-west=100"
    finally:
        kubectl.run("delete", "regionpool", pool_name, "--wait=false")


def test_deleting_a_pipeline_removes_its_children_and_its_streams_under_the_delete_policy(
    control_plane: ControlPlane, namespace: str, operator: Any, nats_server: NatsServer
) -> None:
    del operator
    ref = PipelineRef(namespace=namespace, name="thumbnails")
    control_plane.kubectl().apply(json.dumps(thumbnails(deletionPolicy="Delete")), "-n", namespace)
    wait_until(lambda: all(children(control_plane, namespace, "thumbnails").values()), what="every child")
    wait_until(lambda: jetstream_has(nats_server.url, ref)["stream"], what="the stream")

    control_plane.api().delete(pipeline_path(namespace, "thumbnails"))
    wait_until(
        lambda: get_or_none(control_plane, pipeline_path(namespace, "thumbnails")) is None, what="deletion"
    )
    wait_until(
        lambda: not any(children(control_plane, namespace, "thumbnails").values()),
        timeout=60.0,
        what="the garbage collector to remove the children",
    )
    found = jetstream_has(nats_server.url, ref)
    assert not found["stream"]
    assert not found["outputs"]
    assert found["completions"], "the region's shared buckets stay"


def test_a_region_pool_reports_its_nats_health_with_hysteresis(
    control_plane: ControlPlane, operator: Any, nats_server: NatsServer, namespace: str
) -> None:
    del operator
    name = f"probe-{namespace}"[:63]
    pool = {
        "apiVersion": names.API_VERSION,
        "kind": "RegionPool",
        "metadata": {"name": name},
        "spec": {
            "region": "probe-region",
            "nats": {"urls": [nats_server.url]},
            "failover": {"probeInterval": "500ms", "failureThreshold": 2, "recoveryThreshold": 1},
        },
    }
    path = f"{GROUP_PATH}/{names.POOL_PLURAL}/{name}"
    control_plane.kubectl().apply(json.dumps(pool))
    try:

        def phase() -> str:
            return str((get_or_none(control_plane, path) or {}).get("status", {}).get("phase", ""))

        wait_until(lambda: phase() == "Healthy", what="the pool to be Healthy")
        status = control_plane.api().get(path)["status"]
        assert status["roundTripMilliseconds"] >= 0
        assert condition({"status": status}, "JetStreamAvailable")["status"] == "True"
        nats_server.stop()
        wait_until(lambda: phase() == "Failed", what="the pool to be Failed")
        failed = control_plane.api().get(path)["status"]
        assert condition({"status": failed}, "Ready")["reason"] == "NatsUnreachable"
        nats_server.start()
        wait_until(lambda: phase() == "Healthy", timeout=30.0, what="the pool to recover")
        printed = control_plane.kubectl().run("get", "rpool", name).stdout
        assert "Healthy" in printed
        assert "probe-region" in printed
    finally:
        control_plane.kubectl().run("delete", "regionpool", name, "--wait=false")


def test_the_operator_account_holds_no_more_than_its_rules(
    control_plane: ControlPlane, operator_kubeconfig: Path, namespace: str
) -> None:
    kubectl = control_plane.kubectl(operator_kubeconfig)

    def can(*args: str) -> bool:
        return kubectl.run("auth", "can-i", *args, check=False).stdout.strip() == "yes"

    assert can("patch", "deployments", "-n", namespace)
    assert can("patch", "imagepipelines.pixelmesh.io/status", "-n", namespace)
    assert can("create", "events", "-n", namespace)
    assert not can("list", "secrets", "-n", namespace)
    assert not can("update", "deployments", "-n", namespace)
    assert not can("create", "pods", "-n", namespace)
    assert not can("delete", "imagepipelines.pixelmesh.io", "-n", namespace)


SERVICE_MONITOR_CRD = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": names.SERVICE_MONITOR_CRD},
    "spec": {
        "group": names.SERVICE_MONITOR_GROUP,
        "scope": "Namespaced",
        "names": {"kind": "ServiceMonitor", "plural": "servicemonitors", "singular": "servicemonitor"},
        "versions": [
            {
                "name": "v1",
                "served": True,
                "storage": True,
                "schema": {
                    "openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
                },
            }
        ],
    },
}


def test_a_servicemonitor_is_made_once_the_prometheus_operator_crd_exists(
    control_plane: ControlPlane,
    namespace: str,
    start_operator: StartOperator,
    operator_kubeconfig: Path,
    nats_server: NatsServer,
) -> None:
    """Runs last in this module: the CRD stays installed in the session's control plane."""
    kubectl = control_plane.kubectl()
    kubectl.apply(json.dumps(SERVICE_MONITOR_CRD))
    kubectl.run("wait", "--for=condition=Established", f"crd/{names.SERVICE_MONITOR_CRD}", "--timeout=60s")
    start_operator(kubeconfig=operator_kubeconfig, nats_urls=(nats_server.url,), namespaces=(namespace,))
    kubectl.apply(json.dumps(thumbnails()), "-n", namespace)
    workers = names.child_names("thumbnails", "local").workers
    path = f"/apis/{names.SERVICE_MONITOR_GROUP}/v1/namespaces/{namespace}/servicemonitors/{workers}"
    monitor = wait_until(lambda: get_or_none(control_plane, path), what="the ServiceMonitor")
    assert monitor["spec"]["selector"]["matchLabels"] == names.selector_labels("thumbnails", "local")
    assert monitor["metadata"]["ownerReferences"][0]["kind"] == "ImagePipeline"
