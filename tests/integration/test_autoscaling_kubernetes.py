"""The built-in autoscaler in the real operator: a Deployment's replicas follow the JetStream backlog.

kopf runs in-process against the real control plane as a ServiceAccount holding exactly the
operator's RBAC rules; a process kubelet runs the worker Pods as real worker processes; jobs go into
a real nats-server. The pipeline runs in a RegionPool whose capacity is below the pipeline's
maximum, so the capacity cap, its Event and its status reason show too. The autoscaler is the only
writer of `spec.replicas`: a hand edit is put back.
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

from e2e.cluster import ControlPlane
from e2e.kubelet import ProcessKubelet
from pixelmesh.api import streams
from pixelmesh.api.messages import JobMessage, PipelineRef
from pixelmesh.natsserver import NatsServer
from pixelmesh.operator import names
from tests import imagegen
from tests.fixtures.kube import StartOperator, get_or_none, wait_until
from tests.fixtures.nats import upload_source

pytestmark = pytest.mark.slow

NAME = "bursty"
JOBS = 1000
CAPACITY = 2
QUICK_WORKERS = {
    "PIXELMESH_FETCH_TIMEOUT_SECONDS": "0.5",
    "PIXELMESH_STATS_SECONDS": "0.5",
    "PIXELMESH_LOG_FORMAT": "text",
}


@pytest.fixture
def kubelet(control_plane: ControlPlane, tmp_path: Path) -> Iterator[ProcessKubelet]:
    with ProcessKubelet(
        control_plane.api(),
        tmp_path / "kubelet",
        label_selector=f"{names.LABEL_NAME}={names.WORKER_APP}",
        extra_env=QUICK_WORKERS,
    ) as running:
        yield running


@pytest.fixture
def pool(control_plane: ControlPlane, nats_server: NatsServer, namespace: str) -> Iterator[dict[str, str]]:
    """A RegionPool on the test's NATS with room for `CAPACITY` workers."""
    name = f"pool-{namespace}"[:63]
    region = f"r-{namespace}"[:63].rstrip("-")
    body = {
        "apiVersion": names.API_VERSION,
        "kind": "RegionPool",
        "metadata": {"name": name},
        "spec": {"region": region, "nats": {"urls": [nats_server.url]}, "capacity": {"maxWorkers": CAPACITY}},
    }
    control_plane.kubectl().apply(json.dumps(body))
    yield {"name": name, "region": region}
    control_plane.kubectl().run("delete", "regionpool", name, "--wait=false")


def pipeline(pool: str) -> dict[str, Any]:
    return {
        "apiVersion": names.API_VERSION,
        "kind": "ImagePipeline",
        "metadata": {"name": NAME},
        "spec": {
            "variants": [
                {"name": "tiny", "steps": [{"thumbnail": {"width": 8}}], "format": {"type": "jpeg"}}
            ],
            "regions": [{"pool": pool, "weight": 100}],
            "autoscaling": {
                "minReplicas": 1,
                "maxReplicas": 4,
                "targetBacklogPerReplica": 50,
                "scaleDownDelay": "3s",
                "interval": "500ms",
            },
            "worker": {"concurrency": 4, "drainTimeout": "2s"},
        },
    }


def queue_jobs(url: str, ref: PipelineRef, region: str, count: int) -> None:
    async def publish() -> None:
        nc = await nats.connect(url)
        try:
            js = nc.jetstream()
            source = imagegen.photo_jpeg(48, 32)
            key = await upload_source(js, source)
            for i in range(count):
                job = JobMessage(
                    job_id=f"{ref.name}-{i:04d}",
                    pipeline=ref,
                    generation=1,
                    source_key=key,
                    source_size=len(source),
                )
                await js.publish_async(
                    streams.job_subject(ref, region),
                    job.model_dump_json(by_alias=True, exclude_none=True).encode(),
                    headers={"Nats-Msg-Id": job.job_id},
                )
            await asyncio.wait_for(js.publish_async_completed(), 30.0)
        finally:
            await nc.close()

    asyncio.run(publish())


