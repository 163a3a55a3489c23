"""A hub operator runs a pipeline's workers in a member cluster named by a RegionPool.

Two real control planes: the session's (the hub, where the operator runs in-process with its
ServiceAccount) and a member started for this module, with a process kubelet so workers become
ready there. The member's kubeconfig Secret in the hub holds a ServiceAccount token (not admin)
bound in the member to exactly the operator's declared rules, as a platform team would set it up.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from e2e.cluster import ControlPlane
from e2e.cluster.ports import free_port
from e2e.cluster.pytest_plugin import StartControlPlane
from e2e.kubelet import ProcessKubelet
from pixelmesh.api.resources import ClusterRef, SecretKeyRef
from pixelmesh.natsserver import NatsServer
from pixelmesh.operator import names, rbac
from pixelmesh.operator.clients.kube import KubeClient
from pixelmesh.operator.clients.members import (
    KubeconfigInvalidError,
    KubeconfigSecretMissingError,
    MemberClusters,
    build_configuration,
    parse_kubeconfig,
    secret_key_reader,
)
from tests.fixtures.kube import StartOperator, get_or_none, wait_until

pytestmark = pytest.mark.slow

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
GROUP_PATH = f"/apis/{names.API_VERSION}"
QUICK_WORKERS = {"PIXELMESH_FETCH_TIMEOUT_SECONDS": "0.5", "PIXELMESH_LOG_FORMAT": "text"}
CHILD_PATHS = {
    "Deployment": "/apis/apps/v1/namespaces/{ns}/deployments",
    "ConfigMap": "/api/v1/namespaces/{ns}/configmaps",
    "Service": "/api/v1/namespaces/{ns}/services",
}
KUBECONFIG_KEY = "kubeconfig"
SECRET = "member-kubeconfig"
MEMBER_REGION = "member"
WAITING_FOR_WORKERS = ("WorkersUnavailable", "RolloutInProgress")
"""Why a pipeline is not Ready while its Deployment's Pods do not run."""
OPERATOR_ACCOUNT = "pixelmesh-operator"


# --- fixtures ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Member:
    plane: ControlPlane
    kubeconfig: bytes
    """For the operator's ServiceAccount there (token, embedded CA), bound to the operator's rules."""


@pytest.fixture(scope="module")
def member(start_control_plane: StartControlPlane) -> Member:
    """A second cluster for this module's tests, and the operator's kubeconfig for it."""
    plane = start_control_plane()
    namespace = plane.create_namespace("pixelmesh-system")
    plane.kubectl().apply(yaml.safe_dump_all(rbac.manifests(namespace, OPERATOR_ACCOUNT)))
    kubeconfig = plane.service_account_kubeconfig(namespace, OPERATOR_ACCOUNT, create=False)
    return Member(plane, kubeconfig.read_bytes())


@dataclass(frozen=True)
class Pools:
    member: str
    """A RegionPool whose cluster is the member, through a Secret in the test's namespace."""
    hub: str
    """A RegionPool in the hub's own cluster."""


def region_pool(name: str, region: str, nats_url: str, cluster: dict[str, Any] | None = None) -> str:
    spec: dict[str, Any] = {"region": region, "nats": {"urls": [nats_url]}}
    if cluster is not None:
        spec["cluster"] = cluster
    return json.dumps(
        {"apiVersion": names.API_VERSION, "kind": "RegionPool", "metadata": {"name": name}, "spec": spec}
    )


@pytest.fixture
def pools(
    control_plane: ControlPlane,
    namespace: str,
    nats_server: NatsServer,
    start_operator: StartOperator,
    operator_kubeconfig: Path,
) -> Iterator[Pools]:
    """The operator running in the hub, and its two pools. The test stores the member's Secret (or not).

    The member's region is the operator's home region, so its routing bucket is the origin rather
    than a mirror: these tests are about placement, not replication between regions.
    """
    start_operator(
        kubeconfig=operator_kubeconfig,
        nats_urls=(nats_server.url,),
        namespaces=(namespace,),
        region=MEMBER_REGION,
    )
    found = Pools(member=f"member-{namespace}"[:63], hub=f"hub-{namespace}"[:63])
    secret = {"name": SECRET, "namespace": namespace, "key": KUBECONFIG_KEY}
    kubectl = control_plane.kubectl()
    kubectl.apply(region_pool(found.member, MEMBER_REGION, nats_server.url, {"kubeconfigSecret": secret}))
    kubectl.apply(region_pool(found.hub, "hub", nats_server.url))
    yield found
    kubectl.run("delete", "regionpool", found.member, found.hub, "--wait=false")


