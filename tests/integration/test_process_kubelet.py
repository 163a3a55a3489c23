"""The process kubelet lets the real Deployment and ReplicaSet controllers run Pods as processes."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from e2e.cluster.control_plane import ControlPlane
from e2e.kubelet import ProcessKubelet

pytestmark = pytest.mark.slow


def wait_for(check: Callable[[], bool], timeout: float = 60.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def deployment(name: str, replicas: int) -> dict[str, object]:
    labels = {"app.kubernetes.io/name": name, "app.kubernetes.io/component": "kubelet-test"}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "terminationGracePeriodSeconds": 5,
                    "containers": [
                        {
                            "name": "main",
                            "image": "python",
                            "command": [sys.executable, "-m", "http.server", "8080", "--bind", "127.0.0.1"],
                            "ports": [{"name": "http", "containerPort": 8080}],
                            "readinessProbe": {"httpGet": {"path": "/", "port": "http"}},
                        }
                    ],
                },
            },
        },
    }


@pytest.fixture
def kubelet(control_plane: ControlPlane, tmp_path: Path) -> Iterator[ProcessKubelet]:
    with ProcessKubelet(
        control_plane.api(),
        tmp_path / "kubelet",
        node_name=f"node-{os.getpid()}-{tmp_path.name[-8:]}".lower().replace("_", "-"),
        label_selector="app.kubernetes.io/component=kubelet-test",
    ) as k:
        yield k
    assert not k.pids(), "every process the kubelet started is stopped"


def test_deployment_becomes_ready_scales_and_is_removed(
    control_plane: ControlPlane, namespace: str, kubelet: ProcessKubelet
) -> None:
    assert control_plane.has_controller_manager
    api = control_plane.api()
    base = f"/apis/apps/v1/namespaces/{namespace}/deployments"
    api.post(base, deployment("web", 2))

    def ready(n: int) -> Callable[[], bool]:
        return lambda: api.get(f"{base}/web").get("status", {}).get("readyReplicas", 0) == n

    wait_for(ready(2), what="2 ready replicas reported by the Deployment controller")
    assert len(kubelet.pids()) == 2
    first_pids = set(kubelet.pids())

    api.request(
        "PATCH", f"{base}/web", {"spec": {"replicas": 1}}, content_type="application/merge-patch+json"
    )
    wait_for(lambda: len(kubelet.pids()) == 1, what="one process after scaling down")
    wait_for(ready(1), what="1 ready replica")
    assert set(kubelet.pids()) <= first_pids

    api.delete(f"{base}/web", {"propagationPolicy": "Foreground"})
    wait_for(lambda: not kubelet.pids(), what="no process after deleting the Deployment")
    assert not kubelet.errors


def test_crashed_process_is_restarted(
    control_plane: ControlPlane, namespace: str, kubelet: ProcessKubelet
) -> None:
    api = control_plane.api()
    base = f"/apis/apps/v1/namespaces/{namespace}/deployments"
    api.post(base, deployment("crashy", 1))
    wait_for(lambda: len(kubelet.pids()) == 1, what="the process to start")
    (pid,) = kubelet.pids()
    os.kill(pid, 9)
    wait_for(lambda: kubelet.pids() not in ([], [pid]), what="a restarted process")
    (pod,) = kubelet.pods.values()
    assert pod.restarts >= 1
    assert pod.history[0] == pid