def backlog(url: str, ref: PipelineRef, region: str) -> int:
    async def read() -> int:
        nc = await nats.connect(url)
        try:
            info = await nc.jetstream().consumer_info(
                streams.job_stream(ref, region), streams.worker_consumer(ref)
            )
            return int(info.num_pending or 0) + int(info.num_ack_pending or 0)
        finally:
            await nc.close()

    return asyncio.run(read())


def test_replicas_follow_the_backlog_within_the_pools_capacity_and_hand_edits_are_put_back(
    *,
    control_plane: ControlPlane,
    namespace: str,
    start_operator: StartOperator,
    operator_kubeconfig: Path,
    nats_server: NatsServer,
    kubelet: ProcessKubelet,
    pool: dict[str, str],
) -> None:
    start_operator(
        kubeconfig=operator_kubeconfig,
        nats_urls=(nats_server.url,),
        namespaces=(namespace,),
        autoscaler_interval_seconds=0.5,
    )
    ref = PipelineRef(namespace=namespace, name=NAME)
    control_plane.kubectl().apply(json.dumps(pipeline(pool["name"])), "-n", namespace)
    workers = names.child_names(NAME, pool["region"]).workers
    deployment_path = f"/apis/apps/v1/namespaces/{namespace}/deployments/{workers}"
    pipeline_path = f"/apis/{names.API_VERSION}/namespaces/{namespace}/{names.PIPELINE_PLURAL}/{NAME}"

    def replicas() -> int:
        return int((get_or_none(control_plane, deployment_path) or {}).get("spec", {}).get("replicas", -1))

    def region_status() -> dict[str, Any]:
        body = get_or_none(control_plane, pipeline_path) or {}
        regions = body.get("status", {}).get("regions") or [{}]
        return dict(regions[0])

    def events(reason: str) -> list[dict[str, Any]]:
        items = control_plane.api().get(f"/api/v1/namespaces/{namespace}/events")["items"]
        return [e for e in items if e["involvedObject"].get("name") == NAME and e["reason"] == reason]

    wait_until(lambda: replicas() == 1, timeout=60.0, what="the Deployment at minReplicas")
    wait_until(lambda: len(kubelet.pids()) == 1, timeout=60.0, what="the first worker Pod to run")

    # A backlog: the autoscaler wants 4 (1000 / 50, clamped to maxReplicas); the pool grants 2.
    queue_jobs(nats_server.url, ref, pool["region"], JOBS)
    wait_until(
        lambda: replicas() == CAPACITY, timeout=30.0, what="the Deployment to scale up to the capacity"
    )
    wait_until(
        lambda: (
            region_status().get("scalingReason") == "capacity-capped"
            and region_status().get("desiredReplicas") == CAPACITY
        ),
        what="the status to say capacity-capped",
    )
    capped = wait_until(lambda: events("CapacityCapped"), what="a CapacityCapped Event")
    assert capped[0]["type"] == "Warning"
    assert f"allows {CAPACITY} workers" in capped[0]["message"]
    wait_until(lambda: len(kubelet.pids()) == CAPACITY, timeout=60.0, what="the new worker Pods to run")

    # Drained: back to the minimum after the scale-down window, and capped exactly once.
    wait_until(
        lambda: backlog(nats_server.url, ref, pool["region"]) == 0, timeout=120.0, what="the backlog to drain"
    )
    wait_until(lambda: replicas() == 1, timeout=30.0, what="the Deployment to scale back down")
    assert len(events("CapacityCapped")) == 1, "an Event on the change into capped, not on every tick"
    assert events("Scaled"), "each scale is an Event"
    assert region_status().get("scalingReason") in ("idle", "minimum")

    # The autoscaler is the only writer of spec.replicas: a hand edit does not stay.
    control_plane.api().request(
        "PATCH", deployment_path, {"spec": {"replicas": 3}}, content_type="application/merge-patch+json"
    )
    wait_until(lambda: replicas() == 1, timeout=15.0, what="the hand-edited replicas to be put back")