# --- helpers -----------------------------------------------------------------------------------------


def store_secret(cp: ControlPlane, namespace: str, name: str, kubeconfig: bytes) -> None:
    """Create or replace a Secret holding `kubeconfig` under `KUBECONFIG_KEY`."""
    body = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": namespace},
        "data": {KUBECONFIG_KEY: base64.b64encode(kubeconfig).decode()},
    }
    cp.api().apply(f"/api/v1/namespaces/{namespace}/secrets/{name}", body, field_manager="test", force=True)


def thumbnails(**spec_changes: Any) -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load((EXAMPLES / "imagepipeline-thumbnails.yaml").read_text())
    document["spec"].update({"worker": {"concurrency": 1, "drainTimeout": "2s"}, **spec_changes})
    return document


def pipeline_path(namespace: str, name: str = "thumbnails") -> str:
    return f"{GROUP_PATH}/namespaces/{namespace}/{names.PIPELINE_PLURAL}/{name}"


def ready_condition(cp: ControlPlane, namespace: str) -> dict[str, Any]:
    """The pipeline's Ready condition, once its status describes its current generation."""
    body = get_or_none(cp, pipeline_path(namespace)) or {}
    status = body.get("status", {})
    if status.get("observedGeneration") != body.get("metadata", {}).get("generation"):
        return {}
    return next((dict(c) for c in status.get("conditions", []) if c["type"] == "Ready"), {})


def every_child(cp: ControlPlane, namespace: str) -> dict[str, list[dict[str, Any]]] | None:
    """The children, once one of each kind exists."""
    found = children(cp, namespace)
    return found if all(found.values()) else None


def children(cp: ControlPlane, namespace: str) -> dict[str, list[dict[str, Any]]]:
    selector = names.pipeline_selector("thumbnails")
    return {
        kind: cp.api().get(path.format(ns=namespace), labelSelector=selector)["items"]
        for kind, path in CHILD_PATHS.items()
    }


async def whoami(kube: KubeClient) -> str:
    """The user the API server authenticates `kube`'s requests as."""
    review = {"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"}
    reply = await kube.request("POST", "/apis/authentication.k8s.io/v1/selfsubjectreviews", body=review)
    return str(reply["status"]["userInfo"]["username"])


# --- the tests ---------------------------------------------------------------------------------------


def test_a_pipeline_runs_in_the_member_cluster_is_ready_with_its_workers_and_leaves_with_its_region(
    control_plane: ControlPlane,
    member: Member,
    pools: Pools,
    namespace: str,
    tmp_path: Path,
) -> None:
    store_secret(control_plane, namespace, SECRET, member.kubeconfig)
    control_plane.kubectl().apply(
        json.dumps(thumbnails(regions=[{"pool": pools.member, "weight": 100}])), "-n", namespace
    )

    # The children land in the member, in a namespace the operator created there.
    found = wait_until(lambda: every_child(member.plane, namespace), what="the member's children")
    assert {kind: len(items) for kind, items in found.items()} == dict.fromkeys(CHILD_PATHS, 1)
    for items in found.values():
        assert "ownerReferences" not in items[0]["metadata"], "no owner lives in the member"
    labels = member.plane.api().get(f"/api/v1/namespaces/{namespace}")["metadata"]["labels"]
    assert labels[names.LABEL_MANAGED_BY] == names.MANAGED_BY
    assert not any(children(control_plane, namespace).values()), "nothing runs in the hub"

    # No node runs the member's Pods yet: not Ready, for that reason.
    waiting = wait_until(lambda: ready_condition(control_plane, namespace), what="a Ready condition")
    assert waiting["status"] == "False"
    assert waiting["reason"] in WAITING_FOR_WORKERS, waiting
    assert f"Region {MEMBER_REGION}" in waiting["message"]

    selector = f"{names.LABEL_NAME}={names.WORKER_APP}"
    with ProcessKubelet(
        member.plane.api(),
        tmp_path / "kubelet",
        label_selector=selector,
        extra_env=QUICK_WORKERS,
    ) as kubelet:
        ready = wait_until(
            lambda: (c := ready_condition(control_plane, namespace)).get("status") == "True" and c,
            timeout=60.0,
            what="Ready once the member's worker is ready",
        )
        assert ready["reason"]
        status = control_plane.api().get(pipeline_path(namespace))["status"]
        assert (status["desiredReplicas"], status["readyReplicas"]) == (1, 1)
        assert len(kubelet.pids()) == 1

        # The region leaves the pipeline for a pool in the hub's own cluster.
        control_plane.api().request(
            "PATCH",
            pipeline_path(namespace),
            {"spec": {"regions": [{"pool": pools.hub, "weight": 100}]}},
            content_type="application/merge-patch+json",
        )
        wait_until(
            lambda: not any(children(member.plane, namespace).values()),
            timeout=30.0,
            what="the member's children to be removed",
        )
    assert get_or_none(member.plane, f"/api/v1/namespaces/{namespace}") is not None, "the namespace stays"
    wait_until(lambda: every_child(control_plane, namespace), what="the hub's children")


