"""A kubelet that runs Pods as local processes, for a real API server with no nodes.

The test control plane has an API server and a controller manager but no scheduler and no
kubelet: a Deployment gets its ReplicaSet and Pods, and the Pods stay Pending. This plays the two
missing parts for the Pods it is told to own (a label selector), so that the real Deployment and
ReplicaSet controllers compute `readyReplicas` from real readiness:

- it registers a Node (Ready, with a heartbeat Lease so the node lifecycle controller does not
  evict its Pods) and binds unscheduled Pods to it;
- it starts each bound Pod as a process (see `launch`), reports it Running, and Ready once its
  HTTP readiness probe answers; a process that exits is restarted (restartPolicy Always);
- a Pod being deleted gets SIGTERM, then SIGKILL after its grace period, then is removed;
- `stop(kill=True)` kills every process at once, as when a whole region is lost;
- `set_namespace_env` adds variables to the Pods of one namespace from their next start on, and
  `restart_namespace` ends their processes so they start again with them (a broken rollout of
  one pipeline's workers, without touching the others').

It is synchronous and runs in a thread, so it works beside asyncio tests and kopf alike. Only the
processes it started are ever signalled, by PID.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import subprocess
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import IO, Any

from e2e.cluster.api import MERGE_PATCH, ApiClient, ApiError
from e2e.cluster.ports import free_port
from e2e.kubelet.launch import JsonObject, Launch, default_argv, plan_launch

log = logging.getLogger(__name__)

LEASE_SECONDS = 40
HEARTBEAT_SECONDS = 10.0


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _micro_now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass
class PodProcess:
    """One Pod's process and what the kubelet reported about it."""

    namespace: str
    name: str
    uid: str
    launch: Launch
    directory: Path
    process: subprocess.Popen[bytes] | None = None
    log_file: IO[bytes] | None = None
    restarts: int = 0
    started_at: str = ""
    reported_ready: bool | None = None
    terminating_until: float | None = None
    history: list[int] = field(default_factory=list)
    """PIDs this Pod has run as, oldest first."""

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None