SCALED_OBJECT_CRD = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": names.SCALED_OBJECT_CRD},
    "spec": {
        "group": names.SCALED_OBJECT_GROUP,
        "scope": "Namespaced",
        "names": {"kind": "ScaledObject", "plural": "scaledobjects", "singular": "scaledobject"},
        "versions": [
            {
                "name": names.SCALED_OBJECT_VERSION,
                "served": True,
                "storage": True,
                "schema": {
                    "openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
                },
            }
        ],
    },
}


@pytest.fixture
def keda_crd(control_plane: ControlPlane) -> Iterator[None]:
    """KEDA's ScaledObject CRD (its schema only: no KEDA runs), removed afterwards."""
    kubectl = control_plane.kubectl()
    kubectl.apply(json.dumps(SCALED_OBJECT_CRD))
    kubectl.run("wait", "--for=condition=Established", f"crd/{names.SCALED_OBJECT_CRD}", "--timeout=60s")
    yield
    kubectl.run("delete", "crd", names.SCALED_OBJECT_CRD, "--wait=false")


@pytest.mark.usefixtures("keda_crd")
def test_under_keda_a_scaledobject_is_made_and_the_replicas_are_left_to_keda_until_the_engine_changes(
    control_plane: ControlPlane,
    namespace: str,
    start_operator: StartOperator,
    operator_kubeconfig: Path,
    nats_server: NatsServer,
) -> None:
    start_operator(
        kubeconfig=operator_kubeconfig,
        nats_urls=(nats_server.url,),
        namespaces=(namespace,),
        autoscaler_interval_seconds=0.5,
    )
    ref = PipelineRef(namespace=namespace, name=NAME)
    document = pipeline("unused")
    del document["spec"]["regions"]  # the operator's own region
    document["spec"]["autoscaling"]["engine"] = "keda"
    control_plane.kubectl().apply(json.dumps(document), "-n", namespace)
    workers = names.child_names(NAME, "local").workers
    deployment_path = f"/apis/apps/v1/namespaces/{namespace}/deployments/{workers}"
    group_version = f"{names.SCALED_OBJECT_GROUP}/{names.SCALED_OBJECT_VERSION}"
    scaled_path = f"/apis/{group_version}/namespaces/{namespace}/scaledobjects/{workers}"

    def replicas() -> int:
        return int((get_or_none(control_plane, deployment_path) or {}).get("spec", {}).get("replicas", -1))

    scaled = wait_until(lambda: get_or_none(control_plane, scaled_path), what="the ScaledObject")
    (trigger,) = scaled["spec"]["triggers"]
    assert trigger["type"] == "nats-jetstream"
    assert trigger["metadata"]["stream"] == streams.job_stream(ref, "local")
    assert trigger["metadata"]["consumer"] == streams.worker_consumer(ref)
    assert trigger["metadata"]["lagThreshold"] == "50"
    assert scaled["spec"]["scaleTargetRef"]["name"] == workers
    assert (scaled["spec"]["minReplicaCount"], scaled["spec"]["maxReplicaCount"]) == (1, 4)
    wait_until(lambda: replicas() == 1, what="the Deployment, created at minReplicas")

    # KEDA's to set now: a backlog does not move the count, and a count set by someone else stays.
    queue_jobs(nats_server.url, ref, "local", 400)
    control_plane.api().request(
        "PATCH", deployment_path, {"spec": {"replicas": 3}}, content_type="application/merge-patch+json"
    )
    for _ in range(15):
        assert replicas() == 3, "the built-in engine leaves a KEDA-scaled Deployment alone"
        time.sleep(0.2)

    # Back to the built-in engine: the ScaledObject goes, and the backlog sets the count.
    document["spec"]["autoscaling"]["engine"] = "builtin"
    control_plane.kubectl().apply(json.dumps(document), "-n", namespace)
    wait_until(lambda: get_or_none(control_plane, scaled_path) is None, what="the ScaledObject to be deleted")
    wait_until(lambda: replicas() == 4, what="the built-in autoscaler to take the backlog to maxReplicas")