def test_a_missing_kubeconfig_secret_is_reported_heals_and_deleting_the_pipeline_cleans_the_member(
    control_plane: ControlPlane, member: Member, pools: Pools, namespace: str
) -> None:
    control_plane.kubectl().apply(
        json.dumps(thumbnails(regions=[{"pool": pools.member, "weight": 100}])), "-n", namespace
    )
    failed = wait_until(
        lambda: (c := ready_condition(control_plane, namespace)).get("reason") == "RuntimeFailed" and c,
        what="Ready=False with reason RuntimeFailed",
    )
    assert failed["status"] == "False"
    assert f"Secret {namespace}/{SECRET} does not exist" in failed["message"], failed["message"]
    assert "member" in failed["message"], "the region is named"

    store_secret(control_plane, namespace, SECRET, member.kubeconfig)
    wait_until(lambda: every_child(member.plane, namespace), what="the member's children")
    healed = wait_until(
        lambda: (c := ready_condition(control_plane, namespace)).get("reason") != "RuntimeFailed" and c,
        what="the failure to clear",
    )
    assert healed["reason"] in WAITING_FOR_WORKERS, "no node runs the member's Pods in this test"

    control_plane.api().delete(pipeline_path(namespace))
    wait_until(lambda: get_or_none(control_plane, pipeline_path(namespace)) is None, what="deletion")
    assert not any(children(member.plane, namespace).values()), "the finalizer removed the member's children"


async def test_member_clusters_rebuild_the_client_when_the_kubeconfig_changes_and_probe_the_api(
    control_plane: ControlPlane, member: Member, namespace: str
) -> None:
    hub = KubeClient(build_configuration(parse_kubeconfig(control_plane.kubeconfig.read_bytes())))
    members = MemberClusters(hub, secret_key_reader(hub), refresh_seconds=0.0)
    cluster = ClusterRef(kubeconfig_secret=SecretKeyRef(name=SECRET, namespace=namespace, key=KUBECONFIG_KEY))
    store_secret(control_plane, namespace, SECRET, member.kubeconfig)
    try:
        first = await members.connect(cluster)
        assert await whoami(first.kube) == yaml.safe_load(member.kubeconfig)["users"][0]["name"]
        assert await members.connect(cluster) is first, "unchanged content: the same client"

        store_secret(control_plane, namespace, SECRET, member.plane.kubeconfig.read_bytes())
        second = await members.connect(cluster)
        assert second is not first
        assert first.closed
        assert await whoami(second.kube) == "admin"
        assert members.built() == [second]

        reachable, message = await members.api_reachable(cluster, 2.0)
        assert reachable, message
        assert member.plane.server in message
        own_reachable, own_message = await members.api_reachable(None, 2.0)
        assert own_reachable, own_message
        assert control_plane.server in own_message

        config = yaml.safe_load(member.kubeconfig)
        config["clusters"][0]["cluster"]["server"] = f"https://127.0.0.1:{free_port()}"
        store_secret(control_plane, namespace, SECRET, yaml.safe_dump(config).encode())
        started = time.monotonic()
        reachable, message = await members.api_reachable(cluster, 1.0)
        assert not reachable
        assert "did not answer" in message
        assert time.monotonic() - started < 5.0

        store_secret(control_plane, namespace, SECRET, b"users: [unclosed")
        with pytest.raises(KubeconfigInvalidError, match=SECRET):
            await members.connect(cluster)
        assert members.built() == []

        control_plane.api().delete(f"/api/v1/namespaces/{namespace}/secrets/{SECRET}")
        with pytest.raises(KubeconfigSecretMissingError, match="does not exist"):
            await members.connect(cluster)
        reachable, message = await members.api_reachable(cluster, 1.0)
        assert not reachable
        assert "does not exist" in message
    finally:
        members.close()
        hub.close()