class ProcessKubelet:
    """Runs the Pods matching `label_selector` as processes on a Node called `node_name`."""

    def __init__(
        self,
        api: ApiClient,
        workdir: Path,
        *,
        node_name: str = "process-node",
        label_selector: str = "",
        zone: str = "zone-a",
        argv_for: Callable[[JsonObject], list[str]] = default_argv,
        extra_env: dict[str, str] | None = None,
        poll_interval: float = 0.3,
    ) -> None:
        self._api = api
        self._workdir = workdir
        self.node_name = node_name
        self._selector = label_selector
        self._zone = zone
        self._argv_for = argv_for
        self._extra_env = extra_env or {}
        self._namespace_env: dict[str, dict[str, str]] = {}
        self._poll = poll_interval
        self._pods: dict[str, PodProcess] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_heartbeat = 0.0
        self.errors: list[str] = []

    # --- lifecycle ---------------------------------------------------------------------

    def __enter__(self) -> ProcessKubelet:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def start(self) -> None:
        """Register the Node and start syncing Pods in a background thread."""
        self._workdir.mkdir(parents=True, exist_ok=True)
        self._register_node()
        self._thread = threading.Thread(target=self._run, name=f"kubelet-{self.node_name}", daemon=True)
        self._thread.start()

    def stop(self, *, kill: bool = False) -> None:
        """Stop syncing and end every process: SIGTERM with grace, or SIGKILL at once (`kill`)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
        for pod in list(self._pods.values()):
            self._end_process(pod, kill=kill)
        self._pods.clear()

    @property
    def pods(self) -> dict[str, PodProcess]:
        """The Pods running here, by `namespace/name`."""
        return dict(self._pods)

    def set_namespace_env(self, namespace: str, env: dict[str, str]) -> None:
        """Variables for the processes of `namespace`'s Pods started from now on ({}: none)."""
        self._namespace_env[namespace] = dict(env)

    def restart_namespace(self, namespace: str) -> list[int]:
        """SIGKILL the processes of `namespace`'s Pods; the sync loop starts them again (restartPolicy
        Always). Returns the PIDs ended."""
        ended = []
        for pod in list(self._pods.values()):
            process = pod.process
            if pod.namespace == namespace and process is not None and process.poll() is None:
                process.kill()
                process.wait(timeout=10)
                ended.append(process.pid)
        return ended

    def pids(self) -> list[int]:
        """PIDs of the processes running now."""
        return [p.process.pid for p in self._pods.values() if p.process is not None and p.running()]

    # --- the loop ------------------------------------------------------------------------

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.sync_once()
            except Exception as error:  # a harness keeps going and records why
                self.errors.append(repr(error))
                log.warning("Process kubelet %s failed a sync: %r", self.node_name, error)
            self._stop.wait(self._poll)

    def sync_once(self) -> None:
        """One pass: heartbeat, bind, start, probe, restart, terminate."""
        if time.monotonic() - self._last_heartbeat > HEARTBEAT_SECONDS:
            self._heartbeat()
        params = {"labelSelector": self._selector} if self._selector else {}
        pods = self._api.get("/api/v1/pods", **params).get("items", [])
        seen: set[str] = set()
        for pod in pods:
            meta, spec = pod["metadata"], pod["spec"]
            key = f"{meta['namespace']}/{meta['name']}"
            if not spec.get("nodeName"):
                if not meta.get("deletionTimestamp"):
                    self._bind(pod)
                continue
            if spec["nodeName"] != self.node_name:
                continue
            seen.add(key)
            self._sync_pod(pod, key)
        for key in set(self._pods) - seen:
            self._end_process(self._pods.pop(key), kill=True)

    def _sync_pod(self, pod: JsonObject, key: str) -> None:
        meta = pod["metadata"]
        current = self._pods.get(key)
        if current is not None and current.uid != meta["uid"]:
            self._end_process(self._pods.pop(key), kill=True)
            current = None
        if meta.get("deletionTimestamp"):
            if current is None:
                self._finalize(pod)
            elif self._terminate(current):
                self._pods.pop(key, None)
                self._finalize(pod)
            return
        if current is None:
            current = self._prepare(pod)
            self._pods[key] = current
        if not current.running():
            if current.process is not None:
                current.restarts += 1
            self._spawn(current)
        ready = self._probe(current)
        if ready != current.reported_ready:
            self._report(current, ready=ready)

    # --- Pods ------------------------------------------------------------------------------

    def _prepare(self, pod: JsonObject) -> PodProcess:
        meta = pod["metadata"]
        namespace = meta["namespace"]

        def lookup(kind: str, name: str) -> JsonObject | None:
            plural = {"ConfigMap": "configmaps", "Secret": "secrets"}[kind]
            try:
                return self._api.get(f"/api/v1/namespaces/{namespace}/{plural}/{name}")
            except ApiError as error:
                if error.status == 404:
                    return None
                raise

        directory = self._workdir / namespace / meta["name"] / meta["uid"][:8]
        launch = plan_launch(pod, lookup, directory, free_port, self._argv_for)
        for sub in launch.directories:
            (directory / sub).mkdir(parents=True, exist_ok=True)
        for rel, data in launch.files.items():
            path = directory / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
        return PodProcess(namespace, meta["name"], meta["uid"], launch, directory)

    def _spawn(self, pod: PodProcess) -> None:
        if pod.log_file is None:
            pod.log_file = (pod.directory / "container.log").open("ab")
        env = {**pod.launch.env, **self._extra_env, **self._namespace_env.get(pod.namespace, {})}
        pod.process = subprocess.Popen(
            pod.launch.argv,
            env=env,
            cwd=pod.directory,
            stdout=pod.log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        pod.history.append(pod.process.pid)
        pod.started_at = _now()
        pod.reported_ready = None
        log.info("Process kubelet %s started Pod %s as PID %d.", self.node_name, pod.key, pod.process.pid)

    def _probe(self, pod: PodProcess) -> bool:
        if not pod.running():
            return False
        if pod.launch.readiness is None:
            return True
        path, port = pod.launch.readiness
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=1.0) as reply:
                status: int = reply.status
                return 200 <= status < 400
        except (urllib.error.URLError, OSError, TimeoutError):
            return False

    def _report(self, pod: PodProcess, *, ready: bool) -> None:
        state = "True" if ready else "False"
        now = _now()
        status: dict[str, Any] = {
            "phase": "Running",
            "hostIP": "127.0.0.1",
            "podIP": "127.0.0.1",
            "podIPs": [{"ip": "127.0.0.1"}],
            "startTime": pod.started_at,
            "conditions": [
                {"type": "PodScheduled", "status": "True", "lastTransitionTime": now},
                {"type": "Initialized", "status": "True", "lastTransitionTime": now},
                {"type": "ContainersReady", "status": state, "lastTransitionTime": now},
                {"type": "Ready", "status": state, "lastTransitionTime": now},
            ],
            "containerStatuses": [
                {
                    "name": "main",
                    "ready": ready,
                    "started": pod.running(),
                    "restartCount": pod.restarts,
                    "image": "pixelmesh",
                    "imageID": "",
                    "state": {"running": {"startedAt": pod.started_at}},
                }
            ],
        }
        try:
            self._api.request(
                "PATCH",
                f"/api/v1/namespaces/{pod.namespace}/pods/{pod.name}/status",
                {"status": status},
                content_type=MERGE_PATCH,
            )
            pod.reported_ready = ready
        except ApiError as error:
            if error.status != 404:
                raise

    def _terminate(self, pod: PodProcess) -> bool:
        """Begin or continue a graceful stop; True once the process is gone."""
        if not pod.running():
            self._close(pod)
            return True
        assert pod.process is not None
        if pod.terminating_until is None:
            pod.terminating_until = time.monotonic() + pod.launch.grace_seconds
            pod.process.send_signal(signal.SIGTERM)
            return False
        if time.monotonic() >= pod.terminating_until:
            pod.process.kill()
            pod.process.wait(timeout=10)
            self._close(pod)
            return True
        return False

    def _end_process(self, pod: PodProcess, *, kill: bool) -> None:
        if pod.process is not None and pod.running():
            if kill:
                pod.process.kill()
            else:
                pod.process.send_signal(signal.SIGTERM)
                try:
                    pod.process.wait(timeout=pod.launch.grace_seconds)
                except subprocess.TimeoutExpired:
                    pod.process.kill()
            pod.process.wait(timeout=10)
        self._close(pod)

    @staticmethod
    def _close(pod: PodProcess) -> None:
        if pod.log_file is not None:
            pod.log_file.close()
            pod.log_file = None

    def _finalize(self, pod: JsonObject) -> None:
        meta = pod["metadata"]
        with contextlib.suppress(ApiError):
            self._api.delete(
                f"/api/v1/namespaces/{meta['namespace']}/pods/{meta['name']}",
                {"gracePeriodSeconds": 0, "preconditions": {"uid": meta["uid"]}},
            )

    def _bind(self, pod: JsonObject) -> None:
        meta = pod["metadata"]
        body = {
            "apiVersion": "v1",
            "kind": "Binding",
            "metadata": {"name": meta["name"], "namespace": meta["namespace"]},
            "target": {"apiVersion": "v1", "kind": "Node", "name": self.node_name},
        }
        with contextlib.suppress(ApiError):  # another kubelet bound it first: fine
            self._api.post(f"/api/v1/namespaces/{meta['namespace']}/pods/{meta['name']}/binding", body)

    # --- the Node --------------------------------------------------------------------------

    def _register_node(self) -> None:
        node = {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": self.node_name,
                "labels": {
                    "kubernetes.io/hostname": self.node_name,
                    "kubernetes.io/os": "linux",
                    "topology.kubernetes.io/zone": self._zone,
                },
            },
        }
        try:
            self._api.post("/api/v1/nodes", node)
        except ApiError as error:
            if error.status != 409:
                raise
        self._heartbeat()

    def _heartbeat(self) -> None:
        now = _now()
        capacity = {"cpu": "64", "memory": "256Gi", "pods": "1000"}
        status = {
            "capacity": capacity,
            "allocatable": capacity,
            "conditions": [
                {
                    "type": "Ready",
                    "status": "True",
                    "reason": "KubeletReady",
                    "message": "The process kubelet is running.",
                    "lastHeartbeatTime": now,
                    "lastTransitionTime": now,
                }
            ],
            "addresses": [{"type": "InternalIP", "address": "127.0.0.1"}],
        }
        self._api.request(
            "PATCH", f"/api/v1/nodes/{self.node_name}/status", {"status": status}, content_type=MERGE_PATCH
        )
        lease_path = f"/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/{self.node_name}"
        lease = {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": self.node_name, "namespace": "kube-node-lease"},
            "spec": {
                "holderIdentity": self.node_name,
                "leaseDurationSeconds": LEASE_SECONDS,
                "renewTime": _micro_now(),
            },
        }
        self._api.apply(lease_path, lease, field_manager="process-kubelet", force=True)
        self._last_heartbeat = time.monotonic()
